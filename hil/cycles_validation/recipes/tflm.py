"""TFLite Micro as TinyEngine's README measured it: tflite-micro at 713b6ed, with its reference
kernels (`tflm`) or with OPTIMIZED_KERNEL_DIR=cmsis_nn and CMSIS-NN at 011bf32 (`tflm-cmsis-nn`),
its library built by its own Makefile (`tinylab tflm build`'s machinery) with -Ofast in place of
the Makefile's own levels (the README: "compiled by -Ofast"), run by the lab's TFLM workload.

TFLM at 713b6ed takes CMSIS-NN from CMSIS_5's CMSIS/NN (ext_libs/cmsis_download.sh fetches
CMSIS_5 at 6a18a74b into downloads/cmsis); ARM-software/CMSIS-NN at 011bf32 is the first commit of
that code as a repository of its own, so the checkout's downloads/cmsis must hold CMSIS_5 at
6a18a74b with CMSIS/NN replaced by CMSIS-NN at 011bf32. The Makefile downloads nothing: every
folder its scripts would fetch must be there already."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from hil.cycles_validation.published import PublishedLatency, SourceFolder
from hil.cycles_validation.recipes.mcunet_models import MCUNET_MODELS, TINYENGINE_SOURCE, model_source
from hil.cycles_validation.recipes.pinned import PinnedTree, git_blob_id, require_version
from hil.cycles_validation.recipes.sourcetree import SourceFolderError
from hil.experiments.tflm_baseline import arena_room, sizing_arena
from hil.firmware_build.firmware import Firmware, build_firmware
from hil.firmware_build.tflm_baseline_library import TflmLibrary, load_tflm_library
from hil.firmware_build.tflm_baseline_workload import (TfliteModelInfo, aligned_arena, check_no_static_constructors, inspect_tflite,
                                                       require_cxx_toolchain, resolver_calls, tflm_workload)
from hil.firmware_build.tflm_library_build import (CHECKOUT_DOWNLOADS, TflmBuildSpec, build_tflm_library,
                                                   missing_downloads)
from hil.targets.boards import load_board
from hil.targets.boardspec import BoardSpec

OPTIMIZE = "Ofast"
# The Makefile's optimisation levels (Makefile: CORE_OPTIMIZATION_LEVEL -Os, KERNEL_ and
# THIRD_PARTY_KERNEL_OPTIMIZATION_LEVEL -O2), overridden on the make line.
OFAST_OVERRIDES = tuple((variable, f"-{OPTIMIZE}") for variable in
                        ("CORE_OPTIMIZATION_LEVEL", "KERNEL_OPTIMIZATION_LEVEL", "THIRD_PARTY_KERNEL_OPTIMIZATION_LEVEL"))
TFLM = PinnedTree(
    SourceFolder("TINYLAB_TFLM_713B6ED_DIR",
                 "a tflite-micro checkout at 713b6ed with its Makefile's downloads/ filled (flatbuffers, gemmlowp, ruy, "
                 "kissfft, pigweed, cmsis: the commits its download scripts name)",
                 "git clone https://github.com/tensorflow/tflite-micro DIR && git -C DIR checkout "
                 "713b6ed6bd81d8d6906d885e14f444aaf9c154f6 && make -C DIR -f tensorflow/lite/micro/tools/make/Makefile "
                 "TARGET=cortex_m_generic TARGET_ARCH=cortex-m7+fp OPTIMIZED_KERNEL_DIR=cmsis_nn third_party_downloads "
                 "(online), then replace DIR/tensorflow/lite/micro/tools/make/downloads/cmsis/CMSIS/NN with "
                 "https://github.com/ARM-software/CMSIS-NN at 011bf3228a64cd70ba6bfac91ac6840a88b829ee"),
    "713b6ed6bd81d8d6906d885e14f444aaf9c154f6",
)
CMSIS_NN_COMMIT = "011bf3228a64cd70ba6bfac91ac6840a88b829ee"
CMSIS_NN_IN_DOWNLOADS = "cmsis/CMSIS/NN"
# Files of ARM-software/CMSIS-NN at 011bf32 (git blob ids) that tell its tree from CMSIS_5's CMSIS/NN.
CMSIS_NN_MARKERS = {
    "Include/arm_nnfunctions.h": "dbb510829a97ce92d5b9dc4702d02069d79eef71",
    "Include/arm_nnsupportfunctions.h": "7d83d870f25cf4e0c836c4dfe344e93cff8a173f",
}


class TflmRecipe:
    """The recipes `tflm` (reference kernels) and `tflm-cmsis-nn` (CMSIS-NN's) at 713b6ed."""

    def __init__(self, name: str, kernels: str) -> None:
        self.name = name
        self.kernels = kernels
        self.sources = (TFLM.source, MCUNET_MODELS, TINYENGINE_SOURCE)  # TinyEngine ships mcunet-vww1's file

    def build(self, pair: PublishedLatency, folders: Mapping[str, Path], cache: Path) -> Firmware:
        require_version(pair.software, "tflm", TFLM)
        board = load_board(pair.twin)
        model = model_source(pair.model, folders)
        info = inspect_tflite(model.tflite, model.name)
        resolver_calls(info)
        require_cxx_toolchain(board)
        library = load_tflm_library(self.library_folder(pair, board, folders), board)
        arena = sizing_arena(board, model, info)
        firmware = self._firmware(board, info, model.tflite, arena, library, staged=False, cache=cache)
        if firmware.stack_bytes - aligned_arena(info.input.bytes) >= board.min_stack_bytes:
            firmware = self._firmware(board, info, model.tflite, arena, library, staged=True, cache=cache)
        return firmware

    def library_folder(self, pair: PublishedLatency, board: BoardSpec, folders: Mapping[str, Path]) -> Path:
        """TFLM's library for the board, built by its Makefile with -Ofast (or from the lab's TFLM cache)."""
        checkout = TFLM.locate(folders)
        downloads = checkout / CHECKOUT_DOWNLOADS
        cmsis_nn = None
        if self.kernels == "cmsis-nn":
            require_version(pair.software, "cmsis-nn", PinnedTree(TFLM.source, CMSIS_NN_COMMIT))
            cmsis_nn = downloads / CMSIS_NN_IN_DOWNLOADS
            check_cmsis_nn(cmsis_nn)
        spec = TflmBuildSpec(checkout, board, self.kernels, "release", None, cmsis_nn, OFAST_OVERRIDES)
        missing = missing_downloads(spec)
        if missing:
            raise SourceFolderError(f"{TFLM.source.env}={checkout}: its Makefile's downloads/ lacks {', '.join(missing)}, "
                                    f"which it would download (no network here); {TFLM.source.obtain}")
        # In the lab's TFLM cache (`tinylab tflm list` shows it), keyed by commit, target, kernels and flags.
        return build_tflm_library(spec, jobs=os.cpu_count() or 1).directory

    def _firmware(self, board: BoardSpec, info: TfliteModelInfo, tflite: bytes, arena: int, library: TflmLibrary, *,
                  staged: bool, cache: Path) -> Firmware:
        firmware = build_firmware(board, tflm_workload(info, tflite, min(arena, arena_room(board, info)), library, staged),
                                  optimize=OPTIMIZE, cache_dir=cache / "firmware")
        check_no_static_constructors(firmware.elf)
        return firmware


def check_cmsis_nn(folder: Path) -> None:
    """Refuse a downloads/cmsis/CMSIS/NN that is not CMSIS-NN at 011bf32."""
    where = f"{folder} (the CMSIS-NN that TFLM at 713b6ed compiles)"
    missing = [name for name in CMSIS_NN_MARKERS if not (folder / name).is_file()]
    if missing:
        raise SourceFolderError(f"{where} has no {', '.join(missing)}; {TFLM.source.obtain}")
    changed = [name for name, blob in CMSIS_NN_MARKERS.items() if git_blob_id(folder / name) != blob]
    if changed:
        raise SourceFolderError(f"{where} is not ARM-software/CMSIS-NN at {CMSIS_NN_COMMIT[:7]}: {', '.join(changed)} "
                                f"differ; {TFLM.source.obtain}")


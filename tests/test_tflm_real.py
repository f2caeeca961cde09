"""TFLM on the target with real TFLM libraries, named by TINYLAB_TFLM_DIR (several separated by
':', for instance the folders `tinylab tflm build` prints): each library is accepted for the QEMU
board of its core and refused for the other, links with the generated workload (a release build
without MicroPrintf, or a build with its logging), and runs a model bit-exact with TFLM's host
build with the smallest arena it starts with. Skipped, naming TINYLAB_TFLM_DIR, without one."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from hil.experiments.models import default_input, resolve_model
from hil.experiments.tflm_baseline import run_tflm_baseline
from hil.firmware_build.firmware import build_firmware, symbol_address
from hil.firmware_build.tflm_baseline_workload import inspect_tflite, tflm_workload
from hil.firmware_build.tflm_baseline_library import (MICRO_PRINTF_SYMBOL, TFLM_DIR_ENV, TflmLibrary, TflmUnavailable,
                                                      archive_symbols, try_tflm_library)
from hil.targets.boards import load_board

from conftest import needs_arm_gcc, needs_qemu

DIRS = [Path(p.strip()) for p in os.environ.get(TFLM_DIR_ENV, "").split(os.pathsep) if p.strip()]
needs_tflm = pytest.mark.skipif(not DIRS, reason=f"set {TFLM_DIR_ENV} to one or more real TFLM libraries "
                                "(':'-separated; `tinylab tflm build` makes them) to run these")
BOARDS = ("qemu-f746", "qemu-f412")  # a Cortex-M7 (FPv5) and a Cortex-M4 (FPv4)
each_dir = pytest.mark.parametrize("root", DIRS or [Path("none")], ids=lambda p: p.name)


def accepted_by(root: Path) -> dict[str, TflmLibrary | TflmUnavailable]:
    return {name: try_tflm_library(root, load_board(name)) for name in BOARDS}


@needs_arm_gcc
@needs_tflm
@each_dir
def test_a_real_library_serves_its_own_core_only(root):
    checked = accepted_by(root)
    accepted = [name for name, c in checked.items() if isinstance(c, TflmLibrary)]
    assert len(accepted) == 1, {name: str(c) for name, c in checked.items()}
    refused = next(c for c in checked.values() if isinstance(c, TflmUnavailable))
    library = checked[accepted[0]]
    assert refused.kind == "another-core" and refused.engine == library.engine and "Tag_FP_arch" in refused.reason


@needs_arm_gcc
@needs_qemu
@needs_tflm
@each_dir
def test_a_real_library_links_and_runs_a_model_bit_exact_with_the_smallest_arena(root):
    board, library = next((load_board(n), c) for n, c in accepted_by(root).items() if isinstance(c, TflmLibrary))
    defined, _ = archive_symbols(library.archives)
    assert library.strips_error_strings == (MICRO_PRINTF_SYMBOL not in defined)
    source = resolve_model("mcunet-tiny")
    run = run_tflm_baseline(board, source, default_input(source.graph, seed=2), library)
    assert run.engine == library.engine and run.matches_reference, (run.output, run.reference)
    assert run.arena_reserved == run.arena_search.smallest >= run.arena_used > 0
    assert run.unit == "instructions" and run.latency > 0 and run.peak_sram == run.model_static_ram + run.stack_high_water
    firmware = build_firmware(board, tflm_workload(inspect_tflite(source.tflite, source.name), source.tflite,
                                                   run.arena_reserved, library))
    assert firmware.from_cache  # the firmware that was measured
    elf = firmware.elf
    commands = (elf.parent / "build-command.txt").read_text()
    assert "-DNDEBUG" in commands  # TFLITE_DCHECK must not call abort(), which needs a heap
    assert ("-DTF_LITE_STRIP_ERROR_STRINGS" in commands) == library.strips_error_strings
    assert symbol_address(elf, "tflm_tensor_arena") > 0

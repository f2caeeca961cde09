"""MLPerf Tiny's v0.5 reference submission on the NUCLEO-L4R5ZI (closed/reference/ in
tiny_results_v0.5): TFLM 2.3.1 with its CMSIS-NN kernels, built by Mbed CLI with its default
(develop) profile. The results repository does not ship TFLM: its setup_example.sh downloads
TensorFlow v2.3.1 and runs TFLM's `generate_hello_world_mbed_project` with TAGS=cmsis-nn. The lab
takes that generated tree from mlcommons/tiny at 5b637a6, which commits the output of the same
script (benchmark/reference_submissions/streaming_wakeword, with Mbed's recorded compile flags in
BUILD/NUCLEO_L4R5ZI/GCC_ARM/.profile-c and .profile-cxx), and the model, arena and op list from the
v0.5 submission itself; the harness replaces the Mbed glue."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from hil.cycles_validation.published import PublishedLatency, SourceFolder
from hil.cycles_validation.recipes.archive import CompileUnit, static_library
from hil.cycles_validation.recipes.microtvm import CMSIS_5
from hil.cycles_validation.recipes.sourcetree import SourceFolderError, require_files, source_folder
from hil.errors import BuildError
from hil.firmware_build.firmware import COMPILER, CXX_COMPILER, Firmware, WorkloadSources, build_firmware, \
    cpu_flags, render_template
from hil.firmware_build.tflm_baseline_workload import (c_byte_array, check_no_static_constructors, inspect_tflite,
                                                       output_format, require_cxx_toolchain)
from hil.targets.boards import load_board
from hil.targets.boardspec import BoardSpec

TFLM_2_3_TREE = SourceFolder(
    env="TINYLAB_MLPERF_TINY_DIR",
    what="mlcommons/tiny at 5b637a6 (benchmark/reference_submissions/streaming_wakeword: TFLM 2.3.1 "
         "with CMSIS-NN as TFLM's generate_hello_world_mbed_project writes it, and Mbed's build flags)",
    obtain="git clone https://github.com/mlcommons/tiny DIR && git -C DIR checkout 5b637a6",
)
RESULTS_V0_5 = SourceFolder(
    env="TINYLAB_MLPERF_TINY_V0_5_DIR",
    what="mlcommons/tiny_results_v0.5 at d75aef6 (its closed/reference/code/ folder)",
    obtain="git clone https://github.com/mlcommons/tiny_results_v0.5 DIR && git -C DIR checkout d75aef6",
)
PROJECT = "benchmark/reference_submissions/streaming_wakeword"
CODE = "closed/reference/code"


@dataclass(frozen=True)
class ReferenceModel:
    """Where the v0.5 reference keeps one benchmark: its submission folder, the C array of the model
    it compiles in, and the .tflite it ships (the same bytes, checked)."""

    folder: str
    model_source: str
    tflite: str


MODELS = {
    "ad01": ReferenceModel("anomaly_detection", "reference_submissions/anomaly_detection/model.cc",
                           "training/anomaly_detection/trained_models/ad01_int8.tflite"),
    "kws01": ReferenceModel("keyword_spotting", "reference_submissions/keyword_spotting/kws/kws_model_data.cc",
                            "training/keyword_spotting/trained_models/kws_ref_model.tflite"),
    "ic01": ReferenceModel("image_classification", "reference_submissions/image_classification/ic/ic_model_quant_data.cc",
                           "training/image_classification/trained_models/pretrainedResnet_quant.tflite"),
    "vww01": ReferenceModel("person_detection", "training/visual_wake_words/trained_models/vww/vww_model_data.cc",
                            "training/visual_wake_words/trained_models/vww_96_int8.tflite"),
}
# Mbed's recorded flags that are not code generation: compile-only, dependency files, and the float
# ABI, which is the harness's (hard; Mbed OS builds the Cortex-M4F with softfp: the same
# instructions, floats passed in core registers at calls).
_DROPPED_FLAGS = ("-c", "-MMD", "-mfloat-abi=softfp")


@dataclass(frozen=True)
class Submission:
    """What the v0.5 submission fixes for one model."""

    model: bytes  # the bytes of its compiled-in array
    arena_bytes: int  # kTensorArenaSize
    ops: tuple[str, ...]  # MicroMutableOpResolver::Add<op>() in its order
    macros: tuple[str, ...]  # mbed_app.json's "macros"


def read_submission(root: Path, model: str) -> Submission:
    spec = MODELS[model]
    code = root / CODE
    submitter = (code / "reference_submissions" / spec.folder / "submitter_implemented.cpp").read_text()
    arena = re.search(r"kTensorArenaSize\s*=\s*(\d+)\s*\*\s*1024", submitter)
    init = submitter[submitter.find("th_final_initialize"):]
    ops = tuple(dict.fromkeys(re.findall(r"\bAdd([A-Z]\w*)\(\)", init)))
    if arena is None or not ops:
        raise SourceFolderError(f"{code / 'reference_submissions' / spec.folder}: no kTensorArenaSize or no "
                                "resolver Add...() calls in submitter_implemented.cpp")
    app = code / "reference_submissions" / spec.folder / "mbed_app.json"
    macros = tuple(json.loads(app.read_text()).get("macros", ())) if app.is_file() else ()
    array = re.search(r"=\s*\{([^{}]*)\}", (code / spec.model_source).read_text())
    model_bytes = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-fA-F]{1,2})", array.group(1))) if array else b""
    shipped = (code / spec.tflite).read_bytes()
    if model_bytes != shipped:
        raise SourceFolderError(f"{code / spec.model_source}: its array ({len(model_bytes)} B, sha256 "
                                f"{hashlib.sha256(model_bytes).hexdigest()[:12]}) is not {spec.tflite} "
                                f"({len(shipped)} B, {hashlib.sha256(shipped).hexdigest()[:12]})")
    return Submission(model_bytes, int(arena.group(1)) * 1024, ops, macros)


@dataclass(frozen=True)
class MbedTflmTree:
    """The generated TFLM 2.3.1 + CMSIS-NN Mbed project and Mbed's flags for it."""

    root: Path

    @property
    def downloads(self) -> Path:
        return self.root / "tensorflow/lite/micro/tools/make/downloads"

    def include_dirs(self, cmsis_5: Path) -> tuple[Path, ...]:
        """Mbed puts every folder of a project on the include path; these are the ones TFLM's and
        CMSIS-NN's includes resolve against (CMSIS's core headers from CMSIS_5: Mbed OS's own copy
        is not fetched)."""
        return (self.root, self.root / "third_party/flatbuffers/include", self.root / "third_party/gemmlowp",
                self.root / "third_party/ruy", self.downloads, self.downloads / "cmsis/CMSIS/NN/Include",
                self.downloads / "cmsis/CMSIS/DSP/Include", cmsis_5 / "CMSIS/Core/Include")

    def profile(self, language: str) -> tuple[str, ...]:
        """Mbed's recorded flags and symbols for `language` ("c" or "cxx")."""
        data = json.loads((self.root / f"BUILD/NUCLEO_L4R5ZI/GCC_ARM/.profile-{language}").read_text())
        return (*(f for f in data["flags"] if f not in _DROPPED_FLAGS), *(f"-D{s}" for s in data["symbols"]))

    def sources(self) -> list[Path]:
        """Every C and C++ source of the project's TFLM and CMSIS-NN (Mbed compiles them all)."""
        return sorted([*(self.root / "tensorflow").rglob("*.cc"), *(self.root / "tensorflow").rglob("*.c")])


@dataclass(frozen=True)
class TflmReferenceRecipe:
    name: str = "mlperf-reference-tflm"
    sources: tuple[SourceFolder, ...] = (TFLM_2_3_TREE, RESULTS_V0_5, CMSIS_5)

    def inputs(self, pair: PublishedLatency, folders: Mapping[str, Path] | None = None
               ) -> tuple[MbedTflmTree, Submission, Path]:
        if pair.model not in MODELS:
            raise SourceFolderError(f"recipe {self.name}: no reference submission for model {pair.model!r}; "
                                    f"it has {', '.join(MODELS)}")
        tree_root = source_folder(TFLM_2_3_TREE, folders)
        require_files(TFLM_2_3_TREE, tree_root, tuple(f"{PROJECT}/{name}" for name in (
            "tensorflow/lite/micro/micro_interpreter.cc", "tensorflow/lite/micro/kernels/cmsis-nn/conv.cc",
            "tensorflow/lite/micro/tools/make/downloads/cmsis/CMSIS/NN/Include/arm_nnfunctions.h",
            "BUILD/NUCLEO_L4R5ZI/GCC_ARM/.profile-c", "BUILD/NUCLEO_L4R5ZI/GCC_ARM/.profile-cxx")))
        results = source_folder(RESULTS_V0_5, folders)
        spec = MODELS[pair.model]
        require_files(RESULTS_V0_5, results, tuple(f"{CODE}/{name}" for name in (
            f"reference_submissions/{spec.folder}/submitter_implemented.cpp", spec.model_source, spec.tflite)))
        cmsis = source_folder(CMSIS_5, folders)
        require_files(CMSIS_5, cmsis, ("CMSIS/Core/Include/cmsis_gcc.h",))
        return MbedTflmTree(tree_root / PROJECT), read_submission(results, pair.model), cmsis

    def build(self, pair: PublishedLatency, folders: Mapping[str, Path], cache: Path) -> Firmware:
        board = load_board(pair.twin)
        if board.core != "cortex-m4" or board.fpu != "fpv4-sp-d16":
            raise BuildError(f"recipe {self.name}: the submission is built for a Cortex-M4 with FPv4 "
                             f"(NUCLEO-L4R5ZI); {board.name} is a {board.core} with {board.fpu}")
        require_cxx_toolchain(board)
        tree, submission, cmsis = self.inputs(pair, folders)
        library = tflm_library(tree, submission, cmsis, board, cache)
        info = inspect_tflite(submission.model, pair.model)
        text = render_template(
            "cycles/tflm23_workload.cc.j2", model_name=pair.model, workload_name=f"{pair.model}-{self.name}",
            model_bytes=len(submission.model), model_array=c_byte_array(submission.model),
            arena_bytes=submission.arena_bytes, ops=submission.ops, input_bytes=info.input.bytes,
            output_bytes=info.output.bytes, output=output_format(info.output))
        workload = WorkloadSources(
            files={"tflm23_workload.cc": text}, input_capacity=info.input.bytes, library=(library,),
            label=f"{pair.model} ({self.name})",
            # TfLiteTensor's layout depends on these macros: the workload sees TFLM as the library was built
            cxx_flags=(*(f"-D{m}" for m in submission.macros),
                       *(f"-isystem{d}" for d in tree.include_dirs(cmsis))))
        firmware = build_firmware(board, workload, cache_dir=cache / "firmware")
        check_no_static_constructors(firmware.elf)
        return firmware


def tflm_library(tree: MbedTflmTree, submission: Submission, cmsis: Path, board: BoardSpec, cache: Path) -> Path:
    """TFLM 2.3.1 and CMSIS-NN as Mbed compiles them for the NUCLEO-L4R5ZI (its recorded flags and
    symbols, the submission's mbed_app.json macros), in the board's float ABI."""
    includes = tree.include_dirs(cmsis)
    common = (*cpu_flags(board), *(f"-D{m}" for m in submission.macros), *(f"-I{d}" for d in includes))
    c_flags, cxx_flags = (*tree.profile("c"), *common), (*tree.profile("cxx"), *common)
    units = [CompileUnit(source, CXX_COMPILER, cxx_flags) if source.suffix == ".cc"
             else CompileUnit(source, COMPILER, c_flags) for source in tree.sources()]
    headers = [h for d in includes[:1] for h in d.rglob("*.h")]
    label = "mlperf-reference-tflm-" + hashlib.sha256(" ".join(submission.macros).encode()).hexdigest()[:8]
    return static_library(label, units, headers, cache)


TFLM_REFERENCE = TflmReferenceRecipe()

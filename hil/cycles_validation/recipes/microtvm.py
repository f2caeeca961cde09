"""OctoML's microTVM submissions to MLPerf Tiny v1.0 on the NUCLEO-L4R5ZI (closed/OctoML/code/):
the model as TVM generated it (C, ahead-of-time executor) and TVM's C runtime, both shipped in the
results repository, compiled with the flags of the submission's Zephyr 2.7 build; the lab's
harness replaces the Zephyr glue (UART, timer, the workspace hooks of its tvmruntime.cpp)."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from hil.cycles_validation.published import PublishedLatency, SourceFolder
from hil.cycles_validation.recipes.archive import CompileUnit, static_library
from hil.cycles_validation.recipes.sourcetree import SourceFolderError, require_files, source_folder
from hil.errors import BuildError
from hil.firmware_build.firmware import COMPILER, Firmware, cpu_flags, WorkloadSources, build_firmware, render_template
from hil.firmware_build.toolchain import require_tool
from hil.targets.boards import load_board
from hil.targets.boardspec import BoardSpec

RESULTS_V1_0 = SourceFolder(
    env="TINYLAB_MLPERF_TINY_V1_0_DIR",
    what="mlcommons/tiny_results_v1.0 at c7761cf (its closed/OctoML/code/ folder)",
    obtain="git clone https://github.com/mlcommons/tiny_results_v1.0 DIR && git -C DIR checkout c7761cf",
)
CMSIS_5 = SourceFolder(
    env="TINYLAB_CMSIS5_DIR",
    what="ARM-software/CMSIS_5 at 51263182 (CMSIS/NN and CMSIS/Core/Include), the CMSIS the "
         "submission's system description names",
    obtain="git clone https://github.com/ARM-software/CMSIS_5 DIR && git -C DIR checkout 51263182",
)

# MLPerf Tiny's benchmark ids -> the submission's folder names.
MODEL_FOLDERS = {"ad01": "ad", "kws01": "kws", "ic01": "ic", "vww01": "vww"}
BOARD_FOLDER = "NUCLEO_L4R5ZI"
# Zephyr 2.7's C flags for nucleo_l4r5zi with the submission's prj.conf: CONFIG_SPEED_OPTIMIZATIONS
# (-O2), CONFIG_FPU (fpv4-sp-d16, hard-float ABI), C99, no common symbols, no strict overflow, no PIC
# (cmake/compiler/gcc/ and the top CMakeLists.txt); its CMakeLists.txt adds -Wno-unused-variable for
# the model. The float ABI is the harness's too. Left out: Zephyr's -ffreestanding, under which gcc
# calls memcpy for CMSIS-NN's 4-byte reads; the published latencies are below what those calls
# alone cost (ad01 + CMSIS-NN: 2.9 M instructions with it, 1.03 M cycles published), so the measured
# builds cannot have had them.
ZEPHYR_C_FLAGS = (
    "-mcpu=cortex-m4", "-mthumb", "-mabi=aapcs", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-O2", "-g",
    "-std=c99", "-fno-common", "-fno-strict-overflow", "-fno-pie", "-fno-pic",
    "-fno-asynchronous-unwind-tables", "-fno-reorder-functions", "-fno-defer-pop",
    "-ffunction-sections", "-fdata-sections", "-Wno-unused-variable",
)
# The CMSIS-NN folders its CMakeLists.txt globs when ENABLE_CMSIS is TRUE.
CMSIS_NN_FOLDERS = ("ActivationFunctions", "BasicMathFunctions", "ConcatenationFunctions",
                    "ConvolutionFunctions", "FullyConnectedFunctions", "NNSupportFunctions",
                    "PoolingFunctions", "ReshapeFunctions", "SoftmaxFunctions")
CMSIS_NEEDED = ("CMSIS/NN/Include/arm_nnsupportfunctions.h", "CMSIS/Core/Include/cmsis_gcc.h")
_OUTPUT_TYPES = {"int8_t": ("int8_t", "LAB_OUTPUT_INT8", 1), "float": ("float", "LAB_OUTPUT_FLOAT32", 4)}


@dataclass(frozen=True)
class MicroTvmProject:
    """One of the submission's project folders and what its build files fix."""

    folder: Path
    workspace_bytes: int  # WORKSPACE_SIZE
    input_bytes: int  # MAX_DB_INPUT_SIZE
    enable_cmsis: bool  # ENABLE_CMSIS: CMSIS's headers (and, for the CMSIS-NN variant, its kernels)
    input_field: str  # tvmgen_default_inputs' member
    output_field: str  # tvmgen_default_outputs' member
    output_ctype: str  # output_data's element type
    output_count: int  # output_data_len

    @property
    def model_sources(self) -> list[Path]:
        return sorted((self.folder / "model/codegen/host/src").glob("*.c"))

    @property
    def runtime_sources(self) -> list[Path]:
        """TVM's C runtime as the firmware links it: the `memory` library (the stack allocator).
        Its CMakeLists.txt also archives the `common` library, whose members nothing links (the
        workspace hooks are the glue's, here the harness's); they compile only with Zephyr's
        headers (crt_backend_api.c uses PRIu64 without <inttypes.h>)."""
        return sorted((self.folder / "crt/src/runtime/crt/memory").rglob("*.c"))

    @property
    def include_dirs(self) -> tuple[Path, ...]:
        return (self.folder / "include", self.folder / "crt_config", self.folder / "crt/include")


def _cmake_define(text: str, name: str, path: Path) -> int:
    match = re.search(rf"-D{name}=(\d+)", text)
    if match is None:
        raise SourceFolderError(f"{path}: no -D{name}=... (not one of OctoML's microTVM projects)")
    return int(match.group(1))


def read_project(folder: Path) -> MicroTvmProject:
    """The project's workspace, input and output as its CMakeLists.txt and headers fix them."""
    cmake = (folder / "CMakeLists.txt").read_text()
    enable = re.search(r"set\(ENABLE_CMSIS (TRUE|FALSE)\)", cmake)
    header = (folder / "include/tvmgen_default.h").read_text()
    fields = {kind: re.search(rf"struct tvmgen_default_{kind}\s*{{\s*void\*\s*(\w+);\s*}};", header)
              for kind in ("inputs", "outputs")}
    output = (folder / "include/output_data.h").read_text()
    count = re.search(r"output_data_len\s*=\s*(\d+);", output)
    ctype = re.search(r"^(int8_t|float)\s+output_data\[\]", output, re.MULTILINE)
    problems = [what for what, found in (("ENABLE_CMSIS", enable), ("one input", fields["inputs"]),
                                         ("one output", fields["outputs"]), ("output_data_len", count),
                                         ("an int8_t or float output_data", ctype)) if found is None]
    if problems:
        raise SourceFolderError(f"{folder}: {', '.join(problems)} not found (not one of OctoML's microTVM projects)")
    return MicroTvmProject(folder, _cmake_define(cmake, "WORKSPACE_SIZE", folder),
                           _cmake_define(cmake, "MAX_DB_INPUT_SIZE", folder), enable.group(1) == "TRUE",
                           fields["inputs"].group(1), fields["outputs"].group(1), ctype.group(1), int(count.group(1)))


@dataclass(frozen=True)
class MicroTvmRecipe:
    """OctoML's v1.0 submission, one variant: `microtvm_native` (TVM's own schedules) or
    `microtvm_cmsis_nn` (TVM calls CMSIS-NN's kernels)."""

    name: str
    variant: str
    sources: tuple[SourceFolder, ...] = (RESULTS_V1_0, CMSIS_5)

    def project(self, pair: PublishedLatency, folders: Mapping[str, Path] | None = None) -> MicroTvmProject:
        if pair.model not in MODEL_FOLDERS:
            raise SourceFolderError(f"recipe {self.name}: no project for model {pair.model!r}; "
                                    f"it has {', '.join(MODEL_FOLDERS)}")
        root = source_folder(RESULTS_V1_0, folders)
        relative = f"closed/OctoML/code/{self.variant}/{BOARD_FOLDER}/{MODEL_FOLDERS[pair.model]}"
        require_files(RESULTS_V1_0, root, tuple(f"{relative}/{name}" for name in (
            "CMakeLists.txt", "include/tvmgen_default.h", "include/output_data.h",
            "crt/src/runtime/crt/memory/stack_allocator.c", "model/codegen/host/src/default_lib1.c")))
        return read_project(root / relative)

    def build(self, pair: PublishedLatency, folders: Mapping[str, Path], cache: Path) -> Firmware:
        board = load_board(pair.twin)
        if board.core != "cortex-m4" or board.fpu != "fpv4-sp-d16":
            raise BuildError(f"recipe {self.name}: the submission is built for a Cortex-M4 with FPv4 "
                             f"(nucleo_l4r5zi); {board.name} is a {board.core} with {board.fpu}")
        project = self.project(pair, folders)
        cmsis = source_folder(CMSIS_5, folders) if project.enable_cmsis else None
        if cmsis is not None:
            require_files(CMSIS_5, cmsis, CMSIS_NEEDED)
        library = submission_library(self, project, cmsis, cache)
        name = f"{pair.model}-{self.name}"
        ctype, output_type, _ = _OUTPUT_TYPES[project.output_ctype]
        text = render_template(
            "cycles/microtvm_workload.c.j2", label=f"{self.variant}/{BOARD_FOLDER}/{MODEL_FOLDERS[pair.model]}",
            workload_name=name, workspace_bytes=project.workspace_bytes, input_bytes=project.input_bytes,
            output_count=project.output_count, output_ctype=ctype, output_type=output_type,
            input_field=project.input_field, output_field=project.output_field)
        workload = WorkloadSources(files={"microtvm_workload.c": text}, input_capacity=project.input_bytes,
                                   library=(library, c_math_library(board)), include_dirs=project.include_dirs, label=name)
        return build_firmware(board, workload, cache_dir=cache / "firmware")


def c_math_library(board: BoardSpec) -> Path:
    """newlib's libm for the board's core and float ABI, which the submission links (CONFIG_NEWLIB_LIBC):
    TVM's generated code calls roundf and friends."""
    result = subprocess.run([require_tool(COMPILER), *cpu_flags(board), "-print-file-name=libm.a"],
                            capture_output=True, text=True, timeout=60)
    path = Path(result.stdout.strip())
    if not path.is_absolute() or not path.is_file():
        raise BuildError(f"{COMPILER} has no libm.a for {' '.join(cpu_flags(board))}")
    return path


def _cmsis_includes(cmsis: Path) -> tuple[Path, ...]:
    return (cmsis / "CMSIS/Core/Include", cmsis / "CMSIS/NN/Include")


def library_sources(recipe: MicroTvmRecipe, project: MicroTvmProject, cmsis: Path | None) -> list[Path]:
    """What the submission's CMakeLists.txt compiles besides its Zephyr glue: the generated model,
    TVM's runtime and, for the CMSIS-NN variant, CMSIS-NN's kernels."""
    sources = [*project.model_sources, *project.runtime_sources]
    if cmsis is not None and recipe.variant == "microtvm_cmsis_nn":
        for folder in CMSIS_NN_FOLDERS:
            sources += sorted((cmsis / "CMSIS/NN/Source" / folder).glob("*.c"))
    return sources


def submission_library(recipe: MicroTvmRecipe, project: MicroTvmProject, cmsis: Path | None, cache: Path) -> Path:
    """The submission's code as a static library built with its own flags (hil/cycles_validation/recipes/archive.py)."""
    includes = (*project.include_dirs, *(_cmsis_includes(cmsis) if cmsis is not None else ()))
    flags = (*ZEPHYR_C_FLAGS, *(f"-I{d}" for d in includes))
    units = [CompileUnit(source, COMPILER, flags) for source in library_sources(recipe, project, cmsis)]
    headers = [h for d in includes for h in d.rglob("*.h")]
    return static_library(f"{recipe.name}-{project.folder.name}", units, headers, cache)


MICROTVM_NATIVE = MicroTvmRecipe("octoml-microtvm-native", "microtvm_native")
MICROTVM_CMSIS_NN = MicroTvmRecipe("octoml-microtvm-cmsis-nn", "microtvm_cmsis_nn")

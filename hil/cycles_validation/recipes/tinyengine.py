"""TinyEngine (mit-han-lab/tinyengine) as published: its own code generator (code_generator/, run
from the fetched folder with its requirements) turns the model into genModel.c/h and its kernels;
those and TinyEngine's int8 kernels are compiled with -Ofast (as the README's measurements were)
into a static library, which a workload table calls behind the lab's harness.

The input: TinyEngine's getInput() is the model's int8 input in NHWC (height, width, channel) order,
as the lab loads it: the first convolution (convolve_s8_kernel3_inputch3_stride2_pad1_fpreq) reads
HWC bytes. Its depthwise kernels work in place, so every inference is given a fresh copy of the
input (the harness's staging copy). TinyEngine requantises in float (fp_requantize), so its output
is close to TFLM's, not bit-exact."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from hil.cycles_validation.published import PublishedLatency, SourceFolder
from hil.cycles_validation.recipes.mcunet_models import MCUNET_MODELS, TINYENGINE_SOURCE, model_source
from hil.cycles_validation.recipes.pinned import PinnedTree, require_version
from hil.cycles_validation.recipes.sourcetree import SourceFolderError, source_folder
from hil.errors import BuildError
from hil.firmware_build.firmware import Firmware, WorkloadSources, build_firmware, cpu_flags, render_template
from hil.firmware_build.model_workload import tensor_output_format
from hil.firmware_build.tflm_baseline_workload import inspect_tflite
from hil.firmware_build.toolchain import require_tool, tool_version
from hil.targets.boards import load_board
from hil.targets.boardspec import BoardSpec

OPTIMIZE = "Ofast"  # README, "Measured Results": "All the tflite models are compiled by -Ofast"
TINYENGINE = PinnedTree(
    TINYENGINE_SOURCE,
    "03639563ebf6538fff557515e31667fca6448cd3",
    {"code_generator/CodeGenerator.py": "ac5f7f0b30d20fd916789b946fc75a2015764af3",
     "code_generator/OpGenerator.py": "81db24920cf532c22acdf9f67038692641cca506",
     "TinyEngine/include/tinyengine_function.h": "35c9ab249c4f8f553ba1264e40a322dac58af5c4"},
)
# TinyEngine/third_party/CMSIS is a submodule: ARM-software/CMSIS_5 at 5b58d2da. Its kernels use
# CMSIS-NN's and CMSIS-DSP's headers (types, intrinsics) only, as import_arm_inference.sh copies them.
TINYENGINE_CMSIS = PinnedTree(
    SourceFolder("TINYLAB_TINYENGINE_CMSIS_DIR",
                 "ARM-software/CMSIS_5 at 5b58d2da (TinyEngine's third_party/CMSIS submodule; CMSIS/NN, CMSIS/DSP/Include, CMSIS/Core/Include)",
                 "git clone https://github.com/ARM-software/CMSIS_5 DIR && "
                 "git -C DIR checkout 5b58d2da8af7cee64cc9145ee1154609bdfee9f9"),
    "5b58d2da8af7cee64cc9145ee1154609bdfee9f9",
    {"CMSIS/NN/Include/arm_nnfunctions.h": "8c106378e7773ef22b3254186475be0e1785d828",
     "CMSIS/NN/Include/arm_nnsupportfunctions.h": "497f00926b03e7248ea31b247af6c7d0c69daa0f",
     "CMSIS/DSP/Include/arm_math.h": "300c5cf4a4523dac26b76d83208cb0907245d3fe"},
)
# The code generator's requirements (requirements.txt: numpy, matplotlib, tqdm, flatbuffers) in a
# Python of their own: it needs NumPy 1.x (NumPy 2 keeps int8 sums in int8 and overflows in
# CodeGenerator._parseoffsetBias), which the lab's Python need not have.
GENERATOR_PYTHON = SourceFolder(
    "TINYLAB_TINYENGINE_VENV",
    "a Python virtual environment with TinyEngine's code generator's requirements (numpy 1.x, matplotlib, tqdm, flatbuffers)",
    "python3 -m venv DIR && DIR/bin/pip install 'numpy<2' 'matplotlib<3.7' 'contourpy<1.1' tqdm flatbuffers",
)
GENERATOR_MODULES = ("numpy", "matplotlib", "tqdm", "flatbuffers")
KERNEL_FOLDERS = ("TinyEngine/src/kernels/int_forward_op", "TinyEngine/src/kernels/fp_requantize_op")
CMSIS_INCLUDES = ("CMSIS/NN/Include", "CMSIS/DSP/Include", "CMSIS/Core/Include")
ARCHIVE = "libtinyengine.a"
WORKLOAD_TEMPLATE = "cycles/tinyengine_workload.c.j2"
GENERATE = """\
import json, sys
from code_generator.CodegenUtilTFlite import GenerateSourceFilesFromTFlite
peak = GenerateSourceFilesFromTFlite(sys.argv[1], life_cycle_path=sys.argv[2])
print("tinylab-peak " + json.dumps(int(peak)))
"""
GENERATE_TIMEOUT_S = 900
COMPILE_TIMEOUT_S = 600
SRAM_COMMENT = re.compile(r"/\* sram:(\d+), flash:(\d+) \*/")


@dataclass(frozen=True)
class GeneratedModel:
    """TinyEngine's build of one model in the cache: its static library and what its code says."""

    folder: Path
    archive: Path
    sram_bytes: int  # the generated code's own figures (genModel.h's comment)
    flash_bytes: int


class TinyEngineRecipe:
    """The recipe `tinyengine`: TinyEngine at 0363956 for a pair's model on its twin."""

    name = "tinyengine"
    sources = (TINYENGINE.source, TINYENGINE_CMSIS.source, GENERATOR_PYTHON, MCUNET_MODELS)

    def build(self, pair: PublishedLatency, folders: Mapping[str, Path], cache: Path) -> Firmware:
        require_version(pair.software, "tinyengine", TINYENGINE)
        board = load_board(pair.twin)
        model = model_source(pair.model, folders)
        info = inspect_tflite(model.tflite, model.name)
        generated = generate_and_compile(model.tflite, model.name, board_flags(board), folders, cache / "tinyengine")
        input_bytes = _elements(info.input.shape)  # TinyEngine's input is int8: one byte each
        output_bytes = _elements(info.output.shape)
        files = {"tinyengine_workload.c": render_template(
            WORKLOAD_TEMPLATE, model_name=pair.model, input_bytes=input_bytes, output_bytes=output_bytes,
            output=tensor_output_format("int8", *int8_output_quantisation(model.tflite)),
            sram_bytes=generated.sram_bytes, software=pair.software)}
        workload = WorkloadSources(files=files, input_capacity=input_bytes, library=(generated.archive,),
                                   label=f"{pair.model} (TinyEngine 0363956)")
        return build_firmware(board, workload, optimize=OPTIMIZE, cache_dir=cache / "firmware")


def board_flags(board: BoardSpec) -> tuple[str, ...]:
    """The compiler flags TinyEngine's code is built with for the board: its CPU and -Ofast."""
    return (*cpu_flags(board), f"-{OPTIMIZE}", "-ffunction-sections", "-fdata-sections")


def generate_and_compile(tflite: bytes, name: str, flags: tuple[str, ...], folders: Mapping[str, Path],
                         cache: Path) -> GeneratedModel:
    """TinyEngine's generated code and kernels for the model compiled into a static library, from
    the cache (keyed by the sources' commits, the model, the flags and the compiler) or built now."""
    engine = TINYENGINE.locate(folders)
    cmsis = TINYENGINE_CMSIS.locate(folders)
    python = generator_python(folders)
    compiler = require_tool("arm-none-eabi-gcc")
    key = hashlib.sha256(json.dumps({
        "tinyengine": TINYENGINE.commit, "cmsis": TINYENGINE_CMSIS.commit, "model": hashlib.sha256(tflite).hexdigest(),
        "flags": list(flags), "gcc": tool_version("arm-none-eabi-gcc")}, sort_keys=True).encode()).hexdigest()[:24]
    final = cache / key
    if (final / ARCHIVE).is_file():
        return _generated(final)
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
    try:
        (work / "model.tflite").write_bytes(tflite)
        _run_generator(python, engine, work, name)
        sources = [p for folder in KERNEL_FOLDERS for p in sorted((engine / folder).glob("*.c"))]
        sources += sorted((work / "codegen" / "Source").glob("*.c"))
        includes = [engine / "TinyEngine" / "include", work / "codegen" / "Include", *(cmsis / d for d in CMSIS_INCLUDES)]
        objects = _compile_all(compiler, flags, includes, sources, work / "obj")
        archiver = require_tool("arm-none-eabi-ar")
        result = subprocess.run([archiver, "rcs", str(work / ARCHIVE), *map(str, objects)], capture_output=True, text=True,
                                timeout=COMPILE_TIMEOUT_S)
        if result.returncode != 0:
            raise BuildError(f"arm-none-eabi-ar failed on TinyEngine's objects in {work}: {result.stderr.strip()}")
        (work / "build.json").write_text(json.dumps({"model": name, "flags": list(flags), "engine": str(engine),
                                                     "cmsis": str(cmsis), "sources": [str(s) for s in sources]}, indent=1))
        shutil.rmtree(work / "obj", ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _generated(final)


def generator_python(folders: Mapping[str, Path]) -> Path:
    """The Python of the generator's virtual environment, checked for its requirements."""
    root = source_folder(GENERATOR_PYTHON, folders)
    python = root / "bin" / "python"
    if not python.is_file():
        raise SourceFolderError(f"{GENERATOR_PYTHON.env}={root} has no bin/python: it should be {GENERATOR_PYTHON.what} "
                                f"(make it with: {GENERATOR_PYTHON.obtain})")
    probe = subprocess.run([str(python), "-c", f"import {', '.join(GENERATOR_MODULES)}; print(numpy.__version__)"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        raise SourceFolderError(f"{python} cannot import TinyEngine's code generator's requirements "
                                f"({', '.join(GENERATOR_MODULES)}): {probe.stderr.strip().splitlines()[-1:]}; "
                                f"make it with: {GENERATOR_PYTHON.obtain}")
    if not probe.stdout.strip().startswith("1."):
        raise SourceFolderError(f"{python} has NumPy {probe.stdout.strip()}; TinyEngine's code generator needs NumPy 1.x "
                                f"(under NumPy 2 its int8 weight sums overflow): {GENERATOR_PYTHON.obtain}")
    return python


def _run_generator(python: Path, engine: Path, work: Path, name: str) -> None:
    """Run TinyEngine's GenerateSourceFilesFromTFlite in `work` (it writes ./codegen/)."""
    environment = {**os.environ, "PYTHONPATH": str(engine), "MPLBACKEND": "Agg"}
    command = [str(python), "-c", GENERATE, str(work / "model.tflite"), str(work / "lifecycle.png")]
    try:
        result = subprocess.run(command, cwd=work, env=environment, capture_output=True, text=True, timeout=GENERATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BuildError(f"TinyEngine's code generator took more than {GENERATE_TIMEOUT_S} s on {name}") from None
    (work / "generator.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0 or not (work / "codegen" / "Source" / "genModel.c").is_file():
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BuildError(f"TinyEngine's code generator failed on model {name} (in {work}):\n{tail}")


def _compile_all(compiler: str, flags: tuple[str, ...], includes: list[Path], sources: list[Path], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)

    def compile_one(source: Path) -> Path:
        target = out / f"{source.parent.name}__{source.stem}.o"
        command = [compiler, *flags, *(f"-I{d}" for d in includes), "-c", str(source), "-o", str(target)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        if result.returncode != 0:
            raise BuildError(f"arm-none-eabi-gcc failed on TinyEngine's {source}:\n{result.stderr.strip()[-3000:]}")
        return target

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(compile_one, sources))


def _generated(folder: Path) -> GeneratedModel:
    header = (folder / "codegen" / "Include" / "genModel.h").read_text(errors="replace")[:4096]
    figures = SRAM_COMMENT.search(header)
    sram, flash = (int(figures.group(1)), int(figures.group(2))) if figures else (0, 0)
    return GeneratedModel(folder, folder / ARCHIVE, sram, flash)


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def int8_output_quantisation(tflite: bytes) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The scale and zero point of TinyEngine's int8 output: the model's output's, or for a float32
    output made by a DEQUANTIZE (which TinyEngine leaves out, as it does the input's QUANTIZE),
    those of the DEQUANTIZE's int8 input."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(tflite), 0)
    graph = model.Subgraphs(0)
    tensor = graph.Outputs(0)
    if graph.Tensors(tensor).Type() != schema.TensorType.INT8:
        for index in range(graph.OperatorsLength()):
            op = graph.Operators(index)
            code = model.OperatorCodes(op.OpcodeIndex())
            if op.Outputs(0) == tensor and max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.DEQUANTIZE:
                tensor = op.Inputs(0)
                break
    quant = graph.Tensors(tensor).Quantization()
    if graph.Tensors(tensor).Type() != schema.TensorType.INT8 or quant is None or quant.ScaleLength() != 1:
        return (), ()  # printed as raw int8
    return (float(quant.ScaleAsNumpy()[0]),), (int(quant.ZeroPointAsNumpy()[0]),)

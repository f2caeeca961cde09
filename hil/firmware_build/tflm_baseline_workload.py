"""The TFLM baseline's workload: a generated C++ source that runs a .tflite model through TFLM's
MicroInterpreter behind the harness's workload table (lab.h), so that main.c, the startup code,
timer, UART and protocol are the same as for the engine's own models."""
from __future__ import annotations

import functools
import json
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hil.firmware_build.firmware import CXX_COMPILER, InputSlot, WorkloadSources, cpu_flags, render_template
from hil.firmware_build.model_workload import tensor_output_format
from hil.firmware_build.tflm_baseline_library import TflmBaselineError, TflmLibrary
from hil.firmware_build.toolchain import require_tool
from hil.errors import BuildError
from hil.targets.boardspec import BoardSpec

TEMPLATE = "tflm/workload.cc.j2"
SOURCE_NAME = "tflm_workload.cc"
ARENA_WORKLOAD = "tflm-arena"  # the table's second workload: its output is ArenaFigures
ARENA_ALIGNMENT = 16
TFLM_ARENA_SYMBOL = "tflm_tensor_arena"  # the workload's static arena (a C symbol, for the static RAM split)
# Compiled into the workload as TFLM's own build compiles the library: TfLiteTensor's layout
# depends on it. NDEBUG as TFLM's release builds have it: without it TFLITE_DCHECK in TFLM's headers
# calls abort(), which pulls newlib's malloc and _sbrk into a firmware that has no heap.
TFLM_DEFINES = ("-DTF_LITE_STATIC_MEMORY", "-DNDEBUG")
# Where the library has no MicroPrintf (BUILD_TYPE=release), TFLM's headers must not call it either.
TFLM_STRIPPED_DEFINES = ("-DTF_LITE_STRIP_ERROR_STRINGS",)

CXX_PACKAGES = "libstdc++-arm-none-eabi-dev libstdc++-arm-none-eabi-newlib"

# TFLite builtin operators -> MicroMutableOpResolver's method that registers TFLM's kernel for it
# (the CMSIS-NN kernel where the library is built with OPTIMIZED_KERNEL_DIR=cmsis_nn).
RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "ELU": "AddElu",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MAXIMUM": "AddMaximum",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "REDUCE_MAX": "AddReduceMax",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNPACK": "AddUnpack",
    "ZEROS_LIKE": "AddZerosLike",
}

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_DTYPES = {"INT8": "int8", "UINT8": "uint8", "INT16": "int16", "INT32": "int32", "FLOAT32": "float32"}
_ITEM_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "float32": 4}


class TflmModelError(TflmBaselineError):
    """The model cannot run in the TFLM baseline's workload (an op without a resolver entry, or
    more than one input or output)."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()

    @property
    def bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * _ITEM_BYTES[self.dtype]


@dataclass(frozen=True)
class TfliteModelInfo:
    """What the workload needs to know of a .tflite file: its builtin ops (in order of first use)
    and its one input and one output."""

    name: str
    ops: tuple[str, ...]
    input: TensorInfo
    output: TensorInfo


@dataclass(frozen=True)
class ArenaFigures:
    """The `tflm-arena` workload's output: TFLM's arena on the target, read after boot."""

    used: int  # MicroInterpreter::arena_used_bytes() after AllocateTensors
    reserved: int  # the static arena's size in this firmware
    status: int  # 0: the interpreter is ready; otherwise the failed step (see the template)

    BYTES: ClassVar[int] = 12  # three little-endian uint32

    @classmethod
    def from_output(cls, raw: bytes) -> ArenaFigures:
        if len(raw) != cls.BYTES:
            raise TflmModelError(f"the {ARENA_WORKLOAD} workload returned {len(raw)} bytes, not {cls.BYTES}")
        return cls(*struct.unpack("<3I", raw))


def inspect_tflite(data: bytes, name: str) -> TfliteModelInfo:
    """Read the ops and the input and output tensors of a .tflite flatbuffer."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TflmModelError(f"model {name}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    model = schema.Model.GetRootAs(bytearray(data), 0)
    if model.SubgraphsLength() != 1:
        raise TflmModelError(f"model {name}: {model.SubgraphsLength()} subgraphs; the TFLM workload runs one")
    graph = model.Subgraphs(0)
    if graph.InputsLength() != 1 or graph.OutputsLength() != 1:
        raise TflmModelError(
            f"model {name}: {graph.InputsLength()} inputs and {graph.OutputsLength()} outputs; "
            "the harness feeds one input and reads one output"
        )
    ops: list[str] = []
    for index in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(index).OpcodeIndex())
        value = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if value == schema.BuiltinOperator.CUSTOM:
            op = f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}"
        else:
            op = _OP_NAMES.get(value, f"builtin operator {value}")
        if op not in ops:
            ops.append(op)
    return TfliteModelInfo(name, tuple(ops), _tensor(graph, graph.Inputs(0), name), _tensor(graph, graph.Outputs(0), name))


def _tensor(graph: schema.SubGraph, index: int, model: str) -> TensorInfo:
    tensor = graph.Tensors(index)
    type_name = _TYPE_NAMES.get(tensor.Type(), str(tensor.Type()))
    if type_name not in _DTYPES:
        raise TflmModelError(f"model {model}: tensor {index} has type {type_name}, which the harness does not read or write")
    quant = tensor.Quantization()
    scale = tuple(float(s) for s in quant.ScaleAsNumpy()) if quant is not None and quant.ScaleLength() else ()
    zero = tuple(int(z) for z in quant.ZeroPointAsNumpy()) if quant is not None and quant.ZeroPointLength() else ()
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    return TensorInfo(_DTYPES[type_name], shape, scale, zero)


def resolver_calls(info: TfliteModelInfo) -> list[str]:
    """The MicroMutableOpResolver methods that register exactly the model's ops."""
    missing = [op for op in info.ops if op not in RESOLVER_METHODS]
    if missing:
        raise TflmModelError(
            f"model {info.name}: no TFLM resolver entry for {', '.join(missing)} "
            f"(hil/firmware_build/tflm_baseline_workload.py RESOLVER_METHODS lists {len(RESOLVER_METHODS)} builtin ops)"
        )
    return [RESOLVER_METHODS[op] for op in info.ops]


def output_format(tensor: TensorInfo) -> dict[str, object]:
    """How the firmware prints the output in `m-results-[...]`, as for the engine's models."""
    return tensor_output_format(tensor.dtype, tensor.scale, tensor.zero_point)


def c_byte_array(data: bytes, per_line: int = 24) -> str:
    """The bytes as the body of a C array initialiser."""
    hexed = [f"0x{b:02x}," for b in data]
    return "\n".join("    " + "".join(hexed[i:i + per_line]) for i in range(0, len(hexed), per_line))


def aligned_arena(size: int) -> int:
    return -(-max(size, ARENA_ALIGNMENT) // ARENA_ALIGNMENT) * ARENA_ALIGNMENT


# MicroInterpreter's constructor before TFLM dropped ErrorReporter from it (late 2022): the reporter
# comes right after the arena's size, with no default.
ERROR_REPORTER_PARAMETER = re.compile(r"size_t\s+tensor_arena_size,\s*ErrorReporter\*\s*error_reporter\s*,")


def interpreter_needs_error_reporter(library: TflmLibrary) -> bool:
    """Whether the library's MicroInterpreter must be given an ErrorReporter (TFLM of 2022 and before)."""
    for folder in library.include_dirs:
        header = Path(folder) / "tensorflow/lite/micro/micro_interpreter.h"
        if header.is_file():
            return bool(ERROR_REPORTER_PARAMETER.search(header.read_text(errors="replace")))
    return False


def render_workload(info: TfliteModelInfo, tflite: bytes, arena_bytes: int, library: TflmLibrary) -> str:
    """The C++ workload source for the model with a static arena of `arena_bytes`."""
    return render_template(
        TEMPLATE,
        model_name=info.name,
        name_literal=json.dumps(info.name),
        library=library.describe(),
        model_bytes=len(tflite),
        model_array=c_byte_array(tflite),
        arena_bytes=aligned_arena(arena_bytes),
        input_bytes=info.input.bytes,
        output_bytes=info.output.bytes,
        ops=info.ops,
        resolver_calls=resolver_calls(info),
        output=output_format(info.output),
        arena_workload=ARENA_WORKLOAD,
        arena_symbol=TFLM_ARENA_SYMBOL,
        error_reporter=interpreter_needs_error_reporter(library),
    )


def tflm_workload(info: TfliteModelInfo, tflite: bytes, arena_bytes: int, library: TflmLibrary,
                  staged: bool = False) -> WorkloadSources:
    """The firmware's workload: the generated source, linked with the user's TFLM archive(s).
    `staged`: the harness keeps a staging copy of the input (which a runner can preload before
    boot, and which counts as the lab's static RAM, not TFLM's); otherwise `db` writes the input
    straight into TFLM's input tensor, which the interpreter places in its arena as the firmware
    starts (so nothing can be preloaded)."""
    # Without a staging copy the harness keeps the reported output aside: room for the model's and for ArenaFigures.
    slot = None if staged else InputSlot(arena_symbol=None, offset=0, input_bytes=info.input.bytes,
                                         output_bytes=max(info.output.bytes, ArenaFigures.BYTES))
    return WorkloadSources(
        files={SOURCE_NAME: render_workload(info, tflite, arena_bytes, library)},
        input_capacity=info.input.bytes,
        input_slot=slot,
        library=library.archives,
        label=f"{info.name} ({library.engine})",
        cxx_flags=(*TFLM_DEFINES, *(TFLM_STRIPPED_DEFINES if library.strips_error_strings else ()),
                   *(f"-isystem{d}" for d in library.include_dirs)),
    )


def check_no_static_constructors(elf: Path) -> None:
    """The harness's startup code runs no C++ constructors: refuse a firmware that needs some."""
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as handle:
        sections = {s.name: s.data_size for s in ELFFile(handle).iter_sections()}
    needed = {name: size for name, size in sections.items() if name in (".init_array", ".preinit_array", ".ctors") and size}
    if needed:
        listed = ", ".join(f"{name} ({size // 4} entries)" for name, size in sorted(needed.items()))
        raise BuildError(
            f"{elf}: the TFLM library needs static constructors ({listed}), which the harness's startup "
            "code does not run; build TFLM without global objects that have constructors"
        )


def require_cxx_toolchain(board: BoardSpec) -> None:
    """arm-none-eabi-g++ with the C++ standard headers (<new>) and libstdc++ for the board's core:
    TFLM's headers need the first, its objects the second."""
    _check_cxx_toolchain(tuple(cpu_flags(board)))


@functools.cache
def _check_cxx_toolchain(flags: tuple[str, ...]) -> None:
    compiler = require_tool(CXX_COMPILER)
    hint = f"install them with: apt-get install {CXX_PACKAGES}"
    headers = subprocess.run([compiler, *flags, "-x", "c++", "-fsyntax-only", "-"], input="#include <new>\n",
                             capture_output=True, text=True, timeout=60)
    if headers.returncode != 0:
        raise BuildError(f"{CXX_COMPILER} has no C++ standard headers (#include <new> fails); {hint}")
    library = subprocess.run([compiler, *flags, "--specs=nano.specs", "-print-file-name=libstdc++_nano.a"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    if not Path(library).is_absolute():
        raise BuildError(f"{CXX_COMPILER} has no libstdc++ for {' '.join(flags)} (libstdc++_nano.a); {hint}")

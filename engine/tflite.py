"""Import a .tflite flatbuffer into the Graph IR, through the TFLite schema that the
`tflite-micro` package ships. Unsupported ops, options and types are refused with the op's name
and index; a corrupt or non-int8 file is refused with a clear message."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops import OP_KINDS, OPS
from engine.ops.spec import op_where
from engine.validate import check_op_structure, check_shape, validate_graph

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_DTYPES = {"INT8": "int8", "INT16": "int16", "INT32": "int32", "FLOAT32": "float32", "UINT8": "uint8"}
_NUMPY = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "float32": np.float32, "uint8": np.uint8}


def load_tflite(path: str | Path) -> Graph:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelFormatError(f"cannot read model {path}: {error.strerror or error}") from None
    return parse_tflite(data, name=path.stem)


def parse_tflite(data: bytes, name: str = "model") -> Graph:
    """The model as a validated Graph (engine.validate.validate_graph), or a ModelFormatError /
    UnsupportedOpError naming the op or tensor and the field at fault."""
    model = _unpack(data, name)
    if len(model.subgraphs or []) != 1:
        raise UnsupportedOpError(f"model {name}: {len(model.subgraphs or [])} subgraphs; the engine takes exactly one")
    subgraph = model.subgraphs[0]
    buffers = model.buffers or []
    tensors = [_tensor(t, buffers, name, i) for i, t in enumerate(subgraph.tensors or [])]
    codes = model.operatorCodes or []
    ops = []
    for index, op in enumerate(subgraph.operators or []):
        if not 0 <= op.opcodeIndex < len(codes):
            raise ModelFormatError(f"model {name}: op {index} has opcode_index {op.opcodeIndex}, outside 0..{len(codes) - 1}")
        kind = _op_name(codes[op.opcodeIndex])
        where = f"model {name}: op {index} ({kind})"
        if kind not in OP_KINDS:
            raise UnsupportedOpError(
                f"{where} is not supported by the engine (supported: {', '.join(OP_KINDS)})"
            )
        inputs = tuple(int(i) for i in (op.inputs if op.inputs is not None else []))
        outputs = tuple(int(i) for i in (op.outputs if op.outputs is not None else []))
        check_op_structure(where, kind, inputs, outputs, len(tensors))
        options = _options(op, kind, where)
        attrs = OPS[kind].tflite.read(options, inputs, tensors, where)
        ops.append(Op(kind=kind, inputs=inputs, outputs=outputs, attrs=attrs, index=index))
    graph = Graph(
        name=name,
        tensors=tensors,
        ops=ops,
        inputs=[int(i) for i in (subgraph.inputs if subgraph.inputs is not None else [])],
        outputs=[int(i) for i in (subgraph.outputs if subgraph.outputs is not None else [])],
    )
    validate_graph(graph)
    for op in graph.ops:
        import_check = OPS[op.kind].import_check
        if import_check is not None:
            import_check(graph, op, op_where(graph, op))
    return graph


_OPTIONS_NAMES = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}


def _options(op: Any, kind: str, where: str) -> Any:
    """The op's builtin options, refused when of another op's type or missing where required."""
    expected, optional = OPS[kind].tflite.options_type, OPS[kind].tflite.optional
    actual = int(op.builtinOptionsType or 0)
    if actual == schema.BuiltinOptions.NONE or op.builtinOptions is None:
        if not optional:
            raise ModelFormatError(f"{where}: builtin_options are missing ({_OPTIONS_NAMES[expected]} expected)")
        return None
    if actual != expected:
        raise ModelFormatError(
            f"{where}: builtin_options_type is {_OPTIONS_NAMES.get(actual, actual)}, not {_OPTIONS_NAMES[expected]}"
        )
    return op.builtinOptions


def _unpack(data: bytes, name: str) -> Any:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFormatError(f"model {name}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    try:
        return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as error:  # a truncated or corrupt flatbuffer fails in many ways
        raise ModelFormatError(f"model {name}: corrupt TFLite flatbuffer ({type(error).__name__}: {error})") from None


def _op_name(code: Any) -> str:
    value = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    if value == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode.decode(errors="replace") if isinstance(code.customCode, bytes) else code.customCode
        return f"CUSTOM:{custom}"
    return _OP_NAMES.get(value, f"builtin operator {value}")


def _tensor(t: Any, buffers: list[Any], model: str, index: int) -> Tensor:
    type_name = _TYPE_NAMES.get(t.type, str(t.type))
    if type_name not in _DTYPES:
        raise ModelFormatError(f"model {model}: tensor {index} has type {type_name}, which the engine does not handle")
    dtype = _DTYPES[type_name]
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    where = f"model {model}: tensor {index}"
    check_shape(shape, dtype, where)
    if t.sparsity is not None:
        raise UnsupportedOpError(f"{where}: sparse tensors are not supported")
    quant = t.quantization
    if quant is not None and quant.details is not None:
        raise UnsupportedOpError(f"{where}: custom quantisation details are not supported")
    scale = tuple(float(s) for s in (quant.scale if quant is not None and quant.scale is not None else []))
    zero_point = tuple(int(z) for z in (quant.zeroPoint if quant is not None and quant.zeroPoint is not None else []))
    data = None
    if not 0 <= t.buffer < len(buffers):
        raise ModelFormatError(f"{where}: buffer index {t.buffer} is outside 0..{len(buffers) - 1}")
    buffer = buffers[t.buffer] if t.buffer > 0 else None
    if buffer is not None and int(getattr(buffer, "offset", 0) or 0) > 1:
        raise UnsupportedOpError(f"{where}: its data lies outside the flatbuffer (buffer offset), which is not supported")
    if buffer is not None and buffer.data is not None and len(buffer.data) > 0:
        raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
        try:
            data = np.frombuffer(raw, dtype=np.dtype(_NUMPY[dtype]).newbyteorder("<")).reshape(shape).astype(_NUMPY[dtype])
        except ValueError:
            raise ModelFormatError(
                f"model {model}: tensor {index} holds {len(raw)} bytes, which do not fit its shape {shape} of {dtype}"
            ) from None
    name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name)
    return Tensor(
        name=name,
        shape=shape,
        dtype=dtype,
        scale=scale,
        zero_point=zero_point,
        quantized_dimension=int(quant.quantizedDimension) if quant is not None else 0,
        data=data,
    )

"""Write a Graph back out as a .tflite flatbuffer (schema version 3) that TFLite Micro loads.

The inverse of `engine.tflite.parse_tflite`: tensors keep their order, names, quantisation and
data; ops keep their order and get the builtin options their attributes describe. Constant data
is written 16-byte aligned, one buffer per constant tensor, buffer 0 empty as TFLite expects."""
from __future__ import annotations

from typing import Any, Callable

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.errors import UnsupportedOpError
from engine.ir import DTYPES, OP_KINDS, Graph, Op, Tensor

SCHEMA_VERSION = 3
BUFFER_ALIGNMENT = 16

# The operator versions the TFLite converter writes for int8 models (TFLM does not check them).
OP_VERSIONS = {
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 3,
    "FULLY_CONNECTED": 4,
    "ADD": 2,
    "AVERAGE_POOL_2D": 2,
    "MAX_POOL_2D": 2,
    "MEAN": 2,
    "PAD": 2,
    "RESHAPE": 1,
    "SOFTMAX": 2,
    "CONCATENATION": 2,
    "QUANTIZE": 1,
    "DEQUANTIZE": 2,
}
_TENSOR_TYPES = {
    "int8": schema.TensorType.INT8,
    "int16": schema.TensorType.INT16,
    "int32": schema.TensorType.INT32,
    "float32": schema.TensorType.FLOAT32,
    "uint8": schema.TensorType.UINT8,
}
_ACTIVATIONS = {
    "NONE": schema.ActivationFunctionType.NONE,
    "RELU": schema.ActivationFunctionType.RELU,
    "RELU6": schema.ActivationFunctionType.RELU6,
}
_PADDINGS = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}


def export_tflite(graph: Graph) -> bytes:
    """The graph as .tflite bytes; deterministic (the same graph gives the same bytes)."""
    buffers: list[schema.BufferT] = [_AlignedBuffer()]  # buffer 0: the empty sentinel
    tensors = []
    for index, tensor in enumerate(graph.tensors):
        buffer_index = 0
        if tensor.data is not None and np.asarray(tensor.data).size > 0:
            buffers.append(_AlignedBuffer(_tensor_bytes(tensor, graph.name, index)))
            buffer_index = len(buffers) - 1
        tensors.append(_tensor(tensor, buffer_index, graph.name, index))

    codes: list[schema.OperatorCodeT] = []
    code_index: dict[str, int] = {}
    operators = []
    for position, op in enumerate(graph.ops):
        where = f"graph {graph.name}: op {position} ({op.kind})"
        if op.kind not in OP_KINDS:
            raise UnsupportedOpError(f"{where}: not an op the engine knows (known: {', '.join(OP_KINDS)})")
        if op.kind not in code_index:
            code_index[op.kind] = len(codes)
            codes.append(_operator_code(op.kind))
        operator = schema.OperatorT()
        operator.opcodeIndex = code_index[op.kind]
        operator.inputs = np.asarray(op.inputs, dtype=np.int32)
        operator.outputs = np.asarray(op.outputs, dtype=np.int32)
        options = _OPTIONS.get(op.kind)
        if options is not None:
            operator.builtinOptionsType, operator.builtinOptions = options(op, graph, where)
        operators.append(operator)

    subgraph = schema.SubGraphT()
    subgraph.tensors = tensors
    subgraph.inputs = np.asarray(graph.inputs, dtype=np.int32)
    subgraph.outputs = np.asarray(graph.outputs, dtype=np.int32)
    subgraph.operators = operators
    subgraph.name = graph.name

    model = schema.ModelT()
    model.version = SCHEMA_VERSION
    model.description = "tinylab engine.export"
    model.operatorCodes = codes
    model.subgraphs = [subgraph]
    model.buffers = buffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _AlignedBuffer(schema.BufferT):
    """A Buffer whose bytes start on a BUFFER_ALIGNMENT boundary (int32 biases read in place)."""

    def __init__(self, raw: bytes | None = None) -> None:
        super().__init__()
        self.raw = raw

    def Pack(self, builder: flatbuffers.Builder) -> int:
        data = None
        if self.raw is not None:
            builder.StartVector(1, len(self.raw), BUFFER_ALIGNMENT)
            builder.head -= len(self.raw)
            builder.Bytes[builder.head : builder.head + len(self.raw)] = self.raw
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


def _tensor_bytes(tensor: Tensor, graph: str, index: int) -> bytes:
    data = np.asarray(tensor.data)
    if tuple(data.shape) != tuple(tensor.shape):
        raise ValueError(f"graph {graph}: tensor {index} '{tensor.name}' has data of shape {data.shape}, not {tensor.shape}")
    return np.ascontiguousarray(data, dtype=np.dtype(DTYPES[tensor.dtype]).newbyteorder("<")).tobytes()


def _tensor(tensor: Tensor, buffer_index: int, graph: str, index: int) -> schema.TensorT:
    if tensor.dtype not in _TENSOR_TYPES:
        raise ValueError(f"graph {graph}: tensor {index} '{tensor.name}' has type {tensor.dtype}, which TFLite cannot hold")
    t = schema.TensorT()
    t.shape = np.asarray(tensor.shape, dtype=np.int32)
    t.type = _TENSOR_TYPES[tensor.dtype]
    t.buffer = buffer_index
    t.name = tensor.name
    if tensor.scale:
        if len(tensor.scale) != len(tensor.zero_point):
            raise ValueError(
                f"graph {graph}: tensor {index} '{tensor.name}' has {len(tensor.scale)} scales "
                f"but {len(tensor.zero_point)} zero points"
            )
        quant = schema.QuantizationParametersT()
        quant.scale = np.asarray(tensor.scale, dtype=np.float32)
        quant.zeroPoint = np.asarray(tensor.zero_point, dtype=np.int64)
        quant.quantizedDimension = int(tensor.quantized_dimension)
        t.quantization = quant
    return t


def _operator_code(kind: str) -> schema.OperatorCodeT:
    code = schema.OperatorCodeT()
    value = getattr(schema.BuiltinOperator, kind)
    code.builtinCode = value
    code.deprecatedBuiltinCode = min(value, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = OP_VERSIONS[kind]
    return code


# ---- attributes -> builtin options, one function per op kind ----
def _attr(op: Op, key: str, where: str) -> Any:
    if key not in op.attrs:
        raise ValueError(f"{where}: attribute '{key}' is missing (has: {', '.join(sorted(op.attrs)) or 'none'})")
    return op.attrs[key]


def _activation(op: Op, where: str) -> int:
    name = op.attrs.get("activation", "NONE")
    if name not in _ACTIVATIONS:
        raise UnsupportedOpError(f"{where}: fused activation {name} is not supported (NONE, RELU, RELU6 are)")
    return _ACTIVATIONS[name]


def _window(options: Any, op: Op, where: str) -> Any:
    padding = _attr(op, "padding", where)
    if padding not in _PADDINGS:
        raise ValueError(f"{where}: padding {padding!r} is neither SAME nor VALID")
    options.padding = _PADDINGS[padding]
    options.strideH = int(_attr(op, "stride_h", where))
    options.strideW = int(_attr(op, "stride_w", where))
    options.fusedActivationFunction = _activation(op, where)
    return options


def _conv(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    return schema.BuiltinOptions.Conv2DOptions, _window(schema.Conv2DOptionsT(), op, where)


def _depthwise(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = _window(schema.DepthwiseConv2DOptionsT(), op, where)
    multiplier = op.attrs.get("depth_multiplier")
    if multiplier is None:
        channels_in = graph.tensors[op.inputs[0]].shape[-1]
        multiplier = graph.tensors[op.inputs[1]].shape[-1] // channels_in if channels_in else 1
    options.depthMultiplier = int(multiplier)
    return schema.BuiltinOptions.DepthwiseConv2DOptions, options


def _pool(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = _window(schema.Pool2DOptionsT(), op, where)
    options.filterHeight = int(_attr(op, "filter_h", where))
    options.filterWidth = int(_attr(op, "filter_w", where))
    return schema.BuiltinOptions.Pool2DOptions, options


def _fully_connected(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.FullyConnectedOptionsT()
    options.fusedActivationFunction = _activation(op, where)
    options.keepNumDims = bool(op.attrs.get("keep_num_dims", False))
    return schema.BuiltinOptions.FullyConnectedOptions, options


def _add(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.AddOptionsT()
    options.fusedActivationFunction = _activation(op, where)
    return schema.BuiltinOptions.AddOptions, options


def _concatenation(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.ConcatenationOptionsT()
    options.axis = int(_attr(op, "axis", where))
    options.fusedActivationFunction = _activation(op, where)
    return schema.BuiltinOptions.ConcatenationOptions, options


def _softmax(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.SoftmaxOptionsT()
    options.beta = float(op.attrs.get("beta", 1.0))
    return schema.BuiltinOptions.SoftmaxOptions, options


def _constant(op: Op, graph: Graph, where: str, what: str) -> np.ndarray:
    if len(op.inputs) < 2 or op.inputs[1] < 0 or graph.tensors[op.inputs[1]].data is None:
        raise ValueError(f"{where}: the {what} must be a constant int32 tensor at input 1")
    return np.asarray(graph.tensors[op.inputs[1]].data)


def _mean(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    rank = len(graph.tensors[op.inputs[0]].shape)
    axes = sorted({int(a) + rank if int(a) < 0 else int(a) for a in _constant(op, graph, where, "axis").ravel()})
    if "axes" in op.attrs and tuple(axes) != tuple(op.attrs["axes"]):
        raise ValueError(f"{where}: attribute axes {tuple(op.attrs['axes'])} disagrees with the axis tensor {tuple(axes)}")
    options = schema.ReducerOptionsT()
    options.keepDims = bool(op.attrs.get("keep_dims", False))
    return schema.BuiltinOptions.ReducerOptions, options


def _pad(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    paddings = tuple((int(a), int(b)) for a, b in _constant(op, graph, where, "paddings").reshape(-1, 2))
    if "paddings" in op.attrs and paddings != tuple(tuple(p) for p in op.attrs["paddings"]):
        raise ValueError(f"{where}: attribute paddings {op.attrs['paddings']} disagrees with the paddings tensor {paddings}")
    return schema.BuiltinOptions.PadOptions, schema.PadOptionsT()


def _reshape(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.ReshapeOptionsT()
    if len(op.inputs) > 1 and op.inputs[1] >= 0 and graph.tensors[op.inputs[1]].data is not None:
        options.newShape = np.asarray(graph.tensors[op.inputs[1]].data, dtype=np.int32).ravel()
    else:
        options.newShape = np.asarray(graph.tensors[op.outputs[0]].shape, dtype=np.int32)
    return schema.BuiltinOptions.ReshapeOptions, options


_OPTIONS: dict[str, Callable[[Op, Graph, str], tuple[int, Any]]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _add,
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "MEAN": _mean,
    "PAD": _pad,
    "RESHAPE": _reshape,
    "SOFTMAX": _softmax,
    "CONCATENATION": _concatenation,
}

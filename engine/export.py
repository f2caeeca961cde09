"""Write a Graph back out as a .tflite flatbuffer (schema version 3) that TFLite Micro loads.

The inverse of `engine.tflite.parse_tflite`: tensors keep their order, names, quantisation and
data; ops keep their order and get the builtin options their attributes describe. Constant data
is written 16-byte aligned, one buffer per constant tensor, buffer 0 empty as TFLite expects."""
from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.errors import UnsupportedOpError
from engine.ir import DTYPES, Graph, Tensor
from engine.ops import OP_KINDS, OPS

SCHEMA_VERSION = 3
BUFFER_ALIGNMENT = 16

_TENSOR_TYPES = {
    "int8": schema.TensorType.INT8,
    "int16": schema.TensorType.INT16,
    "int32": schema.TensorType.INT32,
    "float32": schema.TensorType.FLOAT32,
    "uint8": schema.TensorType.UINT8,
}


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
        write_options = OPS[op.kind].tflite.write
        if write_options is not None:
            operator.builtinOptionsType, operator.builtinOptions = write_options(op, graph, where)
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
    spec = OPS[kind]
    code.builtinCode = spec.builtin_code
    code.deprecatedBuiltinCode = min(spec.builtin_code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = spec.tflite.version
    return code

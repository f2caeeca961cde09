"""Validation of a Graph: everything the planner, the code generator and TFLite Micro assume.

`validate_graph` runs on every imported model and may run on graphs built in Python
(engine.synth, engine.quantize), so that nothing after it meets an invalid graph: indices in
range, each op's arity and attributes, tensor types, shapes and byte counts, quantisation
parameters, constant data, and the shapes each op's output must have. What is particular to an
op kind (its arity, input types, attributes and shapes) its family says (engine.ops). Refusals are
ModelFormatError (the model is malformed) or UnsupportedOpError (well formed, but outside what
the engine implements), each naming the op or tensor and the field."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import ACTIVATIONS, DTYPES, Graph, Op, Tensor
from engine.ops import OP_KINDS, OPS
from engine.ops.spec import op_where
from engine.quant import MAX_SCALE_MAGNITUDE, MIN_SCALE_MAGNITUDE

MAX_TENSOR_BYTES = (1 << 31) - 1  # each tensor, and all activations together
MAX_RANK = 6
ZERO_POINT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-(2**31), 2**31 - 1)}


def validate_graph(graph: Graph) -> None:
    """Refuse the graph unless it is one the engine can plan, generate and run."""
    check_graph_indices(graph)
    for op in graph.ops:
        check_op_structure(op_where(graph, op), op.kind, op.inputs, op.outputs, len(graph.tensors))
    check_types(graph)
    for index, tensor in enumerate(graph.tensors):
        check_tensor(tensor, f"model {graph.name}: tensor {index} '{tensor.name}'")
    _check_activation_total(graph)
    _check_dataflow(graph)
    for op in graph.ops:
        where = op_where(graph, op)
        _check_activation(op, where)
        OPS[op.kind].check(graph, op, where)


# ---- indices ----
def check_graph_indices(graph: Graph) -> None:
    count = len(graph.tensors)
    if not graph.ops:
        raise ModelFormatError(f"model {graph.name}: the graph has no ops")
    for role, indices in (("inputs", graph.inputs), ("outputs", graph.outputs)):
        if not indices:
            raise ModelFormatError(f"model {graph.name}: the subgraph has no {role}")
        for position, t in enumerate(indices):
            if not 0 <= t < count:
                raise ModelFormatError(
                    f"model {graph.name}: subgraph {role}[{position}] is tensor {t}, outside 0..{count - 1}"
                )


def check_op_structure(where: str, kind: str, inputs: Sequence[int], outputs: Sequence[int], tensor_count: int) -> None:
    """The op's arity and every tensor index it names (-1 only where an input is optional)."""
    if kind not in OP_KINDS:
        raise UnsupportedOpError(f"{where}: not an op the engine supports (supported: {', '.join(OP_KINDS)})")
    arity = OPS[kind].arity
    if not arity.min_inputs <= len(inputs) <= arity.max_inputs:
        raise ModelFormatError(
            f"{where}: has {len(inputs)} inputs; {kind} takes {arity.min_inputs}"
            + (f" to {arity.max_inputs}" if arity.max_inputs != arity.min_inputs else "")
        )
    if len(outputs) != arity.outputs:
        raise ModelFormatError(f"{where}: has {len(outputs)} outputs; {kind} has {arity.outputs}")
    for role, indices in (("input", inputs), ("output", outputs)):
        for position, t in enumerate(indices):
            if t == -1 and role == "input" and position in arity.optional:
                continue
            if not 0 <= t < tensor_count:
                raise ModelFormatError(f"{where}: {role} {position} is tensor {t}, outside 0..{tensor_count - 1}")


def _check_dataflow(graph: Graph) -> None:
    """Each tensor written once, by an op that runs before every reader; graph inputs and
    constants never written; graph outputs written; no op writes a tensor it reads."""
    written: dict[int, int] = {}
    for op in graph.ops:
        where = op_where(graph, op)
        for position, t in enumerate(op.inputs):
            if t < 0:
                continue
            tensor = graph.tensors[t]
            if tensor.data is None and t not in graph.inputs and t not in written:
                raise ModelFormatError(
                    f"{where}: input {position} '{tensor.name}' (tensor {t}) is neither a graph input, a constant nor "
                    "written by an earlier op"
                )
        for t in op.outputs:
            tensor = graph.tensors[t]
            if t in op.inputs:
                raise ModelFormatError(f"{where}: output '{tensor.name}' (tensor {t}) is also one of its inputs")
            if tensor.data is not None:
                raise ModelFormatError(f"{where}: output '{tensor.name}' (tensor {t}) is a constant tensor")
            if t in graph.inputs:
                raise ModelFormatError(f"{where}: output '{tensor.name}' (tensor {t}) is a graph input")
            if t in written:
                raise ModelFormatError(f"{where}: output '{tensor.name}' (tensor {t}) is already written by op {written[t]}")
            written[t] = op.index
    for t in graph.outputs:
        if t not in written:
            raise ModelFormatError(f"model {graph.name}: graph output '{graph.tensors[t].name}' (tensor {t}) is written by no op")
    if len(set(graph.inputs)) != len(graph.inputs) or len(set(graph.outputs)) != len(graph.outputs):
        raise ModelFormatError(f"model {graph.name}: a tensor appears twice among the graph inputs or outputs")
    for t in graph.inputs:
        if graph.tensors[t].data is not None:
            raise ModelFormatError(f"model {graph.name}: graph input '{graph.tensors[t].name}' (tensor {t}) is a constant tensor")


# ---- types ----
def check_types(graph: Graph) -> None:
    """int8 activations, int8 weights, int32 biases; float only at QUANTIZE in / DEQUANTIZE out."""
    for op in graph.ops:
        where = op_where(graph, op)
        for role, indices in (("input", op.inputs), ("output", op.outputs)):
            for position, t in enumerate(indices):
                if t < 0:
                    continue
                tensor = graph.tensors[t]
                allowed = allowed_types(op.kind, role, position)
                if tensor.dtype not in allowed:
                    hint = " (a float model: quantise it to int8 first)" if tensor.dtype == "float32" else ""
                    raise ModelFormatError(
                        f"{where}: {role} {position} '{tensor.name}' is {tensor.dtype}; "
                        f"the engine needs {' or '.join(allowed)}{hint}"
                    )
                if tensor.dtype == "int8" and not tensor.scale:
                    raise ModelFormatError(f"{where}: {role} {position} '{tensor.name}' is int8 without quantisation parameters")


def allowed_types(kind: str, role: str, position: int) -> tuple[str, ...]:
    """The types input or output `position` of an op may have: its family's, else int8."""
    spec = OPS[kind]
    return (spec.input_types if role == "input" else spec.output_types).get(position, ("int8",))


# ---- tensors ----
def check_shape(shape: Sequence[int], dtype: str, where: str) -> None:
    """Positive dimensions, rank at most MAX_RANK, and fewer than 2^31 bytes."""
    if len(shape) > MAX_RANK:
        raise UnsupportedOpError(f"{where}: shape {tuple(shape)} has rank {len(shape)}; at most {MAX_RANK} is supported")
    for axis, size in enumerate(shape):
        if size < 1:
            raise ModelFormatError(f"{where}: shape {tuple(shape)} has dimension {axis} of {size}; each must be 1 or more")
    if dtype not in DTYPES:
        raise ModelFormatError(f"{where}: type {dtype} is not one the engine handles")
    nbytes = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise ModelFormatError(f"{where}: shape {tuple(shape)} of {dtype} is {nbytes:,} B; at most {MAX_TENSOR_BYTES:,} B a tensor")


def check_tensor(tensor: Tensor, where: str) -> None:
    check_shape(tensor.shape, tensor.dtype, where)
    _check_quantisation(tensor, where)
    if tensor.data is not None:
        data = np.asarray(tensor.data)
        if tuple(data.shape) != tuple(tensor.shape):
            raise ModelFormatError(f"{where}: constant data of shape {data.shape} for a tensor of shape {tuple(tensor.shape)}")
        if data.dtype != np.dtype(DTYPES[tensor.dtype]):
            raise ModelFormatError(f"{where}: constant data of type {data.dtype} for a {tensor.dtype} tensor")


def _check_quantisation(tensor: Tensor, where: str) -> None:
    if not tensor.scale:
        if tensor.zero_point:
            raise ModelFormatError(f"{where}: {len(tensor.zero_point)} zero points but no scale")
        return
    if tensor.zero_point and len(tensor.zero_point) != len(tensor.scale):
        raise ModelFormatError(f"{where}: {len(tensor.scale)} scales but {len(tensor.zero_point)} zero points")
    for position, scale in enumerate(tensor.scale):
        single = float(np.float32(scale)) if math.isfinite(scale) and abs(scale) < 3e38 else math.inf
        if not math.isfinite(single):
            raise ModelFormatError(f"{where}: quantisation scale[{position}] is {scale}; it must be finite")
        if tensor.data is None and single <= 0:
            raise ModelFormatError(f"{where}: quantisation scale[{position}] is {scale}; an activation's scale must be positive")
        if single == 0:
            raise ModelFormatError(f"{where}: quantisation scale[{position}] is 0; a constant's scale must be non-zero")
        if tensor.dtype != "int32" and not MIN_SCALE_MAGNITUDE <= abs(single) <= MAX_SCALE_MAGNITUDE:
            raise UnsupportedOpError(
                f"{where}: quantisation scale[{position}] is {scale:g}; the engine takes magnitudes "
                f"{MIN_SCALE_MAGNITUDE:g} to {MAX_SCALE_MAGNITUDE:g}"
            )
    low, high = ZERO_POINT_RANGES.get(tensor.dtype, (0, 0))
    for position, zero_point in enumerate(tensor.zero_point):
        if not low <= zero_point <= high:
            raise ModelFormatError(f"{where}: zero_point[{position}] is {zero_point}, outside {low}..{high} for {tensor.dtype}")
    if len(tensor.scale) > 1:
        if tensor.data is None:
            raise UnsupportedOpError(f"{where}: per-channel quantisation ({len(tensor.scale)} scales) of an activation is not supported")
        axis = tensor.quantized_dimension
        if not 0 <= axis < len(tensor.shape):
            raise ModelFormatError(f"{where}: quantized_dimension {axis} is outside its rank {len(tensor.shape)}")
        if len(tensor.scale) != tensor.shape[axis]:
            raise ModelFormatError(
                f"{where}: {len(tensor.scale)} per-channel scales for dimension {axis} of size {tensor.shape[axis]}"
            )


def _check_activation_total(graph: Graph) -> None:
    total = sum(t.nbytes for t in graph.tensors if t.data is None)
    if total > MAX_TENSOR_BYTES:
        raise ModelFormatError(f"model {graph.name}: its activations total {total:,} B; at most {MAX_TENSOR_BYTES:,} B")


# ---- attributes ----
def _check_activation(op: Op, where: str) -> None:
    """A fused activation, where the op has one, of ACTIVATIONS; the op's family checks the rest."""
    if "activation" in op.attrs and op.attrs["activation"] not in ACTIVATIONS:
        raise UnsupportedOpError(f"{where}: fused activation {op.attrs['activation']!r} is not supported ({', '.join(ACTIVATIONS)} are)")

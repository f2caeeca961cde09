"""Validation of a Graph: everything the planner, the code generator and TFLite Micro assume.

`validate_graph` runs on every imported model and may run on graphs built in Python
(engine.synth, engine.quantize), so that nothing after it meets an invalid graph: indices in
range, each op's arity and attributes, tensor types, shapes and byte counts, quantisation
parameters, constant data, and the shapes each op's output must have. Refusals are
ModelFormatError (the model is malformed) or UnsupportedOpError (well formed, but outside what
the engine implements), each naming the op or tensor and the field."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import ACTIVATIONS, DTYPES, OP_KINDS, Graph, Op, Tensor

MAX_TENSOR_BYTES = (1 << 31) - 1  # each tensor, and all activations together
MAX_RANK = 6
# Scales outside this magnitude make TFLite's float32 arithmetic overflow or vanish.
MIN_SCALE_MAGNITUDE = 1e-30
MAX_SCALE_MAGNITUDE = 1e30
ZERO_POINT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-(2**31), 2**31 - 1)}
WINDOW_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D")
WEIGHTED_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
PADDINGS = ("SAME", "VALID", "EXPLICIT")  # EXPLICIT: a PAD folded into a convolution (engine.fold)


@dataclass(frozen=True)
class Arity:
    """How many inputs and outputs an op kind takes; `optional`: input positions that may be -1."""

    min_inputs: int
    max_inputs: int
    optional: tuple[int, ...] = ()
    outputs: int = 1


ARITIES: dict[str, Arity] = {
    "CONV_2D": Arity(2, 3, optional=(2,)),
    "DEPTHWISE_CONV_2D": Arity(2, 3, optional=(2,)),
    "FULLY_CONNECTED": Arity(2, 3, optional=(2,)),
    "ADD": Arity(2, 2),
    "AVERAGE_POOL_2D": Arity(1, 1),
    "MAX_POOL_2D": Arity(1, 1),
    "MEAN": Arity(2, 2),
    "PAD": Arity(2, 2),
    "RESHAPE": Arity(1, 2),
    "SOFTMAX": Arity(1, 1),
    "CONCATENATION": Arity(1, 64),
    "QUANTIZE": Arity(1, 1),
    "DEQUANTIZE": Arity(1, 1),
}


def validate_graph(graph: Graph) -> None:
    """Refuse the graph unless it is one the engine can plan, generate and run."""
    check_graph_indices(graph)
    for op in graph.ops:
        check_op_structure(f"model {graph.name}: op {op.index} ({op.kind})", op.kind, op.inputs, op.outputs, len(graph.tensors))
    check_types(graph)
    for index, tensor in enumerate(graph.tensors):
        check_tensor(tensor, f"model {graph.name}: tensor {index} '{tensor.name}'")
    _check_activation_total(graph)
    _check_dataflow(graph)
    for op in graph.ops:
        where = f"model {graph.name}: op {op.index} ({op.kind})"
        _check_attributes(op, where)
        _check_quantisation_use(graph, op, where)
        _SHAPES.get(op.kind, lambda *_: None)(graph, op, where)


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
    arity = ARITIES[kind]
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
        where = f"model {graph.name}: op {op.index} ({op.kind})"
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
        where = f"model {graph.name}: op {op.index} ({op.kind})"
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
    if kind == "QUANTIZE" and role == "input":
        return ("float32", "int8")
    if kind == "DEQUANTIZE" and role == "output":
        return ("float32",)
    if kind in WEIGHTED_KINDS and role == "input" and position == 2:
        return ("int32",)
    if kind in ("MEAN", "PAD", "RESHAPE") and role == "input" and position == 1:
        return ("int32",)
    return ("int8",)


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


def _check_quantisation_use(graph: Graph, op: Op, where: str) -> None:
    """Constant weights quantised along their output channels, with zero point 0 where the kernels
    assume symmetric weights."""
    if op.kind not in WEIGHTED_KINDS:
        return
    weights = graph.tensors[op.inputs[1]]
    if weights.data is None:
        raise UnsupportedOpError(f"{where}: the weights '{weights.name}' must be a constant tensor")
    # FULLY_CONNECTED takes one weight zero point (TFLM's filter offset); the rest need 0.
    if any(z != 0 for z in weights.zero_point) and (op.kind != "FULLY_CONNECTED" or weights.per_channel):
        raise UnsupportedOpError(
            f"{where}: weights '{weights.name}' have zero points {weights.zero_point[:4]}; "
            f"{op.kind} supports only 0 (symmetric){' per channel' if op.kind == 'FULLY_CONNECTED' else ''}"
        )
    if weights.per_channel:
        axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
        if weights.quantized_dimension != axis:
            raise ModelFormatError(
                f"{where}: weights '{weights.name}' are quantised along dimension {weights.quantized_dimension}; "
                f"{op.kind} needs {axis} (its output channels)"
            )
    if len(op.inputs) > 2 and op.inputs[2] >= 0 and graph.tensors[op.inputs[2]].data is None:
        raise UnsupportedOpError(f"{where}: the bias '{graph.tensors[op.inputs[2]].name}' must be a constant tensor")


# ---- attributes ----
def _require_int(op: Op, key: str, where: str, low: int = 1) -> int:
    if key not in op.attrs:
        raise ModelFormatError(f"{where}: attribute '{key}' is missing")
    value = op.attrs[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ModelFormatError(f"{where}: {key} is {value!r}; it must be an integer of {low} or more")
    return int(value)


def _check_attributes(op: Op, where: str) -> None:
    if "activation" in op.attrs and op.attrs["activation"] not in ACTIVATIONS:
        raise UnsupportedOpError(f"{where}: fused activation {op.attrs['activation']!r} is not supported ({', '.join(ACTIVATIONS)} are)")
    if op.kind in WINDOW_KINDS:
        if op.attrs.get("padding") not in PADDINGS:
            raise ModelFormatError(f"{where}: padding {op.attrs.get('padding')!r} is not one of {', '.join(PADDINGS)}")
        _require_int(op, "stride_h", where)
        _require_int(op, "stride_w", where)
        if op.attrs["padding"] == "EXPLICIT":
            for key in ("pad_top", "pad_bottom", "pad_left", "pad_right"):
                _require_int(op, key, where, low=0)
    if op.kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        _require_int(op, "filter_h", where)
        _require_int(op, "filter_w", where)
    if op.kind == "DEPTHWISE_CONV_2D" and "depth_multiplier" in op.attrs:
        _require_int(op, "depth_multiplier", where)
    if op.kind == "SOFTMAX":
        beta = op.attrs.get("beta", 1.0)
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and 0 < beta < MAX_SCALE_MAGNITUDE):
            raise ModelFormatError(f"{where}: beta is {beta!r}; it must be finite and positive")


# ---- shapes, one check per op kind ----
def _window_out(size: int, k: int, stride: int, op: Op, before: str, after: str) -> int:
    padding = op.attrs["padding"]
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        return (size - k) // stride + 1
    return (size + int(op.attrs[before]) + int(op.attrs[after]) - k) // stride + 1


def _rank(graph: Graph, t: int, rank: int, what: str, where: str) -> tuple[int, ...]:
    shape = graph.tensors[t].shape
    if len(shape) != rank:
        raise UnsupportedOpError(f"{where}: {what} '{graph.tensors[t].name}' has shape {tuple(shape)}; rank {rank} is needed")
    return tuple(shape)


def _check_window(graph: Graph, op: Op, where: str, kh: int, kw: int, channels: int) -> None:
    n, h, w, _ = _rank(graph, op.inputs[0], 4, "input", where)
    on, oh, ow, oc = _rank(graph, op.outputs[0], 4, "output", where)
    sh, sw = int(op.attrs["stride_h"]), int(op.attrs["stride_w"])
    expected = (n, _window_out(h, kh, sh, op, "pad_top", "pad_bottom"), _window_out(w, kw, sw, op, "pad_left", "pad_right"), channels)
    if min(expected[1:3]) < 1:
        raise ModelFormatError(f"{where}: a {kh}x{kw} window with {op.attrs['padding']} padding does not fit the {h}x{w} input")
    if (on, oh, ow, oc) != expected:
        raise ModelFormatError(
            f"{where}: output shape {(on, oh, ow, oc)} but input {(n, h, w)}, filter {kh}x{kw}, stride {sh}x{sw}, "
            f"{op.attrs['padding']} padding and {channels} channels give {expected}"
        )


def _check_bias(graph: Graph, op: Op, channels: int, where: str) -> None:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = graph.tensors[op.inputs[2]]
        if bias.elements != channels:
            raise ModelFormatError(f"{where}: bias '{bias.name}' has {bias.elements} values for {channels} output channels")


def _check_weight_scales(graph: Graph, op: Op, channels: int, where: str) -> None:
    weights = graph.tensors[op.inputs[1]]
    if len(weights.scale) not in (1, channels):
        raise ModelFormatError(f"{where}: weights '{weights.name}' have {len(weights.scale)} scales for {channels} output channels")


def _conv_shapes(graph: Graph, op: Op, where: str) -> None:
    _, _, _, c = _rank(graph, op.inputs[0], 4, "input", where)
    oc, kh, kw, ic = _rank(graph, op.inputs[1], 4, "filter", where)
    if ic != c:
        raise UnsupportedOpError(f"{where}: filter depth {ic} differs from the input depth {c} (grouped convolution)")
    _check_window(graph, op, where, kh, kw, oc)
    _check_bias(graph, op, oc, where)
    _check_weight_scales(graph, op, oc, where)


def _depthwise_shapes(graph: Graph, op: Op, where: str) -> None:
    _, _, _, c = _rank(graph, op.inputs[0], 4, "input", where)
    one, kh, kw, oc = _rank(graph, op.inputs[1], 4, "filter", where)
    if one != 1 or oc % c:
        raise ModelFormatError(f"{where}: filter shape {(one, kh, kw, oc)} for {c} input channels (need [1, kh, kw, {c} x multiplier])")
    multiplier = op.attrs.get("depth_multiplier", oc // c)
    if multiplier * c != oc:
        raise ModelFormatError(f"{where}: depth_multiplier {multiplier} with {c} input channels gives {multiplier * c}, the filter has {oc}")
    _check_window(graph, op, where, kh, kw, oc)
    _check_bias(graph, op, oc, where)
    _check_weight_scales(graph, op, oc, where)


def _pool_shapes(graph: Graph, op: Op, where: str) -> None:
    _, _, _, c = _rank(graph, op.inputs[0], 4, "input", where)
    _check_window(graph, op, where, int(op.attrs["filter_h"]), int(op.attrs["filter_w"]), c)


def _fully_connected_shapes(graph: Graph, op: Op, where: str) -> None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    units, depth = _rank(graph, op.inputs[1], 2, "weights", where)
    if x.elements % depth:
        raise ModelFormatError(f"{where}: input of {x.elements} values is not a whole number of rows of {depth}")
    if y.elements != x.elements // depth * units:
        raise ModelFormatError(f"{where}: output {tuple(y.shape)} does not hold {x.elements // depth} x {units} values")
    _check_bias(graph, op, units, where)
    _check_weight_scales(graph, op, units, where)


def _add_shapes(graph: Graph, op: Op, where: str) -> None:
    a, b, y = (graph.tensors[t] for t in (*op.inputs, *op.outputs))
    if max(len(a.shape), len(b.shape)) > 4:
        raise UnsupportedOpError(f"{where}: inputs of rank {max(len(a.shape), len(b.shape))}; at most 4 is supported")
    try:
        expected = tuple(np.broadcast_shapes(tuple(a.shape), tuple(b.shape)))
    except ValueError:
        raise ModelFormatError(f"{where}: input shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from None
    if expected != tuple(y.shape):
        raise ModelFormatError(f"{where}: output shape {tuple(y.shape)} is not the broadcast shape {expected}")


def _same_elements(graph: Graph, op: Op, where: str) -> None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.elements != y.elements:
        raise ModelFormatError(f"{where}: output shape {tuple(y.shape)} holds {y.elements} values, the input {x.elements}")


def _same_shape(graph: Graph, op: Op, where: str) -> None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if tuple(x.shape) != tuple(y.shape):
        raise ModelFormatError(f"{where}: output shape {tuple(y.shape)} differs from the input's {tuple(x.shape)}")
    for tensor in (x, y):
        if len(tensor.scale) > 1:
            raise UnsupportedOpError(f"{where}: per-channel quantisation of '{tensor.name}' is not supported")


def _mean_shapes(graph: Graph, op: Op, where: str) -> None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    rank = len(x.shape)
    axes = op.attrs.get("axes", ())
    if not axes or any(not 0 <= a < rank for a in axes):
        raise ModelFormatError(f"{where}: axes {tuple(axes)} are not within the input's rank {rank}")
    kept = math.prod(d for axis, d in enumerate(x.shape) if axis not in axes)
    if y.elements != kept:
        raise ModelFormatError(f"{where}: output {tuple(y.shape)} does not hold the {kept} means of axes {tuple(axes)} of {tuple(x.shape)}")


def _pad_shapes(graph: Graph, op: Op, where: str) -> None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    paddings = tuple(op.attrs.get("paddings", ()))
    if len(x.shape) > 4 or len(paddings) != len(x.shape):
        raise ModelFormatError(f"{where}: {len(paddings)} padding pairs for an input of rank {len(x.shape)} (at most 4)")
    if any(v < 0 for pair in paddings for v in pair):
        raise ModelFormatError(f"{where}: paddings {paddings} include a negative one")
    expected = tuple(d + a + b for d, (a, b) in zip(x.shape, paddings))
    if expected != tuple(y.shape):
        raise ModelFormatError(f"{where}: output shape {tuple(y.shape)} is not the padded input {expected}")


def _concatenation_shapes(graph: Graph, op: Op, where: str) -> None:
    y = graph.tensors[op.outputs[0]]
    rank = len(y.shape)
    axis = op.attrs.get("axis", -1)
    if not isinstance(axis, (int, np.integer)) or not 0 <= axis < rank:
        raise ModelFormatError(f"{where}: axis {axis!r} is outside the output's rank {rank}")
    total = 0
    for position, t in enumerate(op.inputs):
        x = graph.tensors[t]
        if len(x.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(x.shape, y.shape)) if i != axis):
            raise ModelFormatError(f"{where}: input {position} shape {tuple(x.shape)} does not concatenate into {tuple(y.shape)} along axis {axis}")
        total += x.shape[axis]
    if total != y.shape[axis]:
        raise ModelFormatError(f"{where}: inputs give {total} along axis {axis}, the output has {y.shape[axis]}")


_SHAPES: dict[str, Callable[[Graph, Op, str], None]] = {
    "CONV_2D": _conv_shapes,
    "DEPTHWISE_CONV_2D": _depthwise_shapes,
    "FULLY_CONNECTED": _fully_connected_shapes,
    "ADD": _add_shapes,
    "AVERAGE_POOL_2D": _pool_shapes,
    "MAX_POOL_2D": _pool_shapes,
    "MEAN": _mean_shapes,
    "PAD": _pad_shapes,
    "RESHAPE": _same_elements,
    "SOFTMAX": _same_shape,
    "CONCATENATION": _concatenation_shapes,
    "QUANTIZE": _same_shape,
    "DEQUANTIZE": _same_shape,
}

"""Code generation: a Graph and its memory plan -> `{prefix}.c` / `{prefix}.h` that call the
kernel library (engine/kernels) once per layer with every shape and quantisation constant baked in
as literals. Weights, biases and per-channel multipliers are `static const` arrays (flash); every
activation lives in one static arena at the planner's offsets.

The constants are computed here exactly as TFLite Micro computes them in its Prepare step (float32
scales widened to double, `quantize_multiplier`), so the C is bit-exact with TFLM."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import jinja2
import numpy as np

from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.planner import MemoryPlan
from engine.quant import activation_range, effective_scale, quantize_multiplier

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
ADD_LEFT_SHIFT = 20  # TFLM's int8 ADD: inputs are shifted left 20 bits before rescaling
_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CTYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float", "int16": "int16_t", "uint8": "uint8_t"}
_VALUES_PER_LINE = {"int8_t": 24, "uint8_t": 24, "int16_t": 16, "int32_t": 10, "float": 6}


@dataclass(frozen=True)
class GeneratedModel:
    prefix: str
    files: dict[str, str]  # {f"{prefix}.c": ..., f"{prefix}.h": ...}
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    weight_bytes: int  # flash taken by the constant arrays


@dataclass
class _Array:
    name: str
    ctype: str
    values: list[str]
    comment: str

    @property
    def nbytes(self) -> int:
        return len(self.values) * {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "float": 4}[self.ctype]

    @property
    def body(self) -> str:
        per_line = _VALUES_PER_LINE[self.ctype]
        lines = [", ".join(self.values[i : i + per_line]) for i in range(0, len(self.values), per_line)]
        return ",\n".join("    " + line for line in lines)


@dataclass
class _Layer:
    comment: str
    lines: list[str] = field(default_factory=list)


# ---- scratch ----
def kernel_scratch(graph: Graph) -> dict[int, int]:
    """Bytes of scratch each op's kernel needs, by op position (0 where none)."""
    needs: dict[int, int] = {}
    for position, op in enumerate(graph.ops):
        if op.kind == "AVERAGE_POOL_2D":
            needs[position] = 4 * graph.tensors[op.inputs[0]].shape[-1]  # int32 sums per channel
        elif op.kind == "MEAN":
            needs[position] = 4 * graph.tensors[op.outputs[0]].elements  # int32 sum per output
        else:
            needs[position] = 0
    return needs


# ---- literals ----
def _int(value: int) -> str:
    value = int(value)
    return "(-2147483647 - 1)" if value == -(2**31) else str(value)


def _float(value: float) -> str:
    """A float32 literal, exact (C99 hexadecimal)."""
    return float(np.float32(value)).hex() + "f"


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _int_list(values: Sequence[int]) -> str:
    return "(const int32_t[]){" + ", ".join(_int(v) for v in values) + "}"


def _extend4(shape: Sequence[int], where: str) -> tuple[int, int, int, int]:
    if len(shape) > 4:
        raise UnsupportedOpError(f"{where}: rank {len(shape)} tensors are not supported (at most 4 dimensions)")
    return tuple([1] * (4 - len(shape)) + [int(d) for d in shape])  # type: ignore[return-value]


class _Generator:
    def __init__(self, graph: Graph, plan: MemoryPlan, prefix: str) -> None:
        self.graph = graph
        self.plan = plan
        self.prefix = prefix
        self.arrays: list[_Array] = []
        self.array_of_tensor: dict[int, str] = {}
        self.uses_float = False

    # -- naming and pointers --
    def where(self, op: Op) -> str:
        return f"model {self.graph.name}: op {op.index} ({op.kind})"

    def const_array(self, index: int) -> str:
        if index in self.array_of_tensor:
            return self.array_of_tensor[index]
        tensor = self.graph.tensors[index]
        ctype = _CTYPES[tensor.dtype]
        data = np.asarray(tensor.data).ravel()
        if tensor.dtype == "float32":
            values = [_float(v) for v in data]
            self.uses_float = True
        else:
            values = [_int(v) for v in data.astype(np.int64)]
        name = f"{self.prefix}_t{index}"
        comment = f"tensor {index} '{_comment_safe(tensor.name)}': {_shape(tensor.shape)} {tensor.dtype}"
        self.arrays.append(_Array(name, ctype, values or ["0"], comment))
        self.array_of_tensor[index] = name
        return name

    def int32_array(self, name: str, values: Sequence[int], comment: str) -> str:
        full = f"{self.prefix}_{name}"
        self.arrays.append(_Array(full, "int32_t", [_int(v) for v in values], comment))
        return full

    def ptr(self, index: int, *, const: bool = False) -> str:
        """A C expression pointing at tensor `index`: its arena bytes, or its constant array."""
        if index < 0:
            return "NULL"
        tensor = self.graph.tensors[index]
        ctype = _CTYPES[tensor.dtype]
        if tensor.dtype == "float32":
            self.uses_float = True
        if tensor.data is not None:
            return self.const_array(index)
        placement = self.plan.placements.get(index)
        if placement is None:
            raise UnsupportedOpError(f"model {self.graph.name}: tensor {index} '{tensor.name}' has no place in the memory plan")
        qualifier = "const " if const else ""
        return f"({qualifier}{ctype} *)&{self.prefix}_arena[{placement.offset}]"

    def scratch(self, position: int, op: Op, needed: int) -> str:
        if needed <= 0:
            return "NULL"
        size = self.plan.scratch_sizes.get(position, 0)
        if size < needed:
            raise UnsupportedOpError(
                f"{self.where(op)}: the memory plan gives its kernel {size} bytes of scratch; it needs {needed} "
                "(plan with engine.codegen.kernel_scratch)"
            )
        return f"(int32_t *)&{self.prefix}_arena[{self.plan.scratch_offsets[position]}]"

    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def describe(self, op: Op, extra: str = "") -> str:
        """The layer's comment: op index and kind, shapes and types in and out, and `extra`."""
        weighted = op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        parts = []
        for position, t in enumerate(op.inputs):
            if t < 0 or (op.kind in ("MEAN", "PAD", "RESHAPE") and position == 1):
                continue
            if weighted:
                label = ("in", "filter", "bias")[min(position, 2)]
            else:
                label = "in" if len(op.inputs) == 1 or (position == 0 and op.kind != "ADD" and op.kind != "CONCATENATION") else f"in{position}"
            tensor = self.tensor(t)
            parts.append(f"{label} {_shape(tensor.shape)} {tensor.dtype}")
        for t in op.outputs:
            parts.append(f"out {_shape(self.tensor(t).shape)} {self.tensor(t).dtype}")
        text = f"op {op.index} ({op.kind}): " + ", ".join(parts)
        return _comment_safe(text + (f"; {extra}" if extra else ""))


def _comment_safe(text: str) -> str:
    return text.replace("*/", "* /").replace("\n", " ")


# ---- quantisation helpers ----
def _scale(t: Tensor, where: str) -> float:
    if not t.scale:
        raise UnsupportedOpError(f"{where}: tensor '{t.name}' has no quantisation parameters")
    return float(np.float32(t.scale[0]))


def _zp(t: Tensor) -> int:
    return int(t.zero_point[0]) if t.zero_point else 0


def _act_range(op: Op, out: Tensor, where: str) -> tuple[int, int]:
    return activation_range(op.attrs.get("activation", "NONE"), _scale(out, where), _zp(out))


def _channel_multipliers(in_scale: float, weights: Tensor, out_scale: float, channels: int, where: str) -> tuple[list[int], list[int]]:
    if len(weights.scale) not in (1, channels):
        raise UnsupportedOpError(f"{where}: filter has {len(weights.scale)} scales for {channels} output channels")
    mults, shifts = [], []
    for c in range(channels):
        w_scale = weights.scale[c] if len(weights.scale) > 1 else weights.scale[0]
        m, s = quantize_multiplier(effective_scale(in_scale, w_scale, out_scale))
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def _window_padding(size: int, filter_size: int, stride: int, out_size: int, padding: str, where: str, axis: str) -> int:
    """TFLM's padding before the first row/column (ComputePaddingHeightWidth)."""
    expected = (size + stride - 1) // stride if padding == "SAME" else (size + stride - filter_size) // stride
    if expected != out_size:
        raise UnsupportedOpError(
            f"{where}: output {axis} is {out_size} but {padding} padding with filter {filter_size}, stride {stride} "
            f"on {size} gives {expected}"
        )
    total = (out_size - 1) * stride + filter_size - size
    return max(total, 0) // 2


# ---- one function per op kind ----
def _conv(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    n, h, wd, c = x.shape
    oc, kh, kw, ic = w.shape
    _, oh, ow, occ = y.shape
    if ic != c:
        raise UnsupportedOpError(f"{where}: grouped convolution (filter depth {ic}, input depth {c}) is not supported")
    if occ != oc:
        raise UnsupportedOpError(f"{where}: output depth {occ} differs from the filter's {oc}")
    sh, sw = int(op.attrs["stride_h"]), int(op.attrs["stride_w"])
    pt = _window_padding(h, kh, sh, oh, op.attrs["padding"], where, "height")
    pl = _window_padding(wd, kw, sw, ow, op.attrs["padding"], where, "width")
    mults, shifts = _channel_multipliers(_scale(x, where), w, _scale(y, where), oc, where)
    lo, hi = _act_range(op, y, where)
    mult = g.int32_array(f"op{position}_mult", mults, f"op {op.index}: per-channel multipliers")
    shift = g.int32_array(f"op{position}_shift", shifts, f"op {op.index}: per-channel shifts")
    bias = g.ptr(op.inputs[2], const=True) if len(op.inputs) > 2 else "NULL"
    call = (
        f"tl_conv_s8({g.ptr(op.inputs[0], const=True)}, {n}, {h}, {wd}, {c}, {g.ptr(op.inputs[1])}, {kh}, {kw}, {bias}, "
        f"{g.ptr(op.outputs[0])}, {oh}, {ow}, {oc}, {sh}, {sw}, {pt}, {pl}, {_int(-_zp(x))}, {_int(_zp(y))}, "
        f"{mult}, {shift}, {lo}, {hi});"
    )
    extra = f"stride {sh}x{sw}, {op.attrs['padding']} (pad top {pt}, left {pl}), {op.attrs.get('activation', 'NONE')}"
    return _Layer(g.describe(op, extra), [call])


def _depthwise(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    n, h, wd, c = x.shape
    _, kh, kw, oc = w.shape
    _, oh, ow, occ = y.shape
    if c == 0 or oc % c != 0 or occ != oc:
        raise UnsupportedOpError(f"{where}: {oc} filter channels are not a multiple of {c} input channels")
    multiplier = oc // c
    sh, sw = int(op.attrs["stride_h"]), int(op.attrs["stride_w"])
    pt = _window_padding(h, kh, sh, oh, op.attrs["padding"], where, "height")
    pl = _window_padding(wd, kw, sw, ow, op.attrs["padding"], where, "width")
    mults, shifts = _channel_multipliers(_scale(x, where), w, _scale(y, where), oc, where)
    lo, hi = _act_range(op, y, where)
    mult = g.int32_array(f"op{position}_mult", mults, f"op {op.index}: per-channel multipliers")
    shift = g.int32_array(f"op{position}_shift", shifts, f"op {op.index}: per-channel shifts")
    bias = g.ptr(op.inputs[2], const=True) if len(op.inputs) > 2 else "NULL"
    call = (
        f"tl_depthwise_conv_s8({g.ptr(op.inputs[0], const=True)}, {n}, {h}, {wd}, {c}, {g.ptr(op.inputs[1])}, {kh}, {kw}, "
        f"{multiplier}, {bias}, {g.ptr(op.outputs[0])}, {oh}, {ow}, {sh}, {sw}, {pt}, {pl}, {_int(-_zp(x))}, "
        f"{_int(_zp(y))}, {mult}, {shift}, {lo}, {hi});"
    )
    extra = (f"depth multiplier {multiplier}, stride {sh}x{sw}, {op.attrs['padding']} (pad top {pt}, left {pl}), "
             f"{op.attrs.get('activation', 'NONE')}")
    return _Layer(g.describe(op, extra), [call])


def _fully_connected(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    if len(w.shape) != 2:
        raise UnsupportedOpError(f"{where}: weights of shape {_shape(w.shape)} (need [units, depth])")
    units, depth = w.shape
    if depth == 0 or x.elements % depth:
        raise UnsupportedOpError(f"{where}: input of {x.elements} values is not a whole number of rows of {depth}")
    batches = x.elements // depth
    if y.elements != batches * units:
        raise UnsupportedOpError(f"{where}: output {_shape(y.shape)} does not hold {batches} x {units} values")
    lo, hi = _act_range(op, y, where)
    bias = g.ptr(op.inputs[2], const=True) if len(op.inputs) > 2 else "NULL"
    head = f"{g.ptr(op.inputs[0], const=True)}, {g.ptr(op.inputs[1])}, {bias}, {g.ptr(op.outputs[0])}, {batches}, {depth}, {units}"
    if len(w.scale) > 1:
        mults, shifts = _channel_multipliers(_scale(x, where), w, _scale(y, where), units, where)
        mult = g.int32_array(f"op{position}_mult", mults, f"op {op.index}: per-channel multipliers")
        shift = g.int32_array(f"op{position}_shift", shifts, f"op {op.index}: per-channel shifts")
        call = (f"tl_fully_connected_per_channel_s8({head}, {_int(-_zp(x))}, {_int(_zp(y))}, {mult}, {shift}, "
                f"{lo}, {hi});")
    else:
        m, s = quantize_multiplier(effective_scale(_scale(x, where), w.scale[0], _scale(y, where)))
        call = (f"tl_fully_connected_s8({head}, {_int(-_zp(x))}, {_int(-_zp(w))}, {_int(_zp(y))}, {_int(m)}, {s}, "
                f"{lo}, {hi});")
    return _Layer(g.describe(op, op.attrs.get("activation", "NONE")), [call])


def _add(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    a, b, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    sa, sb, sy = _scale(a, where), _scale(b, where), _scale(y, where)
    twice_max = 2.0 * max(sa, sb)
    m1, s1 = quantize_multiplier(sa / twice_max)
    m2, s2 = quantize_multiplier(sb / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * sy))
    lo, hi = _act_range(op, y, where)
    quant = (f"{_int(-_zp(a))}, {_int(m1)}, {s1}, {_int(-_zp(b))}, {_int(m2)}, {s2}, {ADD_LEFT_SHIFT}, "
             f"{_int(_zp(y))}, {_int(mo)}, {so}, {lo}, {hi}")
    pa, pb, py = g.ptr(op.inputs[0], const=True), g.ptr(op.inputs[1], const=True), g.ptr(op.outputs[0])
    if tuple(a.shape) == tuple(b.shape):
        call = f"tl_add_s8({pa}, {pb}, {py}, {y.elements}, {quant});"
        return _Layer(g.describe(op, op.attrs.get("activation", "NONE")), [call])
    try:
        out_shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise UnsupportedOpError(f"{where}: shapes {_shape(a.shape)} and {_shape(b.shape)} do not broadcast") from None
    if tuple(out_shape) != tuple(y.shape):
        raise UnsupportedOpError(f"{where}: output {_shape(y.shape)} is not the broadcast shape {_shape(out_shape)}")
    dims = _extend4(out_shape, where)
    strides = [_broadcast_strides(_extend4(t.shape, where), dims) for t in (a, b)]
    call = (f"tl_add_broadcast_s8({pa}, {_int_list(strides[0])}, {pb}, {_int_list(strides[1])}, {py}, "
            f"{_int_list(dims)}, {quant});")
    return _Layer(g.describe(op, f"broadcast, {op.attrs.get('activation', 'NONE')}"), [call])


def _broadcast_strides(shape: Sequence[int], out: Sequence[int]) -> list[int]:
    strides, step = [0] * len(shape), 1
    for axis in range(len(shape) - 1, -1, -1):
        strides[axis] = 0 if shape[axis] == 1 and out[axis] != 1 else step
        step *= shape[axis]
    return strides


def _pool(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    n, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    if oc != c:
        raise UnsupportedOpError(f"{where}: output depth {oc} differs from the input's {c}")
    fh, fw = int(op.attrs["filter_h"]), int(op.attrs["filter_w"])
    sh, sw = int(op.attrs["stride_h"]), int(op.attrs["stride_w"])
    pt = _window_padding(h, fh, sh, oh, op.attrs["padding"], where, "height")
    pl = _window_padding(wd, fw, sw, ow, op.attrs["padding"], where, "width")
    lo, hi = _act_range(op, y, where)
    args = (f"{g.ptr(op.inputs[0], const=True)}, {n}, {h}, {wd}, {c}, {g.ptr(op.outputs[0])}, {oh}, {ow}, "
            f"{fh}, {fw}, {sh}, {sw}, {pt}, {pl}, {lo}, {hi}")
    if op.kind == "AVERAGE_POOL_2D":
        call = f"tl_avgpool_s8({args}, {g.scratch(position, op, 4 * c)});"
    else:
        call = f"tl_maxpool_s8({args});"
    extra = f"filter {fh}x{fw}, stride {sh}x{sw}, {op.attrs['padding']} (pad top {pt}, left {pl})"
    return _Layer(g.describe(op, extra), [call])


def _mean(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    rank = len(x.shape)
    axes = {int(a) + rank if int(a) < 0 else int(a) for a in op.attrs["axes"]}
    # Merge neighbouring dimensions that are both reduced or both kept; drop dimensions of 1.
    groups: list[list] = []  # [size, reduced]
    for axis, size in enumerate(x.shape):
        if size == 1:
            continue
        reduced = axis in axes
        if groups and groups[-1][1] == reduced:
            groups[-1][0] *= size
        else:
            groups.append([size, reduced])
    if len(groups) > 4:
        raise UnsupportedOpError(f"{where}: reducing axes {sorted(axes)} of {_shape(x.shape)} needs more than 4 dimensions")
    groups = [[1, False]] * (4 - len(groups)) + groups
    dims = [int(s) for s, _ in groups]
    strides, step = [0, 0, 0, 0], 1
    for axis in range(3, -1, -1):
        if not groups[axis][1]:
            strides[axis] = step
            step *= dims[axis]
    count = int(np.prod([s for s, r in groups if r], dtype=np.int64))
    if count == 0 or x.elements == 0:
        raise UnsupportedOpError(f"{where}: the mean of an empty tensor {_shape(x.shape)} is not supported")
    if step != y.elements:
        raise UnsupportedOpError(f"{where}: output {_shape(y.shape)} does not hold the {step} means")
    in_scale, out_scale = _scale(x, where), _scale(y, where)
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    # TFLM folds 1/count into the multiplier as far as precision allows (QuantizedMeanOrSum).
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << fold) // count
    shift -= fold
    call = (f"tl_mean_s8({g.ptr(op.inputs[0], const=True)}, {_int_list(dims)}, {_int_list(strides)}, "
            f"{g.ptr(op.outputs[0])}, {y.elements}, {count}, {_int(_zp(x))}, {_int(multiplier)}, {shift}, "
            f"{_int(_zp(y))}, {g.scratch(position, op, 4 * y.elements)});")
    extra = f"axes {sorted(axes)}, keep_dims {bool(op.attrs.get('keep_dims', False))}, {count} values per mean"
    return _Layer(g.describe(op, extra), [call])


def _pad(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    paddings = [tuple(int(v) for v in p) for p in op.attrs["paddings"]]
    if len(paddings) != len(x.shape):
        raise UnsupportedOpError(f"{where}: {len(paddings)} padding pairs for a rank {len(x.shape)} input")
    if any(v < 0 for p in paddings for v in p):
        raise UnsupportedOpError(f"{where}: negative paddings {paddings} are not supported")
    dims = _extend4(x.shape, where)
    paddings = [(0, 0)] * (4 - len(paddings)) + paddings
    expected = tuple(d + a + b for d, (a, b) in zip(dims, paddings))
    if expected != _extend4(y.shape, where):
        raise UnsupportedOpError(f"{where}: output {_shape(y.shape)} is not the padded input {_shape(expected)}")
    call = (f"tl_pad_s8({g.ptr(op.inputs[0], const=True)}, {_int_list(dims)}, {_int_list([a for a, _ in paddings])}, "
            f"{_int_list([b for _, b in paddings])}, {_zp(y)}, {g.ptr(op.outputs[0])});")
    return _Layer(g.describe(op, f"paddings {paddings}"), [call])


def _reshape(g: _Generator, position: int, op: Op) -> _Layer:
    x, y = op.inputs[0], op.outputs[0]
    src = g.tensor(x)
    if src.data is None and g.plan.placements[x].offset == g.plan.placements[y].offset:
        return _Layer(g.describe(op, "in place, no code"))
    call = f"memmove({g.ptr(y)}, {g.ptr(x, const=True)}, {g.tensor(y).nbytes});"
    return _Layer(g.describe(op, "copy"), [call])


def _softmax(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if _zp(y) != -128 or _scale(y, where) != 1.0 / 256:
        raise UnsupportedOpError(
            f"{where}: int8 softmax output must have scale 1/256 and zero point -128 (has {_scale(y, where):g}, {_zp(y)})"
        )
    depth = x.shape[-1] if x.shape else 1
    rows = x.elements // depth
    mult, left_shift, diff_min = softmax_parameters(_scale(x, where), float(op.attrs.get("beta", 1.0)))
    call = (f"tl_softmax_s8({g.ptr(op.inputs[0], const=True)}, {rows}, {depth}, {_int(mult)}, {left_shift}, "
            f"{_int(diff_min)}, {g.ptr(op.outputs[0])});")
    return _Layer(g.describe(op, f"beta {op.attrs.get('beta', 1.0):g}"), [call])


def softmax_parameters(input_scale: float, beta: float) -> tuple[int, int, int]:
    """(input multiplier, input left shift, diff_min) as TFLM's int8 softmax Prepare computes them."""
    integer_bits = 5
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - integer_bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift))
    return multiplier, left_shift, -radius


def _concatenation(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    y = g.tensor(op.outputs[0])
    if op.attrs.get("activation", "NONE") != "NONE":
        raise UnsupportedOpError(f"{where}: a fused activation ({op.attrs['activation']}) is not supported (TFLM refuses it)")
    axis = int(op.attrs["axis"])
    rank = len(y.shape)
    axis = axis + rank if axis < 0 else axis
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    row = int(np.prod(y.shape[axis:], dtype=np.int64))
    lines, offset = [], 0
    for t in op.inputs:
        x = g.tensor(t)
        if len(x.shape) != rank:
            raise UnsupportedOpError(f"{where}: input '{x.name}' has rank {len(x.shape)}, the output {rank}")
        copy = int(np.prod(x.shape[axis:], dtype=np.int64))
        out = g.ptr(op.outputs[0])
        target = f"{out} + {offset}" if offset else out
        lines.append(f"tl_concat_s8({g.ptr(t, const=True)}, {outer}, {copy}, {target}, {row});")
        offset += copy
    if offset != row:
        raise UnsupportedOpError(f"{where}: the inputs fill {offset} of the output's {row} values per row")
    return _Layer(g.describe(op, f"axis {axis}"), lines)


def _quantize(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if y.dtype != "int8":
        raise UnsupportedOpError(f"{where}: output type {y.dtype} is not supported (int8 is)")
    if len(y.scale) != 1:
        raise UnsupportedOpError(f"{where}: per-channel quantisation of activations is not supported")
    if x.dtype == "float32":
        g.uses_float = True
        call = (f"tl_quantize_f32_s8({g.ptr(op.inputs[0], const=True)}, {g.ptr(op.outputs[0])}, {y.elements}, "
                f"{_float(_scale(y, where))}, {_zp(y)});")
        return _Layer(g.describe(op, f"scale {_scale(y, where):g}, zero point {_zp(y)}"), [call])
    if x.dtype == "int8":
        m, s = quantize_multiplier(_scale(x, where) / _scale(y, where))
        call = (f"tl_requantize_s8({g.ptr(op.inputs[0], const=True)}, {g.ptr(op.outputs[0])}, {y.elements}, "
                f"{_zp(x)}, {_int(m)}, {s}, {_zp(y)});")
        return _Layer(g.describe(op, "requantise"), [call])
    raise UnsupportedOpError(f"{where}: input type {x.dtype} is not supported (float32 or int8 are)")


def _dequantize(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if x.dtype != "int8" or y.dtype != "float32":
        raise UnsupportedOpError(f"{where}: {x.dtype} -> {y.dtype} is not supported (int8 -> float32 is)")
    if len(x.scale) != 1:
        raise UnsupportedOpError(f"{where}: per-channel dequantisation is not supported")
    g.uses_float = True
    call = (f"tl_dequantize_s8_f32({g.ptr(op.inputs[0], const=True)}, {g.ptr(op.outputs[0])}, {x.elements}, "
            f"{_zp(x)}, {_float(_scale(x, where))});")
    return _Layer(g.describe(op, f"scale {_scale(x, where):g}, zero point {_zp(x)}"), [call])


_LAYERS: dict[str, Callable[[_Generator, int, Op], _Layer]] = {
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
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
}


# ---- the model ----
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _check_interface(graph: Graph, plan: MemoryPlan) -> None:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOpError(
            f"model {graph.name}: the generated C has exactly one input and one output; this graph has "
            f"{len(graph.inputs)} inputs and {len(graph.outputs)} outputs"
        )
    for role, index in (("input", graph.inputs[0]), ("output", graph.outputs[0])):
        tensor = graph.tensors[index]
        if tensor.data is not None:
            raise UnsupportedOpError(f"model {graph.name}: the graph {role} '{tensor.name}' is a constant tensor")
        if index not in plan.placements:
            raise UnsupportedOpError(f"model {graph.name}: the graph {role} '{tensor.name}' has no place in the memory plan")


def generate_c(graph: Graph, plan: MemoryPlan, prefix: str = "model") -> GeneratedModel:
    """`{prefix}.c` and `{prefix}.h` for the graph, its activations at the offsets of `plan`."""
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix {prefix!r} is not a C identifier")
    _check_interface(graph, plan)
    g = _Generator(graph, plan, prefix)
    layers = []
    for position, op in enumerate(graph.ops):
        emit = _LAYERS.get(op.kind)
        if emit is None:
            raise UnsupportedOpError(f"model {graph.name}: op {op.index} ({op.kind}) has no kernel")
        layers.append(emit(g, position, op))

    input_tensor = graph.tensors[graph.inputs[0]]
    output_tensor = graph.tensors[graph.outputs[0]]
    weight_bytes = sum(a.nbytes for a in g.arrays)
    env = _environment()
    context = dict(
        prefix=prefix,
        PREFIX=prefix.upper(),
        graph_name=_comment_safe(graph.name),
        arena_bytes=max(plan.arena_bytes, 1),
        weight_bytes=weight_bytes,
        arrays=g.arrays,
        layers=layers,
        uses_float=g.uses_float,
        input=_io(input_tensor, plan.placements[graph.inputs[0]].offset),
        output=_io(output_tensor, plan.placements[graph.outputs[0]].offset),
        op_count=len(graph.ops),
    )
    files = {
        f"{prefix}.c": env.get_template("model.c.j2").render(**context),
        f"{prefix}.h": env.get_template("model.h.j2").render(**context),
    }
    return GeneratedModel(
        prefix=prefix,
        files=files,
        arena_bytes=max(plan.arena_bytes, 1),
        input_bytes=input_tensor.nbytes,
        output_bytes=output_tensor.nbytes,
        weight_bytes=weight_bytes,
    )


def _io(tensor: Tensor, offset: int) -> dict:
    quant = f", scale {float(np.float32(tensor.scale[0])):g}, zero point {_zp(tensor)}" if tensor.scale else ""
    return dict(
        name=_comment_safe(tensor.name),
        shape=_shape(tensor.shape),
        dtype=tensor.dtype,
        quant=quant,
        bytes=tensor.nbytes,
        offset=offset,
    )

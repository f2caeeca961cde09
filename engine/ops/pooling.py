"""AVERAGE_POOL_2D, MAX_POOL_2D and MEAN: their attributes, checks, TFLM's Prepare steps, numpy
reference, scratch and C. The pools' input and output share scale and zero point (TFLM's int8
pools); MEAN rescales the sum of each group of values it reduces (TFLM's QuantizedMeanOrSum)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.library_call import CExpr, LibraryCall, StrideAndPadding, library_kernel, render_call
from engine.codegen.literals import int_list, shape_text
from engine.codegen.variants import library_variants, tag_set, tags
from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops.checks import require_int, shape_with_rank
from engine.ops.options import constant_input, constant_second_input, required_attribute
from engine.ops.quant_params import output_range, scale_of, zero_point_of
from engine.ops.spec import Arity, CForm, OpSpec, TfliteForm, Values, op_where
from engine.ops.window import (
    Window,
    check_window_attributes,
    check_window_output,
    padded,
    prepare_window,
    read_window,
    tap,
    write_window,
)
from engine.quant import c_divide, multiply_by_quantized_multiplier, quantize_multiplier


def normalised_axes(axes: Any, rank: int) -> list[int]:
    """MEAN's axes with the negative ones counted from the end, sorted, each once."""
    return sorted({int(a) + rank if int(a) < 0 else int(a) for a in np.asarray(axes).ravel()})


# ---- attributes ----
def read_pool(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    attrs = read_window(options, where)
    attrs.update(filter_h=int(options.filterHeight), filter_w=int(options.filterWidth))
    return attrs


def write_pool(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = write_window(schema.Pool2DOptionsT(), op, where)
    options.filterHeight = int(required_attribute(op, "filter_h", where))
    options.filterWidth = int(required_attribute(op, "filter_w", where))
    return schema.BuiltinOptions.Pool2DOptions, options


def read_mean(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    """The axes come from the constant input 1."""
    rank = len(tensors[inputs[0]].shape) if inputs[0] >= 0 else 0
    axes = normalised_axes(constant_input(inputs, tensors, 1, where, "axis"), rank)
    return {"axes": tuple(axes), "keep_dims": bool(options.keepDims) if options is not None else False}


def write_mean(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    rank = len(graph.tensors[op.inputs[0]].shape)
    axes = normalised_axes(constant_second_input(op, graph, where, "axis"), rank)
    if "axes" in op.attrs and tuple(axes) != tuple(op.attrs["axes"]):
        raise ValueError(f"{where}: attribute axes {tuple(op.attrs['axes'])} disagrees with the axis tensor {tuple(axes)}")
    options = schema.ReducerOptionsT()
    options.keepDims = bool(op.attrs.get("keep_dims", False))
    return schema.BuiltinOptions.ReducerOptions, options


# ---- checks ----
def check_pool(graph: Graph, op: Op, where: str) -> None:
    check_window_attributes(op, where)
    require_int(op, "filter_h", where)
    require_int(op, "filter_w", where)
    _, _, _, c = shape_with_rank(graph, op.inputs[0], 4, "input", where)
    check_window_output(graph, op, where, int(op.attrs["filter_h"]), int(op.attrs["filter_w"]), c)


def check_mean(graph: Graph, op: Op, where: str) -> None:
    """Axes within the input's rank; an output of one value per group reduced."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    rank = len(x.shape)
    axes = op.attrs.get("axes", ())
    if not axes or any(not 0 <= a < rank for a in axes):
        raise ModelFormatError(f"{where}: axes {tuple(axes)} are not within the input's rank {rank}")
    kept = math.prod(d for axis, d in enumerate(x.shape) if axis not in axes)
    if y.elements != kept:
        raise ModelFormatError(f"{where}: output {tuple(y.shape)} does not hold the {kept} means of axes {tuple(axes)} of {tuple(x.shape)}")


# ---- prepare ----
@dataclass(frozen=True)
class PoolParams:
    window: Window
    filter_h: int
    filter_w: int
    output_min: int
    output_max: int


def prepare_pool(graph: Graph, op: Op, where: str) -> PoolParams:
    """A pool's window and clamp."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    fh, fw = int(op.attrs["filter_h"]), int(op.attrs["filter_w"])
    window = prepare_window(op.attrs, (x.shape[1], x.shape[2]), (fh, fw), (y.shape[1], y.shape[2]), where)
    lo, hi = output_range(op, y, where)
    return PoolParams(window, fh, fw, lo, hi)


@dataclass(frozen=True)
class MeanParams:
    input_zero_point: int
    output_zero_point: int
    multiplier: int  # input/output scale with 1/count folded in
    shift: int


def prepare_mean(graph: Graph, op: Op, count: int, where: str) -> MeanParams:
    """A MEAN of `count` values per output: TFLM's QuantizedMeanOrSum folds 1/count into the
    multiplier as far as precision allows."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    multiplier, shift = quantize_multiplier(scale_of(x, where) / scale_of(y, where))
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    return MeanParams(zero_point_of(x), zero_point_of(y), (multiplier << fold) // count, shift - fold)


# ---- reference ----
def _round_half_away_divide(x: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """TFLM's `acc > 0 ? (acc + n/2) / n : (acc - n/2) / n`, in C integer arithmetic."""
    half = np.asarray(n) // 2
    return np.where(x > 0, c_divide(x + half, n), c_divide(x - half, n))


def average_pool_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """Sum of the raw values inside the input, divided by how many there are, rounded half away
    from zero."""
    x = values[op.inputs[0]].astype(np.int64)
    p = prepare_pool(graph, op, op_where(graph, op))
    kh, kw, window = p.filter_h, p.filter_w, p.window
    padded_x = padded(x, window, kh, kw, 0)
    inside = padded(np.ones((1,) + x.shape[1:3] + (1,), dtype=np.int64), window, kh, kw, 0)
    total = np.zeros((x.shape[0], window.out_h, window.out_w, x.shape[3]), dtype=np.int64)
    count = np.zeros((1, window.out_h, window.out_w, 1), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            total += tap(padded_x, window, dy, dx)
            count += tap(inside, window, dy, dx)
    result = _round_half_away_divide(total, np.maximum(count, 1))
    return np.clip(result, p.output_min, p.output_max)


def max_pool_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """The largest raw value inside the input under each window, clamped to the activation range."""
    x = values[op.inputs[0]].astype(np.int64)
    p = prepare_pool(graph, op, op_where(graph, op))
    padded_x = padded(x, p.window, p.filter_h, p.filter_w, np.iinfo(np.int64).min)
    result = np.full((x.shape[0], p.window.out_h, p.window.out_w, x.shape[3]), np.iinfo(np.int64).min, dtype=np.int64)
    for dy in range(p.filter_h):
        for dx in range(p.filter_w):
            result = np.maximum(result, tap(padded_x, p.window, dy, dx))
    return np.clip(result, p.output_min, p.output_max)


def mean(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """The sum of x - zp over the axes, rescaled by input/output scale with 1/count folded into the
    multiplier. TFLM takes this one path for every axis set, keep_dims or not, same quantisation
    or not."""
    x = values[op.inputs[0]].astype(np.int64)
    axes = tuple(normalised_axes(values[op.inputs[1]], x.ndim))
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    p = prepare_mean(graph, op, count, op_where(graph, op))
    total = (x - p.input_zero_point).sum(axis=axes)
    result = multiply_by_quantized_multiplier(total, p.multiplier, p.shift) + p.output_zero_point
    return np.clip(result, -128, 127)


# ---- C ----
AVERAGE_POOL_VARIANTS = {
    "portable": tag_set("avgpool", "library"),
    "optimized": tag_set("avgpool", "library", "four-channels"),
}
AVGPOOL4_MAX_WINDOW = 256  # tl_avgpool4 sums a window in int16 lanes


@dataclass(frozen=True)
class _PoolCall(LibraryCall):
    """What both pools' kernels take."""

    input: CExpr
    batches: int
    in_h: int
    in_w: int
    channels: int
    output: CExpr
    out_h: int
    out_w: int
    filter_h: int
    filter_w: int
    window: StrideAndPadding
    act_min: int
    act_max: int


@library_kernel("tl_maxpool_s8")
class MaxPoolCall(_PoolCall):
    """The largest value under each window."""


@library_kernel("tl_avgpool_s8")
class AvgPoolCall(_PoolCall):
    """Rounds halves away from zero."""

    scratch: CExpr

    @staticmethod
    def scratch_bytes(channels: int) -> int:
        """An int32 sum per channel."""
        return 4 * channels


@library_kernel("tl_mean_s8")
class MeanCall(LibraryCall):
    """MEAN over the dimensions whose out_strides entry is 0, the input seen as 4-D in_dims; the
    multiplier includes 1/count."""

    input: CExpr
    in_dims: CExpr
    out_strides: CExpr
    output: CExpr
    out_size: int
    count: int
    input_zp: int
    out_mult: int
    out_shift: int
    output_zp: int
    scratch: CExpr

    @staticmethod
    def scratch_bytes(out_size: int) -> int:
        """An int32 sum per output."""
        return 4 * out_size


def average_pool_scratch(graph: Graph, op: Op, kernels: str) -> int:
    return AvgPoolCall.scratch_bytes(graph.tensors[op.inputs[0]].shape[-1])


def mean_scratch(graph: Graph, op: Op, kernels: str) -> int:
    return MeanCall.scratch_bytes(graph.tensors[op.outputs[0]].elements)


def emit_pool(g: EmitContext, position: int, op: Op) -> Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    n, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    if oc != c:
        raise UnsupportedOpError(f"{where}: output depth {oc} differs from the input's {c}")
    p = prepare_pool(g.graph, op, where)
    fh, fw, sh, sw = p.filter_h, p.filter_w, p.window.stride_h, p.window.stride_w
    pt, pl, lo, hi = p.window.pad_top, p.window.pad_left, p.output_min, p.output_max
    source, target = g.ptr(op.inputs[0], const=True), g.ptr(op.outputs[0])
    extra = f"filter {fh}x{fw}, stride {sh}x{sw}, {op.attrs['padding']} (pad top {pt}, left {pl})"
    if op.kind == "AVERAGE_POOL_2D" and g.optimized and c % 4 == 0 and fh * fw <= AVGPOOL4_MAX_WINDOW:
        lines = [f"tl_avgpool4({source} + {b * h * wd * c}, {h}, {wd}, {c}, {target} + {b * oh * ow * c}, {oh}, {ow}, "
                 f"{fh}, {fw}, {sh}, {sw}, {pt}, {pl}, {lo}, {hi});" for b in range(n)]
        return Layer(f"{extra}; four channels a step", lines, tags("avgpool", "four-channels"))
    pool = dict(input=source, batches=n, in_h=h, in_w=wd, channels=c, output=target, out_h=oh, out_w=ow, filter_h=fh,
                filter_w=fw, window=StrideAndPadding(sh, sw, pt, pl), act_min=lo, act_max=hi)
    if op.kind == "AVERAGE_POOL_2D":
        call = AvgPoolCall(**pool, scratch=g.scratch(position, op, AvgPoolCall.scratch_bytes(c)))
        return Layer(extra, [render_call(call)], tags("avgpool", "library"))
    return Layer(extra, [render_call(MaxPoolCall(**pool))], tags("maxpool", "library"))


def _mean_dimensions(x: Tensor, axes: list[int], where: str) -> tuple[list[int], list[int], int]:
    """The input as 4-D dimensions (neighbouring dimensions that are both reduced or both kept
    merged, dimensions of 1 dropped), the output's stride along each (0: reduced), and how many
    values each mean takes."""
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
        raise UnsupportedOpError(f"{where}: reducing axes {sorted(axes)} of {shape_text(x.shape)} needs more than 4 dimensions")
    groups = [[1, False]] * (4 - len(groups)) + groups
    dims = [int(s) for s, _ in groups]
    strides, step = [0, 0, 0, 0], 1
    for axis in range(3, -1, -1):
        if not groups[axis][1]:
            strides[axis] = step
            step *= dims[axis]
    count = int(np.prod([s for s, r in groups if r], dtype=np.int64))
    return dims, strides, count


def emit_mean(g: EmitContext, position: int, op: Op) -> Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    axes = normalised_axes(op.attrs["axes"], len(x.shape))
    dims, strides, count = _mean_dimensions(x, axes, where)
    if count == 0 or x.elements == 0:
        raise UnsupportedOpError(f"{where}: the mean of an empty tensor {shape_text(x.shape)} is not supported")
    kept = int(np.prod([d for d, s in zip(dims, strides) if s], dtype=np.int64))
    if kept != y.elements:
        raise UnsupportedOpError(f"{where}: output {shape_text(y.shape)} does not hold the {kept} means")
    p = prepare_mean(g.graph, op, count, where)
    call = MeanCall(
        input=g.ptr(op.inputs[0], const=True), in_dims=int_list(dims), out_strides=int_list(strides),
        output=g.ptr(op.outputs[0]), out_size=y.elements, count=count, input_zp=p.input_zero_point,
        out_mult=p.multiplier, out_shift=p.shift, output_zp=p.output_zero_point,
        scratch=g.scratch(position, op, MeanCall.scratch_bytes(y.elements)),
    )
    extra = f"axes {axes}, keep_dims {bool(op.attrs.get('keep_dims', False))}, {count} values per mean"
    return Layer(extra, [render_call(call)], tags("mean", "library"))


POOL_OPTIONS = TfliteForm(schema.BuiltinOptions.Pool2DOptions, version=2, read=read_pool, write=write_pool)
AVERAGE_POOL_2D = OpSpec("AVERAGE_POOL_2D", Arity(1, 1), check_pool, average_pool_2d, tflite=POOL_OPTIONS,
                         c=CForm(emit_pool, AVERAGE_POOL_VARIANTS, scratch=average_pool_scratch,
                                 library_calls=(AvgPoolCall,)))
MAX_POOL_2D = OpSpec("MAX_POOL_2D", Arity(1, 1), check_pool, max_pool_2d, tflite=POOL_OPTIONS,
                     c=CForm(emit_pool, library_variants("maxpool", "library"), library_calls=(MaxPoolCall,)))
MEAN = OpSpec(
    "MEAN", Arity(2, 2), check_mean, mean, input_types={1: ("int32",)},
    tflite=TfliteForm(schema.BuiltinOptions.ReducerOptions, version=2, read=read_mean, write=write_mean, optional=True),
    c=CForm(emit_mean, library_variants("mean", "library"), scratch=mean_scratch, input_labels=("in", None),
            library_calls=(MeanCall,)),
)

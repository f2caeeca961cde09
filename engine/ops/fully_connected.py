"""FULLY_CONNECTED: the input flattened to [batches, depth] times the weights [units, depth].
Its attributes, checks, TFLM's Prepare step (FullyConnectedParamsQuantized), numpy reference, and
C: a library call, or the optimised tl_gemv of tl_opt.h (one vector x GEMV_ROWS rows a step)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.library_call import CExpr, LibraryCall, ParameterGroup, PerChannelRequant, library_kernel, render_call
from engine.codegen.literals import c_int, shape_text
from engine.codegen.packing import groups, pack_gemm, pair_literal
from engine.codegen.requant import RQ_CHOICES, RQ_SIGNED_CHOICE, requant_mode, rq_params, rq_tags
from engine.codegen.variants import tag_set, tags
from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops.checks import shape_with_rank
from engine.ops.options import read_activation, write_activation
from engine.ops.quant_params import output_range, scale_of, zero_point_of
from engine.ops.spec import CForm, OpSpec, TfliteForm, Values, op_where
from engine.ops.weighted import (
    INPUT_LABELS,
    WEIGHTED_ARITY,
    WEIGHTED_INPUT_TYPES,
    bias_pointer,
    bias_values,
    channel_multipliers,
    channel_requant,
    check_channels,
    check_weights,
    clamped,
    requantized,
)

GEMV_ROWS = 6  # TL_MV_ROWS of tl_opt.h
# Instructions that int16 ("wide") weights save per multiply-accumulate against int8 weights
# widened in the loop by SXTB16. Measured under QEMU's mps2-an500 (Cortex-M7): ad01_int8
# (FULLY_CONNECTED only) on qemu-f746 ran 256,560 instructions with every candidate int16 and
# 386,800 with 2 KB of them left (its flash budget at 318,824 B), over 0.26 M multiply-accumulates.
# The inner loop alone accounts for 8/24.
WIDE_SAVING_PER_MAC = 0.49


# ---- attributes ----
def read_attributes(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    if options.weightsFormat != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
        raise UnsupportedOpError(f"{where}: shuffled weights are not supported")
    return {"activation": read_activation(options, where), "keep_num_dims": bool(options.keepNumDims)}


def write_options(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.FullyConnectedOptionsT()
    options.fusedActivationFunction = write_activation(op, where)
    options.keepNumDims = bool(op.attrs.get("keep_num_dims", False))
    return schema.BuiltinOptions.FullyConnectedOptions, options


# ---- checks ----
def check(graph: Graph, op: Op, where: str) -> None:
    """Weights [units, depth], one zero point allowed (TFLM's filter offset); an input of whole
    rows of depth; an output of a row of units per input row."""
    check_weights(graph, op, where, channel_axis=0, filter_offset=True)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    units, depth = shape_with_rank(graph, op.inputs[1], 2, "weights", where)
    if x.elements % depth:
        raise ModelFormatError(f"{where}: input of {x.elements} values is not a whole number of rows of {depth}")
    if y.elements != x.elements // depth * units:
        raise ModelFormatError(f"{where}: output {tuple(y.shape)} does not hold {x.elements // depth} x {units} values")
    check_channels(graph, op, units, where)


# ---- prepare ----
@dataclass(frozen=True)
class FullyConnectedParams:
    multipliers: tuple[int, ...]  # per unit (one value repeated for per-tensor weights)
    shifts: tuple[int, ...]
    input_offset: int  # -input zero point
    filter_offset: int  # -weight zero point for per-tensor weights; 0 for per-channel (symmetric)
    output_offset: int
    output_min: int
    output_max: int


def prepare_fully_connected(graph: Graph, op: Op, units: int, where: str) -> FullyConnectedParams:
    """The constants of a FULLY_CONNECTED with `units` output rows."""
    x, w, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    mults, shifts = channel_multipliers(scale_of(x, where), w, scale_of(y, where), units, where)
    filter_offset = -zero_point_of(w) if len(w.scale) <= 1 else 0
    lo, hi = output_range(op, y, where)
    return FullyConnectedParams(mults, shifts, -zero_point_of(x), filter_offset, zero_point_of(y), lo, hi)


# ---- reference ----
def reference(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """TFLM computes the multiplier as a convolution's (input * weight / output in double), per
    tensor or per channel; the sums go through a float64 matrix product (exact below 2^53)."""
    weights = graph.tensors[op.inputs[1]]
    w = values[op.inputs[1]].astype(np.float64) - zero_point_of(weights)  # [O, D]
    channels, depth = w.shape
    p = prepare_fully_connected(graph, op, channels, op_where(graph, op))
    x = (values[op.inputs[0]].astype(np.float64) + p.input_offset).reshape(-1, depth)
    acc = (x @ w.T).astype(np.int64) + bias_values(op, values, channels)
    return requantized(acc, p.multipliers, p.shifts, p.output_offset, p.output_min, p.output_max)


# ---- C ----
VARIANTS = {
    "portable": tag_set("fc", "library", "library-per-channel"),
    "optimized": tag_set("fc", "library", "int8-weights", "int16-weights", "per-channel-requant", "one-requant",
                         "batches", "tail-rows", "ragged-depth", "clamped", "no-bias", *RQ_CHOICES, RQ_SIGNED_CHOICE),
}


@dataclass(frozen=True)
class MatrixDims(ParameterGroup):
    """Rows of the input, values a row, rows of the weights."""

    batches: int
    accum_depth: int
    out_depth: int


@library_kernel("tl_fully_connected_s8")
class FullyConnectedCall(LibraryCall):
    """One multiplier for all units; filter_offset = -filter zero point."""

    input: CExpr
    filter: CExpr
    bias: CExpr
    output: CExpr
    matrix: MatrixDims
    input_offset: int
    filter_offset: int
    output_offset: int
    out_mult: int
    out_shift: int
    act_min: int
    act_max: int


@library_kernel("tl_fully_connected_per_channel_s8")
class FullyConnectedPerChannelCall(LibraryCall):
    """A multiplier per unit (symmetric weights)."""

    input: CExpr
    filter: CExpr
    bias: CExpr
    output: CExpr
    matrix: MatrixDims
    requant: PerChannelRequant


def wide_weights(graph: Graph, op: Op) -> tuple[int, float]:
    """The flash int16 weights cost beyond int8, and the instructions they save."""
    units, depth = graph.tensors[op.inputs[1]].shape
    batches = graph.tensors[op.inputs[0]].elements // max(depth, 1)
    extra, macs = units * groups(depth) * 4, batches * units * depth
    return extra, WIDE_SAVING_PER_MAC * macs


def _dimensions(g: EmitContext, op: Op, where: str) -> tuple[int, int, int]:
    """(batches, depth, units)."""
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    if len(w.shape) != 2:
        raise UnsupportedOpError(f"{where}: weights of shape {shape_text(w.shape)} (need [units, depth])")
    units, depth = w.shape
    if depth == 0 or x.elements % depth:
        raise UnsupportedOpError(f"{where}: input of {x.elements} values is not a whole number of rows of {depth}")
    batches = x.elements // depth
    if y.elements != batches * units:
        raise UnsupportedOpError(f"{where}: output {shape_text(y.shape)} does not hold {batches} x {units} values")
    return batches, depth, units


def emit(g: EmitContext, position: int, op: Op) -> Layer:
    where = g.where(op)
    batches, depth, units = _dimensions(g, op, where)
    params = prepare_fully_connected(g.graph, op, units, where)
    mults, shifts, lo, hi = list(params.multipliers), list(params.shifts), params.output_min, params.output_max
    activation = op.attrs.get("activation", "NONE")
    if g.optimized and (params.filter_offset == 0 or position in g.wide):
        wide = position in g.wide
        body = _gemv_body(g, position, op, batches, depth, units, params)
        how = f"one vector x {GEMV_ROWS} rows a step, widened on the fly, " + ("int16 weights" if wide else "int8 weights")
        variant = tags("fc", "int16-weights" if wide else "int8-weights", *rq_tags(requant_mode(mults, shifts)),
                       "per-channel-requant" if len(set(zip(mults, shifts))) > 1 else "one-requant",
                       batches > 1 and "batches", units % GEMV_ROWS and "tail-rows", depth % 4 and "ragged-depth",
                       clamped(lo, hi) and "clamped", not (len(op.inputs) > 2 and op.inputs[2] >= 0) and "no-bias")
        return Layer(f"{activation}; {how}", [g.function(position, body, g.tensor_args(op))], variant)
    bias = bias_pointer(g, op)
    matrix = MatrixDims(batches, depth, units)
    if g.tensor(op.inputs[1]).per_channel:
        call = FullyConnectedPerChannelCall(
            input=g.ptr(op.inputs[0], const=True), filter=g.ptr(op.inputs[1]), bias=bias, output=g.ptr(op.outputs[0]),
            matrix=matrix, requant=channel_requant(g, position, op, params),
        )
        return Layer(activation, [render_call(call)], tags("fc", "library-per-channel"))
    call = FullyConnectedCall(
        input=g.ptr(op.inputs[0], const=True), filter=g.ptr(op.inputs[1]), bias=bias, output=g.ptr(op.outputs[0]),
        matrix=matrix, input_offset=params.input_offset, filter_offset=params.filter_offset,
        output_offset=params.output_offset, out_mult=mults[0], out_shift=shifts[0], act_min=lo, act_max=hi,
    )
    return Layer(activation, [render_call(call)], tags("fc", "library"))


def _gemv_body(g: EmitContext, position: int, op: Op, batches: int, depth: int, units: int,
               params: FullyConnectedParams) -> list[str]:
    """tl_gemv over each batch: weights packed in blocks of GEMV_ROWS rows, the filter offset
    folded into them, one requantisation or one per channel."""
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    mults, shifts, lo, hi = list(params.multipliers), list(params.shifts), params.output_min, params.output_max
    wide = position in g.wide
    weights = np.asarray(w.data, dtype=np.int64).reshape(units, depth) + params.filter_offset
    kind = "int16 pairs" if wide else "int8 words"
    wname = g.int32_array(f"op{position}_w", pack_gemm(weights, GEMV_ROWS, wide), f"op {op.index}: weights, {kind}, blocks of {GEMV_ROWS} rows")
    mode = requant_mode(mults, shifts)
    bias = g.ptr(op.inputs[2], const=True) if len(op.inputs) > 2 and op.inputs[2] >= 0 else "NULL"
    if len(set(zip(mults, shifts))) > 1:
        mult = g.int32_array(f"op{position}_mult", mults, f"op {op.index}: per-channel multipliers")
        sh_values = [rq_params(m, s, mode, zero_point_of(y))[1] for m, s in zip(mults, shifts)]
        shift = g.int32_array(f"op{position}_sh", sh_values, f"op {op.index}: per-channel shifts")
        quant = f"0, 0, 0, {mult}, {shift}"
    else:
        h, sh = rq_params(mults[0], shifts[0], mode, zero_point_of(y))
        quant = f"{c_int(mults[0])}, {c_int(h)}, {sh}, NULL, NULL"
    off2 = pair_literal(-zero_point_of(x))
    tail = f"{mode}, {c_int(zero_point_of(y))}, {lo}, {hi}"
    body = []
    call = f"tl_gemv(in{{b}}, {depth}, {off2}, {wname}, {int(wide)}, {units}, {bias}, {quant}, out{{o}}, {tail});"
    if batches == 1:
        body.append(call.format(b="", o=""))
    else:
        body += ["int b;", f"for (b = 0; b < {batches}; ++b) {{",
                 "    " + call.format(b=f" + b * {depth}", o=f" + b * {units}"), "}"]
    return body


FULLY_CONNECTED = OpSpec(
    "FULLY_CONNECTED", WEIGHTED_ARITY, check, reference, input_types=WEIGHTED_INPUT_TYPES,
    tflite=TfliteForm(schema.BuiltinOptions.FullyConnectedOptions, version=4, read=read_attributes, write=write_options),
    c=CForm(emit, VARIANTS, wide_weights=wide_weights, input_labels=INPUT_LABELS,
            library_calls=(FullyConnectedCall, FullyConnectedPerChannelCall)),
)

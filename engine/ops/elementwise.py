"""ADD: both int8 inputs brought to a common scale with ADD_LEFT_SHIFT bits of headroom, summed,
rescaled to the output (TFLM's int8 ADD), broadcasting as numpy does. Its attributes, checks,
Prepare step (CalculateOpData), numpy reference and C: the library kernels, or in the optimised
set two tables of each input's rescaled values (tl_add_tables) for large same-shape ADDs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.library_call import CExpr, LibraryCall, ParameterGroup, library_kernel, render_call
from engine.codegen.literals import c_int, comment_safe, extend4, int_list, shape_text
from engine.codegen.requant import RQ_CHOICES, requant_mode, rq_params, rq_tags
from engine.codegen.variants import tag_set, tags
from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops.options import read_activation, write_activation
from engine.ops.quant_params import output_range, scale_of, zero_point_of
from engine.ops.spec import Arity, CForm, OpSpec, TfliteForm, Values, op_where
from engine.quant import multiply_by_quantized_multiplier, quantize_multiplier

ADD_LEFT_SHIFT = 20  # TFLM's int8 ADD: inputs are shifted left 20 bits before rescaling
MAX_RANK = 4  # the broadcasting kernel's dimensions
ADD_TABLE_MIN_ELEMENTS = 1024  # smaller ADDs keep the library kernel: 2 KB of tables would not pay


# ---- attributes ----
def read_attributes(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    return {"activation": read_activation(options, where) if options is not None else "NONE"}


def write_options(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.AddOptionsT()
    options.fusedActivationFunction = write_activation(op, where)
    return schema.BuiltinOptions.AddOptions, options


# ---- checks ----
def check(graph: Graph, op: Op, where: str) -> None:
    """Inputs of rank 4 at most whose shapes broadcast to the output's."""
    a, b, y = (graph.tensors[t] for t in (*op.inputs, *op.outputs))
    if max(len(a.shape), len(b.shape)) > MAX_RANK:
        raise UnsupportedOpError(f"{where}: inputs of rank {max(len(a.shape), len(b.shape))}; at most {MAX_RANK} is supported")
    try:
        expected = tuple(np.broadcast_shapes(tuple(a.shape), tuple(b.shape)))
    except ValueError:
        raise ModelFormatError(f"{where}: input shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from None
    if expected != tuple(y.shape):
        raise ModelFormatError(f"{where}: output shape {tuple(y.shape)} is not the broadcast shape {expected}")


# ---- prepare ----
@dataclass(frozen=True)
class AddParams:
    input1_offset: int  # -zero point
    input1_multiplier: int
    input1_shift: int
    input2_offset: int
    input2_multiplier: int
    input2_shift: int
    output_offset: int  # output zero point
    output_multiplier: int
    output_shift: int
    output_min: int
    output_max: int
    left_shift: int = ADD_LEFT_SHIFT


def prepare_add(graph: Graph, op: Op, where: str) -> AddParams:
    """Both inputs to twice the larger input scale, the sum to the output's."""
    a, b, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    sa, sb, sy = scale_of(a, where), scale_of(b, where), scale_of(y, where)
    twice_max = 2.0 * max(sa, sb)
    m1, s1 = quantize_multiplier(sa / twice_max)
    m2, s2 = quantize_multiplier(sb / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * sy))
    lo, hi = output_range(op, y, where)
    return AddParams(-zero_point_of(a), m1, s1, -zero_point_of(b), m2, s2, zero_point_of(y), mo, so, lo, hi)


# ---- reference ----
def reference(graph: Graph, op: Op, values: Values) -> np.ndarray:
    p = prepare_add(graph, op, op_where(graph, op))
    a = (values[op.inputs[0]].astype(np.int64) + p.input1_offset) << p.left_shift
    b = (values[op.inputs[1]].astype(np.int64) + p.input2_offset) << p.left_shift
    total = (multiply_by_quantized_multiplier(a, p.input1_multiplier, p.input1_shift)
             + multiply_by_quantized_multiplier(b, p.input2_multiplier, p.input2_shift))
    result = multiply_by_quantized_multiplier(total, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(result, p.output_min, p.output_max)


# ---- C ----
VARIANTS = {
    "portable": tag_set("add", "library", "broadcast", "output-over-input"),
    "optimized": tag_set("add", "library", "broadcast", "output-over-input", "tables", *RQ_CHOICES),
}


@dataclass(frozen=True)
class AddRequant(ParameterGroup):
    """Both inputs' offsets and rescaling to the common scale, the left shift before it, and the
    sum's rescaling to the output and clamp."""

    input1_offset: int
    input1_mult: int
    input1_shift: int
    input2_offset: int
    input2_mult: int
    input2_shift: int
    left_shift: int
    output_offset: int
    out_mult: int
    out_shift: int
    act_min: int
    act_max: int


@library_kernel("tl_add_s8")
class AddCall(LibraryCall):
    """Two inputs of the same shape; the output may be either (engine.overlap's "elementwise")."""

    input1: CExpr
    input2: CExpr
    output: CExpr
    size: int
    requant: AddRequant


@library_kernel("tl_add_broadcast_s8")
class AddBroadcastCall(LibraryCall):
    """Broadcasting over a 4-D output: an input's stride is 0 along a dimension it is broadcast over."""

    input1: CExpr
    input1_strides: CExpr
    input2: CExpr
    input2_strides: CExpr
    output: CExpr
    out_dims: CExpr
    requant: AddRequant


def _table(offset: int, multiplier: int, shift: int) -> list[int]:
    """An input's rescaled value for each int8 value -128..127, as TFLM computes it."""
    values = (np.arange(-128, 128, dtype=np.int64) + offset) << ADD_LEFT_SHIFT
    return [int(v) for v in multiply_by_quantized_multiplier(values, multiplier, shift)]


def _broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """An input's strides over the 4-D output: 0 along a dimension it is broadcast over."""
    strides, step = [0] * len(shape), 1
    for axis in range(len(shape) - 1, -1, -1):
        strides[axis] = 0 if shape[axis] == 1 and out[axis] != 1 else step
        step *= shape[axis]
    return strides


def emit(g: EmitContext, position: int, op: Op) -> Layer:
    where = g.where(op)
    a, b, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    p = prepare_add(g.graph, op, where)
    lo, hi = p.output_min, p.output_max
    requant = AddRequant(p.input1_offset, p.input1_multiplier, p.input1_shift, p.input2_offset, p.input2_multiplier,
                         p.input2_shift, p.left_shift, p.output_offset, p.output_multiplier, p.output_shift, lo, hi)
    pa, pb, py = g.ptr(op.inputs[0], const=True), g.ptr(op.inputs[1], const=True), g.ptr(op.outputs[0])
    activation = op.attrs.get("activation", "NONE")
    rule = g.overlaps.get(position)
    if rule is not None and tuple(a.shape) != tuple(b.shape):
        raise UnsupportedOpError(f"{where}: the plan overlaps its output with an input ({rule.kind}) but it broadcasts")
    overlap = f"; output over input '{comment_safe(g.tensor(rule.input).name)}' ({rule.kind})" if rule is not None else ""
    if tuple(a.shape) == tuple(b.shape) and g.optimized and y.elements >= ADD_TABLE_MIN_ELEMENTS:
        mode = requant_mode([p.output_multiplier], [p.output_shift])
        h, sh = rq_params(p.output_multiplier, p.output_shift, mode, p.output_offset)
        ta = g.int32_array(f"op{position}_ta", _table(p.input1_offset, p.input1_multiplier, p.input1_shift),
                           f"op {op.index}: input 1 rescaled, for -128..127")
        tb = g.int32_array(f"op{position}_tb", _table(p.input2_offset, p.input2_multiplier, p.input2_shift),
                           f"op {op.index}: input 2 rescaled, for -128..127")
        call = (f"tl_add_tables({pa}, {pb}, {py}, {y.elements}, {ta} + 128, {tb} + 128, {c_int(p.output_multiplier)}, "
                f"{c_int(h)}, {sh}, {mode}, {c_int(p.output_offset)}, {lo}, {hi});")
        variant = tags("add", "tables", *rq_tags(mode), rule is not None and "output-over-input")
        return Layer(f"{activation}; tables{overlap}", [call], variant)
    if tuple(a.shape) == tuple(b.shape):
        call = render_call(AddCall(input1=pa, input2=pb, output=py, size=y.elements, requant=requant))
        return Layer(activation + overlap, [call], tags("add", "library", rule is not None and "output-over-input"))
    try:
        out_shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise UnsupportedOpError(f"{where}: shapes {shape_text(a.shape)} and {shape_text(b.shape)} do not broadcast") from None
    if tuple(out_shape) != tuple(y.shape):
        raise UnsupportedOpError(f"{where}: output {shape_text(y.shape)} is not the broadcast shape {shape_text(out_shape)}")
    dims = extend4(out_shape, where)
    strides = [_broadcast_strides(extend4(t.shape, where), dims) for t in (a, b)]
    call = render_call(AddBroadcastCall(input1=pa, input1_strides=int_list(strides[0]), input2=pb,
                                        input2_strides=int_list(strides[1]), output=py, out_dims=int_list(dims),
                                        requant=requant))
    return Layer(f"broadcast, {activation}", [call], tags("add", "broadcast"))


ADD = OpSpec(
    "ADD", Arity(2, 2), check, reference,
    tflite=TfliteForm(schema.BuiltinOptions.AddOptions, version=2, read=read_attributes, write=write_options, optional=True),
    c=CForm(emit, VARIANTS, input_labels=None, library_calls=(AddCall, AddBroadcastCall)),
)

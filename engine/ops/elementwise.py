"""ADD: both int8 inputs brought to a common scale with ADD_LEFT_SHIFT bits of headroom, summed,
rescaled to the output (TFLM's int8 ADD), broadcasting as numpy does. Its attributes, checks,
Prepare step (CalculateOpData) and numpy reference."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops.options import read_activation, write_activation
from engine.ops.quant_params import output_range, scale_of, zero_point_of
from engine.ops.spec import Arity, OpSpec, Values, op_where
from engine.quant import multiply_by_quantized_multiplier, quantize_multiplier

ADD_LEFT_SHIFT = 20  # TFLM's int8 ADD: inputs are shifted left 20 bits before rescaling
MAX_RANK = 4  # the broadcasting kernel's dimensions


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


ADD = OpSpec(
    kind="ADD",
    builtin_code=schema.BuiltinOperator.ADD,
    options_type=schema.BuiltinOptions.AddOptions,
    options_optional=True,
    version=2,
    arity=Arity(2, 2),
    read_attributes=read_attributes,
    write_options=write_options,
    check=check,
    reference=reference,
)

"""ADD (TFLM's int8 CalculateOpData): both inputs brought to twice the larger input scale with
ADD_LEFT_SHIFT bits of headroom, summed, and rescaled to the output."""
from __future__ import annotations

from dataclasses import dataclass

from engine.ir import Graph, Op
from engine.prepare.common import output_range, scale_of, zero_point_of
from engine.quant import quantize_multiplier

ADD_LEFT_SHIFT = 20  # TFLM's int8 ADD: inputs are shifted left 20 bits before rescaling


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
    a, b, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    sa, sb, sy = scale_of(a, where), scale_of(b, where), scale_of(y, where)
    twice_max = 2.0 * max(sa, sb)
    m1, s1 = quantize_multiplier(sa / twice_max)
    m2, s2 = quantize_multiplier(sb / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * sy))
    lo, hi = output_range(op, y, where)
    return AddParams(-zero_point_of(a), m1, s1, -zero_point_of(b), m2, s2, zero_point_of(y), mo, so, lo, hi)

"""QUANTIZE from int8 to int8 (TFLM's Requantize)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.ir import Graph, Op
from engine.prepare.common import scale_of, zero_point_of
from engine.quant import quantize_multiplier


@dataclass(frozen=True)
class RequantizeParams:
    input_zero_point: int
    output_zero_point: int
    multiplier: int  # input/output scale
    shift: int


def prepare_requantize(graph: Graph, op: Op, where: str) -> RequantizeParams:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    multiplier, shift = quantize_multiplier(scale_of(x, where) / scale_of(y, where))
    return RequantizeParams(zero_point_of(x), zero_point_of(y), multiplier, shift)

"""CONV_2D and DEPTHWISE_CONV_2D constants (TFLM's CalculateOpDataConv / CalculateOpDataDepthwiseConv):
the reference kernels and the emitters both take them from here."""
from __future__ import annotations

from dataclasses import dataclass

from engine.ir import Graph, Op
from engine.ops.quant_params import output_range, scale_of, zero_point_of
from engine.ops.weighted import channel_multipliers
from engine.ops.window import Window, prepare_window


@dataclass(frozen=True)
class ConvParams:
    window: Window
    multipliers: tuple[int, ...]  # per output channel, Q31
    shifts: tuple[int, ...]  # per output channel; > 0 is a left shift
    input_offset: int  # -input zero point
    output_offset: int  # output zero point
    output_min: int
    output_max: int


def prepare_conv(graph: Graph, op: Op, where: str) -> ConvParams:
    """A CONV_2D's (filter [O, KH, KW, I]) or DEPTHWISE_CONV_2D's (filter [1, KH, KW, C*M]) constants."""
    x, w, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    channels = w.shape[0] if op.kind == "CONV_2D" else w.shape[3]
    window = prepare_window(op.attrs, (x.shape[1], x.shape[2]), (w.shape[1], w.shape[2]), (y.shape[1], y.shape[2]), where)
    mults, shifts = channel_multipliers(scale_of(x, where), w, scale_of(y, where), channels, where)
    lo, hi = output_range(op, y, where)
    return ConvParams(window, mults, shifts, -zero_point_of(x), zero_point_of(y), lo, hi)

"""CONV_2D and DEPTHWISE_CONV_2D (TFLM's CalculateOpDataConv / CalculateOpDataDepthwiseConv)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.prepare.common import output_range, scale_of, zero_point_of
from engine.prepare.window import Window, prepare_window
from engine.quant import effective_scale, quantize_multiplier


@dataclass(frozen=True)
class ConvParams:
    window: Window
    multipliers: tuple[int, ...]  # per output channel, Q31
    shifts: tuple[int, ...]  # per output channel; > 0 is a left shift
    input_offset: int  # -input zero point
    output_offset: int  # output zero point
    output_min: int
    output_max: int


def channel_multipliers(input_scale: float, weights: Tensor, output_scale: float, channels: int,
                        where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per output channel (multipliers, shifts), a per-tensor filter scale broadcast
    (PopulateConvolutionQuantizationParams)."""
    if len(weights.scale) not in (1, channels):
        raise UnsupportedOpError(f"{where}: filter has {len(weights.scale)} scales for {channels} output channels")
    scales = weights.scale if len(weights.scale) > 1 else list(weights.scale) * channels
    pairs = [quantize_multiplier(effective_scale(input_scale, s, output_scale)) for s in scales]
    return tuple(m for m, _ in pairs), tuple(s for _, s in pairs)


def prepare_conv(graph: Graph, op: Op, where: str) -> ConvParams:
    """A CONV_2D's (filter [O, KH, KW, I]) or DEPTHWISE_CONV_2D's (filter [1, KH, KW, C*M]) constants."""
    x, w, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    channels = w.shape[0] if op.kind == "CONV_2D" else w.shape[3]
    window = prepare_window(op.attrs, (x.shape[1], x.shape[2]), (w.shape[1], w.shape[2]), (y.shape[1], y.shape[2]), where)
    mults, shifts = channel_multipliers(scale_of(x, where), w, scale_of(y, where), channels, where)
    lo, hi = output_range(op, y, where)
    return ConvParams(window, mults, shifts, -zero_point_of(x), zero_point_of(y), lo, hi)

"""What the weighted ops (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) share: constant weights
quantised along their output channels and a constant int32 bias per channel (checked), a
multiplier per output channel (TFLM's PopulateConvolutionQuantizationParams), the requantisation
of their int32 sums in the reference kernels, and the per-channel arrays their C takes."""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from engine.codegen.context import EmitContext
from engine.codegen.library_call import PerChannelRequant
from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops.spec import Arity, Values
from engine.quant import effective_scale, multiply_by_quantized_multiplier, quantize_multiplier

WEIGHTED_ARITY = Arity(2, 3, optional=(2,))  # input, weights and an optional bias
WEIGHTED_INPUT_TYPES = {2: ("int32",)}  # the bias; input and weights are int8
INPUT_LABELS = ("in", "filter", "bias")  # how a layer's comment names the inputs


class ChannelConstants(Protocol):
    """What the weighted ops' Prepare steps give (ConvParams, FullyConnectedParams)."""

    multipliers: tuple[int, ...]  # per output channel, Q31
    shifts: tuple[int, ...]  # per output channel; > 0 is a left shift
    input_offset: int  # -input zero point
    output_offset: int  # output zero point
    output_min: int  # the fused activation's clamp
    output_max: int


# ---- checks ----
def check_weights(graph: Graph, op: Op, where: str, channel_axis: int, filter_offset: bool = False) -> None:
    """Constant weights quantised along `channel_axis` (their output channels), with zero point 0
    (symmetric) unless the kernel takes a filter offset (one zero point, per tensor); a constant bias."""
    weights = graph.tensors[op.inputs[1]]
    if weights.data is None:
        raise UnsupportedOpError(f"{where}: the weights '{weights.name}' must be a constant tensor")
    if any(z != 0 for z in weights.zero_point) and (not filter_offset or weights.per_channel):
        raise UnsupportedOpError(
            f"{where}: weights '{weights.name}' have zero points {weights.zero_point[:4]}; "
            f"{op.kind} supports only 0 (symmetric){' per channel' if filter_offset else ''}"
        )
    if weights.per_channel:
        if weights.quantized_dimension != channel_axis:
            raise ModelFormatError(
                f"{where}: weights '{weights.name}' are quantised along dimension {weights.quantized_dimension}; "
                f"{op.kind} needs {channel_axis} (its output channels)"
            )
    if len(op.inputs) > 2 and op.inputs[2] >= 0 and graph.tensors[op.inputs[2]].data is None:
        raise UnsupportedOpError(f"{where}: the bias '{graph.tensors[op.inputs[2]].name}' must be a constant tensor")


def check_channels(graph: Graph, op: Op, channels: int, where: str) -> None:
    """A bias value and a weight scale (or one for all) per output channel."""
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = graph.tensors[op.inputs[2]]
        if bias.elements != channels:
            raise ModelFormatError(f"{where}: bias '{bias.name}' has {bias.elements} values for {channels} output channels")
    weights = graph.tensors[op.inputs[1]]
    if len(weights.scale) not in (1, channels):
        raise ModelFormatError(f"{where}: weights '{weights.name}' have {len(weights.scale)} scales for {channels} output channels")


# ---- prepare ----
def channel_multipliers(input_scale: float, weights: Tensor, output_scale: float, channels: int,
                        where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per output channel (multipliers, shifts), a per-tensor filter scale broadcast
    (PopulateConvolutionQuantizationParams)."""
    if len(weights.scale) not in (1, channels):
        raise UnsupportedOpError(f"{where}: filter has {len(weights.scale)} scales for {channels} output channels")
    scales = weights.scale if len(weights.scale) > 1 else list(weights.scale) * channels
    pairs = [quantize_multiplier(effective_scale(input_scale, s, output_scale)) for s in scales]
    return tuple(m for m, _ in pairs), tuple(s for _, s in pairs)


# ---- reference ----
def bias_values(op: Op, values: Values, channels: int) -> np.ndarray:
    """The bias as int64, zeros where the op has none."""
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return values[op.inputs[2]].astype(np.int64).reshape(channels)
    return np.zeros(channels, dtype=np.int64)


def requantized(acc: np.ndarray, multipliers: Sequence[int], shifts: Sequence[int], output_offset: int,
                low: int, high: int) -> np.ndarray:
    """acc rescaled per channel (the last axis), plus the output zero point, clamped."""
    m, s = np.array(multipliers, dtype=np.int64), np.array(shifts, dtype=np.int64)
    return np.clip(multiply_by_quantized_multiplier(acc, m, s) + output_offset, low, high)


# ---- emitting ----
def channel_arrays(g: EmitContext, position: int, op: Op, mults: Sequence[int], shifts: Sequence[int]) -> tuple[str, str]:
    """The per-channel multiplier and shift arrays that the library kernels take."""
    mult = g.int32_array(f"op{position}_mult", mults, f"op {op.index}: per-channel multipliers")
    shift = g.int32_array(f"op{position}_shift", shifts, f"op {op.index}: per-channel shifts")
    return mult, shift


def bias_pointer(g: EmitContext, op: Op) -> str:
    """The bias array, or NULL."""
    return g.ptr(op.inputs[2], const=True) if len(op.inputs) > 2 else "NULL"


def bias_data(graph: Graph, op: Op, channels: int) -> np.ndarray:
    """The bias as int64, zeros where the op has none (for constants the emitters lay out)."""
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return np.asarray(graph.tensors[op.inputs[2]].data, dtype=np.int64).ravel()
    return np.zeros(channels, dtype=np.int64)


def clamped(low: int, high: int) -> bool:
    """Whether the fused activation narrows the int8 range (a variant of the optimised kernels)."""
    return low > -128 or high < 127


def channel_requant(g: EmitContext, position: int, op: Op, params: ChannelConstants) -> PerChannelRequant:
    """The offsets, per-channel arrays and clamp a weighted library kernel takes."""
    mult, shift = channel_arrays(g, position, op, params.multipliers, params.shifts)
    return PerChannelRequant(params.input_offset, params.output_offset, mult, shift, params.output_min, params.output_max)

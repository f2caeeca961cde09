"""The library kernels of the convolutions (engine/kernels/tl_kernels.h), one dataclass of
parameters each (engine.codegen.library_call), with the scratch the in-place kernels take."""
from __future__ import annotations

from dataclasses import dataclass

from engine.codegen.library_call import CExpr, LibraryCall, ParameterGroup, PerChannelRequant, StrideAndPadding, library_kernel


@dataclass(frozen=True)
class InputDims(ParameterGroup):
    """An NHWC input's dimensions."""

    batches: int
    in_h: int
    in_w: int
    in_c: int


@dataclass(frozen=True)
class KernelSize(ParameterGroup):
    k_h: int
    k_w: int


@dataclass(frozen=True)
class OutputSize(ParameterGroup):
    out_h: int
    out_w: int


@library_kernel("tl_conv_s8")
class ConvCall(LibraryCall):
    """CONV_2D; filter [out_c][k_h][k_w][in_c]."""

    input: CExpr
    input_dims: InputDims
    filter: CExpr
    kernel: KernelSize
    bias: CExpr
    output: CExpr
    output_size: OutputSize
    out_c: int
    window: StrideAndPadding
    requant: PerChannelRequant


@library_kernel("tl_depthwise_conv_s8")
class DepthwiseConvCall(LibraryCall):
    """DEPTHWISE_CONV_2D; filter [1][k_h][k_w][in_c * depth_mult]."""

    input: CExpr
    input_dims: InputDims
    filter: CExpr
    kernel: KernelSize
    depth_mult: int
    bias: CExpr
    output: CExpr
    output_size: OutputSize
    window: StrideAndPadding
    requant: PerChannelRequant


@library_kernel("tl_depthwise_conv_inplace_s8")
class DepthwiseConvInplaceCall(LibraryCall):
    """DEPTHWISE_CONV_2D, multiplier 1, batch 1, whose output may be its input (engine.overlap's
    "channel-plane" variant)."""

    input: CExpr
    in_h: int
    in_w: int
    channels: int
    filter: CExpr
    kernel: KernelSize
    bias: CExpr
    output: CExpr
    output_size: OutputSize
    window: StrideAndPadding
    requant: PerChannelRequant
    scratch: CExpr

    @staticmethod
    def scratch_bytes(out_h: int, out_w: int) -> int:
        """One channel's output plane."""
        return out_h * out_w


@library_kernel("tl_conv_1x1_stream_s8")
class Conv1x1StreamCall(LibraryCall):
    """CONV_2D 1x1, stride 1, batch 1, whose output may be its input (engine.overlap's
    "pixel-stream" variant)."""

    input: CExpr
    pixels: int
    in_c: int
    filter: CExpr
    bias: CExpr
    output: CExpr
    out_c: int
    requant: PerChannelRequant
    scratch: CExpr

    @staticmethod
    def scratch_bytes(in_c: int) -> int:
        """One input pixel."""
        return in_c

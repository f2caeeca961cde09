"""CONV_2D and DEPTHWISE_CONV_2D in the generated C: the optimised kernel where the layer allows it
(emit_optimized.py), otherwise a call of the kernel library (calls.py), the in-place variant where
the plan writes the output over the input (engine.overlap)."""
from __future__ import annotations

from typing import Callable, TypeVar

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.library_call import LibraryCall, StrideAndPadding, render_call
from engine.codegen.variants import tag_set, tags
from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op
from engine.ops.conv.calls import (
    Conv1x1StreamCall,
    ConvCall,
    DepthwiseConvCall,
    DepthwiseConvInplaceCall,
    InputDims,
    KernelSize,
    OutputSize,
)
from engine.ops.conv.emit_optimized import CONV_CHOICES, DEPTHWISE_CHOICES, optimized_conv, optimized_depthwise
from engine.ops.conv.prepare import ConvParams, prepare_conv
from engine.ops.conv.shapes import ConvShape, DepthwiseShape, WindowedLayer, conv_shape, depthwise_shape
from engine.ops.weighted import bias_pointer, channel_requant
from engine.overlap import OverlapRule

Shape = TypeVar("Shape", bound=WindowedLayer)
CONV_VARIANTS = {
    "portable": tag_set("conv", "library", "library-stream"),
    "optimized": tag_set("conv", "library", *CONV_CHOICES),
}
DEPTHWISE_VARIANTS = {
    "portable": tag_set("dw", "library", "library-inplace"),
    "optimized": tag_set("dw", "library", "library-inplace", *DEPTHWISE_CHOICES),
}


def _prepared(g: EmitContext, position: int, op: Op,
              measure: Callable[[Graph, Op, str], Shape]) -> tuple[Shape, ConvParams, OverlapRule | None, str]:
    """The layer's shape, its Prepare constants, the overlap the plan chose for it, and the words
    on its stride and padding."""
    where = g.where(op)
    shape = measure(g.graph, op, where)
    padding = f"stride {shape.sh}x{shape.sw}, {op.attrs['padding']} (pad top {shape.pt}, left {shape.pl})"
    return shape, prepare_conv(g.graph, op, where), g.overlaps.get(position), padding


CallBuilder = Callable[[EmitContext, int, Op, Shape, ConvParams], LibraryCall]


def _layer(g: EmitContext, position: int, op: Op, shape: Shape, params: ConvParams, rule: OverlapRule | None,
           detail: str, family: str, optimized: Callable[..., Layer], library: CallBuilder,
           in_place: tuple[CallBuilder, str]) -> Layer:
    """The optimised kernel where the layer allows it, else the in-place library kernel where the
    plan writes the output over the input, else the plain library kernel."""
    if g.optimized and shape.optimizable:
        return optimized(g, position, op, shape, params, detail, rule)
    if rule is not None:
        build, choice = in_place
        call = build(g, position, op, shape, params)
        return Layer(f"{detail}; output over its input ({rule.kind})", [render_call(call)], tags(family, choice))
    return Layer(detail, [render_call(library(g, position, op, shape, params))], tags(family, "library"))


def _window(shape: WindowedLayer) -> StrideAndPadding:
    return StrideAndPadding(shape.sh, shape.sw, shape.pt, shape.pl)


def _conv_call(g: EmitContext, position: int, op: Op, shape: ConvShape, params: ConvParams) -> ConvCall:
    requant, bias = channel_requant(g, position, op, params), bias_pointer(g, op)
    return ConvCall(
        input=g.ptr(op.inputs[0], const=True), input_dims=InputDims(shape.n, shape.h, shape.w, shape.ci),
        filter=g.ptr(op.inputs[1]), kernel=KernelSize(shape.kh, shape.kw), bias=bias, output=g.ptr(op.outputs[0]),
        output_size=OutputSize(shape.oh, shape.ow), out_c=shape.co, window=_window(shape), requant=requant,
    )


def _stream_call(g: EmitContext, position: int, op: Op, shape: ConvShape, params: ConvParams) -> Conv1x1StreamCall:
    requant, bias = channel_requant(g, position, op, params), bias_pointer(g, op)
    return Conv1x1StreamCall(
        input=g.ptr(op.inputs[0], const=True), pixels=shape.h * shape.w, in_c=shape.ci, filter=g.ptr(op.inputs[1]),
        bias=bias, output=g.ptr(op.outputs[0]), out_c=shape.co, requant=requant,
        scratch="(int8_t *)" + g.room(position, op, Conv1x1StreamCall.scratch_bytes(shape.ci)),
    )


def _depthwise_call(g: EmitContext, position: int, op: Op, shape: DepthwiseShape, params: ConvParams) -> DepthwiseConvCall:
    requant, bias = channel_requant(g, position, op, params), bias_pointer(g, op)
    return DepthwiseConvCall(
        input=g.ptr(op.inputs[0], const=True), input_dims=InputDims(shape.n, shape.h, shape.w, shape.c),
        filter=g.ptr(op.inputs[1]), kernel=KernelSize(shape.kh, shape.kw), depth_mult=shape.mult, bias=bias,
        output=g.ptr(op.outputs[0]), output_size=OutputSize(shape.oh, shape.ow), window=_window(shape), requant=requant,
    )


def _inplace_call(g: EmitContext, position: int, op: Op, shape: DepthwiseShape,
                  params: ConvParams) -> DepthwiseConvInplaceCall:
    requant, bias = channel_requant(g, position, op, params), bias_pointer(g, op)
    return DepthwiseConvInplaceCall(
        input=g.ptr(op.inputs[0], const=True), in_h=shape.h, in_w=shape.w, channels=shape.c, filter=g.ptr(op.inputs[1]),
        kernel=KernelSize(shape.kh, shape.kw), bias=bias, output=g.ptr(op.outputs[0]),
        output_size=OutputSize(shape.oh, shape.ow), window=_window(shape), requant=requant,
        scratch="(int8_t *)" + g.room(position, op, DepthwiseConvInplaceCall.scratch_bytes(shape.oh, shape.ow)),
    )


def emit_conv(g: EmitContext, position: int, op: Op) -> Layer:
    shape, params, rule, padding = _prepared(g, position, op, conv_shape)
    if rule is not None and not shape.pointwise:
        raise UnsupportedOpError(f"{g.where(op)}: the plan overlaps its output with its input ({rule.kind}) but it is not a 1x1 stride-1 convolution")
    detail = f"{padding}, {op.attrs.get('activation', 'NONE')}"
    return _layer(g, position, op, shape, params, rule, detail, "conv", optimized_conv, _conv_call,
                  (_stream_call, "library-stream"))


def emit_depthwise(g: EmitContext, position: int, op: Op) -> Layer:
    shape, params, rule, padding = _prepared(g, position, op, depthwise_shape)
    if rule is not None and (shape.mult != 1 or shape.n != 1):
        raise UnsupportedOpError(f"{g.where(op)}: the plan overlaps its output with its input ({rule.kind}) but its depth multiplier is {shape.mult}")
    detail = f"depth multiplier {shape.mult}, {padding}, {op.attrs.get('activation', 'NONE')}"
    return _layer(g, position, op, shape, params, rule, detail, "dw", optimized_depthwise, _depthwise_call,
                  (_inplace_call, "library-inplace"))

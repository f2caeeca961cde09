"""CONV_2D and DEPTHWISE_CONV_2D in the generated C: the optimised kernel where the layer allows it
(emit_optimized.py), otherwise a call of the kernel library, the in-place variant where the plan
writes the output over the input (engine.overlap)."""
from __future__ import annotations

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.variants import tag_set, tags
from engine.codegen.literals import c_int
from engine.errors import UnsupportedOpError
from engine.ir import Op
from engine.ops.conv.emit_optimized import CONV_CHOICES, DEPTHWISE_CHOICES, optimized_conv, optimized_depthwise
from engine.ops.conv.prepare import prepare_conv
from engine.ops.conv.shapes import conv_shape, depthwise_shape
from engine.ops.weighted import bias_pointer, channel_arrays

CONV_VARIANTS = {
    "portable": tag_set("conv", "library", "library-stream"),
    "optimized": tag_set("conv", "library", *CONV_CHOICES),
}
DEPTHWISE_VARIANTS = {
    "portable": tag_set("dw", "library", "library-inplace"),
    "optimized": tag_set("dw", "library", "library-inplace", *DEPTHWISE_CHOICES),
}


def _padding_text(op: Op, pt: int, pl: int) -> str:
    return f"{op.attrs['padding']} (pad top {pt}, left {pl})"


def emit_conv(g: EmitContext, position: int, op: Op) -> Layer:
    where = g.where(op)
    shape = conv_shape(g.graph, op, where)
    params = prepare_conv(g.graph, op, where)
    detail = f"stride {shape.sh}x{shape.sw}, {_padding_text(op, shape.pt, shape.pl)}, {op.attrs.get('activation', 'NONE')}"
    rule = g.overlaps.get(position)
    if rule is not None and not shape.pointwise:
        raise UnsupportedOpError(f"{where}: the plan overlaps its output with its input ({rule.kind}) but it is not a 1x1 stride-1 convolution")
    if g.optimized and shape.optimizable:
        return optimized_conv(g, position, op, shape, params, detail, rule)
    mult, shift = channel_arrays(g, position, op, params.multipliers, params.shifts)
    bias = bias_pointer(g, op)
    offsets = f"{c_int(params.input_offset)}, {c_int(params.output_offset)}"
    clamp = f"{params.output_min}, {params.output_max}"
    if rule is not None:
        call = (
            f"tl_conv_1x1_stream_s8({g.ptr(op.inputs[0], const=True)}, {shape.h * shape.w}, {shape.ci}, {g.ptr(op.inputs[1])}, "
            f"{bias}, {g.ptr(op.outputs[0])}, {shape.co}, {offsets}, {mult}, {shift}, {clamp}, "
            f"(int8_t *){g.room(position, op, shape.ci)});"
        )
        return Layer(f"{detail}; output over its input ({rule.kind})", [call], tags("conv", "library-stream"))
    call = (
        f"tl_conv_s8({g.ptr(op.inputs[0], const=True)}, {shape.n}, {shape.h}, {shape.w}, {shape.ci}, {g.ptr(op.inputs[1])}, "
        f"{shape.kh}, {shape.kw}, {bias}, {g.ptr(op.outputs[0])}, {shape.oh}, {shape.ow}, {shape.co}, {shape.sh}, {shape.sw}, "
        f"{shape.pt}, {shape.pl}, {offsets}, {mult}, {shift}, {clamp});"
    )
    return Layer(detail, [call], tags("conv", "library"))


def emit_depthwise(g: EmitContext, position: int, op: Op) -> Layer:
    where = g.where(op)
    shape = depthwise_shape(g.graph, op, where)
    params = prepare_conv(g.graph, op, where)
    detail = (f"depth multiplier {shape.mult}, stride {shape.sh}x{shape.sw}, {_padding_text(op, shape.pt, shape.pl)}, "
              f"{op.attrs.get('activation', 'NONE')}")
    rule = g.overlaps.get(position)
    if rule is not None and (shape.mult != 1 or shape.n != 1):
        raise UnsupportedOpError(f"{where}: the plan overlaps its output with its input ({rule.kind}) but its depth multiplier is {shape.mult}")
    if g.optimized and shape.optimizable:
        return optimized_depthwise(g, position, op, shape, params, detail, rule)
    mult, shift = channel_arrays(g, position, op, params.multipliers, params.shifts)
    bias = bias_pointer(g, op)
    offsets = f"{c_int(params.input_offset)}, {c_int(params.output_offset)}"
    clamp = f"{params.output_min}, {params.output_max}"
    if rule is not None:
        call = (
            f"tl_depthwise_conv_inplace_s8({g.ptr(op.inputs[0], const=True)}, {shape.h}, {shape.w}, {shape.c}, "
            f"{g.ptr(op.inputs[1])}, {shape.kh}, {shape.kw}, {bias}, {g.ptr(op.outputs[0])}, {shape.oh}, {shape.ow}, "
            f"{shape.sh}, {shape.sw}, {shape.pt}, {shape.pl}, {offsets}, {mult}, {shift}, {clamp}, "
            f"(int8_t *){g.room(position, op, shape.oh * shape.ow)});"
        )
        return Layer(f"{detail}; output over its input ({rule.kind})", [call], tags("dw", "library-inplace"))
    call = (
        f"tl_depthwise_conv_s8({g.ptr(op.inputs[0], const=True)}, {shape.n}, {shape.h}, {shape.w}, {shape.c}, "
        f"{g.ptr(op.inputs[1])}, {shape.kh}, {shape.kw}, {shape.mult}, {bias}, {g.ptr(op.outputs[0])}, {shape.oh}, "
        f"{shape.ow}, {shape.sh}, {shape.sw}, {shape.pt}, {shape.pl}, {offsets}, {mult}, {shift}, {clamp});"
    )
    return Layer(detail, [call], tags("dw", "library"))

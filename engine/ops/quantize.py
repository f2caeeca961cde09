"""QUANTIZE (float32 -> int8, or int8 -> int8: TFLM's AffineQuantize and Requantize) and
DEQUANTIZE (int8 -> float32): the only ops with float tensors. Their checks, Prepare step, numpy
reference and library calls; they have no attributes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.library_call import CExpr, LibraryCall, library_kernel, render_call
from engine.codegen.literals import c_float
from engine.codegen.variants import library_variants, tags
from engine.errors import UnsupportedOpError
from engine.ir import DTYPES, Graph, Op
from engine.ops.checks import same_shape
from engine.ops.quant_params import scale_of, zero_point_of
from engine.ops.spec import Arity, CForm, OpSpec, TfliteForm, Values, op_where
from engine.quant import INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier, quantize_multiplier


# ---- prepare ----
@dataclass(frozen=True)
class RequantizeParams:
    input_zero_point: int
    output_zero_point: int
    multiplier: int  # input/output scale
    shift: int


def prepare_requantize(graph: Graph, op: Op, where: str) -> RequantizeParams:
    """QUANTIZE from int8 to int8 (TFLM's Requantize)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    multiplier, shift = quantize_multiplier(scale_of(x, where) / scale_of(y, where))
    return RequantizeParams(zero_point_of(x), zero_point_of(y), multiplier, shift)


# ---- reference ----
def quantize(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """float32 -> int8 (AffineQuantize) or int8 -> int8 (Requantize, input/output scale in double)."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    x = values[op.inputs[0]]
    if inp.dtype == "float32":  # AffineQuantize: round(x / scale) in float32, half away from zero
        q = (x.astype(np.float32) / np.float32(out.scale[0])).astype(np.float64)
        rounded = np.sign(q) * np.floor(np.abs(q) + 0.5)
        result = np.clip(rounded, INT32_MIN, INT32_MAX).astype(np.int64) + zero_point_of(out)
    else:  # Requantize
        p = prepare_requantize(graph, op, op_where(graph, op))
        result = multiply_by_quantized_multiplier(x.astype(np.int64) - p.input_zero_point, p.multiplier, p.shift) + p.output_zero_point
    info = np.iinfo(DTYPES[out.dtype])
    return np.clip(result, info.min, info.max)


def dequantize(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """scale * (q - zp) as one float32 multiplication."""
    inp = graph.tensors[op.inputs[0]]
    q = (values[op.inputs[0]].astype(np.int64) - zero_point_of(inp)).astype(np.float32)
    return np.float32(inp.scale[0]) * q


# ---- C ----
@library_kernel("tl_quantize_f32_s8")
class QuantizeCall(LibraryCall):
    """float -> int8: round(x / scale) + zero_point, clamped; the quotient in float32."""

    input: CExpr
    output: CExpr
    size: int
    scale: CExpr
    zero_point: int


@library_kernel("tl_requantize_s8")
class RequantizeCall(LibraryCall):
    """int8 -> int8: (x - input_zp) rescaled, + output_zp, clamped."""

    input: CExpr
    output: CExpr
    size: int
    input_zp: int
    mult: int
    shift: int
    output_zp: int


@library_kernel("tl_dequantize_s8_f32")
class DequantizeCall(LibraryCall):
    """int8 -> float: scale * (x - zero_point)."""

    input: CExpr
    output: CExpr
    size: int
    zero_point: int
    scale: CExpr


def emit_quantize(g: EmitContext, position: int, op: Op) -> Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if y.dtype != "int8":
        raise UnsupportedOpError(f"{where}: output type {y.dtype} is not supported (int8 is)")
    if len(y.scale) != 1:
        raise UnsupportedOpError(f"{where}: per-channel quantisation of activations is not supported")
    if x.dtype == "float32":
        g.uses_float = True
        call = QuantizeCall(input=g.ptr(op.inputs[0], const=True), output=g.ptr(op.outputs[0]), size=y.elements,
                            scale=c_float(scale_of(y, where)), zero_point=zero_point_of(y))
        detail = f"scale {scale_of(y, where):g}, zero point {zero_point_of(y)}"
        return Layer(detail, [render_call(call)], tags("quantize", "float"))
    if x.dtype == "int8":
        p = prepare_requantize(g.graph, op, where)
        call = RequantizeCall(input=g.ptr(op.inputs[0], const=True), output=g.ptr(op.outputs[0]), size=y.elements,
                              input_zp=p.input_zero_point, mult=p.multiplier, shift=p.shift, output_zp=p.output_zero_point)
        return Layer("requantise", [render_call(call)], tags("quantize", "requantize"))
    raise UnsupportedOpError(f"{where}: input type {x.dtype} is not supported (float32 or int8 are)")


def emit_dequantize(g: EmitContext, position: int, op: Op) -> Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if x.dtype != "int8" or y.dtype != "float32":
        raise UnsupportedOpError(f"{where}: {x.dtype} -> {y.dtype} is not supported (int8 -> float32 is)")
    if len(x.scale) != 1:
        raise UnsupportedOpError(f"{where}: per-channel dequantisation is not supported")
    g.uses_float = True
    call = DequantizeCall(input=g.ptr(op.inputs[0], const=True), output=g.ptr(op.outputs[0]), size=x.elements,
                          zero_point=zero_point_of(x), scale=c_float(scale_of(x, where)))
    detail = f"scale {scale_of(x, where):g}, zero point {zero_point_of(x)}"
    return Layer(detail, [render_call(call)], tags("dequantize", "library"))


QUANTIZE = OpSpec("QUANTIZE", Arity(1, 1), same_shape, quantize, input_types={0: ("float32", "int8")},
                  tflite=TfliteForm(schema.BuiltinOptions.QuantizeOptions, version=1, optional=True),
                  c=CForm(emit_quantize, library_variants("quantize", "float", "requantize"),
                          library_calls=(QuantizeCall, RequantizeCall)))
DEQUANTIZE = OpSpec("DEQUANTIZE", Arity(1, 1), same_shape, dequantize, output_types={0: ("float32",)},
                    tflite=TfliteForm(schema.BuiltinOptions.DequantizeOptions, version=2, optional=True),
                    c=CForm(emit_dequantize, library_variants("dequantize", "library"),
                            library_calls=(DequantizeCall,)))

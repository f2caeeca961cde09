"""SOFTMAX over the last dimension, int8 in and int8 out (scale 1/256, zero point -128), as TFLite
Micro computes it: exp of (x - max) * beta in Q5.26 by gemmlowp's exp_on_negative_values, the sum
in Q12.19, its reciprocal by Newton-Raphson. Its attributes, checks, Prepare step
(PreprocessSoftmaxScaling and CalculateInputRadius), numpy reference and library call."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.library_call import CExpr, LibraryCall, library_kernel, render_call
from engine.codegen.variants import library_variants, tags
from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops.checks import same_shape
from engine.ops.quant_params import scale_of, zero_point_of
from engine.ops.spec import Arity, CForm, OpSpec, TfliteForm, Values, op_where
from engine.quant import (
    INT32_MAX,
    INT32_MIN,
    MAX_SCALE_MAGNITUDE,
    c_divide,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)

SCALED_DIFF_INTEGER_BITS = 5  # differences x - max as Q5.26
ACCUMULATION_INTEGER_BITS = 12  # the sum of exponentials as Q12.19
OUTPUT_SCALE = 1.0 / 256  # TFLite's int8 softmax output: 256 steps over [0, 1)
OUTPUT_ZERO_POINT = -128


# ---- attributes ----
def read_attributes(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    return {"beta": float(options.beta)}


def write_options(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.SoftmaxOptionsT()
    options.beta = float(op.attrs.get("beta", 1.0))
    return schema.BuiltinOptions.SoftmaxOptions, options


# ---- checks ----
def check(graph: Graph, op: Op, where: str) -> None:
    """A finite, positive beta; the output of the input's shape."""
    beta = op.attrs.get("beta", 1.0)
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and 0 < beta < MAX_SCALE_MAGNITUDE):
        raise ModelFormatError(f"{where}: beta is {beta!r}; it must be finite and positive")
    same_shape(graph, op, where)


# ---- prepare ----
@dataclass(frozen=True)
class SoftmaxParams:
    input_multiplier: int  # beta * input scale in Q5.26 units, Q31
    input_left_shift: int
    diff_min: int  # differences below this contribute nothing


def prepare_softmax(input_scale: float, beta: float) -> SoftmaxParams:
    bits = SCALED_DIFF_INTEGER_BITS
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    radius = math.floor(((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift))
    return SoftmaxParams(multiplier, left_shift, -radius)


# ---- C ----
def emit(g: EmitContext, position: int, op: Op) -> Layer:
    """A call of tl_softmax_s8 (SoftmaxCall), for TFLite's int8 output quantisation only."""
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if zero_point_of(y) != OUTPUT_ZERO_POINT or scale_of(y, where) != OUTPUT_SCALE:
        raise UnsupportedOpError(
            f"{where}: int8 softmax output must have scale 1/256 and zero point -128 (has {scale_of(y, where):g}, {zero_point_of(y)})"
        )
    depth = x.shape[-1] if x.shape else 1
    rows = x.elements // depth
    p = prepare_softmax(scale_of(x, where), float(op.attrs.get("beta", 1.0)))
    call = SoftmaxCall(input=g.ptr(op.inputs[0], const=True), rows=rows, depth=depth, input_mult=p.input_multiplier,
                       input_left_shift=p.input_left_shift, diff_min=p.diff_min, output=g.ptr(op.outputs[0]))
    return Layer(f"beta {op.attrs.get('beta', 1.0):g}", [render_call(call)], tags("softmax", "library"))


@library_kernel("tl_softmax_s8")
class SoftmaxCall(LibraryCall):
    """Over the last dimension (rows x depth)."""

    input: CExpr
    rows: int
    depth: int
    input_mult: int
    input_left_shift: int
    diff_min: int
    output: CExpr


# ---- reference: gemmlowp fixed point ----
def reference(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """The exponentials of the differences to the row's maximum, divided by their sum."""
    x = values[op.inputs[0]].astype(np.int64)
    p = prepare_softmax(graph.tensors[op.inputs[0]].scale[0], op.attrs.get("beta", 1.0))
    multiplier, left_shift, diff_min = p.input_multiplier, p.input_left_shift, p.diff_min
    diff = x - x.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    scaled = saturating_rounding_doubling_high_mul(np.where(used, diff, 0) << left_shift, multiplier)
    exps = _exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    exps_accum = rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS)  # Rescale<12> of a Q0.31
    total = np.where(used, exps_accum, 0).sum(axis=-1, keepdims=True)
    reciprocal, bits_over_unit = _reciprocal(total, ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - 8
    if np.any(exponent > 31):
        raise OverflowError(
            f"{op_where(graph, op)}: a row's sum of exponentials reaches 2^{int(bits_over_unit.max())}, "
            "beyond TFLite's int8 softmax (its output shift would exceed 31; TFLM aborts on this input)"
        )
    unsaturated = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(reciprocal, exps), exponent)
    return np.where(used, np.clip(unsaturated - 128, -128, 127), -128)


def _wrap32(x: np.ndarray) -> np.ndarray:
    """Two's complement int32 wrap of int64 values (C's int32 overflow on the targets)."""
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """exp(a) for a Q0.31 in [-1/4, 0): Taylor series around -1/8."""
    srdhm = saturating_rounding_doubling_high_mul
    constant_term = 1895147668  # exp(-1/8) in Q0.31
    one_third = 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(_wrap32(srdhm(_wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return _wrap32(constant_term + srdhm(constant_term, _wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def _exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) for a Q(integer_bits) value a <= 0, as a Q0.31 (gemmlowp's exp_on_negative_values)."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_shift_left(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = a_mod_quarter_minus_one_quarter - a
    for exponent, factor in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where(remainder & bit, saturating_rounding_doubling_high_mul(result, factor), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) for a Q0.31 in [0, 1): three Newton-Raphson steps in Q2.29."""
    srdhm = saturating_rounding_doubling_high_mul
    total = a + INT32_MAX
    half_denominator = c_divide(total + np.where(total >= 0, 1, -1), 2)  # RoundingHalfSum(a, 1)
    x = _wrap32(1515870810 + srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 * d
    one = 1 << 29  # 1.0 in Q2.29
    for _ in range(3):
        residual = _wrap32(one - srdhm(half_denominator, x))
        x = _wrap32(x + _saturating_shift_left(srdhm(x, residual), 2))
    return _saturating_shift_left(x, 1)


def _reciprocal(x: np.ndarray, integer_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetReciprocal: (1 / x as a Q0.31 scaled into [0.5, 1), bits of x above one)."""
    x = np.asarray(x, dtype=np.int64)
    headroom_plus_one = 32 - _bit_length(x & 0xFFFFFFFF)
    bits_over_unit = integer_bits - headroom_plus_one
    shifted_minus_one = _wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return _one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), bits_over_unit


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values below 2^32."""
    length = np.zeros_like(x)
    value = x.copy()
    for step in (16, 8, 4, 2, 1):
        high = value >= (1 << step)
        length += np.where(high, step, 0)
        value = np.where(high, value >> step, value)
    return length + (value > 0)


SOFTMAX = OpSpec(
    "SOFTMAX", Arity(1, 1), check, reference,
    tflite=TfliteForm(schema.BuiltinOptions.SoftmaxOptions, version=2, read=read_attributes, write=write_options),
    c=CForm(emit, library_variants("softmax", "library"), library_calls=(SoftmaxCall,)),
)

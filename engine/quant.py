"""TFLite's integer quantisation arithmetic, the rules every kernel and the reference share.

A real multiplier m in (0, 1) or above is stored as a Q31 integer and a power-of-two exponent
(`quantize_multiplier`); an int32 accumulator is rescaled with a saturating rounding doubling high
multiply followed by a rounding right shift (`multiply_by_quantized_multiplier`), never with
floats. Vectorised with numpy int64 so that the reference interpreter can use them on arrays."""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
# Scales outside this magnitude make TFLite's float32 arithmetic overflow or vanish.
MIN_SCALE_MAGNITUDE = 1e-30
MAX_SCALE_MAGNITUDE = 1e30


def round_half_away(value: float) -> int:
    """std::round: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """(q31 multiplier, shift) with real = q31 * 2^(shift - 31); shift > 0 means a left shift."""
    if real_multiplier == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real_multiplier)
    q = round_half_away(fraction * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        shift = 30
        q = INT32_MAX
    return q, shift


def effective_scale(input_scale: float, weight_scale: float, output_scale: float) -> float:
    """input * weight / output in double precision from the model's float32 scales (as TFLM)."""
    return float(np.float32(input_scale)) * float(np.float32(weight_scale)) / float(np.float32(output_scale))


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    product = a * b
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    # Division rounding toward zero, as C's integer division does.
    total = product + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


def c_divide(x: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """C's integer division: the quotient truncated toward zero."""
    q = np.abs(x) // np.abs(n)
    return np.where((x < 0) != (np.asarray(n) < 0), -q, q)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """x / 2^exponent rounded to nearest, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (the double-rounding form of TFLite Micro)."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    scaled = np.asarray(x, dtype=np.int64) * (np.int64(1) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scaled, multiplier), right)


def activation_range(activation: str, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """The int8 clamp of a fused activation: TFLite's CalculateActivationRangeQuantized."""

    def quantize(value: float) -> int:  # in float32, as TFLite computes it
        return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))

    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    return qmin, qmax

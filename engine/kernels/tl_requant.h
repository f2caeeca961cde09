/* tinylab kernels: TFLite's fixed-point requantisation arithmetic as static inline helpers.
 *
 * The same rules as engine/quant.py: a real multiplier is a Q31 integer and a power-of-two
 * shift; an int32 accumulator is rescaled with a saturating rounding doubling high multiply
 * followed by a rounding right shift (ties away from zero), the "double rounding" form that
 * TFLite Micro uses. Also the Q-format helpers (gemmlowp-style fixed point) that the int8
 * softmax needs. Portable C99; arithmetic right shift of negative values is assumed (gcc). */
#ifndef TL_REQUANT_H
#define TL_REQUANT_H

#include <stdint.h>

#define TL_INT32_MIN (-2147483647 - 1)
#define TL_INT32_MAX 2147483647

static inline int32_t tl_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t tl_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

static inline int32_t tl_clamp_i32(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* round(a * b / 2^31), halves away from zero, saturating the one overflowing case. */
static inline int32_t tl_sat_round_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t product;
    int64_t nudge;
    if (a == TL_INT32_MIN && b == TL_INT32_MIN) {
        return TL_INT32_MAX;
    }
    product = (int64_t)a * (int64_t)b;
    nudge = product >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    /* C division truncates toward zero, which the rounding rule relies on. */
    return (int32_t)((product + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero; 0 <= exponent <= 31. */
static inline int32_t tl_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^left with two's-complement wrap-around, as TFLite's int32 multiply behaves. */
static inline int32_t tl_shift_left_wrap(int32_t x, int left)
{
    return (int32_t)((uint32_t)x << left);
}

/* TFLite's MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31), rounded. */
static inline int32_t tl_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? (int)shift : 0;
    const int right = shift > 0 ? 0 : (int)-shift;
    return tl_rounding_divide_by_pot(tl_sat_round_doubling_high_mul(tl_shift_left_wrap(x, left), multiplier), right);
}

/* x * 2^exponent with saturation (exponent > 0), or a rounding divide (exponent < 0). */
static inline int32_t tl_sat_rounding_mul_by_pot(int32_t x, int exponent)
{
    if (exponent > 0) {
        const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
        if (x > threshold) {
            return TL_INT32_MAX;
        }
        if (x < -threshold) {
            return TL_INT32_MIN;
        }
        return tl_shift_left_wrap(x, exponent);
    }
    if (exponent < 0) {
        return tl_rounding_divide_by_pot(x, -exponent);
    }
    return x;
}

#endif /* TL_REQUANT_H */

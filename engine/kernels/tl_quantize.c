/* tinylab kernels: QUANTIZE (float -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float), with
 * TFLite Micro's arithmetic: the quotient x / scale in float32, rounded halves away from zero;
 * int8 requantisation with a fixed-point multiplier; dequantisation as one product. */
#include "tl_kernels.h"
#include "tl_requant.h"

/* Round halves away from zero (as std::round) and clamp to [lo, hi], without libm. */
static int32_t tl_round_clamp(float v, int32_t lo, int32_t hi)
{
    float t, frac;
    if (!(v == v)) {
        return 0; /* NaN */
    }
    if (v >= (float)hi) {
        return hi;
    }
    if (v <= (float)lo) {
        return lo;
    }
    t = (float)(int32_t)v; /* truncated toward zero; v - t is exact */
    frac = v - t;
    if (frac >= 0.5f) {
        t += 1.0f;
    } else if (frac <= -0.5f) {
        t -= 1.0f;
    }
    return (int32_t)t;
}

void tl_quantize_f32_s8(const float *input, int8_t *output, int size, float scale, int32_t zero_point)
{
    int i;
    for (i = 0; i < size; ++i) {
        const int32_t q = tl_round_clamp(input[i] / scale, -1024, 1024);
        output[i] = (int8_t)tl_clamp_i32(q + zero_point, -128, 127);
    }
}

void tl_requantize_s8(const int8_t *input, int8_t *output, int size, int32_t input_zp,
                      int32_t mult, int32_t shift, int32_t output_zp)
{
    int i;
    for (i = 0; i < size; ++i) {
        const int32_t out = tl_multiply_by_quantized_multiplier((int32_t)input[i] - input_zp, mult, shift) + output_zp;
        output[i] = (int8_t)tl_clamp_i32(out, -128, 127);
    }
}

void tl_dequantize_s8_f32(const int8_t *input, float *output, int size, int32_t zero_point, float scale)
{
    int i;
    for (i = 0; i < size; ++i) {
        /* The exact product of a float and a small integer, rounded once to float: the same
         * value TFLite gets by multiplying in double and converting. */
        output[i] = (float)((int32_t)input[i] - zero_point) * scale;
    }
}

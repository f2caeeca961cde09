/* tinylab kernel: int8 MEAN (TFLite Micro semantics). The input is read once in order; each
 * element is added to the int32 sum of its output (out_strides are 0 along reduced dimensions).
 * Then (sum - count * input_zp) is rescaled by a multiplier that folds in 1/count. TFLM takes
 * this path for every axis set, and also when input and output are quantised alike. */
#include "tl_kernels.h"
#include "tl_requant.h"

static void tl_mean_sum(const int8_t *input, const int32_t *in_dims, const int32_t *out_strides,
                        int out_size, int32_t *sums)
{
    int32_t i0, i1, i2, i3;
    int i;
    for (i = 0; i < out_size; ++i) {
        sums[i] = 0;
    }
    for (i0 = 0; i0 < in_dims[0]; ++i0) {
        for (i1 = 0; i1 < in_dims[1]; ++i1) {
            for (i2 = 0; i2 < in_dims[2]; ++i2) {
                int32_t *s = sums + i0 * out_strides[0] + i1 * out_strides[1] + i2 * out_strides[2];
                const int32_t step = out_strides[3];
                for (i3 = 0; i3 < in_dims[3]; ++i3) {
                    *s += *input++;
                    s += step;
                }
            }
        }
    }
}

void tl_mean_s8(const int8_t *input, const int32_t *in_dims, const int32_t *out_strides,
                int8_t *output, int out_size, int32_t count, int32_t input_zp,
                int32_t out_mult, int32_t out_shift, int32_t output_zp, int32_t *scratch)
{
    const int32_t zp_sum = (int32_t)((uint32_t)input_zp * (uint32_t)count);
    int i;
    tl_mean_sum(input, in_dims, out_strides, out_size, scratch);
    for (i = 0; i < out_size; ++i) {
        const int32_t shifted = (int32_t)((uint32_t)scratch[i] - (uint32_t)zp_sum);
        const int32_t out = tl_multiply_by_quantized_multiplier(shifted, out_mult, out_shift) + output_zp;
        output[i] = (int8_t)tl_clamp_i32(out, -128, 127);
    }
}

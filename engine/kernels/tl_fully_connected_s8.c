/* tinylab kernel: int8 FULLY_CONNECTED (TFLite Micro semantics), per-tensor with a filter zero
 * point, or per output channel with a symmetric filter. */
#include "tl_kernels.h"
#include "tl_requant.h"

void tl_fully_connected_s8(const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output,
                           int batches, int accum_depth, int out_depth,
                           int32_t input_offset, int32_t filter_offset, int32_t output_offset,
                           int32_t out_mult, int32_t out_shift, int32_t act_min, int32_t act_max)
{
    int b, o, d;
    for (b = 0; b < batches; ++b) {
        const int8_t *x = input + (long)b * accum_depth;
        for (o = 0; o < out_depth; ++o) {
            const int8_t *w = filter + (long)o * accum_depth;
            int32_t acc = 0;
            for (d = 0; d < accum_depth; ++d) {
                acc += ((int32_t)w[d] + filter_offset) * ((int32_t)x[d] + input_offset);
            }
            if (bias) {
                acc += bias[o];
            }
            acc = tl_multiply_by_quantized_multiplier(acc, out_mult, out_shift);
            acc += output_offset;
            *output++ = (int8_t)tl_clamp_i32(acc, act_min, act_max);
        }
    }
}

void tl_fully_connected_per_channel_s8(const int8_t *input, const int8_t *filter, const int32_t *bias,
                                       int8_t *output, int batches, int accum_depth, int out_depth,
                                       int32_t input_offset, int32_t output_offset,
                                       const int32_t *out_mult, const int32_t *out_shift,
                                       int32_t act_min, int32_t act_max)
{
    int b, o, d;
    for (b = 0; b < batches; ++b) {
        const int8_t *x = input + (long)b * accum_depth;
        for (o = 0; o < out_depth; ++o) {
            const int8_t *w = filter + (long)o * accum_depth;
            int32_t acc = 0;
            for (d = 0; d < accum_depth; ++d) {
                acc += (int32_t)w[d] * ((int32_t)x[d] + input_offset);
            }
            if (bias) {
                acc += bias[o];
            }
            acc = tl_multiply_by_quantized_multiplier(acc, out_mult[o], out_shift[o]);
            acc += output_offset;
            *output++ = (int8_t)tl_clamp_i32(acc, act_min, act_max);
        }
    }
}

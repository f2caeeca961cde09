/* tinylab kernel: int8 ADD (TFLite Micro semantics): each input, offset by its zero point and
 * shifted left by left_shift bits, is rescaled to twice the larger input scale; the sum is
 * rescaled to the output scale. Same shapes, or broadcasting through per-input strides. */
#include "tl_kernels.h"
#include "tl_requant.h"

static inline int8_t tl_add_one(int32_t a, int32_t b,
                                int32_t input1_offset, int32_t input1_mult, int32_t input1_shift,
                                int32_t input2_offset, int32_t input2_mult, int32_t input2_shift,
                                int32_t left_shift, int32_t output_offset, int32_t out_mult, int32_t out_shift,
                                int32_t act_min, int32_t act_max)
{
    const int32_t scaled1 = tl_multiply_by_quantized_multiplier(
        tl_shift_left_wrap(a + input1_offset, (int)left_shift), input1_mult, input1_shift);
    const int32_t scaled2 = tl_multiply_by_quantized_multiplier(
        tl_shift_left_wrap(b + input2_offset, (int)left_shift), input2_mult, input2_shift);
    const int32_t sum = scaled1 + scaled2;
    const int32_t out = tl_multiply_by_quantized_multiplier(sum, out_mult, out_shift) + output_offset;
    return (int8_t)tl_clamp_i32(out, act_min, act_max);
}

void tl_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output, int size,
               int32_t input1_offset, int32_t input1_mult, int32_t input1_shift,
               int32_t input2_offset, int32_t input2_mult, int32_t input2_shift,
               int32_t left_shift, int32_t output_offset, int32_t out_mult, int32_t out_shift,
               int32_t act_min, int32_t act_max)
{
    int i;
    for (i = 0; i < size; ++i) {
        output[i] = tl_add_one(input1[i], input2[i], input1_offset, input1_mult, input1_shift,
                               input2_offset, input2_mult, input2_shift, left_shift,
                               output_offset, out_mult, out_shift, act_min, act_max);
    }
}

void tl_add_broadcast_s8(const int8_t *input1, const int32_t *input1_strides,
                         const int8_t *input2, const int32_t *input2_strides,
                         int8_t *output, const int32_t *out_dims,
                         int32_t input1_offset, int32_t input1_mult, int32_t input1_shift,
                         int32_t input2_offset, int32_t input2_mult, int32_t input2_shift,
                         int32_t left_shift, int32_t output_offset, int32_t out_mult, int32_t out_shift,
                         int32_t act_min, int32_t act_max)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < out_dims[0]; ++i0) {
        for (i1 = 0; i1 < out_dims[1]; ++i1) {
            for (i2 = 0; i2 < out_dims[2]; ++i2) {
                const int8_t *a = input1 + i0 * input1_strides[0] + i1 * input1_strides[1] + i2 * input1_strides[2];
                const int8_t *b = input2 + i0 * input2_strides[0] + i1 * input2_strides[1] + i2 * input2_strides[2];
                for (i3 = 0; i3 < out_dims[3]; ++i3) {
                    *output++ = tl_add_one(a[i3 * input1_strides[3]], b[i3 * input2_strides[3]],
                                           input1_offset, input1_mult, input1_shift,
                                           input2_offset, input2_mult, input2_shift, left_shift,
                                           output_offset, out_mult, out_shift, act_min, act_max);
                }
            }
        }
    }
}

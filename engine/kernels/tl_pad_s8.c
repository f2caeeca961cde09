/* tinylab kernel: int8 PAD of a 4-D tensor with a constant (TFLite Micro pads int8 with the
 * output zero point). The output is written once, in order. */
#include "tl_kernels.h"

static int8_t *tl_fill(int8_t *out, long n, int8_t value)
{
    long i;
    for (i = 0; i < n; ++i) {
        out[i] = value;
    }
    return out + n;
}

void tl_pad_s8(const int8_t *input, const int32_t *in_dims, const int32_t *pad_before,
               const int32_t *pad_after, int8_t pad_value, int8_t *output)
{
    const long o1 = (long)in_dims[1] + pad_before[1] + pad_after[1];
    const long o2 = (long)in_dims[2] + pad_before[2] + pad_after[2];
    const long o3 = (long)in_dims[3] + pad_before[3] + pad_after[3];
    long i0, i1, i2, i3;
    output = tl_fill(output, pad_before[0] * o1 * o2 * o3, pad_value);
    for (i0 = 0; i0 < in_dims[0]; ++i0) {
        output = tl_fill(output, pad_before[1] * o2 * o3, pad_value);
        for (i1 = 0; i1 < in_dims[1]; ++i1) {
            output = tl_fill(output, pad_before[2] * o3, pad_value);
            for (i2 = 0; i2 < in_dims[2]; ++i2) {
                output = tl_fill(output, pad_before[3], pad_value);
                for (i3 = 0; i3 < in_dims[3]; ++i3) {
                    *output++ = *input++;
                }
                output = tl_fill(output, pad_after[3], pad_value);
            }
            output = tl_fill(output, pad_after[2] * o3, pad_value);
        }
        output = tl_fill(output, pad_after[1] * o2 * o3, pad_value);
    }
    tl_fill(output, pad_after[0] * o1 * o2 * o3, pad_value);
}

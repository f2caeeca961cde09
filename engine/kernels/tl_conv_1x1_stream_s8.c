/* tinylab kernel: int8 CONV_2D with a 1x1 filter, stride 1, batch 1, that may write its output
 * over its input (engine.overlap "pixel-stream", output at the input's address). Each input pixel
 * (in_c bytes) is copied into `scratch` before its output pixel (out_c bytes) is written. When
 * out_c <= in_c the pixels go in ascending order, so output pixel p ends at or before input pixel
 * p's end; when out_c > in_c they go in descending order, so output pixel p starts at or after input
 * pixel p's start: either way only pixels already read are overwritten. Same arithmetic as
 * tl_conv_s8 (TFLite Micro semantics). */
#include <string.h>

#include "tl_kernels.h"
#include "tl_requant.h"

void tl_conv_1x1_stream_s8(const int8_t *input, int pixels, int in_c, const int8_t *filter,
                           const int32_t *bias, int8_t *output, int out_c,
                           int32_t input_offset, int32_t output_offset,
                           const int32_t *out_mult, const int32_t *out_shift,
                           int32_t act_min, int32_t act_max, int8_t *scratch)
{
    const int descending = out_c > in_c;
    int n, oc, i;
    for (n = 0; n < pixels; ++n) {
        const int p = descending ? pixels - 1 - n : n;
        int8_t *out = output + (long)p * out_c;
        memcpy(scratch, input + (long)p * in_c, (size_t)in_c);
        for (oc = 0; oc < out_c; ++oc) {
            const int8_t *w = filter + (long)oc * in_c;
            int32_t acc = 0;
            for (i = 0; i < in_c; ++i) {
                acc += ((int32_t)scratch[i] + input_offset) * (int32_t)w[i];
            }
            if (bias) {
                acc += bias[oc];
            }
            acc = tl_multiply_by_quantized_multiplier(acc, out_mult[oc], out_shift[oc]);
            acc += output_offset;
            out[oc] = (int8_t)tl_clamp_i32(acc, act_min, act_max);
        }
    }
}

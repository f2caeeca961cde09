/* tinylab kernel: int8 DEPTHWISE_CONV_2D, depth multiplier 1, batch 1, that may write its output
 * over its input (engine.overlap "channel-plane"). Channel by channel, output channel c is computed
 * for every output pixel into `scratch` (out_h * out_w bytes) while reading input channel c only,
 * then stored into the output's channel c. With the output at the input's address, output (p, c)
 * then lands on input (p, c), a value of a channel already consumed. Same arithmetic as
 * tl_depthwise_conv_s8 (TFLite Micro semantics). */
#include "tl_kernels.h"
#include "tl_depthwise.h"

void tl_depthwise_conv_inplace_s8(const int8_t *input, int in_h, int in_w, int channels,
                                  const int8_t *filter, int k_h, int k_w, const int32_t *bias,
                                  int8_t *output, int out_h, int out_w,
                                  int stride_h, int stride_w, int pad_top, int pad_left,
                                  int32_t input_offset, int32_t output_offset,
                                  const int32_t *out_mult, const int32_t *out_shift,
                                  int32_t act_min, int32_t act_max, int8_t *scratch)
{
    const long in_row = (long)in_w * channels;
    const long w_row = (long)k_w * channels;
    int c, oy, ox;
    for (c = 0; c < channels; ++c) {
        int8_t *plane = scratch;
        for (oy = 0; oy < out_h; ++oy) {
            const int iy0 = oy * stride_h - pad_top;
            const int ky_start = iy0 < 0 ? -iy0 : 0;
            const int ky_end = in_h - iy0 < k_h ? in_h - iy0 : k_h;
            for (ox = 0; ox < out_w; ++ox) {
                const int ix0 = ox * stride_w - pad_left;
                const int kx_start = ix0 < 0 ? -ix0 : 0;
                const int kx_end = in_w - ix0 < k_w ? in_w - ix0 : k_w;
                *plane++ = tl_depthwise_output_s8(
                    input + (long)(iy0 + ky_start) * in_row + (long)(ix0 + kx_start) * channels + c, in_row, channels,
                    filter + ky_start * w_row + (long)kx_start * channels + c, w_row, channels,
                    ky_end - ky_start, kx_end - kx_start, input_offset, bias ? bias[c] : 0, out_mult[c], out_shift[c],
                    output_offset, act_min, act_max);
            }
        }
        {
            const int8_t *from = scratch;
            int8_t *to = output + c;
            int p;
            for (p = 0; p < out_h * out_w; ++p) {
                *to = *from++;
                to += channels;
            }
        }
    }
}

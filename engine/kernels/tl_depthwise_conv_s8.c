/* tinylab kernel: int8 DEPTHWISE_CONV_2D, any depth multiplier, per-channel requantisation
 * (TFLite Micro semantics). Output channel oc = ic * depth_mult + m reads input channel ic; the
 * window is clamped to the input once per output pixel, so padded taps are skipped. */
#include "tl_kernels.h"
#include "tl_depthwise.h"

void tl_depthwise_conv_s8(const int8_t *input, int batches, int in_h, int in_w, int in_c,
                          const int8_t *filter, int k_h, int k_w, int depth_mult, const int32_t *bias,
                          int8_t *output, int out_h, int out_w,
                          int stride_h, int stride_w, int pad_top, int pad_left,
                          int32_t input_offset, int32_t output_offset,
                          const int32_t *out_mult, const int32_t *out_shift,
                          int32_t act_min, int32_t act_max)
{
    const int out_c = in_c * depth_mult;
    const long in_row = (long)in_w * in_c;
    const long w_row = (long)k_w * out_c;
    int b, oy, ox, ic, m;
    for (b = 0; b < batches; ++b) {
        const int8_t *in_batch = input + (long)b * in_h * in_row;
        for (oy = 0; oy < out_h; ++oy) {
            const int iy0 = oy * stride_h - pad_top;
            const int ky_start = iy0 < 0 ? -iy0 : 0;
            const int ky_end = in_h - iy0 < k_h ? in_h - iy0 : k_h;
            for (ox = 0; ox < out_w; ++ox) {
                const int ix0 = ox * stride_w - pad_left;
                const int kx_start = ix0 < 0 ? -ix0 : 0;
                const int kx_end = in_w - ix0 < k_w ? in_w - ix0 : k_w;
                const int8_t *window = in_batch + (long)iy0 * in_row + (long)ix0 * in_c;
                for (ic = 0; ic < in_c; ++ic) {
                    for (m = 0; m < depth_mult; ++m) {
                        const int oc = ic * depth_mult + m;
                        *output++ = tl_depthwise_output_s8(
                            window + ky_start * in_row + (long)kx_start * in_c + ic, in_row, in_c,
                            filter + ky_start * w_row + (long)kx_start * out_c + oc, w_row, out_c,
                            ky_end - ky_start, kx_end - kx_start, input_offset, bias ? bias[oc] : 0, out_mult[oc],
                            out_shift[oc], output_offset, act_min, act_max);
                    }
                }
            }
        }
    }
}

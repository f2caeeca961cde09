/* tinylab kernel: int8 AVERAGE_POOL_2D and MAX_POOL_2D (TFLite Micro semantics). The window is
 * clamped to the input, so padded positions are not counted; the average rounds halves away from
 * zero. Channels are the inner loop (NHWC), with per-channel int32 sums in the scratch buffer. */
#include "tl_kernels.h"
#include "tl_requant.h"

void tl_avgpool_s8(const int8_t *input, int batches, int in_h, int in_w, int channels,
                   int8_t *output, int out_h, int out_w, int filter_h, int filter_w,
                   int stride_h, int stride_w, int pad_top, int pad_left,
                   int32_t act_min, int32_t act_max, int32_t *scratch)
{
    const long in_row = (long)in_w * channels;
    int b, oy, ox, ky, kx, c;
    for (b = 0; b < batches; ++b) {
        const int8_t *in_batch = input + (long)b * in_h * in_row;
        for (oy = 0; oy < out_h; ++oy) {
            const int iy0 = oy * stride_h - pad_top;
            const int ky_start = iy0 < 0 ? -iy0 : 0;
            const int ky_end = in_h - iy0 < filter_h ? in_h - iy0 : filter_h;
            for (ox = 0; ox < out_w; ++ox) {
                const int ix0 = ox * stride_w - pad_left;
                const int kx_start = ix0 < 0 ? -ix0 : 0;
                const int kx_end = in_w - ix0 < filter_w ? in_w - ix0 : filter_w;
                const int32_t count = (int32_t)(ky_end - ky_start) * (int32_t)(kx_end - kx_start);
                for (c = 0; c < channels; ++c) {
                    scratch[c] = 0;
                }
                for (ky = ky_start; ky < ky_end; ++ky) {
                    const int8_t *x = in_batch + (long)(iy0 + ky) * in_row + (long)(ix0 + kx_start) * channels;
                    for (kx = kx_start; kx < kx_end; ++kx) {
                        for (c = 0; c < channels; ++c) {
                            scratch[c] += x[c];
                        }
                        x += channels;
                    }
                }
                for (c = 0; c < channels; ++c) {
                    int32_t acc = scratch[c];
                    if (count > 0) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    *output++ = (int8_t)tl_clamp_i32(acc, act_min, act_max);
                }
            }
        }
    }
}

void tl_maxpool_s8(const int8_t *input, int batches, int in_h, int in_w, int channels,
                   int8_t *output, int out_h, int out_w, int filter_h, int filter_w,
                   int stride_h, int stride_w, int pad_top, int pad_left,
                   int32_t act_min, int32_t act_max)
{
    const long in_row = (long)in_w * channels;
    int b, oy, ox, ky, kx, c;
    for (b = 0; b < batches; ++b) {
        const int8_t *in_batch = input + (long)b * in_h * in_row;
        for (oy = 0; oy < out_h; ++oy) {
            const int iy0 = oy * stride_h - pad_top;
            const int ky_start = iy0 < 0 ? -iy0 : 0;
            const int ky_end = in_h - iy0 < filter_h ? in_h - iy0 : filter_h;
            for (ox = 0; ox < out_w; ++ox) {
                const int ix0 = ox * stride_w - pad_left;
                const int kx_start = ix0 < 0 ? -ix0 : 0;
                const int kx_end = in_w - ix0 < filter_w ? in_w - ix0 : filter_w;
                for (c = 0; c < channels; ++c) {
                    output[c] = -128;
                }
                for (ky = ky_start; ky < ky_end; ++ky) {
                    const int8_t *x = in_batch + (long)(iy0 + ky) * in_row + (long)(ix0 + kx_start) * channels;
                    for (kx = kx_start; kx < kx_end; ++kx) {
                        for (c = 0; c < channels; ++c) {
                            if (x[c] > output[c]) {
                                output[c] = x[c];
                            }
                        }
                        x += channels;
                    }
                }
                for (c = 0; c < channels; ++c) {
                    output[c] = (int8_t)tl_clamp_i32(output[c], act_min, act_max);
                }
                output += channels;
            }
        }
    }
}

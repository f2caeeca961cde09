/* tinylab kernel: int8 CONV_2D with per-channel requantisation (TFLite Micro semantics).
 *
 * For each output pixel the part of the kernel window that lies inside the input is found once;
 * for one kernel row that part is a run of (kx_end - kx_start) * in_c bytes, contiguous both in
 * the NHWC input and in the [out_c][k_h][k_w][in_c] filter, so the inner loop is one dot product.
 * Taps in the padding contribute nothing (TFLite pads with the input zero point). */
#include "tl_kernels.h"
#include "tl_requant.h"

/* sum of (x[i] + offset) * w[i] over n values, unrolled by four. */
static inline int32_t tl_dot_offset_s8(const int8_t *x, const int8_t *w, int n, int32_t offset)
{
    int32_t acc = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        acc += ((int32_t)x[i] + offset) * (int32_t)w[i];
        acc += ((int32_t)x[i + 1] + offset) * (int32_t)w[i + 1];
        acc += ((int32_t)x[i + 2] + offset) * (int32_t)w[i + 2];
        acc += ((int32_t)x[i + 3] + offset) * (int32_t)w[i + 3];
    }
    for (; i < n; ++i) {
        acc += ((int32_t)x[i] + offset) * (int32_t)w[i];
    }
    return acc;
}

void tl_conv_s8(const int8_t *input, int batches, int in_h, int in_w, int in_c,
                const int8_t *filter, int k_h, int k_w, const int32_t *bias,
                int8_t *output, int out_h, int out_w, int out_c,
                int stride_h, int stride_w, int pad_top, int pad_left,
                int32_t input_offset, int32_t output_offset,
                const int32_t *out_mult, const int32_t *out_shift,
                int32_t act_min, int32_t act_max)
{
    const int filter_size = k_h * k_w * in_c;
    int b, oy, ox, oc, ky;
    for (b = 0; b < batches; ++b) {
        const int8_t *in_batch = input + (long)b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; ++oy) {
            const int iy0 = oy * stride_h - pad_top;
            const int ky_start = iy0 < 0 ? -iy0 : 0;
            const int ky_end = in_h - iy0 < k_h ? in_h - iy0 : k_h;
            for (ox = 0; ox < out_w; ++ox) {
                const int ix0 = ox * stride_w - pad_left;
                const int kx_start = ix0 < 0 ? -ix0 : 0;
                const int kx_end = in_w - ix0 < k_w ? in_w - ix0 : k_w;
                const int run = (kx_end - kx_start) * in_c;
                for (oc = 0; oc < out_c; ++oc) {
                    const int8_t *w = filter + (long)oc * filter_size;
                    int32_t acc = 0;
                    for (ky = ky_start; ky < ky_end; ++ky) {
                        const int8_t *x = in_batch + ((long)(iy0 + ky) * in_w + ix0 + kx_start) * in_c;
                        const int8_t *wr = w + (ky * k_w + kx_start) * in_c;
                        acc += tl_dot_offset_s8(x, wr, run, input_offset);
                    }
                    if (bias) {
                        acc += bias[oc];
                    }
                    acc = tl_multiply_by_quantized_multiplier(acc, out_mult[oc], out_shift[oc]);
                    acc += output_offset;
                    *output++ = (int8_t)tl_clamp_i32(acc, act_min, act_max);
                }
            }
        }
    }
}

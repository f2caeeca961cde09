/* tinylab kernels: one depthwise output value, shared by the depthwise kernels. */
#ifndef TL_DEPTHWISE_H
#define TL_DEPTHWISE_H

#include <stdint.h>
#include "tl_requant.h"

/* The requantised, clamped output of one channel at one pixel. `x` and `w` point at the first
 * tap inside the input (row ky_start, column kx_start) for that channel; `x_row`/`w_row` step one
 * row, `x_step`/`w_step` one column; taps outside the input are not visited (their contribution
 * is zero in TFLite's arithmetic). */
static inline int8_t tl_depthwise_output_s8(const int8_t *x, long x_row, long x_step, const int8_t *w, long w_row,
                                            long w_step, int rows, int cols, int32_t input_offset,
                                            int32_t bias, int32_t mult, int32_t shift, int32_t output_offset,
                                            int32_t act_min, int32_t act_max)
{
    int32_t acc = 0;
    int ky, kx;
    for (ky = 0; ky < rows; ++ky) {
        const int8_t *xr = x + ky * x_row;
        const int8_t *wr = w + ky * w_row;
        for (kx = 0; kx < cols; ++kx) {
            acc += ((int32_t)*xr + input_offset) * (int32_t)*wr;
            xr += x_step;
            wr += w_step;
        }
    }
    acc = tl_multiply_by_quantized_multiplier(acc + bias, mult, shift) + output_offset;
    return (int8_t)tl_clamp_i32(acc, act_min, act_max);
}

#endif

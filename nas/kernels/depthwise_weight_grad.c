/* The weight gradient of a depthwise convolution (no padding: the caller pads), for the supernet's
 * training on the CPU. Tensors are channels-last and contiguous:
 *   x    [n][hp][wp][c]   the padded input of the forward pass
 *   g    [n][oh][ow][c]   the gradient of the output
 *   gw   [c][k][k]        the gradient of the weights (torch's [c, 1, k, k])
 * gw[ch][ky][kx] = sum over b, oy, ox of g[b][oy][ox][ch] * x[b][oy*stride + ky][ox*stride + kx][ch].
 * `threads` OpenMP threads take ranges of channels (built with -fopenmp in a process that has loaded
 * torch, this is torch's own thread pool). Within a range, channels are taken BLOCK at a time, with the
 * k*k sums of a block kept in a small buffer, so that the innermost loop runs over consecutive channels
 * and the compiler vectorises it. Each channel's sum is taken in one fixed order, so the result does
 * not depend on the number of threads. Returns 0, or -1 for shapes it cannot take. */
#include <string.h>

#define BLOCK 64
#define MAX_KERNEL 11
#define ALIGNMENT 8 /* a thread's range of channels starts at a multiple of this: whole vectors */

static void channel_range(const float *restrict x, const float *restrict g, float *restrict gw, int n, int hp,
                          int wp, int c, int oh, int ow, int k, int stride, int c0, int c1) {
    float sums[BLOCK * MAX_KERNEL * MAX_KERNEL];
    for (int first = c0; first < c1; first += BLOCK) {
        int width = c1 - first < BLOCK ? c1 - first : BLOCK;
        memset(sums, 0, sizeof(float) * BLOCK * k * k);
        for (int b = 0; b < n; b++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    const float *restrict grad = g + (((long)b * oh + oy) * ow + ox) * c + first;
                    for (int ky = 0; ky < k; ky++) {
                        const float *row = x + (((long)b * hp + oy * stride + ky) * wp + (long)ox * stride) * c + first;
                        for (int kx = 0; kx < k; kx++) {
                            const float *restrict input = row + (long)kx * c;
                            float *restrict sum = sums + (ky * k + kx) * BLOCK;
                            for (int j = 0; j < width; j++)
                                sum[j] += grad[j] * input[j];
                        }
                    }
                }
        for (int j = 0; j < width; j++)
            for (int tap = 0; tap < k * k; tap++)
                gw[(long)(first + j) * k * k + tap] = sums[tap * BLOCK + j];
    }
}

int tl_depthwise_weight_grad(const float *x, const float *g, float *gw, int n, int hp, int wp, int c, int oh,
                             int ow, int k, int stride, int threads) {
    if (k < 1 || k > MAX_KERNEL || stride < 1 || n < 1 || c < 1 || oh < 1 || ow < 1 || threads < 1 ||
        (oh - 1) * stride + k > hp || (ow - 1) * stride + k > wp)
        return -1;
    int step = (c + threads - 1) / threads;
    step = (step + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    int parts = (c + step - 1) / step;
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int part = 0; part < parts; part++) {
        int c1 = (part + 1) * step < c ? (part + 1) * step : c;
        channel_range(x, g, gw, n, hp, wp, c, oh, ow, k, stride, part * step, c1);
    }
    return 0;
}

/* tinylab kernel library: int8 kernels for the ops the engine compiles, bit-exact with TFLite
 * Micro's reference kernels. Activations are NHWC; every shape and quantisation constant is an
 * argument, so that generated code passes literals. Offsets follow TFLite: input_offset is the
 * negated input zero point, output_offset the output zero point. Multipliers are Q31 with a
 * shift (> 0: left), as engine/quant.py computes them. Portable C99. */
#ifndef TL_KERNELS_H
#define TL_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CONV_2D. filter [out_c][k_h][k_w][in_c]; bias [out_c] or NULL; per-channel out_mult/out_shift. */
void tl_conv_s8(const int8_t *input, int batches, int in_h, int in_w, int in_c,
                const int8_t *filter, int k_h, int k_w, const int32_t *bias,
                int8_t *output, int out_h, int out_w, int out_c,
                int stride_h, int stride_w, int pad_top, int pad_left,
                int32_t input_offset, int32_t output_offset,
                const int32_t *out_mult, const int32_t *out_shift,
                int32_t act_min, int32_t act_max);

/* DEPTHWISE_CONV_2D. filter [1][k_h][k_w][in_c * depth_mult]; output channel = ic * depth_mult + m. */
void tl_depthwise_conv_s8(const int8_t *input, int batches, int in_h, int in_w, int in_c,
                          const int8_t *filter, int k_h, int k_w, int depth_mult, const int32_t *bias,
                          int8_t *output, int out_h, int out_w,
                          int stride_h, int stride_w, int pad_top, int pad_left,
                          int32_t input_offset, int32_t output_offset,
                          const int32_t *out_mult, const int32_t *out_shift,
                          int32_t act_min, int32_t act_max);

/* DEPTHWISE_CONV_2D, multiplier 1, batch 1, whose output may be its input (the same address):
 * engine.overlap's "channel-plane" variant. scratch: out_h * out_w bytes. */
void tl_depthwise_conv_inplace_s8(const int8_t *input, int in_h, int in_w, int channels,
                                  const int8_t *filter, int k_h, int k_w, const int32_t *bias,
                                  int8_t *output, int out_h, int out_w,
                                  int stride_h, int stride_w, int pad_top, int pad_left,
                                  int32_t input_offset, int32_t output_offset,
                                  const int32_t *out_mult, const int32_t *out_shift,
                                  int32_t act_min, int32_t act_max, int8_t *scratch);

/* CONV_2D 1x1, stride 1, batch 1, whose output may be its input (the same address): engine.overlap's
 * "pixel-stream" variant. scratch: in_c bytes. */
void tl_conv_1x1_stream_s8(const int8_t *input, int pixels, int in_c, const int8_t *filter,
                           const int32_t *bias, int8_t *output, int out_c,
                           int32_t input_offset, int32_t output_offset,
                           const int32_t *out_mult, const int32_t *out_shift,
                           int32_t act_min, int32_t act_max, int8_t *scratch);

/* FULLY_CONNECTED with one multiplier (filter_offset = -filter zero point). filter [out_depth][accum_depth]. */
void tl_fully_connected_s8(const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output,
                           int batches, int accum_depth, int out_depth,
                           int32_t input_offset, int32_t filter_offset, int32_t output_offset,
                           int32_t out_mult, int32_t out_shift, int32_t act_min, int32_t act_max);

/* FULLY_CONNECTED with per-output-channel multipliers (symmetric filter). */
void tl_fully_connected_per_channel_s8(const int8_t *input, const int8_t *filter, const int32_t *bias,
                                       int8_t *output, int batches, int accum_depth, int out_depth,
                                       int32_t input_offset, int32_t output_offset,
                                       const int32_t *out_mult, const int32_t *out_shift,
                                       int32_t act_min, int32_t act_max);

/* ADD of two tensors of the same shape: both inputs rescaled to a common scale (after a left
 * shift of left_shift bits), summed, rescaled to the output. Element i of both inputs is read
 * before output element i is written, in ascending order, so the output may be either input
 * (engine.overlap's "elementwise" variant). */
void tl_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output, int size,
               int32_t input1_offset, int32_t input1_mult, int32_t input1_shift,
               int32_t input2_offset, int32_t input2_mult, int32_t input2_shift,
               int32_t left_shift, int32_t output_offset, int32_t out_mult, int32_t out_shift,
               int32_t act_min, int32_t act_max);

/* ADD with broadcasting over a 4-D output: an input's stride is 0 along a broadcast dimension. */
void tl_add_broadcast_s8(const int8_t *input1, const int32_t *input1_strides,
                         const int8_t *input2, const int32_t *input2_strides,
                         int8_t *output, const int32_t *out_dims,
                         int32_t input1_offset, int32_t input1_mult, int32_t input1_shift,
                         int32_t input2_offset, int32_t input2_mult, int32_t input2_shift,
                         int32_t left_shift, int32_t output_offset, int32_t out_mult, int32_t out_shift,
                         int32_t act_min, int32_t act_max);

/* AVERAGE_POOL_2D; scratch holds `channels` int32 sums. Rounds halves away from zero. */
void tl_avgpool_s8(const int8_t *input, int batches, int in_h, int in_w, int channels,
                   int8_t *output, int out_h, int out_w, int filter_h, int filter_w,
                   int stride_h, int stride_w, int pad_top, int pad_left,
                   int32_t act_min, int32_t act_max, int32_t *scratch);

/* MAX_POOL_2D. */
void tl_maxpool_s8(const int8_t *input, int batches, int in_h, int in_w, int channels,
                   int8_t *output, int out_h, int out_w, int filter_h, int filter_w,
                   int stride_h, int stride_w, int pad_top, int pad_left,
                   int32_t act_min, int32_t act_max);

/* MEAN over the dimensions whose out_strides entry is 0 (input seen as 4-D in_dims). `count` is
 * the number of elements reduced into each output; scratch holds out_size int32 sums;
 * (sum - count * input_zp) is rescaled with a multiplier that already includes 1/count. */
void tl_mean_s8(const int8_t *input, const int32_t *in_dims, const int32_t *out_strides,
                int8_t *output, int out_size, int32_t count, int32_t input_zp,
                int32_t out_mult, int32_t out_shift, int32_t output_zp, int32_t *scratch);

/* PAD of a 4-D tensor with a constant. */
void tl_pad_s8(const int8_t *input, const int32_t *in_dims, const int32_t *pad_before,
               const int32_t *pad_after, int8_t pad_value, int8_t *output);

/* SOFTMAX over the last dimension (rows x depth), int8 in, int8 out (scale 1/256, zp -128). */
void tl_softmax_s8(const int8_t *input, int rows, int depth, int32_t input_mult,
                   int32_t input_left_shift, int32_t diff_min, int8_t *output);

/* CONCATENATION: copy one input, seen as [outer][copy_size], into its slice of an output whose
 * rows are output_stride bytes apart. */
void tl_concat_s8(const int8_t *input, int outer, int copy_size, int8_t *output, int output_stride);

/* QUANTIZE float -> int8: round(x / scale) + zero_point, clamped; the quotient in float32. */
void tl_quantize_f32_s8(const float *input, int8_t *output, int size, float scale, int32_t zero_point);

/* QUANTIZE int8 -> int8: (x - input_zp) rescaled, + output_zp, clamped. */
void tl_requantize_s8(const int8_t *input, int8_t *output, int size, int32_t input_zp,
                      int32_t mult, int32_t shift, int32_t output_zp);

/* DEQUANTIZE int8 -> float: scale * (x - zero_point). */
void tl_dequantize_s8_f32(const int8_t *input, float *output, int size, int32_t zero_point, float scale);

#ifdef __cplusplus
}
#endif

#endif /* TL_KERNELS_H */

/* tinylab kernel: int8 CONCATENATION. TFLite Micro copies int8 inputs without rescaling; one call
 * copies one input ([outer][copy_size]) into its slice of the output. */
#include "tl_kernels.h"

void tl_concat_s8(const int8_t *input, int outer, int copy_size, int8_t *output, int output_stride)
{
    int o, i;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < copy_size; ++i) {
            output[i] = input[i];
        }
        input += copy_size;
        output += output_stride;
    }
}

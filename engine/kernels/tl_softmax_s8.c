/* tinylab kernel: int8 SOFTMAX over the last dimension, bit-exact with TFLite Micro's int8
 * reference softmax (output scale 1/256, zero point -128).
 *
 * Per row: d = x - max(row) (<= 0) is rescaled to a Q5.26 fixed-point number by input_mult and
 * input_left_shift (beta and the input scale folded in); exp(d) is evaluated in Q0.31 by
 * splitting d into a part in [-1/4, 0) (a 4th-order Taylor polynomial around -1/8) and a sum of
 * powers of two (a product of the constants exp(-2^k)); the exps are summed in Q12.19, the sum
 * is inverted by Newton-Raphson (1 / (1 + x) for x in [0, 1)), and each output is
 * exp(d) / sum in Q0.8, minus 128. Inputs with d < diff_min give exactly -128. */
#include "tl_kernels.h"
#include "tl_requant.h"

#define TL_SRDHM tl_sat_round_doubling_high_mul
#define TL_RDBP tl_rounding_divide_by_pot

/* Wrap-around int32 add and subtract (the fixed-point "+" and "-" on raw values). */
static inline int32_t tl_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t tl_wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* exp(a) for a in [-1/4, 0), both in Q0.31. */
static int32_t tl_exp_on_interval_neg_quarter(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* round(exp(-1/8) * 2^31) */
    const int32_t one_third = 715827883;             /* round(2^31 / 3) */
    const int32_t x = tl_wrap_add(a, (int32_t)1 << 28); /* x = a + 1/8 */
    const int32_t x2 = TL_SRDHM(x, x);
    const int32_t x3 = TL_SRDHM(x2, x);
    const int32_t x4 = TL_SRDHM(x2, x2);
    const int32_t x4_over_4 = TL_RDBP(x4, 2);
    /* (x^4/4 + x^3) / 3 + x^2, halved: x^4/24 + x^3/6 + x^2/2 */
    const int32_t poly = TL_RDBP(tl_wrap_add(TL_SRDHM(tl_wrap_add(x4_over_4, x3), one_third), x2), 1);
    return tl_wrap_add(exp_minus_one_eighth, TL_SRDHM(exp_minus_one_eighth, tl_wrap_add(x, poly)));
}

/* exp(a) for a <= 0 in Q5.26; the result in Q0.31. */
static int32_t tl_exp_on_negative_values_q5(int32_t a)
{
    /* round(exp(-2^k) * 2^31) for k = -2 .. 4 */
    static const int32_t exp_of_minus_pot[7] = {1672461947, 1302514674, 790015084, 290630308,
                                                39332535, 720401, 242};
    const int32_t one_quarter = (int32_t)1 << 24; /* 1/4 in Q5.26 */
    const int32_t a_mod_quarter_minus_quarter = tl_wrap_sub(a & (one_quarter - 1), one_quarter);
    const int32_t remainder = tl_wrap_sub(a_mod_quarter_minus_quarter, a);
    int32_t result = tl_exp_on_interval_neg_quarter(tl_sat_rounding_mul_by_pot(a_mod_quarter_minus_quarter, 5));
    int k;
    for (k = 0; k < 7; ++k) {
        if (remainder & ((int32_t)1 << (24 + k))) {
            result = TL_SRDHM(result, exp_of_minus_pot[k]);
        }
    }
    if (a == 0) {
        result = TL_INT32_MAX; /* exactly one */
    }
    return result;
}

/* 1 / (1 + a) for a in [0, 1) in Q0.31; the result in Q0.31. */
static int32_t tl_one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + TL_INT32_MAX;                  /* a + 1 */
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t c48_over_17 = 1515870810;                          /* 48/17 in Q2.29 */
    const int32_t c_neg32_over_17 = -1010580540;                     /* -32/17 in Q2.29 */
    const int32_t one_q2 = (int32_t)1 << 29;
    int32_t x = tl_wrap_add(c48_over_17, TL_SRDHM(half_denominator, c_neg32_over_17));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = TL_SRDHM(half_denominator, x);
        const int32_t one_minus = tl_wrap_sub(one_q2, half_denominator_times_x);
        x = tl_wrap_add(x, tl_sat_rounding_mul_by_pot(TL_SRDHM(x, one_minus), 2));
    }
    return tl_sat_rounding_mul_by_pot(x, 1);
}

static int tl_count_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

void tl_softmax_s8(const int8_t *input, int rows, int depth, int32_t input_mult,
                   int32_t input_left_shift, int32_t diff_min, int8_t *output)
{
    int r, c;
    for (r = 0; r < rows; ++r) {
        int32_t max = -128;
        int32_t sum_of_exps = 0; /* Q12.19 */
        int32_t reciprocal;
        int headroom_plus_one, bits_over_unit;
        for (c = 0; c < depth; ++c) {
            if (input[c] > max) {
                max = input[c];
            }
        }
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)input[c] - max;
            if (diff >= diff_min) {
                const int32_t scaled = TL_SRDHM(tl_shift_left_wrap(diff, (int)input_left_shift), input_mult);
                sum_of_exps = tl_wrap_add(sum_of_exps, TL_RDBP(tl_exp_on_negative_values_q5(scaled), 12));
            }
        }
        headroom_plus_one = tl_count_leading_zeros((uint32_t)sum_of_exps);
        bits_over_unit = 12 - headroom_plus_one;
        reciprocal = tl_one_over_one_plus_x(
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31)));
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)input[c] - max;
            if (diff >= diff_min) {
                const int32_t scaled = TL_SRDHM(tl_shift_left_wrap(diff, (int)input_left_shift), input_mult);
                const int32_t e = tl_exp_on_negative_values_q5(scaled);
                const int32_t unsat = TL_RDBP(TL_SRDHM(reciprocal, e), bits_over_unit + 31 - 8);
                output[c] = (int8_t)tl_clamp_i32(unsat - 128, -128, 127);
            } else {
                output[c] = -128;
            }
        }
        input += depth;
        output += depth;
    }
}

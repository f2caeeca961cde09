/* tinylab optimised kernels: static inline building blocks of the per-layer functions that
 * engine.codegen generates with kernels="optimized". Every shape reaches them as a literal, so
 * the compiler sees constant trip counts and offsets.
 *
 * On a core with the DSP extension (Cortex-M4, M7, M33) the inner products use the SIMD
 * instructions through ACLE (<arm_acle.h>): SXTAB16 widens two int8 lanes to int16 and adds the
 * input offset in one step, SMLAD does two 16x16 multiply-accumulates. The hottest loops (the
 * matrix products of CONV_2D and FULLY_CONNECTED) are written as short inline assembly blocks so
 * that operands are fetched with LDRD, two words per instruction; gcc's own scheduling of the same
 * intrinsics spends a third more instructions there. Elsewhere (the host, or -O0) the same
 * arithmetic is plain C, lane for lane, so host builds check the very computation the target runs.
 *
 * Layouts. An activation vector of K values (K padded to a multiple of 4) is widened to int16
 * with the input offset added, in "pair order": for each group of four values k0..k3 two words
 * hold (k0, k2) and (k1, k3), which is what SXTAB16 and its ROR #8 form produce from one
 * little-endian word. Weights use the same order: int16 pairs ("w16", expanded at code generation)
 * or raw int8 words ("w8", widened here by SXTB16 in the same order). Requantisation constants are
 * per output channel ({bias, multiplier, h, sh} for CONV_2D; see tl_out8).
 *
 * Nothing here was taken from CMSIS-NN, TFLite Micro or TinyEngine: the arithmetic is TFLite's
 * published quantisation rule (engine/quant.py), the instructions are used per their ACLE and
 * Armv7-M definitions. */
#ifndef TL_OPT_H
#define TL_OPT_H

#include <stdint.h>
#include <string.h>

#include "tl_requant.h"

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32) && defined(__thumb2__) && defined(__OPTIMIZE__)
#define TL_DSP 1
#include <arm_acle.h>
#else
#define TL_DSP 0
#endif

#define TL_INLINE static inline __attribute__((always_inline))

/* ---- memory ---- */
TL_INLINE uint32_t tl_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- SIMD primitives (ACLE semantics; plain C off target) ---- */
#if TL_DSP
TL_INLINE int32_t tl_sxtab16(int32_t a, uint32_t b) { return __sxtab16(a, (int32_t)b); }
TL_INLINE int32_t tl_sxtab16_r8(int32_t a, uint32_t b)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
TL_INLINE int32_t tl_sxtb16(uint32_t b) { return __sxtb16((int32_t)b); }
TL_INLINE int32_t tl_sxtb16_r8(uint32_t b)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(b));
    return r;
}
TL_INLINE int32_t tl_smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
TL_INLINE int32_t tl_smlabb(int32_t a, int32_t b, int32_t acc) { return __smlabb(a, b, acc); }
TL_INLINE int32_t tl_smlabt(int32_t a, int32_t b, int32_t acc) { return __smlabt(a, b, acc); }
TL_INLINE int32_t tl_smlatb(int32_t a, int32_t b, int32_t acc) { return __smlatb(a, b, acc); }
TL_INLINE int32_t tl_smlatt(int32_t a, int32_t b, int32_t acc) { return __smlatt(a, b, acc); }
TL_INLINE int32_t tl_ssat8(int32_t x) { return __ssat(x, 8); }
#else
TL_INLINE int32_t tl_lo16(int32_t v) { return (int32_t)(int16_t)(uint16_t)((uint32_t)v & 0xFFFFu); }
TL_INLINE int32_t tl_hi16(int32_t v) { return (int32_t)(int16_t)(uint16_t)((uint32_t)v >> 16); }
TL_INLINE int32_t tl_byte(uint32_t v, int n) { return (int32_t)(int8_t)(uint8_t)(v >> (8 * n)); }
TL_INLINE int32_t tl_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}
TL_INLINE int32_t tl_sxtab16(int32_t a, uint32_t b)
{
    return tl_pack16(tl_lo16(a) + tl_byte(b, 0), tl_hi16(a) + tl_byte(b, 2));
}
TL_INLINE int32_t tl_sxtab16_r8(int32_t a, uint32_t b)
{
    return tl_pack16(tl_lo16(a) + tl_byte(b, 1), tl_hi16(a) + tl_byte(b, 3));
}
TL_INLINE int32_t tl_sxtb16(uint32_t b) { return tl_pack16(tl_byte(b, 0), tl_byte(b, 2)); }
TL_INLINE int32_t tl_sxtb16_r8(uint32_t b) { return tl_pack16(tl_byte(b, 1), tl_byte(b, 3)); }
TL_INLINE int32_t tl_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
TL_INLINE int32_t tl_smlad(int32_t a, int32_t b, int32_t acc)
{
    return tl_wrap_add(tl_wrap_add(acc, tl_lo16(a) * tl_lo16(b)), tl_hi16(a) * tl_hi16(b));
}
TL_INLINE int32_t tl_smlabb(int32_t a, int32_t b, int32_t acc) { return tl_wrap_add(acc, tl_lo16(a) * tl_lo16(b)); }
TL_INLINE int32_t tl_smlabt(int32_t a, int32_t b, int32_t acc) { return tl_wrap_add(acc, tl_lo16(a) * tl_hi16(b)); }
TL_INLINE int32_t tl_smlatb(int32_t a, int32_t b, int32_t acc) { return tl_wrap_add(acc, tl_hi16(a) * tl_lo16(b)); }
TL_INLINE int32_t tl_smlatt(int32_t a, int32_t b, int32_t acc) { return tl_wrap_add(acc, tl_hi16(a) * tl_hi16(b)); }
TL_INLINE int32_t tl_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
#endif

/* ---- requantisation ----
 * TFLite's MultiplyByQuantizedMultiplier(acc, m, shift) for shift = -e <= -1 in one 64-bit
 * multiply-accumulate. The rounding doubling high multiply ((p + 2^30) >> 31, p = acc * m) and
 * the rounding right shift by e (halves away from zero) nest into
 *     floor((p + 2^30 + 2^31 * (2^(e-1) - [acc < 0])) / 2^(31 + e)),
 * because floor((floor(a / b) + n) / d) = floor((a + n b) / (b d)) for integers and the sign of
 * the high product is the sign of acc wherever it matters (m >= 0). The constant is loaded into
 * the accumulator pair (hi:lo) of SMLAL and the result is the high word shifted right by e - 1.
 * A negative multiplier (a channel with a negative weight scale) flips the product's sign: with
 * the flag TL_RQ_SIGNED the sign is read from acc ^ (m >> 31), i.e. [acc >= 0] for m < 0, which is
 * the product's sign wherever it matters (at acc = 0 both give 0).
 *
 * Modes (a literal per layer, chosen by engine.codegen from the channels' shifts):
 *   TL_RQ_PORTABLE   tl_multiply_by_quantized_multiplier with the TFLite shift in sh, then + zp;
 *   TL_RQ_ANY        e >= 1, sh = e - 1: the constant built from 2^sh and acc's sign, then + zp;
 *   TL_RQ_EVEN       e >= 3, sh = e - 1, h = 2^(e-2): hi = h - [acc < 0] and, h being even, lo =
 *                    2^30 + (hi << 31), then + zp;
 *   TL_RQ_EVEN_ZP    as TL_RQ_EVEN with zp * 2^(e-1) added to h, which adds zp * 2^(31+e) to the
 *                    constant, i.e. zp to the result (e <= 23 keeps hi within 32 bits).
 * A zero multiplier (TFLite's result 0) is any mode with sh = 2, h from tl_rq_h. A mode may carry
 * TL_RQ_SIGNED (not with TL_RQ_PORTABLE), set where some channel's multiplier is negative. */
#define TL_RQ_PORTABLE 0
#define TL_RQ_ANY 1
#define TL_RQ_EVEN 2
#define TL_RQ_EVEN_ZP 3
#define TL_RQ_SIGNED 4
#define TL_RQ_BASE(mode) ((mode) & 3)

/* What the rounding takes the product's sign from: acc, or acc ^ (m >> 31) with TL_RQ_SIGNED. */
TL_INLINE int32_t tl_rq_sign(int32_t acc, int32_t m, int mode)
{
    return (mode & TL_RQ_SIGNED) ? (acc ^ (m >> 31)) : acc;
}

TL_INLINE int32_t tl_rq_any(int32_t acc, int32_t m, int32_t sh, int32_t sign)
{
    const int32_t k = (int32_t)(1u << sh) + (sign >> 31);
    const uint64_t init = ((uint64_t)(uint32_t)(k >> 1) << 32) | (0x40000000u | ((uint32_t)k << 31));
    const int64_t t = (int64_t)init + (int64_t)acc * (int64_t)m;
    return (int32_t)(t >> 32) >> sh;
}

TL_INLINE int32_t tl_rq_even(int32_t acc, int32_t m, int32_t h, int32_t sh, int32_t sign)
{
    const int32_t hi = h + (sign >> 31);
    const uint32_t lo = 0x40000000u + ((uint32_t)hi << 31);
    const int64_t t = (int64_t)(((uint64_t)(uint32_t)hi << 32) | lo) + (int64_t)acc * (int64_t)m;
    return (int32_t)(t >> 32) >> sh;
}

/* The h of a channel for the EVEN modes, from its sh (= e - 1 >= 2). */
TL_INLINE int32_t tl_rq_h(int32_t sh, int32_t zp, int mode)
{
    const int32_t h = (int32_t)(1u << (sh - 1));
    return TL_RQ_BASE(mode) == TL_RQ_EVEN_ZP ? h + (int32_t)((uint32_t)zp << sh) : h;
}

/* Requantise acc in `mode`, add the output zero point and clamp to [lo, hi]. */
TL_INLINE int8_t tl_out8(int32_t acc, int32_t m, int32_t h, int32_t sh, int mode, int32_t zp, int32_t lo, int32_t hi)
{
    int32_t z;
    const int32_t sign = tl_rq_sign(acc, m, mode);
    if (TL_RQ_BASE(mode) == TL_RQ_EVEN_ZP) {
        z = tl_rq_even(acc, m, h, sh, sign);
    } else if (TL_RQ_BASE(mode) == TL_RQ_EVEN) {
        z = tl_rq_even(acc, m, h, sh, sign) + zp;
    } else if (TL_RQ_BASE(mode) == TL_RQ_ANY) {
        z = tl_rq_any(acc, m, sh, sign) + zp;
    } else {
        z = tl_multiply_by_quantized_multiplier(acc, m, sh) + zp;
    }
    z = tl_ssat8(z);
    if (lo > -128) {
        z = z < lo ? lo : z;
    }
    if (hi < 127) {
        z = z > hi ? hi : z;
    }
    return (int8_t)z;
}

/* ---- expansion of int8 activations to int16 pair order, the input offset added ----
 * n values from src; k4 = ceil(n / 4) groups written to dst[g * stride], dst[g * stride + 1].
 * The bytes past n in the last group are 0 (their weights are 0). */
TL_INLINE void tl_expand(const int8_t *src, int n, int32_t *dst, int stride, int32_t off2)
{
    int g;
    const int full = n / 4;
#pragma GCC unroll 8
    for (g = 0; g < full; ++g) {
        const uint32_t v = tl_ld32(src + 4 * g);
        dst[g * stride] = tl_sxtab16(off2, v);
        dst[g * stride + 1] = tl_sxtab16_r8(off2, v);
    }
    if (n % 4) {
        uint32_t v = (uint8_t)src[4 * full];
        if (n % 4 > 1) {
            v |= (uint32_t)(uint8_t)src[4 * full + 1] << 8;
        }
        if (n % 4 > 2) {
            v |= (uint32_t)(uint8_t)src[4 * full + 2] << 16;
        }
        dst[full * stride] = tl_sxtab16(off2, v);
        dst[full * stride + 1] = tl_sxtab16_r8(off2, v);
    }
}

/* The kh x kw x c window of an NHWC input whose top-left tap is (iy0, ix0), as kh*kw*c bytes;
 * taps outside the input are the input zero point (they then expand to 0). */
TL_INLINE void tl_window(const int8_t *in, int h, int w, int c, int kh, int kw, int iy0, int ix0,
                         int8_t zp, int8_t *dst)
{
    int ky, kx;
    if (ix0 >= 0 && ix0 + kw <= w) {
#pragma GCC unroll 16
        for (ky = 0; ky < kh; ++ky) {
            const int iy = iy0 + ky;
            if (iy >= 0 && iy < h) {
                memcpy(dst + ky * kw * c, in + ((long)iy * w + ix0) * c, (size_t)(kw * c));
            } else {
                memset(dst + ky * kw * c, zp, (size_t)(kw * c));
            }
        }
        return;
    }
    for (ky = 0; ky < kh; ++ky) {
        const int iy = iy0 + ky;
        for (kx = 0; kx < kw; ++kx) {
            const int ix = ix0 + kx;
            int8_t *d = dst + (ky * kw + kx) * c;
            if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                memcpy(d, in + ((long)iy * w + ix) * c, (size_t)c);
            } else {
                memset(d, zp, (size_t)c);
            }
        }
    }
}

/* ---- matrix products: 2 pixels x 2 output channels, k4 groups of 4 ----
 * x: per group {A(k0,k2), A(k1,k3), B(k0,k2), B(k1,k3)}; w16: per group {c0 pair 0, c0 pair 1,
 * c1 pair 0, c1 pair 1}; w8: per group {c0 word, c1 word}. */
#if TL_DSP
#define TL_MM2X2_W16_STEP                                      \
    "ldrd %[x0], %[x1], [%[xp]], #8\n\t"                       \
    "ldrd %[w0], %[w1], [%[wp]], #8\n\t"                       \
    "smlad %[a0], %[x0], %[w0], %[a0]\n\t"                     \
    "smlad %[a0], %[x1], %[w1], %[a0]\n\t"                     \
    "ldrd %[y0], %[y1], [%[xp]], #8\n\t"                       \
    "smlad %[b0], %[y0], %[w0], %[b0]\n\t"                     \
    "smlad %[b0], %[y1], %[w1], %[b0]\n\t"                     \
    "ldrd %[w0], %[w1], [%[wp]], #8\n\t"                       \
    "smlad %[a1], %[x0], %[w0], %[a1]\n\t"                     \
    "smlad %[a1], %[x1], %[w1], %[a1]\n\t"                     \
    "smlad %[b1], %[y0], %[w0], %[b1]\n\t"                     \
    "smlad %[b1], %[y1], %[w1], %[b1]\n\t"
/* The steps of the fused block below load the four activation words with one LDM: x0, x1, y0,
 * y1 are pinned to r0-r3 there, in the order LDM fills them. */
#define TL_MM2X2_W16_STEP_LDM                                  \
    "ldmia %[xp]!, {%[x0], %[x1], %[y0], %[y1]}\n\t"          \
    "ldrd %[w0], %[w1], [%[wp]], #8\n\t"                       \
    "smlad %[a0], %[x0], %[w0], %[a0]\n\t"                     \
    "smlad %[a0], %[x1], %[w1], %[a0]\n\t"                     \
    "smlad %[b0], %[y0], %[w0], %[b0]\n\t"                     \
    "smlad %[b0], %[y1], %[w1], %[b0]\n\t"                     \
    "ldrd %[w0], %[w1], [%[wp]], #8\n\t"                       \
    "smlad %[a1], %[x0], %[w0], %[a1]\n\t"                     \
    "smlad %[a1], %[x1], %[w1], %[a1]\n\t"                     \
    "smlad %[b1], %[y0], %[w0], %[b1]\n\t"                     \
    "smlad %[b1], %[y1], %[w1], %[b1]\n\t"
#define TL_MM2X2_W8_STEP_LDM                                   \
    "ldmia %[xp]!, {%[x0], %[x1], %[y0], %[y1]}\n\t"          \
    "ldr %[w0], [%[wp]], #4\n\t"                               \
    "sxtb16 %[w1], %[w0]\n\t"                                  \
    "smlad %[a0], %[x0], %[w1], %[a0]\n\t"                     \
    "smlad %[b0], %[y0], %[w1], %[b0]\n\t"                     \
    "sxtb16 %[w1], %[w0], ror #8\n\t"                          \
    "smlad %[a0], %[x1], %[w1], %[a0]\n\t"                     \
    "smlad %[b0], %[y1], %[w1], %[b0]\n\t"                     \
    "ldr %[w0], [%[wp]], #4\n\t"                               \
    "sxtb16 %[w1], %[w0]\n\t"                                  \
    "smlad %[a1], %[x0], %[w1], %[a1]\n\t"                     \
    "smlad %[b1], %[y0], %[w1], %[b1]\n\t"                     \
    "sxtb16 %[w1], %[w0], ror #8\n\t"                          \
    "smlad %[a1], %[x1], %[w1], %[a1]\n\t"                     \
    "smlad %[b1], %[y1], %[w1], %[b1]\n\t"
#define TL_MM2X2_W8_STEP                                       \
    "ldrd %[x0], %[x1], [%[xp]], #8\n\t"                       \
    "ldrd %[y0], %[y1], [%[xp]], #8\n\t"                       \
    "ldrd %[w0], %[w1], [%[wp]], #8\n\t"                       \
    "sxtb16 %[t], %[w0]\n\t"                                   \
    "smlad %[a0], %[x0], %[t], %[a0]\n\t"                      \
    "smlad %[b0], %[y0], %[t], %[b0]\n\t"                      \
    "sxtb16 %[t], %[w0], ror #8\n\t"                           \
    "smlad %[a0], %[x1], %[t], %[a0]\n\t"                      \
    "smlad %[b0], %[y1], %[t], %[b0]\n\t"                      \
    "sxtb16 %[t], %[w1]\n\t"                                   \
    "smlad %[a1], %[x0], %[t], %[a1]\n\t"                      \
    "smlad %[b1], %[y0], %[t], %[b1]\n\t"                      \
    "sxtb16 %[t], %[w1], ror #8\n\t"                           \
    "smlad %[a1], %[x1], %[t], %[a1]\n\t"                      \
    "smlad %[b1], %[y1], %[t], %[b1]\n\t"
#endif

TL_INLINE void tl_mm2x2_w16(const int32_t *xp, const int32_t *wp, int k4,
                            int32_t *pa0, int32_t *pa1, int32_t *pb0, int32_t *pb1)
{
    int32_t a0 = *pa0, a1 = *pa1, b0 = *pb0, b1 = *pb1;
    int k;
#if TL_DSP
#pragma GCC unroll 16
    for (k = 0; k < k4; ++k) {
        int32_t x0, x1, y0, y1, w0, w1;
        __asm__ volatile(TL_MM2X2_W16_STEP
                         : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [xp] "+r"(xp), [wp] "+r"(wp),
                           [x0] "=&r"(x0), [x1] "=&r"(x1), [y0] "=&r"(y0), [y1] "=&r"(y1), [w0] "=&r"(w0), [w1] "=&r"(w1)
                         :
                         : "memory");
    }
#else
    for (k = 0; k < k4; ++k) {
        a0 = tl_smlad(xp[0], wp[0], a0);
        a0 = tl_smlad(xp[1], wp[1], a0);
        b0 = tl_smlad(xp[2], wp[0], b0);
        b0 = tl_smlad(xp[3], wp[1], b0);
        a1 = tl_smlad(xp[0], wp[2], a1);
        a1 = tl_smlad(xp[1], wp[3], a1);
        b1 = tl_smlad(xp[2], wp[2], b1);
        b1 = tl_smlad(xp[3], wp[3], b1);
        xp += 4;
        wp += 4;
    }
#endif
    *pa0 = a0;
    *pa1 = a1;
    *pb0 = b0;
    *pb1 = b1;
}

TL_INLINE void tl_mm2x2_w8(const int32_t *xp, const int32_t *wp, int k4,
                           int32_t *pa0, int32_t *pa1, int32_t *pb0, int32_t *pb1)
{
    int32_t a0 = *pa0, a1 = *pa1, b0 = *pb0, b1 = *pb1;
    int k;
#if TL_DSP
#pragma GCC unroll 16
    for (k = 0; k < k4; ++k) {
        int32_t x0, x1, y0, y1, w0, w1, t;
        __asm__ volatile(TL_MM2X2_W8_STEP
                         : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [xp] "+r"(xp), [wp] "+r"(wp),
                           [x0] "=&r"(x0), [x1] "=&r"(x1), [y0] "=&r"(y0), [y1] "=&r"(y1), [w0] "=&r"(w0), [w1] "=&r"(w1),
                           [t] "=&r"(t)
                         :
                         : "memory");
    }
#else
    for (k = 0; k < k4; ++k) {
        const int32_t c0e = tl_sxtb16((uint32_t)wp[0]), c0o = tl_sxtb16_r8((uint32_t)wp[0]);
        const int32_t c1e = tl_sxtb16((uint32_t)wp[1]), c1o = tl_sxtb16_r8((uint32_t)wp[1]);
        a0 = tl_smlad(xp[1], c0o, tl_smlad(xp[0], c0e, a0));
        b0 = tl_smlad(xp[3], c0o, tl_smlad(xp[2], c0e, b0));
        a1 = tl_smlad(xp[1], c1o, tl_smlad(xp[0], c1e, a1));
        b1 = tl_smlad(xp[3], c1o, tl_smlad(xp[2], c1e, b1));
        xp += 4;
        wp += 2;
    }
#endif
    *pa0 = a0;
    *pa1 = a1;
    *pb0 = b0;
    *pb1 = b1;
}

TL_INLINE void tl_mm2x1(const int32_t *xp, const int32_t *wp, int wide, int k4, int32_t *pa, int32_t *pb)
{
    int32_t a = *pa, b = *pb;
    int k;
#pragma GCC unroll 8
    for (k = 0; k < k4; ++k) {
        int32_t w0, w1;
        if (wide) {
            w0 = wp[2 * k];
            w1 = wp[2 * k + 1];
        } else {
            w0 = tl_sxtb16((uint32_t)wp[k]);
            w1 = tl_sxtb16_r8((uint32_t)wp[k]);
        }
        a = tl_smlad(xp[4 * k + 1], w1, tl_smlad(xp[4 * k], w0, a));
        b = tl_smlad(xp[4 * k + 3], w1, tl_smlad(xp[4 * k + 2], w0, b));
    }
    *pa = a;
    *pb = b;
}

#if TL_DSP
/* One channel pair for two pixels in a single assembly block: the k4 product steps from the
 * biases into a0, a1 (pixel A) and b0, b1 (pixel B), then for each of the four the
 * TL_RQ_EVEN(_ZP) requantisation (hi = h + sign, lo = 2^30 + (hi << 31), SMLAL, ASR), the clamp
 * and the store; the freed operand registers hold the constants. rq -> {bias, m, h, sh} x 2
 * (advanced by 8 words), out -> pixel A (advanced by 2), pixel B at out + co. The steps are
 * repeated by the assembler (.rept), which gcc does not count when it places literal pools, so
 * the block stays within about 2 KB. */
#define TL_FUSED_STEPS 32
#define TL_FUSED_UNROLL 16 /* written as a literal in TL_BLOCK2X2_BODY */
#define TL_RQ_STEP(acc, qoff, dst)                             \
    "ldrd %[w0], %[w1], [%[q], #" #qoff "+4]\n\t"              \
    "ldr %[x1], [%[q], #" #qoff "+12]\n\t"                     \
    "add %[y0], %[w1], %[" #acc "], asr #31\n\t"               \
    "lsl %[y1], %[y0], #31\n\t"                                \
    "add %[y1], %[y1], #0x40000000\n\t"                        \
    "smlal %[y1], %[y0], %[" #acc "], %[w0]\n\t"               \
    "asr %[y0], %[y0], %[x1]\n\t"                              \
    TL_RQ_ZP TL_RQ_CLAMP                                       \
    "strb %[y0], [%[out], " dst "]\n\t"
#define TL_RQ_STEP_B(acc, dst)                                 \
    "add %[y0], %[w1], %[" #acc "], asr #31\n\t"               \
    "lsl %[y1], %[y0], #31\n\t"                                \
    "add %[y1], %[y1], #0x40000000\n\t"                        \
    "smlal %[y1], %[y0], %[" #acc "], %[w0]\n\t"               \
    "asr %[y0], %[y0], %[x1]\n\t"                              \
    TL_RQ_ZP TL_RQ_CLAMP                                       \
    "strb %[y0], [%[out], " dst "]\n\t"
#define TL_BLOCK2X2_BODY(STEP)                                 \
    "ldr %[a0], [%[q]]\n\t"                                    \
    "ldr %[a1], [%[q], #16]\n\t"                               \
    "mov %[b0], %[a0]\n\t"                                     \
    "mov %[b1], %[a1]\n\t"                                     \
    ".rept %c[rem]\n\t" STEP ".endr\n\t"                       \
    ".if %c[nloops]\n\t"                                        \
    "1:\n\t"                                                    \
    ".rept 16\n\t" STEP ".endr\n\t"                             \
    "ldr %[w0], %[cnt]\n\t"                                     \
    "subs %[w0], %[w0], #1\n\t"                                 \
    "str %[w0], %[cnt]\n\t"                                     \
    "bne 1b\n\t"                                                \
    ".endif\n\t"                                                \
    TL_RQ_STEP(a0, 0, "#0")                                    \
    TL_RQ_STEP_B(b0, "%[co]")                                  \
    TL_RQ_STEP(a1, 16, "#1")                                   \
    TL_RQ_STEP_B(b1, "#%c[co]+1")                              \
    "add %[q], %[q], #32\n\t"                                  \
    "add %[out], %[out], #2\n\t"
#define TL_BLOCK2X2_OPERANDS                                                                       \
    : [a0] "=&r"(a0), [a1] "=&r"(a1), [b0] "=&r"(b0), [b1] "=&r"(b1), [x0] "=&r"(x0), [x1] "=&r"(x1), \
      [y0] "=&r"(y0), [y1] "=&r"(y1), [w0] "=&r"(w0), [w1] "=&r"(w1), [xp] "+r"(xp), [wp] "+r"(wp),   \
      [q] "+r"(q), [out] "+r"(out), [cnt] "+m"(loops)                                              \
    : [rem] "i"(rem), [nloops] "i"(nloops), [co] "i"(co), [zp] "i"(zp),                           \
      [lo] "i"(lo), [hi] "i"(hi)                                                                   \
    : "memory", "cc"

/* The four variants: zero point folded (EVEN_ZP) or added, clamp by SSAT alone or also to [lo, hi]. */
#define TL_RQ_CLAMP_SSAT "ssat %[y0], #8, %[y0]\n\t"
#define TL_RQ_CLAMP_RANGE "ssat %[y0], #8, %[y0]\n\tcmp %[y0], %[lo]\n\tit lt\n\tmovlt %[y0], %[lo]\n\tcmp %[y0], %[hi]\n\tit gt\n\tmovgt %[y0], %[hi]\n\t"

TL_INLINE void tl_block2x2(const int32_t *xq, const int32_t **pw, const int32_t **pq, int8_t **pout, int wide,
                           int k4, int co, int mode, int32_t zp, int32_t lo, int32_t hi)
{
    const int32_t *xp = xq, *wp = *pw, *q = *pq;
    int8_t *out = *pout;
    int32_t a0, a1, b0, b1, w0, w1;
    /* Up to TL_FUSED_STEPS steps are all written out; beyond, a loop of TL_FUSED_UNROLL steps
     * counts down in a stack slot (no register is free). */
    const int nloops = k4 > TL_FUSED_STEPS ? k4 / TL_FUSED_UNROLL : 0;
    int loops = nloops;
    const int rem = k4 > TL_FUSED_STEPS ? k4 % TL_FUSED_UNROLL : k4;
    register int32_t x0 __asm__("r0");
    register int32_t x1 __asm__("r1");
    register int32_t y0 __asm__("r2");
    register int32_t y1 __asm__("r3");
    const int clamp = lo > -128 || hi < 127;
#define TL_RQ_ZP ""
#define TL_RQ_CLAMP TL_RQ_CLAMP_SSAT
    if (mode == TL_RQ_EVEN_ZP && !clamp && wide) {
        __asm__ volatile(TL_BLOCK2X2_BODY(TL_MM2X2_W16_STEP_LDM) TL_BLOCK2X2_OPERANDS);
    } else if (mode == TL_RQ_EVEN_ZP && !clamp) {
        __asm__ volatile(TL_BLOCK2X2_BODY(TL_MM2X2_W8_STEP_LDM) TL_BLOCK2X2_OPERANDS);
    }
#undef TL_RQ_CLAMP
#define TL_RQ_CLAMP TL_RQ_CLAMP_RANGE
    else if (mode == TL_RQ_EVEN_ZP && wide) {
        __asm__ volatile(TL_BLOCK2X2_BODY(TL_MM2X2_W16_STEP_LDM) TL_BLOCK2X2_OPERANDS);
    } else if (mode == TL_RQ_EVEN_ZP) {
        __asm__ volatile(TL_BLOCK2X2_BODY(TL_MM2X2_W8_STEP_LDM) TL_BLOCK2X2_OPERANDS);
    }
#undef TL_RQ_ZP
#undef TL_RQ_CLAMP
#define TL_RQ_ZP "add %[y0], %[y0], %[zp]\n\t"
#define TL_RQ_CLAMP TL_RQ_CLAMP_SSAT
    else if (!clamp && wide) {
        __asm__ volatile(TL_BLOCK2X2_BODY(TL_MM2X2_W16_STEP_LDM) TL_BLOCK2X2_OPERANDS);
    } else if (!clamp) {
        __asm__ volatile(TL_BLOCK2X2_BODY(TL_MM2X2_W8_STEP_LDM) TL_BLOCK2X2_OPERANDS);
    }
#undef TL_RQ_CLAMP
#define TL_RQ_CLAMP TL_RQ_CLAMP_RANGE
    else if (wide) {
        __asm__ volatile(TL_BLOCK2X2_BODY(TL_MM2X2_W16_STEP_LDM) TL_BLOCK2X2_OPERANDS);
    } else {
        __asm__ volatile(TL_BLOCK2X2_BODY(TL_MM2X2_W8_STEP_LDM) TL_BLOCK2X2_OPERANDS);
    }
#undef TL_RQ_ZP
#undef TL_RQ_CLAMP
    *pw = wp;
    *pq = q;
    *pout = out;
}
#endif

/* One pixel (lane A of xq) x one channel pair, from the same weight layout as the 2x2 product. */
TL_INLINE void tl_mm1x2(const int32_t *xp, const int32_t *wp, int wide, int k4, int32_t *pa0, int32_t *pa1)
{
    int32_t a0 = *pa0, a1 = *pa1;
    int k;
#pragma GCC unroll 8
    for (k = 0; k < k4; ++k) {
        const int32_t x0 = xp[4 * k], x1 = xp[4 * k + 1];
        if (wide) {
            a0 = tl_smlad(x1, wp[4 * k + 1], tl_smlad(x0, wp[4 * k], a0));
            a1 = tl_smlad(x1, wp[4 * k + 3], tl_smlad(x0, wp[4 * k + 2], a1));
        } else {
            const uint32_t v0 = (uint32_t)wp[2 * k], v1 = (uint32_t)wp[2 * k + 1];
            a0 = tl_smlad(x1, tl_sxtb16_r8(v0), tl_smlad(x0, tl_sxtb16(v0), a0));
            a1 = tl_smlad(x1, tl_sxtb16_r8(v1), tl_smlad(x0, tl_sxtb16(v1), a1));
        }
    }
    *pa0 = a0;
    *pa1 = a1;
}

/* All output channels for two pixels whose expanded activations are in xq: channel pairs in
 * turn, each a 2x2 product, then a last odd channel; requantised and stored to out[c] (pixel A)
 * and out[co + c] (pixel B, only if store_b). rq: per channel {bias, m, h, sh} (see tl_out8);
 * w: per channel pair k4 groups, then the odd channel's. */
TL_INLINE void tl_gemm_2px(const int32_t *xq, const int32_t *w, int wide, const int32_t *rq, int k4, int co,
                           int8_t *out, int store_b, int mode, int32_t zp, int32_t lo, int32_t hi)
{
    int j = 0;
    const int words = wide ? 4 * k4 : 2 * k4;
#if TL_DSP
    if (store_b == 1 && (mode == TL_RQ_EVEN_ZP || mode == TL_RQ_EVEN)) {
        for (; j < co / 2; ++j) {
            tl_block2x2(xq, &w, &rq, &out, wide, k4, co, mode, zp, lo, hi);
        }
    }
#endif
    if (!store_b) {
        for (; j < co / 2; ++j) {
            int32_t a0 = rq[0], a1 = rq[4];
            tl_mm1x2(xq, w, wide, k4, &a0, &a1);
            out[0] = tl_out8(a0, rq[1], rq[2], rq[3], mode, zp, lo, hi);
            out[1] = tl_out8(a1, rq[5], rq[6], rq[7], mode, zp, lo, hi);
            out += 2;
            rq += 8;
            w += words;
        }
    }
    for (; j < co / 2; ++j) {
        int32_t a0 = rq[0], a1 = rq[4], b0 = rq[0], b1 = rq[4];
        if (wide) {
            tl_mm2x2_w16(xq, w, k4, &a0, &a1, &b0, &b1);
        } else {
            tl_mm2x2_w8(xq, w, k4, &a0, &a1, &b0, &b1);
        }
        out[0] = tl_out8(a0, rq[1], rq[2], rq[3], mode, zp, lo, hi);
        out[1] = tl_out8(a1, rq[5], rq[6], rq[7], mode, zp, lo, hi);
        if (store_b) {
            out[co] = tl_out8(b0, rq[1], rq[2], rq[3], mode, zp, lo, hi);
            out[co + 1] = tl_out8(b1, rq[5], rq[6], rq[7], mode, zp, lo, hi);
        }
        out += 2;
        rq += 8;
        w += words;
    }
    if (co % 2) {
        int32_t a = rq[0], b = rq[0];
        tl_mm2x1(xq, w, wide, k4, &a, &b);
        out[0] = tl_out8(a, rq[1], rq[2], rq[3], mode, zp, lo, hi);
        if (store_b) {
            out[co] = tl_out8(b, rq[1], rq[2], rq[3], mode, zp, lo, hi);
        }
    }
}

/* ---- matrix-vector products: 1 vector x 6 rows (TL_MV_ROWS, FULLY_CONNECTED) ----
 * The int8 vector is widened on the fly, one word (four values) a group, so no scratch is
 * needed; the last group of a length that is not a multiple of 4 is built from its bytes (no
 * read past the vector). w16: per group 6 rows x 2 pairs; w8: per group 6 row words. */
#if TL_DSP
#define TL_MV_X                                                \
    "ldr %[x1], [%[xp]], #4\n\t"                               \
    "sxtab16 %[x0], %[off2], %[x1]\n\t"                        \
    "sxtab16 %[x1], %[off2], %[x1], ror #8\n\t"
#define TL_MV_W16(acc)                                         \
    "ldrd %[w0], %[w1], [%[wp]], #8\n\t"                       \
    "smlad %[" #acc "], %[x0], %[w0], %[" #acc "]\n\t"         \
    "smlad %[" #acc "], %[x1], %[w1], %[" #acc "]\n\t"
#define TL_MV_W8(acc)                                          \
    "ldr %[w0], [%[wp]], #4\n\t"                               \
    "sxtb16 %[w1], %[w0]\n\t"                                  \
    "smlad %[" #acc "], %[x0], %[w1], %[" #acc "]\n\t"         \
    "sxtb16 %[w1], %[w0], ror #8\n\t"                          \
    "smlad %[" #acc "], %[x1], %[w1], %[" #acc "]\n\t"
#define TL_MV6_W16_STEP TL_MV_X TL_MV_W16(a0) TL_MV_W16(a1) TL_MV_W16(a2) TL_MV_W16(a3) TL_MV_W16(a4) TL_MV_W16(a5)
#define TL_MV6_W8_STEP TL_MV_X TL_MV_W8(a0) TL_MV_W8(a1) TL_MV_W8(a2) TL_MV_W8(a3) TL_MV_W8(a4) TL_MV_W8(a5)
#endif

/* The last, partial group of an n-value int8 vector (n % 4 != 0), widened with the offset. */
TL_INLINE void tl_tail_group(const int8_t *x, int n, int32_t off2, int32_t *x0, int32_t *x1)
{
    const int at = n - n % 4;
    uint32_t v = (uint8_t)x[at];
    if (n % 4 > 1) {
        v |= (uint32_t)(uint8_t)x[at + 1] << 8;
    }
    if (n % 4 > 2) {
        v |= (uint32_t)(uint8_t)x[at + 2] << 16;
    }
    *x0 = tl_sxtab16(off2, v);
    *x1 = tl_sxtab16_r8(off2, v);
}

/* acc += one group (x0, x1) times row r's weights at wp (wide: 2 words a row, else 1). */
TL_INLINE int32_t tl_mv_group(int32_t acc, int32_t x0, int32_t x1, const int32_t *wp, int wide, int r)
{
    if (wide) {
        return tl_smlad(x1, wp[2 * r + 1], tl_smlad(x0, wp[2 * r], acc));
    }
    return tl_smlad(x1, tl_sxtb16_r8((uint32_t)wp[r]), tl_smlad(x0, tl_sxtb16((uint32_t)wp[r]), acc));
}

/* One block of six rows: acc[r] += sum over the vector of (x + offset) * w[r]. */
TL_INLINE void tl_mv6(const int8_t *x, int n, int32_t off2, const int32_t *wp, int wide, int32_t acc[6])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5];
    const int full = n / 4;
    int k;
#if TL_DSP
    const int8_t *xp = x;
    if (wide) {
#pragma GCC unroll 16
        for (k = 0; k < full; ++k) {
            int32_t x0, x1, w0, w1;
            __asm__ volatile(TL_MV6_W16_STEP
                             : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4), [a5] "+r"(a5),
                               [xp] "+r"(xp), [wp] "+r"(wp), [x0] "=&r"(x0), [x1] "=&r"(x1), [w0] "=&r"(w0), [w1] "=&r"(w1)
                             : [off2] "r"(off2)
                             : "memory");
        }
    } else {
#pragma GCC unroll 16
        for (k = 0; k < full; ++k) {
            int32_t x0, x1, w0, w1;
            __asm__ volatile(TL_MV6_W8_STEP
                             : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4), [a5] "+r"(a5),
                               [xp] "+r"(xp), [wp] "+r"(wp), [x0] "=&r"(x0), [x1] "=&r"(x1), [w0] "=&r"(w0), [w1] "=&r"(w1)
                             : [off2] "r"(off2)
                             : "memory");
        }
    }
#else
    for (k = 0; k < full; ++k) {
        const uint32_t v = tl_ld32(x + 4 * k);
        const int32_t x0 = tl_sxtab16(off2, v), x1 = tl_sxtab16_r8(off2, v);
        a0 = tl_mv_group(a0, x0, x1, wp, wide, 0);
        a1 = tl_mv_group(a1, x0, x1, wp, wide, 1);
        a2 = tl_mv_group(a2, x0, x1, wp, wide, 2);
        a3 = tl_mv_group(a3, x0, x1, wp, wide, 3);
        a4 = tl_mv_group(a4, x0, x1, wp, wide, 4);
        a5 = tl_mv_group(a5, x0, x1, wp, wide, 5);
        wp += wide ? 12 : 6;
    }
#endif
    if (n % 4) {
        int32_t x0, x1;
        tl_tail_group(x, n, off2, &x0, &x1);
        a0 = tl_mv_group(a0, x0, x1, wp, wide, 0);
        a1 = tl_mv_group(a1, x0, x1, wp, wide, 1);
        a2 = tl_mv_group(a2, x0, x1, wp, wide, 2);
        a3 = tl_mv_group(a3, x0, x1, wp, wide, 3);
        a4 = tl_mv_group(a4, x0, x1, wp, wide, 4);
        a5 = tl_mv_group(a5, x0, x1, wp, wide, 5);
    }
    (void)k;
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    acc[4] = a4;
    acc[5] = a5;
}

/* One row: a + sum over the vector of (x + offset) * w (w: k4 groups of the row). */
TL_INLINE int32_t tl_mv1(const int8_t *x, int n, int32_t off2, const int32_t *wp, int wide, int32_t a)
{
    int k;
#pragma GCC unroll 8
    for (k = 0; k < (n + 3) / 4; ++k) {
        int32_t x0, x1;
        if (4 * k + 4 <= n) {
            const uint32_t v = tl_ld32(x + 4 * k);
            x0 = tl_sxtab16(off2, v);
            x1 = tl_sxtab16_r8(off2, v);
        } else {
            tl_tail_group(x, n, off2, &x0, &x1);
        }
        if (wide) {
            a = tl_smlad(x1, wp[2 * k + 1], tl_smlad(x0, wp[2 * k], a));
        } else {
            a = tl_smlad(x1, tl_sxtb16_r8((uint32_t)wp[k]), tl_smlad(x0, tl_sxtb16((uint32_t)wp[k]), a));
        }
    }
    return a;
}

/* All rows of a fully connected layer for one int8 vector x of n values: blocks of TL_MV_ROWS
 * rows, then the rows left one by one. w: per block k4 groups of the block's rows, then each row
 * left; bias per row (or NULL); the multiplier is one per layer (m, h, sh) or per row (mult,
 * shift non-NULL, h derived). */
#define TL_MV_ROWS 6
TL_INLINE void tl_gemv(const int8_t *x, int n, int32_t off2, const int32_t *w, int wide, int rows, const int32_t *bias,
                       int32_t m, int32_t h, int32_t sh, const int32_t *mult, const int32_t *shift,
                       int8_t *out, int mode, int32_t zp, int32_t lo, int32_t hi)
{
    int j, r;
    const int k4 = (n + 3) / 4;
    const int words = (wide ? 2 : 1) * TL_MV_ROWS * k4;
    for (j = 0; j < rows / TL_MV_ROWS; ++j) {
        int32_t acc[TL_MV_ROWS];
#pragma GCC unroll 6
        for (r = 0; r < TL_MV_ROWS; ++r) {
            acc[r] = bias ? bias[TL_MV_ROWS * j + r] : 0;
        }
        tl_mv6(x, n, off2, w + words * j, wide, acc);
#pragma GCC unroll 6
        for (r = 0; r < TL_MV_ROWS; ++r) {
            const int row = TL_MV_ROWS * j + r;
            if (mult) {
                out[row] = tl_out8(acc[r], mult[row], tl_rq_h(shift[row], zp, mode), shift[row], mode, zp, lo, hi);
            } else {
                out[row] = tl_out8(acc[r], m, h, sh, mode, zp, lo, hi);
            }
        }
    }
    for (r = rows - rows % TL_MV_ROWS; r < rows; ++r) {
        const int32_t *wr = w + words * (rows / TL_MV_ROWS) + (wide ? 2 : 1) * k4 * (r - rows + rows % TL_MV_ROWS);
        const int32_t acc = tl_mv1(x, n, off2, wr, wide, bias ? bias[r] : 0);
        if (mult) {
            out[r] = tl_out8(acc, mult[r], tl_rq_h(shift[r], zp, mode), shift[r], mode, zp, lo, hi);
        } else {
            out[r] = tl_out8(acc, m, h, sh, mode, zp, lo, hi);
        }
    }
}

/* ---- depthwise: one channel plane ----
 * Copy rows x cols values of one channel (input rows src_row bytes apart, pixels `step` apart)
 * into a plane whose rows are dst_row bytes apart. */
TL_INLINE void tl_plane_in(const int8_t *src, int rows, int cols, int src_row, int step, int8_t *dst, int dst_row)
{
    int r, x;
    for (r = 0; r < rows; ++r) {
        const int8_t *s = src;
        int8_t *d = dst;
#pragma GCC unroll 8
        for (x = 0; x < cols; ++x) {
            *d++ = *s;
            s += step;
        }
        src += src_row;
        dst += dst_row;
    }
}

/* Fill the border of a rows x width plane around the rows_in x cols_in block at (top, left). */
TL_INLINE void tl_plane_border(int8_t *plane, int rows, int width, int top, int left, int rows_in, int cols_in, int8_t v)
{
    int r, x;
    memset(plane, v, (size_t)(top * width));
    for (r = top; r < top + rows_in; ++r) {
        int8_t *row = plane + r * width;
        for (x = 0; x < left; ++x) {
            row[x] = v;
        }
        for (x = left + cols_in; x < width; ++x) {
            row[x] = v;
        }
    }
    memset(plane + (top + rows_in) * width, v, (size_t)((rows - top - rows_in) * width));
}

/* ---- AVERAGE_POOL_2D, channels in groups of four ----
 * Sums in int16 lanes (SXTAB16: windows of at most 256 values cannot overflow them), then TFLite's
 * division rounding halves away from zero over the taps inside the input. */
TL_INLINE int8_t tl_avg_out(int32_t sum, int32_t count, int32_t lo, int32_t hi)
{
    int32_t v = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
    v = v < lo ? lo : v;
    return (int8_t)(v > hi ? hi : v);
}

TL_INLINE void tl_avgpool4(const int8_t *in, int h, int w, int c, int8_t *out, int oh, int ow, int fh, int fw,
                           int sh, int sw, int pt, int pl, int32_t lo, int32_t hi)
{
    int oy, ox, g, ky, kx;
    for (oy = 0; oy < oh; ++oy) {
        const int iy0 = oy * sh - pt;
        const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = h - iy0 < fh ? h - iy0 : fh;
        for (ox = 0; ox < ow; ++ox) {
            const int ix0 = ox * sw - pl;
            const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = w - ix0 < fw ? w - ix0 : fw;
            const int32_t count = (int32_t)(ky1 - ky0) * (int32_t)(kx1 - kx0);
            for (g = 0; g < c / 4; ++g) {
                int32_t s02 = 0, s13 = 0;
                for (ky = ky0; ky < ky1; ++ky) {
                    const int8_t *x = in + ((long)(iy0 + ky) * w + ix0 + kx0) * c + 4 * g;
#pragma GCC unroll 4
                    for (kx = kx0; kx < kx1; ++kx) {
                        const uint32_t v = tl_ld32(x);
                        s02 = tl_sxtab16(s02, v);
                        s13 = tl_sxtab16_r8(s13, v);
                        x += c;
                    }
                }
                if (count > 0) {
                    out[4 * g] = tl_avg_out((int16_t)(uint16_t)((uint32_t)s02 & 0xFFFFu), count, lo, hi);
                    out[4 * g + 1] = tl_avg_out((int16_t)(uint16_t)((uint32_t)s13 & 0xFFFFu), count, lo, hi);
                    out[4 * g + 2] = tl_avg_out(s02 >> 16, count, lo, hi);
                    out[4 * g + 3] = tl_avg_out(s13 >> 16, count, lo, hi);
                } else {
                    out[4 * g] = out[4 * g + 1] = out[4 * g + 2] = out[4 * g + 3] = (int8_t)(0 < lo ? lo : (0 > hi ? hi : 0));
                }
            }
            out += c;
        }
    }
}

/* Two int8 weights as an int16 pair (lo in the bottom half). */
TL_INLINE int32_t tl_pair(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}

/* ---- ADD through tables: ta[a] = input 1's rescaled value for a in [-128, 127] (ta points at
 * entry 0 of 256), the same for tb; the sum is requantised as TFLite does. Element i of both
 * inputs is read before output element i is written, in ascending order (in place is safe). */
TL_INLINE void tl_add_tables(const int8_t *a, const int8_t *b, int8_t *out, int n, const int32_t *ta,
                             const int32_t *tb, int32_t m, int32_t h, int32_t sh, int mode, int32_t zp, int32_t lo,
                             int32_t hi)
{
    int i;
#pragma GCC unroll 4
    for (i = 0; i < n; ++i) {
        out[i] = tl_out8(ta[a[i]] + tb[b[i]], m, h, sh, mode, zp, lo, hi);
    }
}

#endif /* TL_OPT_H */

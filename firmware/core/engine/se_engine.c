/**
 * @file se_engine.c
 * @brief Kernels and runner of the native int8 engine (see se_engine.h, docs/engine.md).
 *
 * Arithmetic follows TFLite Micro's reference kernels and gemmlowp's fixed-point helpers
 * (default build: double-rounding MultiplyByQuantizedMultiplier), verified bit for bit against
 * the TFLM interpreter by tests/test_engine.py. Accumulation is modulo 2^32 everywhere, so the
 * order of the multiply-accumulates (and SMLAD vs portable C) cannot change a result.
 */
#include "se_engine.h"

#include <limits.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && !defined(SE_ENGINE_FORCE_PORTABLE)
#include <arm_acle.h>
#define SE_USE_DSP 1
/* acc + x.lo*w.lo + x.hi*w.hi (wrapping), one SMLAD */
#define SE_DOT2(x, w, acc) __smlad((int16x2_t)(x), (int16x2_t)(w), (acc))
#else
#define SE_USE_DSP 0
static inline int32_t se_dot2(uint32_t x, uint32_t w, int32_t acc)
{
    const int32_t lo = (int32_t)(int16_t)(uint16_t)(x & 0xFFFFu) * (int16_t)(uint16_t)(w & 0xFFFFu);
    const int32_t hi = (int32_t)(int16_t)(uint16_t)(x >> 16) * (int16_t)(uint16_t)(w >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
#define SE_DOT2(x, w, acc) se_dot2((x), (w), (acc))
#endif

#define SE_INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------------------------------
 * Fixed-point helpers (gemmlowp semantics)
 * ------------------------------------------------------------------------------------- */

/** SaturatingRoundingDoublingHighMul. gemmlowp adds a sign-dependent nudge and truncates the
 *  division by 2^31 toward zero; for every product that equals floor((a*b + 2^30) / 2^31),
 *  which is one arithmetic shift. */
SE_INLINE int32_t srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

/** RoundingDivideByPOT: x / 2^e rounded half away from zero, 0 <= e <= 31. */
SE_INLINE int32_t rdbpot(int32_t x, int e)
{
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/** SaturatingRoundingMultiplyByPOT for a positive exponent: saturating left shift. */
SE_INLINE int32_t sat_shl(int32_t x, int e)
{
    const int32_t threshold = (int32_t)((1u << (31 - e)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << e);
}

SE_INLINE int32_t wadd(int32_t a, int32_t b) /* wrapping add, as the C++ reference behaves */
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

SE_INLINE int32_t mbqm(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return rdbpot(srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

int32_t se_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    return mbqm(x, multiplier, shift);
}

SE_INLINE int8_t clamp8(int32_t v, int32_t lo, int32_t hi)
{
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* ---------------------------------------------------------------------------------------
 * CONV_2D (1-D) and FULLY_CONNECTED
 * ------------------------------------------------------------------------------------- */

/** Packs an int16 element stream into words (even element in the low half). */
typedef struct {
    uint32_t *dst;
    uint32_t half;
    int have;
    int skip; /**< elements still to drop from the front of the stream */
} se_packer_t;

static void pk_fill(se_packer_t *pk, uint32_t v16, int n)
{
    const int drop = n < pk->skip ? n : pk->skip;
    n -= drop;
    pk->skip -= drop;
    if (n <= 0) {
        return;
    }
    if (pk->have) {
        *pk->dst++ = pk->half | (v16 << 16);
        pk->have = 0;
        --n;
    }
    const uint32_t w = v16 | (v16 << 16);
    uint32_t *d = pk->dst;
    for (; n >= 2; n -= 2) {
        *d++ = w;
    }
    pk->dst = d;
    if (n) {
        pk->half = v16;
        pk->have = 1;
    }
}

static void pk_copy(se_packer_t *pk, const int8_t *s, int n)
{
    const int drop = n < pk->skip ? n : pk->skip;
    n -= drop;
    s += drop;
    pk->skip -= drop;
    if (n <= 0) {
        return;
    }
    if (pk->have) {
        *pk->dst++ = pk->half | ((uint32_t)(uint16_t)(int16_t)s[0] << 16);
        pk->have = 0;
        ++s;
        --n;
    }
    uint32_t *d = pk->dst;
    for (; n >= 2; n -= 2, s += 2) {
        *d++ = (uint32_t)(uint16_t)(int16_t)s[0] | ((uint32_t)(uint16_t)(int16_t)s[1] << 16);
    }
    pk->dst = d;
    if (n) {
        pk->half = (uint16_t)(int16_t)s[0];
        pk->have = 1;
    }
}

/**
 * Expand input rows [r0, r0 + nrows) to packed int16 pairs, flattened row after row, dropping
 * the first @p skip elements (1 builds the odd-phase copy). Rows outside the tensor read as the
 * input zero point; three zero elements follow, read (against zero weights) by patches whose
 * length is not a multiple of 4.
 */
static void expand_rows(const int8_t *in, int in_w, int in_c, int r0, int nrows, int zp, int skip,
                        uint32_t *dst)
{
    const uint32_t zp16 = (uint16_t)(int16_t)zp;
    const int end = r0 + nrows;
    const int v0 = r0 < 0 ? 0 : (r0 > in_w ? in_w : r0);
    const int v1 = end > in_w ? in_w : (end < v0 ? v0 : end);
    se_packer_t pk = {dst, 0u, 0, skip};
    pk_fill(&pk, zp16, (v0 - r0) * in_c);
    pk_copy(&pk, in + (ptrdiff_t)v0 * in_c, (v1 - v0) * in_c);
    pk_fill(&pk, zp16, (end - v1) * in_c);
    pk_fill(&pk, 0u, 3);
    if (pk.have) {
        *pk.dst = pk.half;
    }
}

/** Four output channels at once: each input word feeds four SMLADs. */
#if SE_USE_DSP
SE_INLINE const uint32_t *dot_g4(const uint32_t *x, const uint32_t *w, int k2, const int32_t *bias,
                                 int32_t *acc)
{
    int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    int n = k2 >> 1; /* k2 is even: plan.py pads patches to a multiple of 4 elements */
    if (n > 0) {
        uint32_t x0, x1;
        /* Two input words (4 taps) per iteration: one LDRD, two LDMs of four weight words,
         * eight SMLADs, loop control: 13 instructions for 16 MACs. LDM needs ascending
         * registers, hence the four fixed ones. */
        __asm volatile("1:\n\t"
                       "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
                       "ldmia  %[w]!, {r8, r9, r10, r11}\n\t"
                       "smlad  %[a0], %[x0], r8, %[a0]\n\t"
                       "smlad  %[a1], %[x0], r9, %[a1]\n\t"
                       "smlad  %[a2], %[x0], r10, %[a2]\n\t"
                       "smlad  %[a3], %[x0], r11, %[a3]\n\t"
                       "ldmia  %[w]!, {r8, r9, r10, r11}\n\t"
                       "smlad  %[a0], %[x1], r8, %[a0]\n\t"
                       "smlad  %[a1], %[x1], r9, %[a1]\n\t"
                       "smlad  %[a2], %[x1], r10, %[a2]\n\t"
                       "smlad  %[a3], %[x1], r11, %[a3]\n\t"
                       "subs   %[n], %[n], #1\n\t"
                       "bne    1b\n\t"
                       : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x),
                         [w] "+r"(w), [n] "+r"(n), [x0] "=&r"(x0), [x1] "=&r"(x1)
                       :
                       : "r8", "r9", "r10", "r11", "cc", "memory");
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    return w;
}
#else
SE_INLINE const uint32_t *dot_g4(const uint32_t *x, const uint32_t *w, int k2, const int32_t *bias,
                                 int32_t *acc)
{
    int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    for (int j = 0; j < k2; ++j) {
        const uint32_t x0 = x[j];
        a0 = SE_DOT2(x0, w[0], a0);
        a1 = SE_DOT2(x0, w[1], a1);
        a2 = SE_DOT2(x0, w[2], a2);
        a3 = SE_DOT2(x0, w[3], a3);
        w += 4;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    return w;
}
#endif

SE_INLINE void dot_g2(const uint32_t *x, const uint32_t *w, int k2, const int32_t *bias, int32_t *acc)
{
    int32_t a0 = bias[0], a1 = bias[1];
    for (int j = 0; j < k2; ++j) {
        const uint32_t x0 = x[j];
        a0 = SE_DOT2(x0, w[0], a0);
        a1 = SE_DOT2(x0, w[1], a1);
        w += 2;
    }
    acc[0] = a0;
    acc[1] = a1;
}

SE_INLINE void dot_g1(const uint32_t *x, const uint32_t *w, int k2, const int32_t *bias, int32_t *acc)
{
    int32_t a0 = bias[0];
    for (int j = 0; j < k2; ++j) {
        a0 = SE_DOT2(x[j], w[j], a0);
    }
    acc[0] = a0;
}

#if SE_USE_DSP
#define SE_SAT8(v) __ssat((v), 8)
#else
#define SE_SAT8(v) ((v) < -128 ? -128 : ((v) > 127 ? 127 : (v)))
#endif

/**
 * Requantize the accumulators of one position (all out_c channels) and store them.
 *
 * Fast path (p->rq != NULL): plan.py checked that every shift is a right shift 1 <= r <= 22 and
 * every multiplier m is positive. Then TFLM's double rounding plus output zero point,
 * rdbpot(srdhm(acc, m), r) + zp, equals
 *     floor((acc*m + 2^30 + 2^(30+r) + zp*2^(31+r) - 2^31*[acc<0]) / 2^(31+r))
 * for every int32 acc (no int64 overflow for r <= 22): the high word of a 64-bit multiply-add,
 * shifted right by r-1. rq[] holds per channel m, the low and high words of the constant, r-1.
 */
static void requant_row(const se_conv_params_t *p, const int32_t *acc, int8_t *o)
{
    const int n = p->out_c;
    const int32_t lo = p->act_min;
    const int32_t hi = p->act_max;
    const int32_t *rq = p->rq;
    if (rq == NULL) {
        const int32_t zp = p->out_zp;
        for (int i = 0; i < n; ++i) {
            o[i] = clamp8(mbqm(acc[i], p->mult[i], p->shift[i]) + zp, lo, hi);
        }
        return;
    }
#if SE_USE_DSP
    if (lo == -128 && hi == 127) {
        /* 9-10 instructions per output: LDR, LDM of the channel's constants, SMLAL, the sign
         * term as a second SMLAL of (acc >>> 31) * -2^31, shift, SSAT, STRB, loop. */
        int32_t a, t;
        int count = n;
        const int32_t kmin = INT32_MIN;
        __asm volatile("1:\n\t"
                       "ldr    %[a], [%[acc]], #4\n\t"
                       "ldmia  %[rq]!, {r8, r9, r10, r11}\n\t"
                       "smlal  r9, r10, %[a], r8\n\t"
                       "lsr    %[t], %[a], #31\n\t"
                       "smlal  r9, r10, %[t], %[kmin]\n\t"
                       "asr    r10, r10, r11\n\t"
                       "ssat   r10, #8, r10\n\t"
                       "strb   r10, [%[o]], #1\n\t"
                       "subs   %[n], %[n], #1\n\t"
                       "bne    1b\n\t"
                       : [a] "=&r"(a), [t] "=&r"(t), [acc] "+r"(acc), [rq] "+r"(rq), [o] "+r"(o),
                         [n] "+r"(count)
                       : [kmin] "r"(kmin)
                       : "r8", "r9", "r10", "r11", "cc", "memory");
        return;
    }
#endif
    for (int i = 0; i < n; ++i, rq += 4) {
        const int32_t a = acc[i];
        const int64_t t = (int64_t)a * rq[0] + (int64_t)(((uint64_t)(uint32_t)rq[2] << 32) | (uint32_t)rq[1]) +
                          (a < 0 ? (int64_t)INT32_MIN : 0);
        o[i] = clamp8((int32_t)(t >> 32) >> rq[3], lo, hi);
    }
}

/** All output channels of one position from its expanded patch @p x (k2 words). */
static void conv_position(const se_conv_params_t *p, const uint32_t *x, int k2, int32_t *acc, int8_t *o)
{
    const uint32_t *w = p->weights;
    const int32_t *bias = p->bias;
    const int out_c = p->out_c;
    const int groups = out_c >> 2;
    for (int g = 0; g < groups; ++g) {
        w = dot_g4(x, w, k2, bias, acc); /* returns the next group's weights */
        bias += 4;
        acc += 4;
    }
    int c = groups << 2;
    bias = p->bias;
    acc -= c;
    if (out_c - c >= 2) {
        dot_g2(x, w, k2, bias + c, acc + c);
        w += 2 * k2;
        c += 2;
    }
    if (c < out_c) {
        dot_g1(x, w, k2, bias + c, acc + c);
    }
    requant_row(p, acc, o);
}

static void op_conv(const se_conv_params_t *p, uint8_t *arena)
{
    const int8_t *in = (const int8_t *)(arena + p->in);
    int8_t *out = (int8_t *)(arena + p->out);
    uint32_t *even = (uint32_t *)(void *)(arena + p->scratch);
    uint32_t *odd = even + p->odd_words; /* patches starting on an odd element */
    int32_t *acc = (int32_t *)(void *)(even + p->acc_words);
    const int k2 = ((p->kernel * p->in_c + 3) >> 2) << 1; /* words per patch, even */
    const int step = p->stride * p->in_c; /* elements between consecutive patches */
    for (int p0 = 0; p0 < p->out_w; p0 += p->chunk) {
        const int m = (p->out_w - p0) < p->chunk ? (p->out_w - p0) : p->chunk;
        const int r0 = p0 * p->stride - p->pad;
        const int nrows = (m - 1) * p->stride + p->kernel;
        expand_rows(in, p->in_w, p->in_c, r0, nrows, p->in_zp, 0, even);
        if (step & 1) {
            expand_rows(in, p->in_w, p->in_c, r0, nrows, p->in_zp, 1, odd);
        }
        for (int i = 0; i < m; ++i) {
            const int e = i * step;
            const uint32_t *x = (e & 1) ? odd + (e >> 1) : even + (e >> 1);
            conv_position(p, x, k2, acc, out + (ptrdiff_t)(p0 + i) * p->out_c);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * DEPTHWISE_CONV_2D (1-D), reference order: only taps inside the input are accumulated
 * ------------------------------------------------------------------------------------- */

static void op_dwconv(const se_dwconv_params_t *p, uint8_t *arena)
{
    const int8_t *in = (const int8_t *)(arena + p->in);
    int8_t *out = (int8_t *)(arena + p->out);
    for (int ox = 0; ox < p->out_w; ++ox) {
        const int x0 = ox * p->stride - p->pad;
        const int k_lo = x0 < 0 ? -x0 : 0;
        const int k_hi = (p->in_w - x0) < p->kernel ? (p->in_w - x0) : p->kernel;
        int8_t *o = out + (ptrdiff_t)ox * p->out_c;
        for (int oc = 0; oc < p->out_c; ++oc) {
            const int ic = oc / p->depth_mult;
            int32_t acc = p->bias[oc];
            for (int k = k_lo; k < k_hi; ++k) {
                const int32_t xv = in[(ptrdiff_t)(x0 + k) * p->in_c + ic] + p->in_offset;
                acc = wadd(acc, xv * p->weights[k * p->out_c + oc]);
            }
            o[oc] = clamp8(mbqm(acc, p->mult[oc], p->shift[oc]) + p->out_zp, p->act_min, p->act_max);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * MAX_POOL_2D / AVERAGE_POOL_2D (1-D windows)
 * ------------------------------------------------------------------------------------- */

static void op_pool(const se_pool_params_t *p, uint8_t *arena, int is_max)
{
    const int8_t *in = (const int8_t *)(arena + p->in);
    int8_t *out = (int8_t *)(arena + p->out);
    const int C = p->c, in_w = p->in_w, kernel = p->kernel;
    const int32_t lo = p->act_min, hi = p->act_max;
    for (int ox = 0; ox < p->out_w; ++ox) {
        const int x0 = ox * p->stride - p->pad;
        const int k_lo = x0 < 0 ? -x0 : 0;
        const int k_hi = (in_w - x0) < kernel ? (in_w - x0) : kernel;
        const int count = k_hi - k_lo;
        const int8_t *row = in + (ptrdiff_t)(x0 + k_lo) * C;
        int8_t *o = out + (ptrdiff_t)ox * C;
#if SE_USE_DSP
        if (is_max && count > 0 && (C & 3) == 0) {
            /* four channels per word: SSUB8 sets the GE flags, SEL picks the larger bytes */
            const uint32_t lo4 = 0x01010101u * (uint8_t)(int8_t)lo;
            const uint32_t hi4 = 0x01010101u * (uint8_t)(int8_t)hi;
            const int clamp = lo != -128 || hi != 127;
            const int8_t *row1 = row + C;
            for (int c = 0; c < C; c += 4) {
                uint32_t m;
                memcpy(&m, row + c, 4);
                if (count == 2) { /* the common pool_size 2 without a loop */
                    uint32_t v;
                    memcpy(&v, row1 + c, 4);
                    (void)__ssub8((int8x4_t)v, (int8x4_t)m);
                    m = (uint32_t)__sel((uint8x4_t)v, (uint8x4_t)m);
                } else {
                    for (int k = 1; k < count; ++k) {
                        uint32_t v;
                        memcpy(&v, row + (ptrdiff_t)k * C + c, 4);
                        (void)__ssub8((int8x4_t)v, (int8x4_t)m);
                        m = (uint32_t)__sel((uint8x4_t)v, (uint8x4_t)m);
                    }
                }
                if (clamp) {
                    (void)__ssub8((int8x4_t)m, (int8x4_t)lo4);
                    m = (uint32_t)__sel((uint8x4_t)m, (uint8x4_t)lo4);
                    (void)__ssub8((int8x4_t)hi4, (int8x4_t)m);
                    m = (uint32_t)__sel((uint8x4_t)m, (uint8x4_t)hi4);
                }
                memcpy(o + c, &m, 4);
            }
            continue;
        }
#endif
        if (is_max) {
            for (int c = 0; c < C; ++c) {
                int32_t v = INT8_MIN;
                const int8_t *src = row + c;
                for (int k = 0; k < count; ++k, src += C) {
                    v = *src > v ? *src : v;
                }
                o[c] = clamp8(v, lo, hi);
            }
        } else {
            for (int c = 0; c < C; ++c) {
                int32_t acc = 0;
                const int8_t *src = row + c;
                for (int k = 0; k < count; ++k, src += C) {
                    acc += *src;
                }
                /* TFLM: round half away from zero; C division truncates like C++ */
                const int32_t v = count == 0 ? 0
                                             : (acc > 0 ? (acc + count / 2) / count
                                                        : (acc - count / 2) / count);
                o[c] = clamp8(v, lo, hi);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * ADD (int8, same shapes)
 * ------------------------------------------------------------------------------------- */

static void op_add(const se_add_params_t *p, uint8_t *arena)
{
    const int8_t *a = (const int8_t *)(arena + p->in1);
    const int8_t *b = (const int8_t *)(arena + p->in2);
    int8_t *out = (int8_t *)(arena + p->out);
    for (uint32_t i = 0; i < p->n; ++i) {
        const int32_t s1 = (int32_t)((uint32_t)(p->in1_offset + a[i]) << p->left_shift);
        const int32_t s2 = (int32_t)((uint32_t)(p->in2_offset + b[i]) << p->left_shift);
        const int32_t raw = wadd(mbqm(s1, p->in1_mult, p->in1_shift), mbqm(s2, p->in2_mult, p->in2_shift));
        out[i] = clamp8(mbqm(raw, p->out_mult, p->out_shift) + p->out_offset, p->act_min, p->act_max);
    }
}

/* ---------------------------------------------------------------------------------------
 * SOFTMAX (int8 -> int8), gemmlowp fixed-point exp and reciprocal
 * ------------------------------------------------------------------------------------- */

/** exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series around -1/8). */
static int32_t exp_quarter(int32_t a)
{
    const int32_t exp_m1_8 = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = wadd(a, 1 << 28);
    const int32_t x2 = srdhm(x, x);
    const int32_t x3 = srdhm(x2, x);
    const int32_t x4 = srdhm(x2, x2);
    const int32_t x4_over_4 = rdbpot(x4, 2);
    const int32_t poly = rdbpot(wadd(srdhm(wadd(x4_over_4, x3), one_third), x2), 1);
    return wadd(exp_m1_8, srdhm(exp_m1_8, wadd(x, poly)));
}

/** exp(a) for a <= 0 given in Q5.26; result Q0.31. */
static int32_t exp_negative(int32_t a)
{
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                                      39332535,   720401,     242};
    const int32_t quarter = 1 << 24;
    const int32_t a_mod = wadd(a & (quarter - 1), -quarter);
    int32_t result = exp_quarter(sat_shl(a_mod, 5));
    const int32_t remainder = wadd(a_mod, -a);
    for (int i = 0; i < 7; ++i) { /* exponents -2 .. 4 */
        if (remainder & (int32_t)(1u << (24 + i))) {
            result = srdhm(result, barrel[i]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/** 1 / (1 + a) for a in [0, 1), Q0.31 in and out (Newton-Raphson). */
static int32_t one_over_one_plus(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = wadd(1515870810, srdhm(half_den, -1010580540)); /* 48/17 - 32/17 * d, Q2.29 */
    for (int i = 0; i < 3; ++i) {
        const int32_t one_minus = wadd(1 << 29, -srdhm(half_den, x));
        x = wadd(x, sat_shl(srdhm(x, one_minus), 2));
    }
    return sat_shl(x, 1);
}

static void op_softmax(const se_softmax_params_t *p, uint8_t *arena)
{
    const int8_t *in = (const int8_t *)(arena + p->in);
    int8_t *out = (int8_t *)(arena + p->out);
    for (int r = 0; r < p->rows; ++r) {
        const int8_t *x = in + (ptrdiff_t)r * p->depth;
        int8_t *o = out + (ptrdiff_t)r * p->depth;
        int32_t max_v = INT8_MIN;
        for (int c = 0; c < p->depth; ++c) {
            max_v = x[c] > max_v ? x[c] : max_v;
        }
        int32_t sum = 0; /* Q12.19 */
        for (int c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max_v;
            if (diff >= p->diff_min) {
                const int32_t scaled = srdhm((int32_t)((uint32_t)diff << p->in_left_shift), p->in_mult);
                sum = wadd(sum, rdbpot(exp_negative(scaled), 12));
            }
        }
        const int headroom = __builtin_clz((uint32_t)sum);
        const int bits_over_unit = 12 - headroom;
        const int32_t scale =
            one_over_one_plus((int32_t)(((uint32_t)sum << headroom) - (1u << 31)));
        const int exponent = bits_over_unit + 31 - 8;
        for (int c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max_v;
            if (diff >= p->diff_min) {
                const int32_t scaled = srdhm((int32_t)((uint32_t)diff << p->in_left_shift), p->in_mult);
                const int32_t v = rdbpot(srdhm(scale, exp_negative(scaled)), exponent);
                o[c] = clamp8(v - 128, -128, 127);
            } else {
                o[c] = INT8_MIN;
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Runner
 * ------------------------------------------------------------------------------------- */

int se_engine_run(const se_plan_t *plan, void *arena, size_t arena_bytes, const int8_t *input,
                  int8_t *output)
{
    if (plan == NULL || arena == NULL || input == NULL || output == NULL) {
        return SE_ENGINE_EARG;
    }
    if (arena_bytes < plan->arena_bytes || ((uintptr_t)arena & 7u) != 0) {
        return SE_ENGINE_EARENA;
    }
    uint8_t *a = (uint8_t *)arena;
    memcpy(a + plan->input, input, plan->input_bytes);
    for (uint16_t i = 0; i < plan->n_ops; ++i) {
        const se_op_t *op = &plan->ops[i];
        switch (op->kind) {
        case SE_OP_CONV:
            op_conv(&op->u.conv, a);
            break;
        case SE_OP_DWCONV:
            op_dwconv(&op->u.dw, a);
            break;
        case SE_OP_MAXPOOL:
            op_pool(&op->u.pool, a, 1);
            break;
        case SE_OP_AVGPOOL:
            op_pool(&op->u.pool, a, 0);
            break;
        case SE_OP_ADD:
            op_add(&op->u.add, a);
            break;
        case SE_OP_SOFTMAX:
            op_softmax(&op->u.softmax, a);
            break;
        default:
            return SE_ENGINE_EOP;
        }
#ifdef SE_ENGINE_PROFILE
        se_engine_op_done(i);
#endif
    }
    memcpy(output, a + plan->output, plan->output_bytes);
    return SE_ENGINE_OK;
}

/* Signal-quality gate: see se_quality.h and docs/signal-quality.md. */
#include "se_quality.h"

#include <string.h>

void se_quality_reset(se_quality_t *q)
{
    memset(q, 0, sizeof *q);
}

void se_quality_push(se_quality_t *q, int16_t x)
{
    /* 32 x 32 -> 64-bit products (one SMULL on a Cortex-M4): |x| <= 2^15, |d2| <= 2^17. */
    const int32_t v = x;
    q->sum += v;
    q->sumsq += (uint64_t)((int64_t)v * v);
    if (q->n >= 2u) {
        const int32_t d2 = v - 2 * (int32_t)q->prev1 + (int32_t)q->prev2;
        q->d2sq += (uint64_t)((int64_t)d2 * d2);
    }
    if (q->n == 0u || x < q->min) {
        q->min = x;
        q->n_min = 0;
    }
    if (q->n == 0u || x > q->max) {
        q->max = x;
        q->n_max = 0;
    }
    q->n_min += (x == q->min) ? 1u : 0u;
    q->n_max += (x == q->max) ? 1u : 0u;
    q->n_rail += (x == INT16_MIN || x == INT16_MAX) ? 1u : 0u;
    q->prev2 = q->prev1;
    q->prev1 = x;
    q->n++;
}

uint8_t se_quality_verdict(const se_quality_t *q)
{
    if (q->n < 3u) {
        return SE_QUALITY_OK; /* nothing to judge; incomplete epochs are reported as such */
    }
    const uint64_t n = q->n;
    /* n^2 * variance, exact: n * sum(x^2) - (sum x)^2 >= 0 (Cauchy-Schwarz). With n <= 3000 and
     * |x| <= 32768 every product below stays under 2^63. */
    const uint64_t sum_abs = (uint64_t)(q->sum < 0 ? -q->sum : q->sum);
    const uint64_t var_n2 = n * q->sumsq - sum_abs * sum_abs;
    const uint64_t n2 = n * n;
    if (q->n_rail >= SE_QUALITY_CLIP_MIN_SAMPLES) {
        return SE_QUALITY_CLIPPED;
    }
    if (var_n2 < (uint64_t)SE_QUALITY_FLAT_VAR_LSB2 * n2) {
        return SE_QUALITY_FLAT;
    }
    if (q->n_min + q->n_max >= SE_QUALITY_CLIP_MIN_SAMPLES) {
        return SE_QUALITY_CLIPPED;
    }
    if (var_n2 > (uint64_t)SE_QUALITY_MAX_VAR_LSB2 * n2) {
        return SE_QUALITY_AMPLITUDE;
    }
    /* mean(d2^2) > ratio * variance  <=>  d2sq * n > ratio * var_n2 */
    if (q->d2sq * n > (uint64_t)SE_QUALITY_MAINS_RATIO * var_n2) {
        return SE_QUALITY_MAINS;
    }
    return SE_QUALITY_OK;
}

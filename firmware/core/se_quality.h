/**
 * @file se_quality.h
 * @brief Signal-quality gate: one verdict per 30-s epoch from the raw int16 transport samples.
 *
 * Integer arithmetic only, so the host reference (host_tools/data/quality.py) agrees bit for
 * bit. Samples are pushed one by one as blocks arrive (no epoch buffer); se_quality_verdict()
 * classifies what was pushed since se_quality_reset(). Thresholds (SE_QUALITY_*) come from
 * host_tools/constants.py through the generated header; their derivation from the real
 * Sleep-EDF statistics is in docs/signal-quality.md.
 *
 * Order of the checks (the first that fires wins):
 *   1. clipped: >= SE_QUALITY_CLIP_MIN_SAMPLES samples on the int16 rails (saturated transport)
 *   2. flat:    variance < SE_QUALITY_FLAT_VAR_LSB2 (detached electrode, constant signal)
 *   3. clipped: >= SE_QUALITY_CLIP_MIN_SAMPLES samples equal to the epoch's minimum or maximum
 *   4. amplitude: variance > SE_QUALITY_MAX_VAR_LSB2
 *   5. mains:   mean squared second difference > SE_QUALITY_MAINS_RATIO x variance
 *               (50 Hz sits at Nyquist, 60 Hz aliases to 40 Hz: both near the gain peak of
 *               x[i] - 2 x[i-1] + x[i-2])
 */
#ifndef SE_QUALITY_H
#define SE_QUALITY_H

#include <stdint.h>

#include "sleepedge_constants.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Running sums over one epoch (all exact integers). */
typedef struct {
    uint32_t n;        /**< samples pushed */
    int64_t sum;       /**< sum of x */
    uint64_t sumsq;    /**< sum of x^2 */
    uint64_t d2sq;     /**< sum of (x[i] - 2 x[i-1] + x[i-2])^2, i >= 2 within the epoch */
    int16_t prev1;     /**< x[i-1] */
    int16_t prev2;     /**< x[i-2] */
    int16_t min;
    int16_t max;
    uint32_t n_min;    /**< samples equal to the running minimum */
    uint32_t n_max;    /**< samples equal to the running maximum */
    uint32_t n_rail;   /**< samples at -32768 or 32767 */
} se_quality_t;

/** Start a new epoch. */
void se_quality_reset(se_quality_t *q);

/** Add one raw transport sample (0.25 uV per step). */
void se_quality_push(se_quality_t *q, int16_t x);

/** Verdict (SE_QUALITY_OK, _FLAT, _CLIPPED, _AMPLITUDE, _MAINS) of the samples pushed so far. */
uint8_t se_quality_verdict(const se_quality_t *q);

#ifdef __cplusplus
}
#endif

#endif /* SE_QUALITY_H */

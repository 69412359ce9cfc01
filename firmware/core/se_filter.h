/**
 * @file se_filter.h
 * @brief Causal Butterworth band-pass: float32 biquads, Direct Form II transposed.
 *
 * Bit-exact with host_tools.filters.filter_causal (scipy.signal.sosfilt in float32) when compiled
 * with -ffp-contract=off: each section computes, in this order,
 *     y = b0*x + z0;  z0 = (b1*x - a1*y) + z1;  z1 = b2*x - a2*y;
 * with the coefficients of SE_FILTER_SOS.
 */
#ifndef SE_FILTER_H
#define SE_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "sleepedge_constants.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Filter state: two delay elements per second-order section. */
typedef struct {
    float z[SE_FILTER_SECTIONS][2];
} se_filter_t;

/** Put the filter at rest (all state zero), as at the start of a recording. */
void se_filter_reset(se_filter_t *f);

/** Filter one sample. */
float se_filter_step(se_filter_t *f, float x);

/**
 * Convert int16 device samples to microvolts ((float)q * SE_SAMPLE_UV_PER_LSB) and filter them.
 * @param q  n raw samples at SE_SAMPLE_UV_PER_LSB microvolts per step.
 * @param y  n filtered microvolts (may not alias q).
 */
void se_filter_samples(se_filter_t *f, const int16_t *q, float *y, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* SE_FILTER_H */

/* Causal Butterworth band-pass, float32 DF2T biquads (see se_filter.h for the exact op order). */
#include "se_filter.h"

/* {b0, b1, b2, a1, a2} per section, generated from host_tools.filters.design_sos(). */
static const float k_sos[SE_FILTER_SECTIONS][5] = SE_FILTER_SOS;

void se_filter_reset(se_filter_t *f)
{
    for (int s = 0; s < SE_FILTER_SECTIONS; ++s) {
        f->z[s][0] = 0.0f;
        f->z[s][1] = 0.0f;
    }
}

float se_filter_step(se_filter_t *f, float x)
{
    float v = x;
    for (int s = 0; s < SE_FILTER_SECTIONS; ++s) {
        const float *c = k_sos[s];
        float *z = f->z[s];
        /* Same operation order as scipy.signal.sosfilt; -ffp-contract=off keeps it unfused so
         * the result is bit-exact with the host. */
        const float y = c[0] * v + z[0];
        z[0] = (c[1] * v - c[3] * y) + z[1];
        z[1] = c[2] * v - c[4] * y;
        v = y;
    }
    return v;
}

void se_filter_samples(se_filter_t *f, const int16_t *q, float *y, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        y[i] = se_filter_step(f, (float)q[i] * SE_SAMPLE_UV_PER_LSB);
    }
}

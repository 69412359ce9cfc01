/* Unit tests: the float32 DF2T band-pass (bit-exactness with the host is tested from Python). */
#include <math.h>

#include "se_filter.h"
#include "test_util.h"

static const float k_sos[SE_FILTER_SECTIONS][5] = SE_FILTER_SOS;

/* Same cascade in double precision: the float32 filter must track it closely. */
static double ref_state[SE_FILTER_SECTIONS][2];
static double ref_step(double x)
{
    for (int s = 0; s < SE_FILTER_SECTIONS; ++s) {
        const float *c = k_sos[s];
        const double y = c[0] * x + ref_state[s][0];
        ref_state[s][0] = c[1] * x - c[3] * y + ref_state[s][1];
        ref_state[s][1] = c[2] * x - c[4] * y;
        x = y;
    }
    return x;
}

static void test_tracks_double_precision(void)
{
    se_filter_t f;
    se_filter_reset(&f);
    memset(ref_state, 0, sizeof ref_state);
    double max_err = 0.0, max_ref = 0.0;
    uint32_t r = 1;
    for (int n = 0; n < 100 * 600; ++n) { /* 10 minutes */
        r = r * 1664525u + 1013904223u;
        const float x = (float)((int32_t)(r >> 16) % 400) + 50.0f * sinf(0.06f * (float)n);
        const double yr = ref_step(x);
        const double err = fabs((double)se_filter_step(&f, x) - yr);
        max_err = err > max_err ? err : max_err;
        max_ref = fabs(yr) > max_ref ? fabs(yr) : max_ref;
    }
    CHECK(max_ref > 10.0);
    CHECK(max_err < 1e-3 * max_ref);
}

static double gain_at(double hz)
{
    se_filter_t f;
    se_filter_reset(&f);
    double peak = 0.0;
    for (int n = 0; n < 100 * 120; ++n) {
        const float y = se_filter_step(&f, (float)sin(2.0 * 3.14159265358979 * hz * n / SE_FS_HZ));
        if (n > 100 * 100) { /* after the transient */
            peak = fabs(y) > peak ? fabs(y) : peak;
        }
    }
    return peak;
}

static void test_band_pass_response(void)
{
    CHECK(gain_at(2.0) > 0.9 && gain_at(2.0) < 1.1);   /* delta band passes */
    CHECK(gain_at(10.0) > 0.9 && gain_at(10.0) < 1.1); /* alpha passes */
    CHECK(gain_at(0.02) < 0.05);                       /* drift removed */
    CHECK(gain_at(45.0) < 0.1);                        /* near Nyquist removed */
}

static void test_samples_equal_steps_and_reset(void)
{
    int16_t q[777];
    float y[777];
    for (int i = 0; i < 777; ++i) {
        q[i] = (int16_t)((i * 2654435761u) >> 20) - 2048;
    }
    se_filter_t a, b;
    se_filter_reset(&a);
    se_filter_reset(&b);
    /* Block-wise conversion + filtering equals the per-sample step on q * 0.25 uV. */
    se_filter_samples(&a, q, y, 300);
    se_filter_samples(&a, q + 300, y + 300, 477);
    int same = 1;
    for (int i = 0; i < 777; ++i) {
        same &= se_filter_step(&b, (float)q[i] * SE_SAMPLE_UV_PER_LSB) == y[i];
    }
    CHECK(same);
    /* After a reset the filter reproduces the output from rest exactly. */
    float y2[777];
    se_filter_reset(&a);
    se_filter_samples(&a, q, y2, 777);
    CHECK(memcmp(y, y2, sizeof y) == 0);
    /* Zero in, zero out from rest. */
    se_filter_reset(&a);
    CHECK(se_filter_step(&a, 0.0f) == 0.0f);
    /* A step is not passed at DC: the output decays back toward zero. */
    se_filter_reset(&a);
    float last = 0.0f;
    for (int i = 0; i < 100 * 60; ++i) {
        last = se_filter_step(&a, 100.0f);
    }
    CHECK(fabsf(last) < 1.0f);
}

int main(void)
{
    RUN(test_tracks_double_precision);
    RUN(test_band_pass_response);
    RUN(test_samples_equal_steps_and_reset);
    TEST_MAIN_END();
}

/* Unit tests: the signal-quality gate, one crafted epoch per verdict (bit-exactness with the
 * host reference is tested from Python through quality_tool). */
#include <math.h>

#include "se_quality.h"
#include "test_util.h"

#define N SE_EPOCH_SAMPLES
#define PI 3.14159265358979

static int16_t g_x[N];

/* Deterministic EEG-like epoch: a few sines plus LCG noise, std about sd_lsb transport steps. */
static void eeg(double sd_lsb, int16_t offset)
{
    uint32_t r = 12345u;
    for (int i = 0; i < N; ++i) {
        r = r * 1664525u + 1013904223u;
        const double noise = ((double)(r >> 16) / 65536.0 - 0.5) * 0.6;
        const double v = sin(2 * PI * 1.3 * i / 100.0) + 0.6 * sin(2 * PI * 0.7 * i / 100.0 + 1.0)
                         + 0.4 * sin(2 * PI * 9.5 * i / 100.0) + noise;
        g_x[i] = (int16_t)lround(offset + sd_lsb * v);
    }
}

static uint8_t verdict(void)
{
    se_quality_t q;
    se_quality_reset(&q);
    for (int i = 0; i < N; ++i) {
        se_quality_push(&q, g_x[i]);
    }
    return se_quality_verdict(&q);
}

static void test_eeg_is_ok(void)
{
    eeg(4 * 15.0, 0); /* ~15 uV: a typical N2 epoch */
    CHECK_EQ(verdict(), SE_QUALITY_OK);
    eeg(4 * 5.0, -3000); /* quiet (below every real 10th percentile) with an electrode offset */
    CHECK_EQ(verdict(), SE_QUALITY_OK);
    eeg(4 * 120.0, 0); /* large but plausible (movement-heavy wake) */
    CHECK_EQ(verdict(), SE_QUALITY_OK);
}

static void test_flat(void)
{
    for (int i = 0; i < N; ++i) {
        g_x[i] = 1234;
    }
    CHECK_EQ(verdict(), SE_QUALITY_FLAT);
    for (int i = 0; i < N; ++i) { /* +-1 step of noise: a detached electrode's ADC */
        g_x[i] = (int16_t)(-200 + (i * 7919) % 3 - 1);
    }
    CHECK_EQ(verdict(), SE_QUALITY_FLAT);
    eeg(3.0, 0); /* std about 0.75 uV: just under the 1 uV threshold */
    CHECK_EQ(verdict(), SE_QUALITY_FLAT);
}

static void test_clipped(void)
{
    eeg(4 * 200.0, 0); /* an amplifier saturating at +-100 uV */
    int clipped = 0;
    for (int i = 0; i < N; ++i) {
        if (g_x[i] > 400 || g_x[i] < -400) {
            g_x[i] = g_x[i] > 0 ? 400 : -400;
            clipped++;
        }
    }
    CHECK(clipped > 1000);
    CHECK_EQ(verdict(), SE_QUALITY_CLIPPED);
    /* transport saturation: a constant epoch on a rail is clipped, not flat */
    for (int i = 0; i < N; ++i) {
        g_x[i] = INT16_MAX;
    }
    CHECK_EQ(verdict(), SE_QUALITY_CLIPPED);
    /* exactly the limit on the rails (both rails, so the extremes count the same): 59 is not
     * enough, 60 is */
    eeg(4 * 15.0, 0);
    for (int i = 0; i < (int)SE_QUALITY_CLIP_MIN_SAMPLES - 1; ++i) {
        g_x[10 * i] = (i & 1) ? INT16_MAX : INT16_MIN;
    }
    CHECK(verdict() != SE_QUALITY_CLIPPED);
    g_x[N - 1] = INT16_MIN;
    CHECK_EQ(verdict(), SE_QUALITY_CLIPPED);
}

static void test_amplitude(void)
{
    eeg(4 * 400.0, 0); /* std ~400 uV, unclipped */
    CHECK_EQ(verdict(), SE_QUALITY_AMPLITUDE);
}

static void test_mains(void)
{
    for (int hz = 50; hz <= 60; hz += 10) {
        eeg(4 * 10.0, 0);
        for (int i = 0; i < N; ++i) { /* 60 uV of mains over 10 uV of EEG */
            g_x[i] = (int16_t)(g_x[i] + lround(4 * 60.0 * sin(2 * PI * hz * i / 100.0 + 0.7)));
        }
        CHECK_EQ(verdict(), SE_QUALITY_MAINS);
    }
    eeg(4 * 20.0, 0);
    for (int i = 0; i < N; ++i) { /* a little mains on good EEG is fine (the filter removes it) */
        g_x[i] = (int16_t)(g_x[i] + lround(4 * 5.0 * sin(2 * PI * 50 * i / 100.0 + 0.7)));
    }
    CHECK_EQ(verdict(), SE_QUALITY_OK);
}

static void test_reset_and_short(void)
{
    se_quality_t q;
    se_quality_reset(&q);
    CHECK_EQ(se_quality_verdict(&q), SE_QUALITY_OK); /* nothing pushed */
    for (int i = 0; i < N; ++i) {
        se_quality_push(&q, 7);
    }
    CHECK_EQ(se_quality_verdict(&q), SE_QUALITY_FLAT);
    se_quality_reset(&q);
    CHECK_EQ(q.n, 0);
    CHECK_EQ(q.sumsq, 0);
}

static void test_extremes_no_overflow(void)
{
    for (int i = 0; i < N; ++i) { /* full-scale square wave at Nyquist: every sum at its largest */
        g_x[i] = (i & 1) ? INT16_MAX : INT16_MIN;
    }
    CHECK_EQ(verdict(), SE_QUALITY_CLIPPED);
}

int main(void)
{
    RUN(test_eeg_is_ok);
    RUN(test_flat);
    RUN(test_clipped);
    RUN(test_amplitude);
    RUN(test_mains);
    RUN(test_reset_and_short);
    RUN(test_extremes_no_overflow);
    TEST_MAIN_END();
}

/* Unit tests: causal running normalization (se_norm). Bit-exactness with the host reference
 * (host_tools/data/normalize.py) is tested from Python through norm_tool. */
#include <stdlib.h>

#include "se_norm.h"
#include "test_util.h"

#define N SE_EPOCH_SAMPLES

static int16_t g_x[N];

static int cmp_i32(const void *a, const void *b)
{
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Brute force: sort a copy, take element n/2, twice. */
static uint16_t amplitude_by_sort(const int16_t *q, size_t n)
{
    static int32_t v[N];
    for (size_t i = 0; i < n; ++i) {
        v[i] = q[i];
    }
    qsort(v, n, sizeof v[0], cmp_i32);
    const int32_t med = v[n / 2];
    for (size_t i = 0; i < n; ++i) {
        v[i] = abs((int32_t)q[i] - med);
    }
    qsort(v, n, sizeof v[0], cmp_i32);
    return (uint16_t)v[n / 2];
}

static uint32_t g_lcg = 1u;
static int32_t rnd(int32_t lo, int32_t hi) /* uniform-ish in [lo, hi] */
{
    g_lcg = g_lcg * 1664525u + 1013904223u;
    return lo + (int32_t)((g_lcg >> 8) % (uint32_t)(hi - lo + 1));
}

static void test_amplitude_matches_sorting(void)
{
    static const int32_t spans[] = {0, 1, 7, 300, 4000, 32767};
    for (size_t s = 0; s < sizeof spans / sizeof spans[0]; ++s) {
        for (int rep = 0; rep < 3; ++rep) {
            const int32_t c = rnd(-20000, 20000);
            for (int i = 0; i < N; ++i) {
                int32_t v = c + rnd(-spans[s], spans[s]);
                g_x[i] = (int16_t)(v < -32768 ? -32768 : v > 32767 ? 32767 : v);
            }
            CHECK_EQ(se_norm_epoch_amplitude(g_x, N), amplitude_by_sort(g_x, N));
        }
    }
    /* odd and tiny lengths */
    CHECK_EQ(se_norm_epoch_amplitude(g_x, 1), 0);
    CHECK_EQ(se_norm_epoch_amplitude(g_x, 2), amplitude_by_sort(g_x, 2));
    CHECK_EQ(se_norm_epoch_amplitude(g_x, 2999), amplitude_by_sort(g_x, 2999));
    CHECK_EQ(se_norm_epoch_amplitude(g_x, 0), 0);
}

static void test_amplitude_extremes(void)
{
    for (int i = 0; i < N; ++i) { /* rails: the median is a rail, the deviation 65535 */
        g_x[i] = (i % 3 == 0) ? INT16_MIN : INT16_MAX;
    }
    CHECK_EQ(se_norm_epoch_amplitude(g_x, N), 0); /* 2/3 at +max: upper median deviation 0 */
    for (int i = 0; i < N; ++i) {
        g_x[i] = (i < N / 2 - 1) ? INT16_MIN : INT16_MAX;
    }
    CHECK_EQ(se_norm_epoch_amplitude(g_x, N), amplitude_by_sort(g_x, N));
    for (int i = 0; i < N; ++i) { /* more than half at -max, median = -32768 */
        g_x[i] = (i <= N / 2) ? INT16_MIN : INT16_MAX;
    }
    CHECK_EQ(se_norm_epoch_amplitude(g_x, N), 0);
    for (int i = 0; i < N; ++i) {
        g_x[i] = (i < N / 2 + 2) ? INT16_MAX : INT16_MIN;
    }
    CHECK_EQ(se_norm_epoch_amplitude(g_x, N), 0);
    for (int i = 0; i < N; ++i) {
        g_x[i] = 1234; /* flat */
    }
    CHECK_EQ(se_norm_epoch_amplitude(g_x, N), 0);
}

static void fill_amp(int32_t half_range)
{
    /* Uniform on [-h, h] by a stride: |x| has upper median ~ h/2. */
    for (int i = 0; i < N; ++i) {
        g_x[i] = (int16_t)(((i * 7919) % (2 * half_range + 1)) - half_range);
    }
}

static void test_ring_median_window_and_floor(void)
{
    se_norm_t s;
    se_norm_reset(&s);
    CHECK_EQ(se_norm_scale(&s), SE_NORM_FLOOR_LSB); /* empty: the floor */
    for (int i = 0; i < N; ++i) {
        g_x[i] = 0;
    }
    CHECK_EQ(se_norm_update(&s, g_x), SE_NORM_FLOOR_LSB); /* flat start: floored */
    fill_amp(200);
    const uint16_t a200 = se_norm_epoch_amplitude(g_x, N);
    CHECK_EQ(se_norm_update(&s, g_x), a200); /* {0, a}: upper median = a */
    fill_amp(50);
    const uint16_t a50 = se_norm_epoch_amplitude(g_x, N);
    CHECK_EQ(se_norm_update(&s, g_x), a50); /* {0, a50, a200} */
    /* Fill the window with a200 epochs: the old ones drop out after SE_NORM_WINDOW_EPOCHS. */
    fill_amp(200);
    uint16_t sc = 0;
    for (int k = 0; k < SE_NORM_WINDOW_EPOCHS; ++k) {
        sc = se_norm_update(&s, g_x);
    }
    CHECK_EQ(sc, a200);
    CHECK_EQ(s.n, SE_NORM_WINDOW_EPOCHS);
    fill_amp(1000);
    const uint16_t a1000 = se_norm_epoch_amplitude(g_x, N);
    for (int k = 0; k < SE_NORM_WINDOW_EPOCHS / 2 - 1; ++k) {
        sc = se_norm_update(&s, g_x);
    }
    CHECK_EQ(sc, a200); /* 29 of 60 large: the median is still the old level */
    sc = se_norm_update(&s, g_x);
    CHECK_EQ(sc, a1000); /* 30 of 60: the upper median moves */
}

static void test_gain(void)
{
    /* The gain maps the target MAD to the target in uV: h(S) * S == target * 0.25 (to 1 ulp). */
    CHECK(se_norm_gain(0) == se_norm_gain(SE_NORM_FLOOR_LSB));
    const float g = se_norm_gain(40);
    CHECK(g == SE_NORM_TARGET_MAD_LSB / 40.0f * 0.25f);
    CHECK(se_norm_gain(20) > se_norm_gain(40));
    CHECK(se_norm_gain(65535) > 0.0f);
}

int main(void)
{
    RUN(test_amplitude_matches_sorting);
    RUN(test_amplitude_extremes);
    RUN(test_ring_median_window_and_floor);
    RUN(test_gain);
    TEST_MAIN_END();
}

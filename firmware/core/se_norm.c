/* Causal running input normalization: see se_norm.h and docs/training.md. */
#include "se_norm.h"

#include <string.h>

/* The k-th smallest (0-based) of key(x_i), keys in 0..65535, by two passes of a 256-bin
 * histogram (high byte, then low byte within the chosen high byte): O(n), no copy of x. */
#define SELECT_OFFSET 0 /* key = |x - center| */
#define SELECT_SIGNED 1 /* key = x + 32768 (order-preserving for int16) */

static uint16_t key_of(int16_t x, int mode, int32_t center)
{
    if (mode == SELECT_SIGNED) {
        return (uint16_t)((int32_t)x + 32768);
    }
    const int32_t d = (int32_t)x - center;
    return (uint16_t)(d < 0 ? -d : d);
}

static uint16_t select_kth(const int16_t *x, size_t n, size_t k, int mode, int32_t center)
{
    uint16_t hist[256];
    uint32_t high = 0;
    for (int pass = 0; pass < 2; ++pass) {
        memset(hist, 0, sizeof hist);
        for (size_t i = 0; i < n; ++i) {
            const uint16_t key = key_of(x[i], mode, center);
            if (pass == 0) {
                hist[key >> 8]++;
            } else if ((uint32_t)(key >> 8) == high) {
                hist[key & 0xFFu]++;
            }
        }
        uint32_t bin = 0;
        while (k >= hist[bin]) { /* terminates: k < the count left in this pass */
            k -= hist[bin];
            bin++;
        }
        if (pass == 0) {
            high = bin;
        } else {
            return (uint16_t)((high << 8) | bin);
        }
    }
    return 0; /* unreachable */
}

void se_norm_reset(se_norm_t *s)
{
    memset(s, 0, sizeof *s);
}

uint16_t se_norm_epoch_amplitude(const int16_t *q, size_t n)
{
    if (n == 0u || n > 65535u) {
        return 0;
    }
    const int32_t med = (int32_t)select_kth(q, n, n / 2u, SELECT_SIGNED, 0) - 32768;
    return select_kth(q, n, n / 2u, SELECT_OFFSET, med);
}

uint16_t se_norm_scale(const se_norm_t *s)
{
    uint16_t v[SE_NORM_WINDOW_EPOCHS];
    const size_t n = s->n;
    /* Insertion sort of <= 60 values (ring order does not matter for a median). */
    for (size_t i = 0; i < n; ++i) {
        const uint16_t a = s->ring[i];
        size_t j = i;
        while (j > 0u && v[j - 1u] > a) {
            v[j] = v[j - 1u];
            j--;
        }
        v[j] = a;
    }
    const uint16_t med = (n == 0u) ? 0u : v[n / 2u];
    return med < SE_NORM_FLOOR_LSB ? (uint16_t)SE_NORM_FLOOR_LSB : med;
}

uint16_t se_norm_update(se_norm_t *s, const int16_t *epoch_q)
{
    s->ring[s->next] = se_norm_epoch_amplitude(epoch_q, SE_EPOCH_SAMPLES);
    s->next = (uint16_t)((s->next + 1u) % SE_NORM_WINDOW_EPOCHS);
    if (s->n < SE_NORM_WINDOW_EPOCHS) {
        s->n++;
    }
    return se_norm_scale(s);
}

float se_norm_gain(uint16_t scale)
{
    const float s = (float)(scale < SE_NORM_FLOOR_LSB ? SE_NORM_FLOOR_LSB : scale);
    return SE_NORM_TARGET_MAD_LSB / s * 0.25f;
}

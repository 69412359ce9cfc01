/**
 * @file se_norm.h
 * @brief Causal running input normalization: the model sees each epoch scaled by a running
 *        amplitude of the recording over its last SE_NORM_WINDOW_EPOCHS classified epochs.
 *
 * Integer where it matters, so the host reference (host_tools/data/normalize.py) agrees bit for
 * bit. From the filtered epoch at 0.25 uV (the app's epoch_q, int16):
 *   - epoch amplitude a = upper-median(|q_i - upper-median(q)|) ("upper median" = element n/2
 *     of the sorted values, 0-based), an exact integer in 0..65535;
 *   - a ring of the last SE_NORM_WINDOW_EPOCHS amplitudes (the current epoch included);
 *   - running scale S = max(upper-median of the ring's n values, SE_NORM_FLOOR_LSB);
 *   - gain h = SE_NORM_TARGET_MAD_LSB / (float)S * 0.25f (float32, this order), so that
 *     (float)q_i * h is "microvolts of a recording whose running MAD is a 15-uV std".
 * No heap, no hardware. Scratch: 512 bytes of stack for the 256-bin histogram of the two-pass
 * radix selection (no copy of the epoch) and 2 * SE_NORM_WINDOW_EPOCHS bytes to sort the ring.
 * See docs/training.md ("Running normalization").
 */
#ifndef SE_NORM_H
#define SE_NORM_H

#include <stddef.h>
#include <stdint.h>

#include "sleepedge_constants.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Ring of the last SE_NORM_WINDOW_EPOCHS epoch amplitudes (MAD in 0.25-uV LSB). */
typedef struct {
    uint16_t ring[SE_NORM_WINDOW_EPOCHS];
    uint16_t n;    /**< amplitudes held (<= SE_NORM_WINDOW_EPOCHS) */
    uint16_t next; /**< slot the next amplitude overwrites */
} se_norm_t;

/** Empty ring (start of a recording). */
void se_norm_reset(se_norm_t *s);

/** Upper median of |q_i - upper median(q)| over n samples (1 <= n <= 65535); 0 if n == 0. */
uint16_t se_norm_epoch_amplitude(const int16_t *q, size_t n);

/** Upper median of the amplitudes held, floored at SE_NORM_FLOOR_LSB (the floor if empty). */
uint16_t se_norm_scale(const se_norm_t *s);

/** Push the amplitude of one classified epoch (SE_EPOCH_SAMPLES samples) and return the
 *  running scale S including it. */
uint16_t se_norm_update(se_norm_t *s, const int16_t *epoch_q);

/** float32 gain SE_NORM_TARGET_MAD_LSB / (float)S * 0.25f applied to the int16 samples. */
float se_norm_gain(uint16_t scale);

#ifdef __cplusplus
}
#endif

#endif /* SE_NORM_H */

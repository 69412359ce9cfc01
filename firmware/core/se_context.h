/**
 * @file se_context.h
 * @brief The night's context on the device: a ring of the edge model's last SE_CONTEXT_EPOCHS
 *        int8 outputs and the input of the context head (host_tools/learn/context.py).
 *
 * The head sees, oldest first and the current epoch last, for each of the last L epochs the
 * dequantized edge probabilities p = (q - zp_o) * s_o (float32) and a "present" flag; an epoch
 * without an edge output (stream start, incomplete, artefact, model error, skipped by a gap) is
 * "absent": zeros and flag 0. Each of the L * 6 values is quantized to the head's int8 input like
 * the edge input (clamp(floor(v * (1/s_in) + 0.5) + zp_in), float32), so the head's input is
 * bit-identical to host_tools.learn.context.quantize_features(history_features(...)).
 * Portable: no heap, no model headers. The head itself runs behind se_model.h
 * (se_model_context_run: the native engine on the exported context plan).
 */
#ifndef SE_CONTEXT_H
#define SE_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sleepedge_constants.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Values per history entry: SE_N_CLASSES probabilities + the present flag. */
#define SE_CONTEXT_FEATURES (SE_N_CLASSES + 1)
/** Bytes of the head's int8 input. */
#define SE_CONTEXT_INPUT_BYTES (SE_CONTEXT_EPOCHS * SE_CONTEXT_FEATURES)

/** Quantization of the edge output (dequantize) and of the head's input. */
typedef struct {
    float edge_out_scale;
    int32_t edge_out_zp;
    float head_in_inv_scale; /**< 1 / head input scale, float32(1.0 / (double)scale) like the host */
    int32_t head_in_zp;
} se_context_quant_t;

/** The ring. Slot (head + k) % L holds epoch next_epoch - L + k (k = 0 oldest). */
typedef struct {
    int8_t probs[SE_CONTEXT_EPOCHS][SE_N_CLASSES];
    uint8_t present[SE_CONTEXT_EPOCHS];
    uint32_t head;       /**< slot of the oldest entry (= the next one overwritten) */
    uint32_t next_epoch; /**< epoch number the next push is expected for */
    bool started;        /**< an epoch has been pushed since the last reset */
} se_context_t;

/** Empty ring: every entry absent. */
void se_context_reset(se_context_t *ctx);

/**
 * Record epoch @p epoch: its raw int8 edge output, or NULL for "absent". Epochs skipped since the
 * last push are recorded absent; an epoch number that goes back (a new stream) resets the ring.
 */
void se_context_push(se_context_t *ctx, uint32_t epoch, const int8_t *probs);

/** The head's int8 input (SE_CONTEXT_INPUT_BYTES values, oldest entry first). */
void se_context_input(const se_context_t *ctx, const se_context_quant_t *q, int8_t *input);

#ifdef __cplusplus
}
#endif

#endif /* SE_CONTEXT_H */

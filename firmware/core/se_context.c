/**
 * @file se_context.c
 * @brief Ring of the last SE_CONTEXT_EPOCHS edge outputs and the context head's input (se_context.h).
 */
#include "se_context.h"

#include "se_quant.h"

#include <string.h>

#define L SE_CONTEXT_EPOCHS

void se_context_reset(se_context_t *ctx)
{
    memset(ctx, 0, sizeof *ctx);
}

/* Overwrite the oldest slot with the newest entry. */
static void put(se_context_t *ctx, const int8_t *probs)
{
    const uint32_t slot = ctx->head;
    if (probs != NULL) {
        memcpy(ctx->probs[slot], probs, SE_N_CLASSES);
        ctx->present[slot] = 1u;
    } else {
        memset(ctx->probs[slot], 0, SE_N_CLASSES);
        ctx->present[slot] = 0u;
    }
    ctx->head = (slot + 1u) % L;
    ctx->next_epoch++;
}

void se_context_push(se_context_t *ctx, uint32_t epoch, const int8_t *probs)
{
    if (ctx->started && epoch < ctx->next_epoch) {
        se_context_reset(ctx); /* the epoch count went back: a new stream */
    }
    if (!ctx->started) {
        ctx->started = true;
        ctx->next_epoch = epoch;
    }
    /* Skipped epochs are absent; more than L of them empty the whole ring. */
    const uint32_t gap = epoch - ctx->next_epoch;
    for (uint32_t k = 0; k < gap && k < L; ++k) {
        put(ctx, NULL);
    }
    ctx->next_epoch = epoch;
    put(ctx, probs);
}

void se_context_input(const se_context_t *ctx, const se_context_quant_t *q, int8_t *input)
{
    for (uint32_t k = 0; k < L; ++k) {
        const uint32_t slot = (ctx->head + k) % L;
        const bool have = ctx->present[slot] != 0u;
        int8_t *row = &input[k * SE_CONTEXT_FEATURES];
        for (uint32_t c = 0; c < SE_N_CLASSES; ++c) {
            const float p = have ? (float)((int32_t)ctx->probs[slot][c] - q->edge_out_zp) * q->edge_out_scale : 0.0f;
            row[c] = se_quantize_f32(p, q->head_in_inv_scale, q->head_in_zp);
        }
        row[SE_N_CLASSES] = se_quantize_f32(have ? 1.0f : 0.0f, q->head_in_inv_scale, q->head_in_zp);
    }
}

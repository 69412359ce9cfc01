/* Unit tests: the context ring and the head's input (se_context). */
#include <math.h>

#include "se_context.h"
#include "test_util.h"

#define F SE_CONTEXT_FEATURES

static const se_context_quant_t Q = {1.0f / 256.0f, -128, 255.0f, -128}; /* head in scale 1/255 */

static void entry(const se_context_t *ctx, int k, int8_t *row)
{
    int8_t in[SE_CONTEXT_INPUT_BYTES];
    se_context_input(ctx, &Q, in);
    memcpy(row, &in[k * F], F);
}

static void probs_of(uint32_t epoch, int8_t *p)
{
    for (int c = 0; c < SE_N_CLASSES; ++c) {
        p[c] = (int8_t)(-128 + (int)((epoch * 37u + (uint32_t)c * 11u) % 256u));
    }
}

/* Epoch e's entry as the host computes it: floor(((q + 128) / 256) * 255 + 0.5) - 128, flag 127. */
static int entry_is(const int8_t *row, uint32_t epoch)
{
    int8_t p[SE_N_CLASSES];
    probs_of(epoch, p);
    int ok = row[SE_N_CLASSES] == 127;
    for (int c = 0; c < SE_N_CLASSES; ++c) {
        const float v = (float)((int32_t)p[c] + 128) * (1.0f / 256.0f);
        float r = floorf(v * 255.0f + 0.5f) - 128.0f;
        r = r > 127.0f ? 127.0f : r;
        ok &= row[c] == (int8_t)r;
    }
    return ok;
}

static int entry_absent(const int8_t *row)
{
    int ok = 1;
    for (int c = 0; c < F; ++c) {
        ok &= row[c] == -128;
    }
    return ok;
}

static void test_empty_ring_is_absent(void)
{
    se_context_t ctx;
    se_context_reset(&ctx);
    int8_t row[F];
    for (int k = 0; k < SE_CONTEXT_EPOCHS; ++k) {
        entry(&ctx, k, row);
        CHECK(entry_absent(row));
    }
}

static void test_oldest_first_current_last(void)
{
    se_context_t ctx;
    se_context_reset(&ctx);
    int8_t p[SE_N_CLASSES], row[F];
    for (uint32_t e = 5; e < 5 + SE_CONTEXT_EPOCHS + 3; ++e) { /* wraps the ring */
        probs_of(e, p);
        se_context_push(&ctx, e, p);
    }
    const uint32_t last = 5 + SE_CONTEXT_EPOCHS + 2;
    for (int k = 0; k < SE_CONTEXT_EPOCHS; ++k) {
        entry(&ctx, k, row);
        CHECK(entry_is(row, last - (uint32_t)(SE_CONTEXT_EPOCHS - 1 - k)));
    }
}

static void test_gaps_and_absent_epochs(void)
{
    se_context_t ctx;
    se_context_reset(&ctx);
    int8_t p[SE_N_CLASSES], row[F];
    probs_of(0, p);
    se_context_push(&ctx, 0, p);
    se_context_push(&ctx, 1, NULL); /* artefact */
    probs_of(4, p);
    se_context_push(&ctx, 4, p);    /* epochs 2, 3 skipped */
    const int n = SE_CONTEXT_EPOCHS;
    entry(&ctx, n - 1, row);
    CHECK(entry_is(row, 4));
    for (int k = n - 4; k < n - 1; ++k) {
        entry(&ctx, k, row);
        CHECK(entry_absent(row));
    }
    entry(&ctx, n - 5, row);
    CHECK(entry_is(row, 0));
    /* a gap longer than the ring empties it */
    probs_of(100, p);
    se_context_push(&ctx, 100, p);
    for (int k = 0; k < n - 1; ++k) {
        entry(&ctx, k, row);
        CHECK(entry_absent(row));
    }
    entry(&ctx, n - 1, row);
    CHECK(entry_is(row, 100));
}

static void test_epoch_going_back_resets(void)
{
    se_context_t ctx;
    se_context_reset(&ctx);
    int8_t p[SE_N_CLASSES], row[F];
    for (uint32_t e = 0; e < 4; ++e) {
        probs_of(e, p);
        se_context_push(&ctx, e, p);
    }
    probs_of(1, p);
    se_context_push(&ctx, 1, p); /* a new stream */
    for (int k = 0; k < SE_CONTEXT_EPOCHS - 1; ++k) {
        entry(&ctx, k, row);
        CHECK(entry_absent(row));
    }
    entry(&ctx, SE_CONTEXT_EPOCHS - 1, row);
    CHECK(entry_is(row, 1));
}

int main(void)
{
    RUN(test_empty_ring_is_absent);
    RUN(test_oldest_first_current_last);
    RUN(test_gaps_and_absent_epochs);
    RUN(test_epoch_going_back_resets);
    printf("%d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}

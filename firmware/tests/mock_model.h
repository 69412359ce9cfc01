/* Mock of se_model.h for host tests: fixed or input-derived outputs, failure injection. */
#ifndef MOCK_MODEL_H
#define MOCK_MODEL_H

#include <stdint.h>

#include "se_model.h"

typedef enum {
    MOCK_FIXED = 0,   /* output g_mock_output */
    MOCK_DERIVED = 1, /* output computed from the input (see mock_model.c), to check the input */
} mock_mode_t;

extern mock_mode_t g_mock_mode;
extern int8_t g_mock_output[SE_N_CLASSES];
extern int g_mock_init_rc;
extern int g_mock_run_rc;
extern uint32_t g_mock_runs;
extern int8_t g_mock_last_input[SE_EPOCH_SAMPLES];

/* Quantization parameters the mock reports (defaults: +-200 uV over int8, softmax output). */
extern float g_mock_in_scale;
extern int32_t g_mock_in_zp;
extern float g_mock_out_scale;
extern int32_t g_mock_out_zp;
/* What se_model_input_norm() reports (default 0: plain input). */
extern int g_mock_input_norm;

/* Context head mock (se_model_has_context etc.): off by default; when on, it records its input
 * and answers g_mock_ctx_output (or fails with g_mock_ctx_rc). */
extern int g_mock_ctx_enabled;
extern int g_mock_ctx_rc;
extern uint32_t g_mock_ctx_runs;
extern int8_t g_mock_ctx_output[SE_N_CLASSES];
extern int8_t g_mock_ctx_last_input[SE_CONTEXT_EPOCHS * (SE_N_CLASSES + 1)];
extern float g_mock_ctx_in_scale;
extern int32_t g_mock_ctx_in_zp;

/** Back to defaults: fixed output {-128, -128, 127, -128, -128}, no failures, counters zeroed. */
void mock_model_reset(void);

/** The MOCK_DERIVED rule, exposed so tests can predict it. */
void mock_model_derive(const int8_t *input, int8_t *output);

#endif

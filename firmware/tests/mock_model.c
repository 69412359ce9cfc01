/* Mock model: implements se_model.h without any network, for the host unit tests and tools. */
#include "mock_model.h"

#include <string.h>

/* Initialised to the same defaults as mock_model_reset(). */
mock_mode_t g_mock_mode = MOCK_FIXED;
int8_t g_mock_output[SE_N_CLASSES] = {-128, -128, 127, -128, -128};
int g_mock_init_rc;
int g_mock_run_rc;
uint32_t g_mock_runs;
int8_t g_mock_last_input[SE_EPOCH_SAMPLES];
float g_mock_in_scale = 200.0f / 127.0f;
int32_t g_mock_in_zp;
float g_mock_out_scale = 1.0f / 256.0f;
int32_t g_mock_out_zp = -128;
int g_mock_input_norm;
int g_mock_ctx_enabled;
int g_mock_ctx_rc;
uint32_t g_mock_ctx_runs;
int8_t g_mock_ctx_output[SE_N_CLASSES] = {-128, 127, -128, -128, -128};
int8_t g_mock_ctx_last_input[SE_CONTEXT_EPOCHS * (SE_N_CLASSES + 1)];
float g_mock_ctx_in_scale = 1.0f / 255.0f;
int32_t g_mock_ctx_in_zp = -128;

void mock_model_reset(void)
{
    static const int8_t fixed[SE_N_CLASSES] = {-128, -128, 127, -128, -128};
    g_mock_mode = MOCK_FIXED;
    memcpy(g_mock_output, fixed, sizeof fixed);
    g_mock_init_rc = 0;
    g_mock_run_rc = 0;
    g_mock_runs = 0;
    memset(g_mock_last_input, 0, sizeof g_mock_last_input);
    g_mock_in_scale = 200.0f / 127.0f;
    g_mock_in_zp = 0;
    g_mock_out_scale = 1.0f / 256.0f;
    g_mock_out_zp = -128;
    g_mock_input_norm = 0;
    static const int8_t ctx_fixed[SE_N_CLASSES] = {-128, 127, -128, -128, -128};
    g_mock_ctx_enabled = 0;
    g_mock_ctx_rc = 0;
    g_mock_ctx_runs = 0;
    memcpy(g_mock_ctx_output, ctx_fixed, sizeof ctx_fixed);
    memset(g_mock_ctx_last_input, 0, sizeof g_mock_ctx_last_input);
    g_mock_ctx_in_scale = 1.0f / 255.0f;
    g_mock_ctx_in_zp = -128;
}

/* stage = (sum |q - zp|) mod 5; that class gets -127 + (sum mod 255), the others -128, so both
 * confident and uncertain epochs occur and the output depends on every input value. */
void mock_model_derive(const int8_t *input, int8_t *output)
{
    uint32_t s = 0;
    for (int i = 0; i < SE_EPOCH_SAMPLES; ++i) {
        const int32_t d = (int32_t)input[i] - g_mock_in_zp;
        s += (uint32_t)(d < 0 ? -d : d);
    }
    for (int c = 0; c < SE_N_CLASSES; ++c) {
        output[c] = -128;
    }
    output[s % SE_N_CLASSES] = (int8_t)(-127 + (int32_t)(s % 255u));
}

int se_model_init(void) { return g_mock_init_rc; }

int se_model_run(const int8_t *input, int8_t *output)
{
    g_mock_runs++;
    memcpy(g_mock_last_input, input, sizeof g_mock_last_input);
    if (g_mock_run_rc != 0) {
        return g_mock_run_rc;
    }
    if (g_mock_mode == MOCK_DERIVED) {
        mock_model_derive(input, output);
    } else {
        memcpy(output, g_mock_output, SE_N_CLASSES);
    }
    return 0;
}

uint32_t se_model_hash(void) { return 0x5EED0001u; }
float se_model_input_scale(void) { return g_mock_in_scale; }
int32_t se_model_input_zero_point(void) { return g_mock_in_zp; }
float se_model_output_scale(void) { return g_mock_out_scale; }
int32_t se_model_output_zero_point(void) { return g_mock_out_zp; }
float se_model_confidence_threshold(void) { return SE_DEFAULT_CONFIDENCE_THRESHOLD; }
int se_model_input_norm(void) { return g_mock_input_norm; }
size_t se_model_arena_bytes(void) { return 0; }

int se_model_has_context(void) { return g_mock_ctx_enabled; }
int se_model_context_run(const int8_t *input, int8_t *output)
{
    g_mock_ctx_runs++;
    memcpy(g_mock_ctx_last_input, input, sizeof g_mock_ctx_last_input);
    if (g_mock_ctx_rc != 0) {
        return g_mock_ctx_rc;
    }
    memcpy(output, g_mock_ctx_output, SE_N_CLASSES);
    return 0;
}
float se_model_context_input_scale(void) { return g_mock_ctx_in_scale; }
int32_t se_model_context_input_zero_point(void) { return g_mock_ctx_in_zp; }
float se_model_context_output_scale(void) { return 1.0f / 256.0f; }
int32_t se_model_context_output_zero_point(void) { return -128; }

/**
 * @file se_model_native.c
 * @brief se_model.h implemented by the native int8 engine (firmware/core/engine).
 *
 * Links against the exported model_data.{c,h} (quantization, hash) and model_plan.{c,h} (the
 * ahead-of-time plan). The tensor arena is one static buffer of SE_PLAN_ARENA_BYTES; nothing is
 * allocated at run time.
 */
#include "se_model.h"

#include "model_data.h"
#include "model_plan.h"
#include "se_engine.h"
#include "se_context.h"

#ifndef SE_CONTEXT_ENABLED
#define SE_CONTEXT_ENABLED 0
#endif
#if SE_CONTEXT_ENABLED
#include "context_data.h"
#include "context_plan.h"
_Static_assert(SE_CONTEXT_PLAN_INPUT_BYTES == SE_CONTEXT_INPUT_BYTES,
               "context head input must be SE_CONTEXT_EPOCHS x (SE_N_CLASSES + 1)");
_Static_assert(SE_CONTEXT_PLAN_OUTPUT_BYTES == SE_N_CLASSES, "context head output must be SE_N_CLASSES");
/* The head runs after the edge model: it shares the edge model's arena when that is larger. */
#define SE_NATIVE_ARENA_BYTES (SE_PLAN_ARENA_BYTES > SE_CONTEXT_PLAN_ARENA_BYTES ? SE_PLAN_ARENA_BYTES : SE_CONTEXT_PLAN_ARENA_BYTES)
#else
#define SE_NATIVE_ARENA_BYTES SE_PLAN_ARENA_BYTES
#endif

_Static_assert(SE_PLAN_INPUT_BYTES == SE_EPOCH_SAMPLES, "edge model input must be one epoch");
_Static_assert(SE_PLAN_OUTPUT_BYTES == SE_N_CLASSES, "edge model output must be SE_N_CLASSES");

/** se_model_run() before a successful se_model_init(). */
#define SE_MODEL_ENOTINIT 100

static _Alignas(8) uint8_t s_arena[SE_NATIVE_ARENA_BYTES];
static int s_ready;

int se_model_init(void)
{
    /* The plan and the header come from the same export; a mismatch means a stale build. */
    if (g_se_plan.arena_bytes > sizeof s_arena || g_se_plan.input_bytes != SE_EPOCH_SAMPLES ||
        g_se_plan.output_bytes != SE_N_CLASSES
#if SE_CONTEXT_ENABLED
        || g_se_context_plan.arena_bytes > sizeof s_arena
#endif
    ) {
        s_ready = 0;
        return SE_ENGINE_EARENA;
    }
    s_ready = 1;
    return 0;
}

int se_model_run(const int8_t *input, int8_t *output)
{
    if (!s_ready) {
        return SE_MODEL_ENOTINIT;
    }
    return se_engine_run(&g_se_plan, s_arena, sizeof s_arena, input, output);
}

uint32_t se_model_hash(void)
{
#if SE_CONTEXT_ENABLED
    /* The device reports the head's outputs: HELLO names both (host: reported_hash_u32). */
    return SE_MODEL_HASH_U32 ^ SE_CONTEXT_HASH_U32;
#else
    return SE_MODEL_HASH_U32;
#endif
}

float se_model_input_scale(void)
{
    return SE_MODEL_INPUT_SCALE;
}

int32_t se_model_input_zero_point(void)
{
    return SE_MODEL_INPUT_ZERO_POINT;
}

float se_model_output_scale(void)
{
    return SE_MODEL_OUTPUT_SCALE;
}

int32_t se_model_output_zero_point(void)
{
    return SE_MODEL_OUTPUT_ZERO_POINT;
}

float se_model_confidence_threshold(void)
{
    return SE_MODEL_CONFIDENCE_THRESHOLD;
}

int se_model_input_norm(void)
{
#ifdef SE_MODEL_INPUT_NORM
    return SE_MODEL_INPUT_NORM;
#else
    return 0; /* exported before the switch existed: plain input */
#endif
}

size_t se_model_arena_bytes(void)
{
    return sizeof s_arena;
}

int se_model_has_context(void)
{
    return SE_CONTEXT_ENABLED;
}

#if SE_CONTEXT_ENABLED
int se_model_context_run(const int8_t *input, int8_t *output)
{
    if (!s_ready) {
        return SE_MODEL_ENOTINIT;
    }
    return se_engine_run(&g_se_context_plan, s_arena, sizeof s_arena, input, output);
}

float se_model_context_input_scale(void)
{
    return SE_CONTEXT_INPUT_SCALE;
}

int32_t se_model_context_input_zero_point(void)
{
    return SE_CONTEXT_INPUT_ZERO_POINT;
}

float se_model_context_output_scale(void)
{
    return SE_CONTEXT_OUTPUT_SCALE;
}

int32_t se_model_context_output_zero_point(void)
{
    return SE_CONTEXT_OUTPUT_ZERO_POINT;
}
#else
int se_model_context_run(const int8_t *input, int8_t *output)
{
    (void)input;
    (void)output;
    return SE_MODEL_ENOTINIT;
}

float se_model_context_input_scale(void)
{
    return 1.0f;
}

int32_t se_model_context_input_zero_point(void)
{
    return 0;
}

float se_model_context_output_scale(void)
{
    return 1.0f;
}

int32_t se_model_context_output_zero_point(void)
{
    return 0;
}
#endif

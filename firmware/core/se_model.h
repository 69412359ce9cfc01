/**
 * @file se_model.h
 * @brief The edge model as the application sees it: one int8 epoch in, SE_N_CLASSES int8 out.
 *
 * Implemented by the native int8 engine (firmware/core/se_model_native.c), by the TFLM backend
 * (firmware/backends/tflm/se_model_tflm.cc) for PlatformIO builds, and by the mock used in the
 * host unit tests (firmware/tests/mock_model.c). The application never touches tensors: it
 * quantizes the filtered epoch with se_model_input_scale()/se_model_input_zero_point(), calls
 * se_model_run() and dequantizes the raw output with the output scale and zero point.
 */
#ifndef SE_MODEL_H
#define SE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "sleepedge_constants.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Prepare the model (arena, plan, tensors). Called once by se_app_init().
 * @return 0 on success, a nonzero implementation-defined code otherwise.
 */
int se_model_init(void);

/**
 * Run one inference, synchronously.
 * @param input  SE_EPOCH_SAMPLES int8 values (quantized filtered microvolts).
 * @param output SE_N_CLASSES int8 values (quantized softmax probabilities), written on success.
 * @return 0 on success, nonzero on failure (output is then unspecified).
 */
int se_model_run(const int8_t *input, int8_t *output);

/** 32-bit identifier of what the device reports, sent in HELLO: SE_MODEL_HASH_U32, XORed with
 * SE_CONTEXT_HASH_U32 when the implementation runs a context head (its outputs are then the
 * head's). */
uint32_t se_model_hash(void);

/** Input quantization: real = (q - zero_point) * scale. */
float se_model_input_scale(void);
int32_t se_model_input_zero_point(void);

/** Output quantization: probability = (q - zero_point) * scale. */
float se_model_output_scale(void);
int32_t se_model_output_zero_point(void);

/** Escalation threshold exported with the model (SE_MODEL_CONFIDENCE_THRESHOLD): the device
 * boots with it; CONFIG may change it at run time. */
float se_model_confidence_threshold(void);

/** 1 if the model was trained on the causal running-normalized input (SE_MODEL_INPUT_NORM in
 * model_data.h, absent = 0): the app then quantizes each epoch at its end as
 * (float)epoch_q[i] * se_norm_gain(S) (se_norm.h) instead of the filtered microvolts. */
int se_model_input_norm(void);

/** Bytes of working memory (tensor arena) the implementation uses; 0 if not applicable. */
size_t se_model_arena_bytes(void);

/**
 * The context head exported with the model (context.tflite in the model folder,
 * SE_CONTEXT_ENABLED in model_data.h): 1 if present, 0 otherwise (the functions below are then
 * not called). Implementations without head support return 0.
 */
int se_model_has_context(void);

/**
 * Run the context head (se_context.h): SE_CONTEXT_EPOCHS * (SE_N_CLASSES + 1) int8 in,
 * SE_N_CLASSES int8 probabilities out. @return 0 on success, nonzero otherwise.
 */
int se_model_context_run(const int8_t *input, int8_t *output);

/** The head's input and output quantization (as for the edge model). */
float se_model_context_input_scale(void);
int32_t se_model_context_input_zero_point(void);
float se_model_context_output_scale(void);
int32_t se_model_context_output_zero_point(void);

#ifdef __cplusplus
}
#endif

#endif /* SE_MODEL_H */

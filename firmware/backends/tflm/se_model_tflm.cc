/**
 * @file se_model_tflm.cc
 * @brief se_model.h implemented with TensorFlow Lite for Microcontrollers (PlatformIO builds).
 *
 * The QEMU image uses the native ahead-of-time engine (core/se_model_native.c); real boards
 * built with PlatformIO (firmware/platformio.ini) use this file instead, running the same
 * `.tflite` flatbuffer (g_se_model_data, from `sleepedge export`) in TFLM's MicroInterpreter.
 * Both give the same int8 outputs as the host's TFLM interpreter (tests/test_qemu_firmware.py
 * checks the native engine against it).
 *
 * Written against the current TFLM API (MicroInterpreter without ErrorReporter,
 * MicroMutableOpResolver::AddXxx() returning TfLiteStatus). It is not compiled in this
 * repository's CI: TFLM sources come from PlatformIO's lib_deps.
 *
 * No heap: the interpreter, resolver and tensor arena are static objects placed with
 * placement-new on first initialisation (so nothing runs before se_model_init()).
 */
#include <new>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" {
#include "model_data.h"
#include "se_model.h"
#include "sleepedge_constants.h"
}

#if defined(__has_include)
#if __has_include("model_plan.h")
extern "C" {
#include "model_plan.h"
}
#endif
#endif

/*
 * Tensor arena. TFLM needs the activation memory the native plan needs (SE_PLAN_ARENA_BYTES)
 * plus its own bookkeeping (tensor structs, per-channel requantization tables, node data),
 * a few kB for a small CNN. Override with -DSE_TFLM_ARENA_BYTES=... if AllocateTensors fails;
 * se_model_arena_bytes() reports what was actually used.
 */
#ifndef SE_TFLM_ARENA_BYTES
#ifdef SE_PLAN_ARENA_BYTES
#define SE_TFLM_ARENA_BYTES (SE_PLAN_ARENA_BYTES + 16u * 1024u)
#else
#define SE_TFLM_ARENA_BYTES (48u * 1024u)
#endif
#endif

/* Error codes of se_model_init() (0 = success). */
enum {
    SE_TFLM_ERR_SCHEMA = 1,      /* flatbuffer schema version differs from the library's */
    SE_TFLM_ERR_OPS = 2,         /* op resolver full (raise kNumOps) */
    SE_TFLM_ERR_ALLOCATE = 3,    /* AllocateTensors failed: arena too small or op missing */
    SE_TFLM_ERR_INPUT = 4,       /* input is not int8 with SE_EPOCH_SAMPLES elements */
    SE_TFLM_ERR_OUTPUT = 5,      /* output is not int8 with SE_N_CLASSES elements */
    SE_TFLM_ERR_QUANT = 6,       /* tensor quantization differs from model_data.h */
    SE_TFLM_ERR_NOT_READY = 7,   /* se_model_run() before a successful se_model_init() */
    SE_TFLM_ERR_INVOKE = 8,      /* Invoke failed */
};

namespace {

/* The operator set the exporter allows (host_tools/compress.py ALLOWED_OPS). */
constexpr unsigned kNumOps = 10;
using Resolver = tflite::MicroMutableOpResolver<kNumOps>;

alignas(16) uint8_t g_arena[SE_TFLM_ARENA_BYTES];
alignas(Resolver) uint8_t g_resolver_mem[sizeof(Resolver)];
alignas(tflite::MicroInterpreter) uint8_t g_interpreter_mem[sizeof(tflite::MicroInterpreter)];

tflite::MicroInterpreter *g_interpreter = nullptr;
TfLiteTensor *g_input = nullptr;
TfLiteTensor *g_output = nullptr;
size_t g_arena_used = 0;

int register_ops(Resolver &r)
{
    const TfLiteStatus status[] = {
        r.AddConv2D(),         r.AddDepthwiseConv2D(), r.AddMaxPool2D(), r.AddAveragePool2D(),
        r.AddFullyConnected(), r.AddAdd(),             r.AddSoftmax(),   r.AddExpandDims(),
        r.AddReshape(),        r.AddSqueeze(),
    };
    for (TfLiteStatus s : status) {
        if (s != kTfLiteOk) {
            return SE_TFLM_ERR_OPS;
        }
    }
    return 0;
}

/* Element count of a tensor from its dims, so a (1, 3000, 1) and a (1, 1, 3000, 1) input both
 * count as 3000 samples. */
size_t element_count(const TfLiteTensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->dims->size; i++) {
        n *= static_cast<size_t>(t->dims->data[i]);
    }
    return n;
}

/* The exporter wrote the scale/zero point into model_data.h from the same flatbuffer; a
 * mismatch means model_data.h and g_se_model_data come from different exports. */
bool same_quant(const TfLiteTensor *t, float scale, int32_t zero_point)
{
    const float rel = (t->params.scale - scale) / scale;
    return t->params.zero_point == zero_point && rel < 1e-6f && rel > -1e-6f;
}

}  // namespace

extern "C" int se_model_init(void)
{
    g_interpreter = nullptr;
    const tflite::Model *model = tflite::GetModel(g_se_model_data);
    if (model->version() != TFLITE_SCHEMA_VERSION) {
        return SE_TFLM_ERR_SCHEMA;
    }
    Resolver *resolver = new (g_resolver_mem) Resolver();
    int rc = register_ops(*resolver);
    if (rc != 0) {
        return rc;
    }
    tflite::MicroInterpreter *interp =
        new (g_interpreter_mem) tflite::MicroInterpreter(model, *resolver, g_arena, sizeof g_arena);
    if (interp->AllocateTensors() != kTfLiteOk) {
        return SE_TFLM_ERR_ALLOCATE;
    }
    TfLiteTensor *in = interp->input(0);
    TfLiteTensor *out = interp->output(0);
    if (in == nullptr || in->type != kTfLiteInt8 || element_count(in) != SE_EPOCH_SAMPLES) {
        return SE_TFLM_ERR_INPUT;
    }
    if (out == nullptr || out->type != kTfLiteInt8 || element_count(out) != SE_N_CLASSES) {
        return SE_TFLM_ERR_OUTPUT;
    }
    if (!same_quant(in, SE_MODEL_INPUT_SCALE, SE_MODEL_INPUT_ZERO_POINT) ||
        !same_quant(out, SE_MODEL_OUTPUT_SCALE, SE_MODEL_OUTPUT_ZERO_POINT)) {
        return SE_TFLM_ERR_QUANT;
    }
    g_input = in;
    g_output = out;
    g_arena_used = interp->arena_used_bytes();
    g_interpreter = interp;
    return 0;
}

extern "C" int se_model_run(const int8_t *input, int8_t *output)
{
    if (g_interpreter == nullptr) {
        return SE_TFLM_ERR_NOT_READY;
    }
    memcpy(g_input->data.int8, input, SE_EPOCH_SAMPLES);
    if (g_interpreter->Invoke() != kTfLiteOk) {
        return SE_TFLM_ERR_INVOKE;
    }
    memcpy(output, g_output->data.int8, SE_N_CLASSES);
    return 0;
}

extern "C" uint32_t se_model_hash(void)
{
    return SE_MODEL_HASH_U32;
}

extern "C" float se_model_input_scale(void)
{
    return SE_MODEL_INPUT_SCALE;
}

extern "C" int32_t se_model_input_zero_point(void)
{
    return SE_MODEL_INPUT_ZERO_POINT;
}

extern "C" float se_model_output_scale(void)
{
    return SE_MODEL_OUTPUT_SCALE;
}

extern "C" int32_t se_model_output_zero_point(void)
{
    return SE_MODEL_OUTPUT_ZERO_POINT;
}

extern "C" float se_model_confidence_threshold(void)
{
    return SE_MODEL_CONFIDENCE_THRESHOLD;
}

extern "C" int se_model_input_norm(void)
{
#ifdef SE_MODEL_INPUT_NORM
    return SE_MODEL_INPUT_NORM;
#else
    return 0; /* exported before the switch existed: plain input */
#endif
}

extern "C" size_t se_model_arena_bytes(void)
{
    /* Bytes TFLM actually used once initialised; the reserved size before that. */
    return g_interpreter != nullptr ? g_arena_used : sizeof g_arena;
}

/* The context head runs on the native engine only: a PlatformIO (TFLM) build reports the edge
 * model's own outputs even when the model folder has a head (docs/architecture.md). */
extern "C" int se_model_has_context(void)
{
    return 0;
}

extern "C" int se_model_context_run(const int8_t *input, int8_t *output)
{
    (void)input;
    (void)output;
    return SE_TFLM_ERR_NOT_READY;
}

extern "C" float se_model_context_input_scale(void)
{
    return 1.0f;
}

extern "C" int32_t se_model_context_input_zero_point(void)
{
    return 0;
}

extern "C" float se_model_context_output_scale(void)
{
    return 1.0f;
}

extern "C" int32_t se_model_context_output_zero_point(void)
{
    return 0;
}

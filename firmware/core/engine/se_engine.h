/**
 * @file se_engine.h
 * @brief Native int8 inference engine: runs an ahead-of-time plan (model_plan.c, written by
 *        host_tools/plan.py) bit-exactly like TFLite Micro's reference kernels.
 *
 * Every parameter a TFLM Prepare() would compute (per-channel multipliers and shifts, padding,
 * activation clamps, softmax constants) is resolved on the host. Tensors live at fixed byte
 * offsets in one caller-provided arena. Weights of CONV_2D / FULLY_CONNECTED are stored as
 * packed int16 pairs (uint32 words, even element in the low half) in groups of output channels;
 * see docs/engine.md. No heap, no floating point.
 *
 * On cores with the DSP extension (__ARM_FEATURE_DSP, e.g. Cortex-M4) the convolution inner
 * loop uses SMLAD; elsewhere the same arithmetic runs in portable C. Both give identical bits.
 */
#ifndef SE_ENGINE_H
#define SE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Operation kinds. FULLY_CONNECTED runs as SE_OP_CONV with kernel 1. */
typedef enum {
    SE_OP_CONV = 1,
    SE_OP_DWCONV = 2,
    SE_OP_MAXPOOL = 3,
    SE_OP_AVGPOOL = 4,
    SE_OP_ADD = 5,
    SE_OP_SOFTMAX = 6
} se_op_kind_t;

/** 1-D convolution over an (in_w, in_c) int8 tensor, also used for FULLY_CONNECTED. */
typedef struct {
    uint32_t in, out, scratch;     /**< arena byte offsets (scratch: int16 expansion buffer) */
    uint16_t in_w, in_c, out_w, out_c;
    uint16_t kernel, stride;
    int16_t pad;                   /**< positions of padding before the first input */
    uint16_t chunk;                /**< output positions per expansion */
    uint16_t odd_words;            /**< word offset of the odd-phase copy in scratch (stride*in_c odd) */
    uint16_t acc_words;            /**< word offset of the out_c int32 accumulators in scratch */
    int16_t in_zp, out_zp;
    int16_t act_min, act_max;
    const uint32_t *weights;       /**< grouped packed int16 pairs, see docs/engine.md */
    const int32_t *bias;           /**< bias - in_zp * sum(weights), per output channel */
    const int32_t *mult;           /**< per-channel quantized multiplier (Q31) */
    const int8_t *shift;           /**< per-channel shift, > 0 left */
    const int32_t *rq;             /**< NULL, or the fast requantization table (see se_engine.c) */
} se_conv_params_t;

/** 1-D depthwise convolution; out channel oc reads input channel oc / depth_mult. */
typedef struct {
    uint32_t in, out;
    uint16_t in_w, in_c, out_w, out_c;
    uint16_t depth_mult, kernel, stride;
    int16_t pad;
    int16_t in_offset, out_zp;     /**< in_offset = -input zero point */
    int16_t act_min, act_max;
    const int8_t *weights;         /**< [kernel][out_c] as in the .tflite */
    const int32_t *bias;
    const int32_t *mult;
    const int8_t *shift;
} se_dwconv_params_t;

/** 1-D max or average pooling (input and output share quantization). */
typedef struct {
    uint32_t in, out;
    uint16_t in_w, c, out_w, kernel, stride;
    int16_t pad;
    int16_t act_min, act_max;
} se_pool_params_t;

/** Element-wise int8 ADD with TFLM's rescaling (left_shift 20). */
typedef struct {
    uint32_t in1, in2, out, n;
    int32_t in1_offset, in2_offset, out_offset, left_shift;
    int32_t in1_mult, in2_mult, out_mult;
    int8_t in1_shift, in2_shift, out_shift;
    int16_t act_min, act_max;
} se_add_params_t;

/** int8 softmax over the last axis (output scale 1/256, zero point -128). */
typedef struct {
    uint32_t in, out;
    uint16_t rows, depth;
    int32_t in_mult, in_left_shift, diff_min;
} se_softmax_params_t;

/** One planned operation. */
typedef struct {
    uint8_t kind; /**< se_op_kind_t */
    union {
        se_conv_params_t conv;
        se_dwconv_params_t dw;
        se_pool_params_t pool;
        se_add_params_t add;
        se_softmax_params_t softmax;
    } u;
} se_op_t;

/** A whole model: ordered ops plus where its input and output live in the arena. */
typedef struct {
    const se_op_t *ops;
    uint16_t n_ops;
    uint32_t arena_bytes;   /**< bytes the arena must have (SE_PLAN_ARENA_BYTES) */
    uint32_t input, input_bytes;
    uint32_t output, output_bytes;
    uint32_t macs;          /**< multiply-accumulates per inference (SE_PLAN_MACS) */
} se_plan_t;

/** Error codes of se_engine_run(). */
enum {
    SE_ENGINE_OK = 0,
    SE_ENGINE_EARG = 1,     /**< NULL pointer */
    SE_ENGINE_EARENA = 2,   /**< arena too small or misaligned */
    SE_ENGINE_EOP = 3       /**< unknown op kind (plan and engine out of sync) */
};

/**
 * Run one inference.
 * @param plan        the plan (g_se_plan from model_plan.c)
 * @param arena       at least plan->arena_bytes bytes, 8-byte aligned
 * @param arena_bytes size of @p arena
 * @param input       plan->input_bytes int8 values
 * @param output      receives plan->output_bytes int8 values
 * @return SE_ENGINE_OK or an error code.
 */
int se_engine_run(const se_plan_t *plan, void *arena, size_t arena_bytes, const int8_t *input,
                  int8_t *output);

#ifdef SE_ENGINE_PROFILE
/** Called after each op when built with -DSE_ENGINE_PROFILE (per-op cost measurements). */
void se_engine_op_done(uint16_t index);
#endif

/** TFLM MultiplyByQuantizedMultiplier (double rounding), exposed for tests. */
int32_t se_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

#ifdef __cplusplus
}
#endif

#endif /* SE_ENGINE_H */

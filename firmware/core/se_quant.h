/**
 * @file se_quant.h
 * @brief float32 -> int8 quantization as the host reference computes it (one definition for the
 *        edge model's input and the context head's input, so both stay bit-exact with numpy).
 */
#ifndef SE_QUANT_H
#define SE_QUANT_H

#include <math.h>
#include <stdint.h>

/** clamp(floor(v * inv_scale + 0.5f) + zp, -128, 127) in float32, clamped before the integer
 * cast; the negated comparison sends a NaN to the low rail instead of into an undefined cast. */
static inline int8_t se_quantize_f32(float v, float inv_scale, int32_t zp)
{
    float r = floorf(v * inv_scale + 0.5f) + (float)zp;
    if (!(r >= -128.0f)) {
        r = -128.0f;
    }
    if (r > 127.0f) {
        r = 127.0f;
    }
    return (int8_t)r;
}

#endif /* SE_QUANT_H */

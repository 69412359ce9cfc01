/* Host tool: causal running normalization (se_norm) over one recording's epochs in stream order.
 *   norm_tool < records > results
 * stdin: per epoch one byte (1 = classified: enters the ring, 0 = not) then SE_EPOCH_SAMPLES
 * little-endian int16 transport samples. stdout per epoch: amplitude u16, running scale u16
 * (0 for an epoch not classified), gain float32 bits u32, all little-endian. */
#include <stdio.h>
#include <string.h>

#include "se_norm.h"

static void put_le(uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; ++i) {
        putchar((int)((v >> (8 * i)) & 0xFFu));
    }
}

int main(void)
{
    static uint8_t buf[1 + 2 * SE_EPOCH_SAMPLES];
    static int16_t q[SE_EPOCH_SAMPLES];
    se_norm_t s;
    se_norm_reset(&s);
    while (fread(buf, 1, sizeof buf, stdin) == sizeof buf) {
        for (size_t i = 0; i < SE_EPOCH_SAMPLES; ++i) {
            q[i] = (int16_t)(uint16_t)(buf[1 + 2 * i] | (buf[2 + 2 * i] << 8));
        }
        const uint16_t a = se_norm_epoch_amplitude(q, SE_EPOCH_SAMPLES);
        const uint16_t sc = buf[0] ? se_norm_update(&s, q) : 0u;
        const float g = buf[0] ? se_norm_gain(sc) : 0.0f;
        uint32_t bits;
        memcpy(&bits, &g, sizeof bits);
        put_le(a, 2);
        put_le(sc, 2);
        put_le(bits, 4);
    }
    return 0;
}

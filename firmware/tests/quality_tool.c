/* Host tool: the signal-quality gate on epochs of int16 samples.
 *   quality_tool < epochs.i16 > verdicts.u8
 * stdin: little-endian int16, SE_EPOCH_SAMPLES per epoch; stdout: one verdict byte per epoch. */
#include <stdio.h>

#include "se_quality.h"

int main(void)
{
    static uint8_t buf[2 * SE_EPOCH_SAMPLES];
    while (fread(buf, 1, sizeof buf, stdin) == sizeof buf) {
        se_quality_t q;
        se_quality_reset(&q);
        for (size_t i = 0; i < SE_EPOCH_SAMPLES; ++i) {
            se_quality_push(&q, (int16_t)(uint16_t)(buf[2 * i] | (buf[2 * i + 1] << 8)));
        }
        putchar(se_quality_verdict(&q));
    }
    return 0;
}

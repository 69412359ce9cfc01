/* Host tool: int16 device samples (little-endian) on stdin -> se_filter output as float32 on
 * stdout. tests/test_firmware_core.py compares it bit for bit with host_tools.filters. */
#include <stdio.h>

#include "se_filter.h"

int main(void)
{
    static int16_t q[4096];
    static float y[4096];
    se_filter_t f;
    se_filter_reset(&f);
    size_t n;
    while ((n = fread(q, sizeof q[0], sizeof q / sizeof q[0], stdin)) > 0) {
        se_filter_samples(&f, q, y, n);
        if (fwrite(y, sizeof y[0], n, stdout) != n) {
            return 1;
        }
    }
    return ferror(stdin) ? 1 : 0;
}

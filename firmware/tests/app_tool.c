/* Host tool: runs se_app with the mock model (MOCK_DERIVED) on a scripted host->device stream.
 *   app_tool INPUTS_OUT [--norm] < script > device_tx
 * The script is a sequence of records: kind u8, arg u32, len u32, data[len] (little-endian):
 *   'R' feed data to se_app_rx;  'P' se_app_poll;  'T' set the millisecond clock to arg.
 * Every model input the mock sees is appended to INPUTS_OUT (SE_EPOCH_SAMPLES int8 each).
 * --norm: the mock reports se_model_input_norm() = 1 (running-normalized input, se_norm.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_model.h"
#include "se_app.h"

static uint32_t g_now;
static FILE *g_inputs;
static uint32_t g_runs_seen;

static uint32_t clock_ms(void *ctx)
{
    (void)ctx;
    return g_now;
}

static void tx(const uint8_t *data, size_t len, void *ctx)
{
    (void)ctx;
    fwrite(data, 1, len, stdout);
}

static void dump_new_inputs(void)
{
    if (g_mock_runs != g_runs_seen) {
        g_runs_seen = g_mock_runs;
        fwrite(g_mock_last_input, 1, sizeof g_mock_last_input, g_inputs);
    }
}

static int read_u32(uint32_t *v)
{
    uint8_t b[4];
    if (fread(b, 1, 4, stdin) != 4) {
        return -1;
    }
    *v = se_rd_u32(b);
    return 0;
}

int main(int argc, char **argv)
{
    static se_app_t app;
    static uint8_t data[1 << 16];
    const int norm = argc == 3 && strcmp(argv[2], "--norm") == 0;
    if ((argc != 2 && !norm) || (g_inputs = fopen(argv[1], "wb")) == NULL) {
        fprintf(stderr, "usage: app_tool INPUTS_OUT [--norm] < script > device_tx\n");
        return 2;
    }
    mock_model_reset();
    g_mock_mode = MOCK_DERIVED;
    g_mock_input_norm = norm;
    const se_platform_t plat = {tx, clock_ms, NULL, NULL};
    se_app_init(&app, &plat);
    int kind;
    while ((kind = getchar()) != EOF) {
        uint32_t arg, len;
        if (read_u32(&arg) || read_u32(&len) || len > sizeof data || fread(data, 1, len, stdin) != len) {
            fprintf(stderr, "app_tool: truncated script\n");
            return 2;
        }
        if (kind == 'R') {
            /* se_app_rx may run a ready epoch itself (the next epoch started before a poll);
             * feed byte by byte so every inference is dumped. */
            for (uint32_t i = 0; i < len; ++i) {
                se_app_rx(&app, &data[i], 1);
                dump_new_inputs();
            }
        } else if (kind == 'P') {
            se_app_poll(&app);
            dump_new_inputs();
        } else if (kind == 'T') {
            g_now = arg;
        } else {
            fprintf(stderr, "app_tool: unknown record %d\n", kind);
            return 2;
        }
    }
    fclose(g_inputs);
    return 0;
}

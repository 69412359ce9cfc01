/**
 * @file main.c
 * @brief SleepEdge on QEMU's netduinoplus2: wires the board layer to the portable core (se_app).
 *
 * The main loop moves bytes from the USART1 receive ring into se_app_rx(), runs se_app_poll()
 * (inference and escalation timeouts happen there, never in an interrupt) and sleeps with WFI
 * when there is nothing to do. SysTick wakes the core every millisecond, so timeouts are checked
 * at least that often.
 */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "se_app.h"

#ifdef SE_BENCH
/* Bench builds report the stack high-water mark on QEMU's stdout (semihosting) whenever an
 * epoch closes: "SE-BENCH epochs=<n> stack=<bytes>". host_tools/bench_device.py reads it. */
static void bench_report(uint32_t epochs)
{
    char line[64];
    static const char head[] = "SE-BENCH epochs=";
    size_t n = 0;
    for (size_t i = 0; head[i] != '\0'; i++) {
        line[n++] = head[i];
    }
    uint32_t values[2] = {epochs, board_stack_high_water()};
    for (int v = 0; v < 2; v++) {
        if (v == 1) {
            static const char mid[] = " stack=";
            for (size_t i = 0; mid[i] != '\0'; i++) {
                line[n++] = mid[i];
            }
        }
        char digits[10];
        size_t d = 0;
        uint32_t x = values[v];
        do {
            digits[d++] = (char)('0' + x % 10u);
            x /= 10u;
        } while (x != 0u);
        while (d > 0u) {
            line[n++] = digits[--d];
        }
    }
    line[n++] = '\n';
    line[n] = '\0';
    board_semihost_write0(line);
}
#endif

/* The application state (~10 kB) lives in .bss: no heap anywhere in the firmware. */
static se_app_t s_app;

static void platform_write(const uint8_t *data, size_t len, void *ctx)
{
    (void)ctx;
    board_uart_write(data, len);
}

static uint32_t platform_millis(void *ctx)
{
    (void)ctx;
    return board_millis();
}

static uint32_t platform_cycles(void *ctx)
{
    (void)ctx;
    /* Instructions, not cycles: QEMU counts executed instructions under -icount (board.h). */
    return board_instructions();
}

int main(void)
{
    board_init();
    static const se_platform_t platform = {
        .write = platform_write,
        .millis = platform_millis,
        .cycles = platform_cycles,
        .ctx = NULL,
    };
    se_app_init(&s_app, &platform);

    uint8_t chunk[256];
    uint32_t overflows_reported = 0u;
#ifdef SE_BENCH
    uint32_t epochs_reported = 0u;
#endif
    for (;;) {
        size_t n = board_uart_read(chunk, sizeof chunk);
        if (n > 0u) {
            se_app_rx(&s_app, chunk, n);
        }
        uint32_t overflows = board_rx_stats().overflows;
        if (overflows != overflows_reported) {
            se_app_note_rx_overflow(&s_app, overflows - overflows_reported);
            overflows_reported = overflows;
        }
        se_app_poll(&s_app);
#ifdef SE_BENCH
        uint32_t epochs = se_app_status(&s_app).epochs;
        if (epochs != epochs_reported) {
            epochs_reported = epochs;
            bench_report(epochs);
        }
#endif
        if (n == 0u) {
            board_idle();
        }
    }
}

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
        if (n == 0u) {
            board_idle();
        }
    }
}

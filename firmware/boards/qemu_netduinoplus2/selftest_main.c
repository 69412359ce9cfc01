/**
 * @file selftest_main.c
 * @brief Board self-test image: boot banner, UART echo with back-pressure, instruction counter.
 *
 * Used by tests/test_qemu_firmware.py to check the board layer on its own, independent of the
 * sleep-staging core. Line protocol (all from the host, one command byte each):
 *   - any bytes other than the commands below are echoed back unchanged, in bursts: the image
 *     deliberately stops draining the ring until it is nearly full (the RXNE interrupt gets
 *     masked and QEMU must back-pressure the host) or the line has been quiet for
 *     BURST_PAUSE_MS;
 *   - 0x01 'COUNT': run a loop of exactly 2*N instructions (N = SELFTEST_LOOP_ITERS) and print
 *     "INSNS <measured> <expected>\n";
 *   - 0x04 'END': print "STATS rx=<n> ovf=<n> pauses=<n> ms=<n>\n" and exit with code 42.
 * Payload bytes must therefore avoid 0x01 and 0x04.
 */
#include <stdint.h>

#include "board.h"

#define BURST_PAUSE_MS 20u
#define SELFTEST_LOOP_ITERS 1000000u
#define SELFTEST_EXIT_CODE 42

static void put_str(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    board_uart_write((const uint8_t *)s, n);
}

/* Decimal print without printf: keeps the image free of newlib's stdio (and its heap use). */
static void put_u32(uint32_t v)
{
    char digits[10];
    size_t n = 0;
    do {
        digits[sizeof digits - 1u - n] = (char)('0' + v % 10u);
        v /= 10u;
        n++;
    } while (v != 0u);
    board_uart_write((const uint8_t *)&digits[sizeof digits - n], n);
}

/* `subs` + `bne` per iteration: exactly 2 instructions each, independent of compiler flags. */
static uint32_t __attribute__((noinline)) count_loop(uint32_t iters)
{
    uint32_t t0 = board_instructions();
    __asm volatile(
        "1: subs %0, %0, #1\n"
        "   bne 1b\n"
        : "+r"(iters)
        :
        : "cc");
    return board_instructions() - t0;
}

int main(void)
{
    board_init();
    put_str("SE-SELFTEST ring=");
    put_u32(BOARD_RX_RING_SIZE);
    put_str("\n");

    uint8_t buf[128];
    for (;;) {
        /* Let bytes pile up until the ring reaches its high-water mark (RXNE masked, QEMU
         * back-pressures the host) or no byte has arrived for BURST_PAUSE_MS. */
        board_rx_stats_t before = board_rx_stats();
        uint32_t last_rx = before.rx_bytes;
        uint32_t quiet_since = board_millis();
        for (;;) {
            board_rx_stats_t now = board_rx_stats();
            if (now.pauses != before.pauses) {
                break;
            }
            if (now.rx_bytes != last_rx) {
                last_rx = now.rx_bytes;
                quiet_since = board_millis();
            } else if (board_millis() - quiet_since >= BURST_PAUSE_MS) {
                break;
            }
            board_idle();
        }
        size_t got;
        while ((got = board_uart_read(buf, sizeof buf)) > 0) {
            size_t start = 0;
            for (size_t i = 0; i < got; i++) {
                if (buf[i] != 0x01u && buf[i] != 0x04u) {
                    continue;
                }
                board_uart_write(buf + start, i - start);
                start = i + 1;
                if (buf[i] == 0x01u) {
                    uint32_t measured = count_loop(SELFTEST_LOOP_ITERS);
                    put_str("INSNS ");
                    put_u32(measured);
                    put_str(" ");
                    put_u32(2u * SELFTEST_LOOP_ITERS);
                    put_str("\n");
                } else {
                    board_rx_stats_t st = board_rx_stats();
                    put_str("STATS rx=");
                    put_u32(st.rx_bytes);
                    put_str(" ovf=");
                    put_u32(st.overflows);
                    put_str(" pauses=");
                    put_u32(st.pauses);
                    put_str(" ms=");
                    put_u32(board_millis());
                    put_str("\n");
                    return SELFTEST_EXIT_CODE;
                }
            }
            board_uart_write(buf + start, got - start);
        }
    }
}

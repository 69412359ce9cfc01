/**
 * @file board.h
 * @brief Board layer for the STM32F405 emulated by QEMU's `netduinoplus2` machine.
 *
 * Hardware the portable core never sees: USART1 (interrupt-driven receive into a ring buffer,
 * synchronous transmit), SysTick (millisecond time base and an instruction counter) and
 * semihosting (exit with a status code so tests can end a run).
 */
#ifndef SE_BOARD_H
#define SE_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Core clock QEMU gives the netduinoplus2 SoC; SysTick runs from it (CLKSOURCE = processor). */
#define BOARD_CPU_HZ 168000000u
/** SysTick ticks per millisecond interrupt. */
#define BOARD_SYSTICK_TICKS_PER_MS (BOARD_CPU_HZ / 1000u)

/** Receive ring size in bytes (power of two). Holds several SAMPLES frames (~215 B each). */
#define BOARD_RX_RING_SIZE 2048u
/** When fewer than this many bytes are free, the RXNE interrupt is masked (back-pressure). */
#define BOARD_RX_HIGH_WATER_FREE 64u
/** The RXNE interrupt is unmasked again once at least this many bytes are free. */
#define BOARD_RX_LOW_WATER_FREE (BOARD_RX_RING_SIZE / 2u)

/** Receive statistics kept by the USART1 interrupt handler. */
typedef struct {
    uint32_t rx_bytes;     /**< bytes moved from USART1 DR into the ring */
    uint32_t overflows;    /**< bytes lost: ring full or hardware overrun (SR.ORE) */
    uint32_t pauses;       /**< times the RXNE interrupt was masked because the ring was nearly full */
} board_rx_stats_t;

/** Clock, USART1 (115200 8N1 on real silicon; QEMU ignores the baud rate), SysTick, interrupts. */
void board_init(void);

/** Blocking transmit of `len` bytes on USART1. */
void board_uart_write(const uint8_t *data, size_t len);

/** Copy up to `max` received bytes out of the ring; returns how many. Never blocks. */
size_t board_uart_read(uint8_t *buf, size_t max);

/** Bytes waiting in the receive ring. */
size_t board_uart_available(void);

/** Snapshot of the receive statistics. */
board_rx_stats_t board_rx_stats(void);

/** Milliseconds since board_init() (SysTick interrupts). */
uint32_t board_millis(void);

/**
 * Free-running instruction counter (wraps at 2^32).
 *
 * Derived from SysTick: under `qemu-system-arm -icount shift=0,align=off,sleep=off` virtual
 * time advances exactly 1 ns per executed instruction, and SysTick (168 MHz processor clock)
 * advances 0.168 ticks per ns, so instructions = ticks * 1e9 / 168e6 = ticks * 125 / 21.
 * Resolution is one tick, i.e. about 6 instructions. Without -icount the value tracks host
 * wall-clock time and means nothing; on real silicon it would be CPU cycles * 125/21.
 */
uint32_t board_instructions(void);

/** Sleep until the next interrupt unless received bytes are already waiting. */
void board_idle(void);

/**
 * Fill the unused stack with a known pattern (called from the reset handler in SE_BENCH builds)
 * so board_stack_high_water() can later tell how deep the stack has ever grown.
 */
void board_stack_paint(void);

/** Deepest stack use since board_stack_paint(), in bytes (0 if the stack was never painted). */
uint32_t board_stack_high_water(void);

/** Print a NUL-terminated string on QEMU's stdout via semihosting SYS_WRITE0 (bench builds). */
void board_semihost_write0(const char *text);

/** End the emulation with `code` via semihosting SYS_EXIT_EXTENDED (needs -semihosting-config). */
void board_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* SE_BOARD_H */

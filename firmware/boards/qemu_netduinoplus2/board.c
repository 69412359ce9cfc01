/**
 * @file board.c
 * @brief USART1 ring buffer, SysTick and semihosting for QEMU's netduinoplus2 (STM32F405).
 *
 * QEMU models RCC and GPIO as stubs that read zero, so no clock tree set-up is done (waiting on a
 * PLL-ready flag would hang). On real silicon a clock/GPIO init would go in board_init().
 */
#include "board.h"

/* ---- registers (no vendor headers: only the handful we touch) -------------------------------- */
#define REG32(addr) (*(volatile uint32_t *)(addr))

#define USART1_BASE 0x40011000u
#define USART_SR    REG32(USART1_BASE + 0x00u)
#define USART_DR    REG32(USART1_BASE + 0x04u)
#define USART_BRR   REG32(USART1_BASE + 0x08u)
#define USART_CR1   REG32(USART1_BASE + 0x0Cu)
#define USART_SR_ORE  (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE  (1u << 7)
#define USART_CR1_RE     (1u << 2)
#define USART_CR1_TE     (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE     (1u << 13)
#define USART1_IRQn 37u

#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SYST_CSR_ENABLE    (1u << 0)
#define SYST_CSR_TICKINT   (1u << 1)
#define SYST_CSR_CLKSOURCE (1u << 2)

#define SCB_ICSR REG32(0xE000ED04u)
#define SCB_ICSR_PENDSTSET (1u << 26)
#define NVIC_ISER(n) REG32(0xE000E100u + 4u * (n))
#define NVIC_IPR_BYTE(irq) (*(volatile uint8_t *)(0xE000E400u + (irq)))

/* ---- state shared with the interrupt handlers ------------------------------------------------ */
static uint8_t s_ring[BOARD_RX_RING_SIZE];
/* Single producer (ISR writes head) / single consumer (main writes tail): no lock needed as long
 * as each index is written by one side only and the 32-bit accesses are atomic (they are on M4). */
static volatile uint32_t s_head;
static volatile uint32_t s_tail;
static volatile board_rx_stats_t s_stats;
static volatile uint32_t s_ms;

static inline uint32_t irq_save(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask) : : "memory");
    return primask;
}

static inline void irq_restore(uint32_t primask)
{
    __asm volatile("msr primask, %0" : : "r"(primask) : "memory");
}

void board_init(void)
{
    s_head = 0u;
    s_tail = 0u;
    s_ms = 0u;

    /* 115200 baud from an 84 MHz APB2 (BRR = 84e6 / 115200 = 729.2 -> mantissa 45, fraction 9).
     * QEMU ignores it; it documents what real silicon would need. */
    USART_BRR = (45u << 4) | 9u;
    USART_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    NVIC_IPR_BYTE(USART1_IRQn) = 0x40u; /* above SysTick's priority (0xF0 set below) */
    NVIC_ISER(USART1_IRQn / 32u) = 1u << (USART1_IRQn % 32u);

    SYST_RVR = BOARD_SYSTICK_TICKS_PER_MS - 1u;
    SYST_CVR = 0u;
    REG32(0xE000ED20u) = (REG32(0xE000ED20u) & 0x00FFFFFFu) | (0xF0u << 24); /* SHPR3: SysTick prio */
    SYST_CSR = SYST_CSR_CLKSOURCE | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
    __asm volatile("cpsie i" : : : "memory");
}

/* ---- USART1 ---------------------------------------------------------------------------------- */
void USART1_IRQHandler(void)
{
    uint32_t sr = USART_SR;
    if (sr & USART_SR_ORE) {
        /* Real silicon only (QEMU back-pressures): the SR-then-DR read below clears ORE; read
         * DR here if no byte is pending, or the flag would keep the interrupt asserted. */
        s_stats.overflows++;
        if (!(sr & USART_SR_RXNE)) {
            (void)USART_DR;
        }
    }
    while (sr & USART_SR_RXNE) {
        uint8_t byte = (uint8_t)USART_DR; /* reading DR clears RXNE and lets QEMU send the next byte */
        uint32_t head = s_head;
        if (head - s_tail < BOARD_RX_RING_SIZE) {
            s_ring[head & (BOARD_RX_RING_SIZE - 1u)] = byte;
            s_head = head + 1u;
            s_stats.rx_bytes++;
        } else {
            s_stats.overflows++;
        }
        /* Nearly full: stop taking bytes. With RXNE left set, QEMU's USART stops accepting input
         * from its chardev, so the host blocks instead of bytes being lost. */
        if (BOARD_RX_RING_SIZE - (s_head - s_tail) < BOARD_RX_HIGH_WATER_FREE) {
            USART_CR1 &= ~USART_CR1_RXNEIE;
            s_stats.pauses++;
            break;
        }
        sr = USART_SR;
    }
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        while (!(USART_SR & USART_SR_TXE)) {
        }
        USART_DR = data[i];
    }
}

size_t board_uart_available(void)
{
    return (size_t)(s_head - s_tail);
}

size_t board_uart_read(uint8_t *buf, size_t max)
{
    uint32_t tail = s_tail;
    uint32_t avail = s_head - tail;
    size_t n = avail < max ? (size_t)avail : max;
    for (size_t i = 0; i < n; i++) {
        buf[i] = s_ring[(tail + (uint32_t)i) & (BOARD_RX_RING_SIZE - 1u)];
    }
    s_tail = tail + (uint32_t)n;
    /* Drained enough: take interrupts again. If a byte is already waiting in DR (RXNE set),
     * QEMU raises the interrupt as soon as RXNEIE is set, so nothing is stranded. */
    if (!(USART_CR1 & USART_CR1_RXNEIE) &&
        BOARD_RX_RING_SIZE - (s_head - s_tail) >= BOARD_RX_LOW_WATER_FREE) {
        uint32_t primask = irq_save();
        USART_CR1 |= USART_CR1_RXNEIE;
        irq_restore(primask);
    }
    return n;
}

board_rx_stats_t board_rx_stats(void)
{
    uint32_t primask = irq_save();
    board_rx_stats_t copy = {s_stats.rx_bytes, s_stats.overflows, s_stats.pauses};
    irq_restore(primask);
    return copy;
}

/* ---- SysTick --------------------------------------------------------------------------------- */
void SysTick_Handler(void)
{
    s_ms++;
}

uint32_t board_millis(void)
{
    return s_ms;
}

uint32_t board_instructions(void)
{
    /* Read the millisecond count and the down-counter as one consistent pair: with interrupts
     * masked, a wrap that happened after we masked shows up as a pending SysTick, in which case
     * the counter is re-read (it has restarted from the reload value) and one ms is added. */
    uint32_t primask = irq_save();
    uint32_t ms = s_ms;
    uint32_t val = SYST_CVR;
    if (SCB_ICSR & SCB_ICSR_PENDSTSET) {
        val = SYST_CVR;
        ms++;
    }
    irq_restore(primask);
    uint64_t ticks = (uint64_t)ms * BOARD_SYSTICK_TICKS_PER_MS + (BOARD_SYSTICK_TICKS_PER_MS - 1u - val);
    /* 1e9 ns/s / 168e6 ticks/s = 125/21 instructions per tick (1 instruction = 1 ns, -icount 0). */
    return (uint32_t)(ticks * 125u / 21u);
}

void board_idle(void)
{
    /* Mask interrupts around the check so a byte arriving between the check and WFI still
     * wakes the core (WFI wakes on a pending interrupt even with PRIMASK set). */
    __asm volatile("cpsid i" : : : "memory");
    if (s_head == s_tail) {
        __asm volatile("dsb\n wfi" : : : "memory");
    }
    __asm volatile("cpsie i\n isb" : : : "memory");
}

/* ---- stack high-water mark ------------------------------------------------------------------- */
#define STACK_PAINT 0xC5C5C5C5u
extern uint32_t _ebss, _estack;
static uint32_t s_stack_painted;

void board_stack_paint(void)
{
    /* Paint from the end of .bss up to a little below the current stack pointer (the caller's
     * own frame lives above it). Runs before .bss is used, so s_stack_painted is set after. */
    uint32_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *p = &_ebss; (uint32_t)p < sp - 64u; p++) {
        *p = STACK_PAINT;
    }
    s_stack_painted = 1u;
}

uint32_t board_stack_high_water(void)
{
    if (!s_stack_painted) {
        return 0u;
    }
    const volatile uint32_t *p = &_ebss;
    while (p < &_estack && *p == STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

/* ---- semihosting ----------------------------------------------------------------------------- */
void board_semihost_write0(const char *text)
{
    register uint32_t r0 __asm("r0") = 0x04u; /* SYS_WRITE0 */
    register const char *r1 __asm("r1") = text;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

void board_exit(int code)
{
    /* SYS_EXIT_EXTENDED (0x20) with {ADP_Stopped_ApplicationExit, code}: QEMU exits with `code`. */
    static volatile uint32_t block[2];
    block[0] = 0x20026u;
    block[1] = (uint32_t)code;
    register uint32_t r0 __asm("r0") = 0x20u;
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}

/**
 * @file startup.c
 * @brief Bare-metal start-up, SysTick instruction counter and semihosting for the engine harness
 *        on QEMU's netduinoplus2 (Cortex-M4F). Not the product's board layer (firmware/boards/).
 */
#include <stdint.h>
#include <string.h>

#include "qemu_support.h"

extern uint32_t _estack, _sdata, _edata, _etext, _sbss, _ebss;
int main(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static volatile uint32_t s_wraps;

void Reset_Handler(void)
{
    memcpy(&_sdata, &_etext, (size_t)((uint8_t *)&_edata - (uint8_t *)&_sdata));
    memset(&_sbss, 0, (size_t)((uint8_t *)&_ebss - (uint8_t *)&_sbss));
    SCB_CPACR |= 0xFu << 20; /* CP10/CP11 full access: the FPU */
    __asm volatile("dsb\n isb");
    qemu_exit(main());
}

static void Default_Handler(void)
{
    qemu_puts("engine harness: unexpected exception\n");
    qemu_exit(99);
}

void SysTick_Handler(void)
{
    ++s_wraps;
}

__attribute__((section(".isr_vector"), used)) static void (*const s_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&_estack, Reset_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler,
    Default_Handler, 0, Default_Handler, SysTick_Handler,
};

void ticks_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    s_wraps = 0;
    SYST_CSR = 7u; /* enable, interrupt on wrap, processor clock */
}

uint64_t ticks_now(void)
{
    uint32_t hi, lo;
    do {
        hi = s_wraps;
        lo = SYST_CVR;
    } while (hi != s_wraps);
    return ((uint64_t)hi << 24) + (0xFFFFFFu - lo);
}

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void qemu_puts(const char *s)
{
    semihost(0x04, s); /* SYS_WRITE0 */
}

void qemu_exit(int code)
{
    const uint32_t block[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit */
    semihost(0x20, block);                                /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

void calibration_loop(uint32_t n)
{
    /* exactly 2 instructions per iteration */
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
}

/**
 * @file startup.c
 * @brief Reset handler and vector table for the STM32F405 (Cortex-M4F, 82 external interrupts).
 */
#include <stdint.h>

#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);

/* Handlers the board implements; everything else falls through to Default_Handler. */
void SysTick_Handler(void);
void USART1_IRQHandler(void);
void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));

#define SE_N_EXTERNAL_IRQS 82u
#define SE_USART1_IRQ 37u

typedef void (*vector_t)(void);

/* Vector table: 16 system entries then the STM32F405's 82 external interrupts. */
__attribute__((section(".isr_vector"), used))
const vector_t g_vectors[16u + SE_N_EXTERNAL_IRQS] = {
    [0] = (vector_t)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
    [4] = MemManage_Handler,
    [5] = BusFault_Handler,
    [6] = UsageFault_Handler,
    [11] = SVC_Handler,
    [12] = DebugMon_Handler,
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
    [16 ... 16u + SE_USART1_IRQ - 1u] = Default_Handler,
    [16u + SE_USART1_IRQ] = USART1_IRQHandler,
    [16u + SE_USART1_IRQ + 1u ... 16u + SE_N_EXTERNAL_IRQS - 1u] = Default_Handler,
};

void Reset_Handler(void)
{
    /* Enable CP10/CP11 (the FPU) before any floating-point instruction can run: with
     * -mfloat-abi=hard the compiler may emit VFP code anywhere, including in memcpy/memset. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm volatile("dsb\n isb" : : : "memory");

    /* .data: copy initial values from flash; .bss: zero. Done with plain loops, before newlib. */
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0u;
    }
#ifdef SE_BENCH
    board_stack_paint();
#endif

    board_exit(main());
}

void HardFault_Handler(void)
{
    /* A fault is a bug: end the emulation with a distinctive code instead of hanging the test. */
    board_exit(0xF0);
}

void Default_Handler(void)
{
    board_exit(0xF1);
}

/* -nostartfiles drops crt0/crti; newlib-nano still references these from __libc_init_array. */
void _init(void) {}
void _fini(void) {}

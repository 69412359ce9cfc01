/** @file qemu_support.h @brief Semihosting output/exit and the SysTick counter (startup.c). */
#ifndef QEMU_SUPPORT_H
#define QEMU_SUPPORT_H
#include <stdint.h>
void qemu_puts(const char *s);
void qemu_exit(int code) __attribute__((noreturn));
void ticks_start(void);
uint64_t ticks_now(void);
/** Busy loop of exactly 2 * n instructions (plus call overhead), to calibrate ticks. */
void calibration_loop(uint32_t n);
#endif

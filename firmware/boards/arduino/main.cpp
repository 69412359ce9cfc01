/**
 * @file main.cpp
 * @brief SleepEdge on Arduino-framework boards (PlatformIO envs esp32dev, nucleo_f446re).
 *
 * The same portable core as the QEMU image (core/se_app.c, se_filter.c, se_protocol.c) with the
 * TFLM model backend (backends/tflm/se_model_tflm.cc). The board layer is only this file:
 * Serial for the protocol, millis() for timeouts, the CPU cycle counter for STATUS.
 *
 * Serial settings: SE_SERIAL_BAUD (default 115200, 8N1); pass the same rate to the host
 * (`sleepedge monitor --port /dev/ttyUSB0 --baud 115200`). One EEG channel is ~215 B/s of
 * SAMPLES frames, so 115200 baud replays a recording at up to ~50x real time.
 */
#include <Arduino.h>

#include "se_app.h"

#ifndef SE_SERIAL_BAUD
#define SE_SERIAL_BAUD 115200
#endif
/* Bytes the UART driver buffers while an inference runs (tens of ms); see platformio.ini for
 * the STM32 core's SERIAL_RX_BUFFER_SIZE, the ESP32 core takes it at run time. */
#ifndef SE_SERIAL_RX_BUFFER
#define SE_SERIAL_RX_BUFFER 4096
#endif

namespace {

se_app_t g_app; /* ~10 kB, static: no heap */

void platform_write(const uint8_t *data, size_t len, void *ctx)
{
    (void)ctx;
    Serial.write(data, len);
}

uint32_t platform_millis(void *ctx)
{
    (void)ctx;
    return static_cast<uint32_t>(millis());
}

#if defined(ARDUINO_ARCH_ESP32)
uint32_t platform_cycles(void *ctx)
{
    (void)ctx;
    return ESP.getCycleCount(); /* Xtensa CCOUNT: CPU clock cycles */
}

void start_cycle_counter(void) {}
#elif defined(ARDUINO_ARCH_STM32)
uint32_t platform_cycles(void *ctx)
{
    (void)ctx;
    return DWT->CYCCNT; /* Cortex-M4 DWT cycle counter (real silicon implements it) */
}

void start_cycle_counter(void)
{
    CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
    DWT->CYCCNT = 0u;
    DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
}
#else
#define SE_NO_CYCLE_COUNTER 1
void start_cycle_counter(void) {}
#endif

}  // namespace

void setup()
{
#if defined(ARDUINO_ARCH_ESP32)
    Serial.setRxBufferSize(SE_SERIAL_RX_BUFFER); /* must precede begin() */
#endif
    Serial.begin(SE_SERIAL_BAUD);
    start_cycle_counter();
    static const se_platform_t platform = {
        platform_write,
        platform_millis,
#ifdef SE_NO_CYCLE_COUNTER
        nullptr,
#else
        platform_cycles,
#endif
        nullptr,
    };
    se_app_init(&g_app, &platform);
}

void loop()
{
    uint8_t chunk[128];
    size_t n = 0;
    while (n < sizeof chunk && Serial.available() > 0) {
        int c = Serial.read();
        if (c < 0) {
            break;
        }
        chunk[n++] = static_cast<uint8_t>(c);
    }
    if (n > 0) {
        se_app_rx(&g_app, chunk, n);
    }
    se_app_poll(&g_app);
}

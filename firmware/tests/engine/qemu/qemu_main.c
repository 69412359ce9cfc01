/**
 * @file qemu_main.c
 * @brief Engine check and benchmark on the emulated Cortex-M4: runs the baked test vectors
 *        (test_vectors.h, written by measure_qemu.py from the real TFLM interpreter), compares
 *        bit for bit, and reports SysTick ticks of one inference and of a calibration loop.
 *
 * Output lines: "mismatch_vector=V rc=R", then "ticks_infer=T ticks_calib=C calib_instr=N
 * macs=M arena=A ok=K vectors=V". Exit code: number of mismatching vectors (0 = pass).
 */
#include "model_plan.h"
#include "qemu_support.h"
#include "se_engine.h"
#include "test_vectors.h"

static _Alignas(8) uint8_t s_arena[SE_PLAN_ARENA_BYTES];

#define CALIB_ITER 1000000u

#ifdef SE_ENGINE_PROFILE
static uint64_t s_op_ticks[SE_PLAN_N_OPS + 1];
static int s_profiling;
void se_engine_op_done(uint16_t index)
{
    if (s_profiling && index < SE_PLAN_N_OPS) {
        s_op_ticks[index] = ticks_now();
    }
}
#endif

/** Append "key=value " to the line (no printf: keeps the harness free of newlib's stdio). */
static char *put_kv(char *p, const char *key, uint64_t v)
{
    char digits[24];
    int n = 0;
    while (*key) {
        *p++ = *key++;
    }
    *p++ = '=';
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    while (n) {
        *p++ = digits[--n];
    }
    *p++ = ' ';
    return p;
}

int main(void)
{
    static int8_t out[SE_PLAN_OUTPUT_BYTES];
    static char line[160];
    int bad = 0;
    uint64_t t_infer = 0;
    for (int v = 0; v < TV_COUNT; ++v) {
#ifdef SE_ENGINE_PROFILE
        s_profiling = v == 0;
#endif
        const uint64_t t0 = (ticks_start(), ticks_now());
        const int rc = se_engine_run(&g_se_plan, s_arena, sizeof s_arena, tv_inputs[v], out);
        const uint64_t t1 = ticks_now();
        if (v == 0) {
            t_infer = t1 - t0;
        }
        int diff = rc != 0;
        for (unsigned i = 0; i < SE_PLAN_OUTPUT_BYTES; ++i) {
            diff |= out[i] != tv_expected[v][i];
        }
        if (diff) {
            char *p = put_kv(line, "mismatch_vector", (uint64_t)v);
            p = put_kv(p, "rc", (uint64_t)(rc < 0 ? -rc : rc));
            p[0] = '\n';
            p[1] = '\0';
            qemu_puts(line);
            ++bad;
        }
    }
    ticks_start();
    const uint64_t c0 = ticks_now();
    calibration_loop(CALIB_ITER);
    const uint64_t c1 = ticks_now();
#ifdef SE_ENGINE_PROFILE
    for (unsigned i = 0; i < SE_PLAN_N_OPS; ++i) {
        char *q = put_kv(line, "op", i);
        q = put_kv(q, "end_ticks", s_op_ticks[i]);
        q[0] = '\n';
        q[1] = '\0';
        qemu_puts(line);
    }
#endif
    char *p = put_kv(line, "ticks_infer", t_infer);
    p = put_kv(p, "ticks_calib", c1 - c0);
    p = put_kv(p, "calib_instr", 2u * (uint64_t)CALIB_ITER);
    p = put_kv(p, "macs", SE_PLAN_MACS);
    p = put_kv(p, "arena", SE_PLAN_ARENA_BYTES);
    p = put_kv(p, "ok", (uint64_t)(TV_COUNT - bad));
    p = put_kv(p, "vectors", (uint64_t)TV_COUNT);
    p[0] = '\n';
    p[1] = '\0';
    qemu_puts(line);
    return bad;
}

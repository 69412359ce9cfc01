/* Fuzz harness (build with ASan + UBSan): random and mutated inputs to the frame parser and to
 * se_app_rx. Invariants checked on every input:
 *   - no crash, no undefined behaviour (the sanitizers abort on the first report);
 *   - a frame the parser delivers lies inside the parser's buffer;
 *   - everything the device writes parses back as valid frames (no garbage, no bad CRC);
 *   - the pending escalation table never exceeds SE_MAX_PENDING_ESCALATIONS;
 *   - a NACK names the block the device waits for (or, before it has synchronised, the start of
 *     an epoch), and while it waits for that block the device accepts no other (SAMPLES_ARQ
 *     recovery, docs/protocol.md).
 * In some boot periods the generator sends SAMPLES_ARQ and plays a host that goes back to the
 * NACKed block (usually; sometimes it ignores the NACK, so the give-up path runs too). Epochs
 * are drawn from EEG-like, loud, flat and mains-like signals so the quality gate fires.
 *   fuzz [N_INPUTS] [SEED]     prints "fuzz: N inputs ..." on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_model.h"
#include "se_app.h"
#include "se_protocol.h"

#define MAX_INPUT 4096

static uint64_t g_rng;
static uint32_t rnd(void)
{
    /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 2685821657736338717ull) >> 32);
}
static uint32_t below(uint32_t n) { return n ? rnd() % n : 0; }

static void fail(const char *what, unsigned long long input)
{
    fprintf(stderr, "fuzz: invariant violated on input %llu: %s\n", input, what);
    abort();
}

/* --- device output checker --------------------------------------------------------------- */

static se_parser_t g_out;
static uint8_t g_out_buf[SE_FRAME_MAX_ENCODED(SE_MAX_PAYLOAD_BYTES)];
static unsigned long long g_out_frames;
static unsigned long long g_out_types[256];
static unsigned long long g_final_sources[256];
static unsigned long long g_recovered; /* waits ended by the NACKed block itself */
static int g_nack_seen;          /* a NACK arrived since the generator last looked */
static uint32_t g_nack_first;    /* its first block */

static void out_write(const uint8_t *data, size_t len, void *ctx)
{
    (void)ctx;
    se_frame_t f;
    for (size_t i = 0; i < len; ++i) {
        if (se_parser_push(&g_out, data[i], &f)) {
            g_out_frames++;
            g_out_types[f.type]++;
            if (f.type == SE_FRAME_FINAL && f.len == 6) {
                g_final_sources[f.payload[5]]++;
            }
            if (f.type == SE_FRAME_NACK && f.len == 6) {
                g_nack_seen = 1;
                g_nack_first = se_rd_u32(f.payload);
            }
        }
    }
}

static uint32_t g_now;
static uint32_t clock_ms(void *ctx)
{
    (void)ctx;
    return g_now;
}
static uint32_t g_cyc;
static uint32_t cycles(void *ctx)
{
    (void)ctx;
    return g_cyc += 1 + below(1000);
}

/* --- input generation -------------------------------------------------------------------- */

static const uint8_t k_types[] = {SE_FRAME_SAMPLES, SE_FRAME_SAMPLES, SE_FRAME_SAMPLES,
                                  SE_FRAME_CLOUD_LABEL, SE_FRAME_CLOUD_LABEL, SE_FRAME_CONFIG,
                                  SE_FRAME_PING, SE_FRAME_HELLO, SE_FRAME_RESULT, 0x00, 0xFF};
static uint32_t g_block;      /* next block index the generator tends to send */
static int g_arq;             /* this boot period sends SAMPLES_ARQ instead of SAMPLES */
static uint32_t g_sig_mode;   /* signal of the current epoch: 0 EEG-like, 1 loud, 2 flat, 3 mains */
static uint32_t g_last_epoch; /* recent epoch, for plausible CLOUD_LABELs */

static size_t make_payload(uint8_t type, uint8_t *p)
{
    size_t len;
    switch (type) {
    case SE_FRAME_SAMPLES:
    case SE_FRAME_SAMPLES_ARQ: {
        len = SE_APP_RX_MAX_PAYLOAD;
        if (g_nack_seen && below(4) != 0) { /* a host that resends: go back to the NACKed block */
            g_block = g_nack_first;
        }
        g_nack_seen = 0;
        const uint32_t r = below(100);
        /* Mostly in order; sometimes a gap, a stale block or a wild index. */
        uint32_t block = g_block;
        if (r < 1) {
            block = g_block + below(400);
        } else if (r < 2) {
            block = g_block - below(50);
        } else if (below(1000) == 0) {
            block = rnd();
        }
        g_block = block + 1;
        se_wr_u32(p, block);
        se_wr_u16(p + 4, below(500) == 0 ? (uint16_t)below(200) : SE_SAMPLES_PER_BLOCK);
        if (block % SE_BLOCKS_PER_EPOCH == 0u) {
            g_sig_mode = below(4) ? 0u : below(4);
        }
        const int loud = g_sig_mode == 1u || below(16) == 0;
        for (size_t i = 0; i < SE_SAMPLES_PER_BLOCK; ++i) {
            int16_t v = loud ? (int16_t)rnd() : (int16_t)(below(2000) - 1000);
            if (g_sig_mode == 2u) {
                v = (int16_t)(block & 0xFF);
            } else if (g_sig_mode == 3u) {
                v = (int16_t)((i & 1u) ? 3000 + below(50) : -3000 - below(50));
            }
            se_wr_u16(p + 6 + 2 * i, (uint16_t)v);
        }
        break;
    }
    case SE_FRAME_CLOUD_LABEL:
        len = 5;
        se_wr_u32(p, below(3) ? g_last_epoch - below(6) : rnd());
        p[4] = (uint8_t)(below(4) ? below(SE_N_CLASSES) : rnd());
        break;
    case SE_FRAME_CONFIG: {
        len = 8;
        const float choices[] = {0.0f, 0.3f, 0.6f, 0.99f, 1.0f, -1.0f, 2.0f, NAN, INFINITY};
        const float th = choices[below(sizeof choices / sizeof choices[0])];
        uint32_t bits;
        memcpy(&bits, &th, 4);
        se_wr_u32(p, below(4) ? bits : rnd());
        se_wr_u32(p + 4, below(4) ? 1 + below(20000) : rnd());
        break;
    }
    default:
        len = below(4) ? 4 : below(300);
        for (size_t i = 0; i < len; ++i) {
            p[i] = (uint8_t)rnd();
        }
        break;
    }
    if (below(100) == 0) { /* wrong length for the type */
        len = below(len + 8);
        for (size_t i = 0; i < len; ++i) {
            p[i] = (uint8_t)rnd();
        }
    }
    return len;
}

static size_t make_frame(uint8_t *out, size_t cap)
{
    static uint8_t payload[SE_MAX_PAYLOAD_BYTES];
    const uint8_t samples = g_arq ? SE_FRAME_SAMPLES_ARQ : SE_FRAME_SAMPLES;
    uint8_t type = below(4) ? samples : below(10) ? k_types[below(sizeof k_types)] : (uint8_t)rnd();
    if (type == SE_FRAME_SAMPLES) {
        type = samples;
    }
    size_t len = make_payload(type, payload);
    if (below(1000) == 0) { /* now and then a frame larger than the device's buffer */
        len = 300 + below(1500);
        for (size_t i = 0; i < len; ++i) {
            payload[i] = (uint8_t)rnd();
        }
    }
    return se_frame_encode(type, (uint8_t)rnd(), payload, len, out, cap);
}

/* Per boot period: percentage of inputs that are corrupt (from a clean link to pure noise), so
 * the state machine is also driven through complete, escalated and answered epochs. */
static uint32_t g_corrupt_pct;

static size_t make_input(uint8_t *in)
{
    static uint8_t tmp[MAX_INPUT];
    size_t n = 0;
    const uint32_t mode = below(100) < g_corrupt_pct ? (below(2) ? below(2) : 4 + below(4)) : 2;
    switch (mode) {
    case 0: /* random bytes */
        n = below(96);
        for (size_t i = 0; i < n; ++i) {
            in[i] = (uint8_t)rnd();
        }
        break;
    case 1: /* random bytes, delimiter-heavy */
        n = below(64);
        for (size_t i = 0; i < n; ++i) {
            in[i] = below(4) ? (uint8_t)rnd() : 0;
        }
        break;
    case 2: /* a run of valid frames, sometimes after a resynchronising delimiter */
    case 3: {
        const uint32_t count = 1 + below(3);
        if (below(2)) {
            in[n++] = 0;
        }
        for (uint32_t k = 0; k < count && n + 600 < MAX_INPUT; ++k) {
            n += make_frame(in + n, MAX_INPUT - n);
        }
        break;
    }
    case 4: { /* bit flips */
        n = make_frame(in, MAX_INPUT);
        const uint32_t flips = 1 + below(4);
        for (uint32_t k = 0; k < flips && n > 0; ++k) {
            in[below((uint32_t)n)] ^= (uint8_t)(1u << below(8));
        }
        break;
    }
    case 5: /* truncation, maybe followed by a delimiter */
        n = make_frame(in, MAX_INPUT);
        n = below((uint32_t)n + 1);
        if (below(2)) {
            in[n++] = 0;
        }
        break;
    case 6: { /* splice pieces of several valid frames */
        const uint32_t parts = 2 + below(3);
        for (uint32_t k = 0; k < parts; ++k) {
            const size_t m = make_frame(tmp, sizeof tmp);
            const size_t a = below((uint32_t)m + 1), b = a + below((uint32_t)(m - a) + 1);
            if (n + (b - a) <= MAX_INPUT) {
                memcpy(in + n, tmp + a, b - a);
                n += b - a;
            }
        }
        break;
    }
    default: { /* insert or delete a byte */
        n = make_frame(in, MAX_INPUT - 1);
        if (n > 1 && below(2)) {
            const size_t at = below((uint32_t)n);
            memmove(in + at, in + at + 1, n - at - 1);
            n--;
        } else {
            const size_t at = below((uint32_t)n + 1);
            memmove(in + at + 1, in + at, n - at);
            in[at] = (uint8_t)rnd();
            n++;
        }
        break;
    }
    }
    return n;
}

/* --- main --------------------------------------------------------------------------------- */

static void reboot(se_app_t *app)
{
    mock_model_reset();
    const uint32_t r = below(16);
    g_mock_mode = below(2) ? MOCK_DERIVED : MOCK_FIXED;
    g_mock_output[below(SE_N_CLASSES)] = (int8_t)rnd();
    if (r == 0) {
        g_mock_init_rc = -1;
    } else if (r == 1) {
        g_mock_run_rc = 7;
    } else if (r == 2) {
        g_mock_in_scale = 1e-30f; /* absurd quantization parameters must not cause UB */
        g_mock_out_scale = NAN;
    } else if (r == 3) {
        g_mock_in_scale = 1e30f;
        g_mock_in_zp = 127;
        g_mock_out_zp = 127;
    }
    g_mock_input_norm = (int)below(2); /* half the boots run the running input normalization */
    /* Half the boots run with a context head (mock): the ring sees every gap, artefact and
     * model failure the fuzz produces; sometimes the head fails or has absurd quantization. */
    g_mock_ctx_enabled = (int)below(2);
    g_mock_ctx_output[below(SE_N_CLASSES)] = (int8_t)rnd();
    if (below(16) == 0) {
        g_mock_ctx_rc = 3;
    }
    if (r == 2) {
        g_mock_ctx_in_scale = 1e-30f;
    }
    const se_platform_t plat = {out_write, clock_ms, below(2) ? cycles : NULL, NULL};
    g_now = rnd();
    g_arq = below(2);
    g_nack_seen = 0;
    se_app_init(app, &plat);
}

int main(int argc, char **argv)
{
    const unsigned long long n_inputs = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000ull;
    g_rng = argc > 2 ? strtoull(argv[2], NULL, 10) : 0x5EEDull;
    if (g_rng == 0) {
        g_rng = 1;
    }
    g_corrupt_pct = 10;
    static se_app_t app;
    static uint8_t in[MAX_INPUT + 8];
    static uint8_t small_buf[SE_APP_RX_BUF_BYTES], big_buf[SE_FRAME_MAX_ENCODED(SE_MAX_PAYLOAD_BYTES)];
    se_parser_t small, big;
    se_parser_init(&g_out, g_out_buf, sizeof g_out_buf);
    se_parser_init(&small, small_buf, sizeof small_buf);
    se_parser_init(&big, big_buf, sizeof big_buf);
    reboot(&app);
    unsigned long long bytes = 0, parsed = 0;
    for (unsigned long long i = 0; i < n_inputs; ++i) {
        if (i % 5000 == 0 && i > 0) {
            reboot(&app);
            g_block = below(3) ? 0 : rnd();
            const uint32_t levels[] = {0, 2, 10, 30, 90};
            g_corrupt_pct = levels[below(5)];
        }
        const size_t n = make_input(in);
        bytes += n;
        se_frame_t f;
        for (size_t k = 0; k < n; ++k) {
            if (se_parser_push(&small, in[k], &f)) {
                parsed++;
                if (f.payload < small_buf || f.payload + f.len > small_buf + sizeof small_buf) {
                    fail("small parser frame length", i);
                }
            }
            if (se_parser_push(&big, in[k], &f)) {
                parsed++;
                if (f.len > SE_MAX_PAYLOAD_BYTES || f.payload < big_buf ||
                    f.payload + f.len > big_buf + sizeof big_buf) {
                    fail("big parser frame length", i);
                }
            }
        }
        /* Random split into chunks: se_app_rx must not care. */
        size_t off = 0;
        while (off < n) {
            size_t k = 1 + below(64);
            k = k > n - off ? n - off : k;
            const int was_waiting = app.arq_waiting;
            const uint32_t expected = app.next_block;
            const unsigned long long nacks = g_out_types[SE_FRAME_NACK];
            const uint32_t missing = app.st.missing_blocks;
            se_app_rx(&app, in + off, k);
            off += k;
            if (g_out_types[SE_FRAME_NACK] != nacks &&
                !(app.arq_waiting && g_nack_first == app.next_block) &&
                !(!app.synced && g_nack_first % SE_BLOCKS_PER_EPOCH == 0u)) {
                fail("NACK names neither the block the device waits for nor an epoch start", i);
            }
            /* A chunk may hold the resent block and then open a new gap; otherwise a waiting
             * device accepts nothing. */
            if (was_waiting && !app.arq_waiting && app.next_block > expected &&
                app.st.missing_blocks == missing) {
                g_recovered++; /* the wait ended with the NACKed block, nothing zero-filled */
            }
            if (was_waiting && app.arq_waiting && app.next_block != expected &&
                g_out_types[SE_FRAME_NACK] == nacks) {
                fail("blocks accepted while waiting for a resend", i);
            }
        }
        if (below(4) == 0) {
            g_now += below(3000);
            se_app_poll(&app);
        }
        if (below(64) == 0) {
            se_app_note_rx_overflow(&app, below(5));
        }
        if (app.ready) {
            g_last_epoch = app.ready_epoch;
        }
        int used = 0;
        for (int k = 0; k < SE_MAX_PENDING_ESCALATIONS; ++k) {
            used += app.pending[k].used;
            if (app.pending[k].used) {
                g_last_epoch = app.pending[k].epoch;
            }
        }
        if (used > SE_MAX_PENDING_ESCALATIONS) {
            fail("pending table", i);
        }
        if (g_out.bad_crc || g_out.garbage_bytes || g_out.oversize) {
            fail("device output does not parse", i);
        }
    }
    se_app_poll(&app);
    if (g_out.bad_crc || g_out.garbage_bytes || g_out.oversize) {
        fail("device output does not parse", n_inputs);
    }
    const se_app_status_t st = se_app_status(&app);
    printf("fuzz: %llu inputs, %llu bytes, %llu frames parsed, device sent %llu frames "
           "(%llu RESULT, %llu ESCALATE, %llu ERROR, FINAL by source: %llu edge, %llu cloud, %llu timeout, "
           "%llu incomplete, %llu artefact), %llu NACK, %llu recovered; last app: %u epochs, %u bad_crc, %u garbage_bytes\n",
           n_inputs, bytes, parsed, g_out_frames, g_out_types[SE_FRAME_RESULT],
           g_out_types[SE_FRAME_ESCALATE], g_out_types[SE_FRAME_ERROR],
           g_final_sources[SE_SOURCE_EDGE], g_final_sources[SE_SOURCE_CLOUD],
           g_final_sources[SE_SOURCE_TIMEOUT], g_final_sources[SE_SOURCE_INCOMPLETE],
           g_final_sources[SE_SOURCE_ARTEFACT], g_out_types[SE_FRAME_NACK], g_recovered, st.epochs, st.bad_crc, st.garbage_bytes);
    return 0;
}

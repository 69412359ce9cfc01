/* Minimal test harness for the host unit tests (one executable per unit, like TFLM's tests). */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "se_protocol.h"

static int g_failures;
static int g_checks;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        ++g_checks;                                                                     \
        if (!(cond)) {                                                                  \
            ++g_failures;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                               \
    } while (0)

#define CHECK_EQ(a, b)                                                                  \
    do {                                                                                \
        ++g_checks;                                                                     \
        const long long va_ = (long long)(a), vb_ = (long long)(b);                     \
        if (va_ != vb_) {                                                               \
            ++g_failures;                                                               \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %lld, %s = %lld\n", __FILE__, \
                    __LINE__, #a, va_, #b, vb_);                                        \
        }                                                                               \
    } while (0)

#define RUN(test)                                   \
    do {                                            \
        const int before_ = g_failures;             \
        test();                                     \
        printf("%-48s %s\n", #test, g_failures == before_ ? "ok" : "FAILED"); \
    } while (0)

#define TEST_MAIN_END()                                                          \
    do {                                                                         \
        printf("%d checks, %d failures\n", g_checks, g_failures);                \
        return g_failures == 0 ? 0 : 1;                                          \
    } while (0)

/* --- capture of frames a device writes -------------------------------------------------- */

#define CAP_MAX_FRAMES 256
#define CAP_ENCODED SE_FRAME_MAX_ENCODED(SE_MAX_PAYLOAD_BYTES)

typedef struct {
    uint8_t type, seq;
    uint16_t len;
    uint8_t payload[SE_MAX_PAYLOAD_BYTES];
} cap_frame_t;

typedef struct {
    se_parser_t parser;
    uint8_t buf[CAP_ENCODED];
    cap_frame_t frames[CAP_MAX_FRAMES];
    int n;        /* frames captured (beyond CAP_MAX_FRAMES only counted in total) */
    int total;
    uint32_t bytes;
} capture_t;

static inline void capture_reset(capture_t *c)
{
    se_parser_init(&c->parser, c->buf, sizeof c->buf);
    c->n = 0;
    c->total = 0;
    c->bytes = 0;
}

/* Forget captured frames but keep the parser state (a frame may be half written). */
static inline void capture_clear(capture_t *c)
{
    c->n = 0;
    c->total = 0;
}

static inline void capture_write(const uint8_t *data, size_t len, void *ctx)
{
    capture_t *c = (capture_t *)ctx;
    se_frame_t f;
    for (size_t i = 0; i < len; ++i) {
        c->bytes++;
        if (se_parser_push(&c->parser, data[i], &f)) {
            if (c->n < CAP_MAX_FRAMES) {
                cap_frame_t *o = &c->frames[c->n++];
                o->type = f.type;
                o->seq = f.seq;
                o->len = f.len;
                memcpy(o->payload, f.payload, f.len);
            }
            c->total++;
        }
    }
}

/* Index of the k-th (0-based) captured frame of this type, or -1. */
static inline int capture_find(const capture_t *c, uint8_t type, int k)
{
    for (int i = 0; i < c->n; ++i) {
        if (c->frames[i].type == type && k-- == 0) {
            return i;
        }
    }
    return -1;
}

static inline int capture_count(const capture_t *c, uint8_t type)
{
    int n = 0;
    for (int i = 0; i < c->n; ++i) {
        n += c->frames[i].type == type;
    }
    return n;
}

#endif

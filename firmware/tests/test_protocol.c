/* Unit tests: CRC-16, COBS, frame builder / streaming writer, streaming parser corruption cases. */
#include <stdlib.h>

#include "se_protocol.h"
#include "test_util.h"

#define BIG SE_FRAME_MAX_WIRE(SE_MAX_PAYLOAD_BYTES)

static uint32_t g_rng = 12345u;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

static void test_crc_vectors(void)
{
    const uint8_t check[] = "123456789";
    CHECK_EQ(se_crc16(check, 9), 0x29B1);
    CHECK_EQ(se_crc16(check, 0), 0xFFFF); /* init value, no xor-out */
    /* Incremental update equals one pass. */
    CHECK_EQ(se_crc16_update(se_crc16(check, 4), check + 4, 5), 0x29B1);
    /* A non-reflected CRC without xor-out leaves residue 0 over message || crc (big-endian). */
    uint8_t msg[64];
    for (int trial = 0; trial < 50; ++trial) {
        const size_t n = rnd() % 60;
        for (size_t i = 0; i < n; ++i) {
            msg[i] = (uint8_t)rnd();
        }
        const uint16_t crc = se_crc16(msg, n);
        msg[n] = (uint8_t)(crc >> 8);
        msg[n + 1] = (uint8_t)crc;
        CHECK_EQ(se_crc16(msg, n + 2), 0);
    }
}

static void check_cobs_vector(const uint8_t *in, size_t n, const uint8_t *want, size_t want_n)
{
    uint8_t out[600];
    uint8_t back[600];
    size_t back_n = 0;
    const size_t got = se_cobs_encode(in, n, out, sizeof out);
    CHECK_EQ(got, want_n);
    CHECK(got == want_n && memcmp(out, want, want_n) == 0);
    CHECK_EQ(se_cobs_decode(want, want_n, back, sizeof back, &back_n), 0);
    CHECK_EQ(back_n, n);
    CHECK(back_n == n && memcmp(back, in, n) == 0);
}

static void test_cobs_known_vectors(void)
{
    /* The classic examples from Cheshire & Baker's COBS paper / its common test set. */
    check_cobs_vector((const uint8_t[]){0x00}, 1, (const uint8_t[]){0x01, 0x01}, 2);
    check_cobs_vector((const uint8_t[]){0x00, 0x00}, 2, (const uint8_t[]){0x01, 0x01, 0x01}, 3);
    check_cobs_vector((const uint8_t[]){0x00, 0x11, 0x00}, 3, (const uint8_t[]){0x01, 0x02, 0x11, 0x01}, 4);
    check_cobs_vector((const uint8_t[]){0x11, 0x22, 0x00, 0x33}, 4,
                      (const uint8_t[]){0x03, 0x11, 0x22, 0x02, 0x33}, 5);
    check_cobs_vector((const uint8_t[]){0x11, 0x22, 0x33, 0x44}, 4,
                      (const uint8_t[]){0x05, 0x11, 0x22, 0x33, 0x44}, 5);
    check_cobs_vector((const uint8_t[]){0x11, 0x00, 0x00, 0x00}, 4,
                      (const uint8_t[]){0x02, 0x11, 0x01, 0x01, 0x01}, 5);
    check_cobs_vector((const uint8_t[]){0xAA}, 0, (const uint8_t[]){0x01}, 1);

    uint8_t in[256], want[260];
    /* 254 non-zero bytes: one full block, no trailing code. */
    for (int i = 0; i < 254; ++i) {
        in[i] = (uint8_t)(i + 1);
        want[1 + i] = (uint8_t)(i + 1);
    }
    want[0] = 0xFF;
    check_cobs_vector(in, 254, want, 255);
    /* 00 01 .. FE (255 bytes) -> 01 FF 01 .. FE */
    for (int i = 0; i < 255; ++i) {
        in[i] = (uint8_t)i;
    }
    want[0] = 0x01;
    want[1] = 0xFF;
    for (int i = 1; i < 255; ++i) {
        want[1 + i] = (uint8_t)i;
    }
    check_cobs_vector(in, 255, want, 256);
    /* 01 .. FF (255 bytes) -> FF 01 .. FE 02 FF */
    for (int i = 0; i < 255; ++i) {
        in[i] = (uint8_t)(i + 1);
    }
    want[0] = 0xFF;
    for (int i = 0; i < 254; ++i) {
        want[1 + i] = (uint8_t)(i + 1);
    }
    want[255] = 0x02;
    want[256] = 0xFF;
    check_cobs_vector(in, 255, want, 257);
}

static void test_cobs_round_trips(void)
{
    static uint8_t in[2000], enc[2100], dec[2100];
    for (int trial = 0; trial < 400; ++trial) {
        const size_t n = rnd() % 2000;
        const uint32_t zero_every = 1u + rnd() % 600u; /* from dense zeros to none at all */
        for (size_t i = 0; i < n; ++i) {
            in[i] = (rnd() % zero_every == 0) ? 0 : (uint8_t)(1u + rnd() % 255u);
        }
        const size_t e = se_cobs_encode(in, n, enc, sizeof enc);
        CHECK(e > 0 && e <= SE_COBS_MAX_ENCODED(n));
        CHECK(memchr(enc, 0, e) == NULL);
        size_t d = 0;
        CHECK_EQ(se_cobs_decode(enc, e, dec, sizeof dec, &d), 0);
        CHECK(d == n && memcmp(dec, in, n) == 0);
        /* In place. */
        CHECK_EQ(se_cobs_decode(enc, e, enc, sizeof enc, &d), 0);
        CHECK(d == n && memcmp(enc, in, n) == 0);
        /* Too small an output buffer is refused, never overrun. */
        if (e > 1) {
            CHECK_EQ(se_cobs_encode(in, n, enc, e - 1), 0);
        }
    }
}

static void test_cobs_malformed(void)
{
    uint8_t out[16];
    size_t n = 0;
    CHECK_EQ(se_cobs_decode((const uint8_t[]){0x05, 0x11, 0x22}, 3, out, sizeof out, &n), -1); /* runs past end */
    CHECK_EQ(se_cobs_decode((const uint8_t[]){0x03, 0x11, 0x00}, 3, out, sizeof out, &n), -1); /* zero inside */
    CHECK_EQ(se_cobs_decode((const uint8_t[]){0x00}, 1, out, sizeof out, &n), -1);             /* zero code */
    CHECK_EQ(se_cobs_decode(out, 0, out, sizeof out, &n), -1);                                  /* empty */
    CHECK_EQ(se_cobs_decode((const uint8_t[]){0x04, 1, 2, 3}, 4, out, 2, &n), -1);              /* cap */
}

/* Frame builder and streaming writer must agree byte for byte. */
typedef struct {
    uint8_t buf[BIG];
    size_t n;
    int calls;
} sink_t;

static void sink_write(const uint8_t *data, size_t len, void *ctx)
{
    sink_t *s = (sink_t *)ctx;
    if (s->n + len <= sizeof s->buf) {
        memcpy(s->buf + s->n, data, len);
    }
    s->n += len;
    s->calls++;
}

static void test_frame_encode_matches_writer(void)
{
    static uint8_t payload[SE_MAX_PAYLOAD_BYTES], frame[BIG];
    static sink_t sink;
    const size_t lens[] = {0, 1, 5, 247, 248, 249, 250, 253, 254, 255, 508, 3000, SE_MAX_PAYLOAD_BYTES};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; ++li) {
        for (int variant = 0; variant < 3; ++variant) {
            const size_t len = lens[li];
            for (size_t i = 0; i < len; ++i) {
                payload[i] = variant == 0 ? (uint8_t)(1 + rnd() % 255) : variant == 1 ? 0 : (uint8_t)rnd();
            }
            const uint8_t type = (uint8_t)(rnd() % 256), seq = (uint8_t)rnd();
            const size_t n = se_frame_encode(type, seq, payload, len, frame, sizeof frame);
            CHECK(n > 0 && n <= SE_FRAME_MAX_WIRE(len));
            CHECK(n > 0 && frame[n - 1] == 0 && memchr(frame, 0, n - 1) == NULL);
            se_frame_writer_t w;
            sink.n = 0;
            se_fw_begin(&w, sink_write, &sink, type, seq, (uint16_t)len);
            size_t off = 0;
            while (off < len) { /* random piece sizes */
                size_t k = 1 + rnd() % 300;
                k = k > len - off ? len - off : k;
                se_fw_put(&w, payload + off, k);
                off += k;
            }
            se_fw_end(&w);
            CHECK_EQ(sink.n, n);
            CHECK(sink.n == n && memcmp(sink.buf, frame, n) == 0);
            /* Every smaller buffer is refused. */
            CHECK_EQ(se_frame_encode(type, seq, payload, len, frame, n - 1), 0);
        }
    }
    CHECK_EQ(se_frame_encode(1, 0, payload, SE_MAX_PAYLOAD_BYTES + 1, frame, sizeof frame), 0);
}

/* --- parser ----------------------------------------------------------------------------- */

static uint8_t g_pbuf[SE_FRAME_MAX_ENCODED(SE_MAX_PAYLOAD_BYTES)];

typedef struct {
    int frames;
    se_frame_t last;
    uint8_t last_payload[SE_MAX_PAYLOAD_BYTES];
} got_t;

static void feed(se_parser_t *p, const uint8_t *data, size_t n, got_t *g)
{
    se_frame_t f;
    for (size_t i = 0; i < n; ++i) {
        if (se_parser_push(p, data[i], &f)) {
            g->frames++;
            g->last = f;
            memcpy(g->last_payload, f.payload, f.len);
        }
    }
}

static size_t make_frame(uint8_t type, uint8_t seq, size_t len, uint8_t *out)
{
    uint8_t payload[SE_MAX_PAYLOAD_BYTES];
    for (size_t i = 0; i < len; ++i) {
        payload[i] = (uint8_t)(i * 7 + 3);
    }
    return se_frame_encode(type, seq, payload, len, out, BIG);
}

static void test_parser_valid_and_zero_length(void)
{
    se_parser_t p;
    got_t g = {0};
    uint8_t fr[BIG];
    se_parser_init(&p, g_pbuf, sizeof g_pbuf);
    feed(&p, (const uint8_t[]){0, 0, 0}, 3, &g); /* empty candidates: ignored, not garbage */
    CHECK_EQ(g.frames, 0);
    CHECK_EQ(p.garbage_bytes, 0);
    const size_t n = make_frame(SE_FRAME_PING, 9, 0, fr); /* zero-length payload is a valid frame */
    feed(&p, fr, n, &g);
    CHECK_EQ(g.frames, 1);
    CHECK_EQ(g.last.type, SE_FRAME_PING);
    CHECK_EQ(g.last.seq, 9);
    CHECK_EQ(g.last.len, 0);
    const size_t m = make_frame(SE_FRAME_SAMPLES, 10, 206, fr);
    feed(&p, fr, m, &g);
    CHECK_EQ(g.frames, 2);
    CHECK_EQ(g.last.len, 206);
    CHECK_EQ(g.last_payload[205], (uint8_t)(205 * 7 + 3));
    CHECK_EQ(p.frames, 2);
    CHECK_EQ(p.bad_crc + p.garbage_bytes + p.oversize, 0);
}

static void test_parser_garbage_between_frames(void)
{
    se_parser_t p;
    got_t g = {0};
    uint8_t fr[BIG];
    se_parser_init(&p, g_pbuf, sizeof g_pbuf);
    const size_t n = make_frame(SE_FRAME_CONFIG, 1, 8, fr);
    const uint8_t junk[] = {0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47};
    feed(&p, junk, sizeof junk, &g); /* boot noise before the first delimiter */
    feed(&p, (const uint8_t[]){0}, 1, &g);
    feed(&p, fr, n, &g);
    feed(&p, junk, 3, &g);
    feed(&p, (const uint8_t[]){0}, 1, &g);
    feed(&p, fr, n, &g);
    CHECK_EQ(g.frames, 2);
    CHECK_EQ(p.garbage_bytes, sizeof junk + 3);
    /* Garbage with no delimiter merges with the next frame: both are lost, then it recovers. */
    feed(&p, junk, 2, &g);
    feed(&p, fr, n, &g);
    CHECK_EQ(g.frames, 2);
    CHECK_EQ(p.garbage_bytes + p.bad_crc > sizeof junk + 3, 1);
    feed(&p, fr, n, &g);
    CHECK_EQ(g.frames, 3);
}

static void test_parser_bad_crc(void)
{
    se_parser_t p;
    got_t g = {0};
    uint8_t fr[BIG];
    se_parser_init(&p, g_pbuf, sizeof g_pbuf);
    const size_t n = make_frame(SE_FRAME_SAMPLES, 2, 206, fr);
    for (size_t pos = 5; pos < n - 1; pos += 17) {
        uint8_t bad[BIG];
        memcpy(bad, fr, n);
        bad[pos] ^= 0x10; /* stays non-zero for these payload bytes, so COBS stays valid */
        if (bad[pos] == 0) {
            continue;
        }
        const uint32_t before = p.bad_crc + p.garbage_bytes;
        feed(&p, bad, n, &g);
        CHECK(p.bad_crc + p.garbage_bytes > before);
    }
    CHECK(p.bad_crc > 0);
    CHECK_EQ(g.frames, 0);
    feed(&p, fr, n, &g); /* resynchronised */
    CHECK_EQ(g.frames, 1);
}

static void test_parser_truncated(void)
{
    se_parser_t p;
    got_t g = {0};
    uint8_t fr[BIG];
    se_parser_init(&p, g_pbuf, sizeof g_pbuf);
    const size_t n = make_frame(SE_FRAME_CLOUD_LABEL, 3, 5, fr);
    for (size_t cut = 1; cut < n - 1; ++cut) {
        feed(&p, fr, cut, &g);
        feed(&p, (const uint8_t[]){0}, 1, &g); /* line dropped the rest, then a delimiter */
    }
    CHECK_EQ(g.frames, 0);
    CHECK_EQ(p.frames, 0);
    CHECK(p.garbage_bytes + p.bad_crc >= n - 2);
    feed(&p, fr, n, &g);
    CHECK_EQ(g.frames, 1);
}

static void test_parser_oversize(void)
{
    se_parser_t p;
    got_t g = {0};
    uint8_t fr[BIG];
    static uint8_t small[SE_FRAME_MAX_ENCODED(206)];
    se_parser_init(&p, small, sizeof small);
    const size_t big = make_frame(SE_FRAME_SAMPLES, 4, 1000, fr);
    feed(&p, fr, big, &g);
    CHECK_EQ(p.oversize, 1);
    CHECK_EQ(g.frames, 0);
    /* The largest frame that fits is accepted. */
    const size_t ok = make_frame(SE_FRAME_SAMPLES, 5, 206, fr);
    CHECK(ok - 1 <= sizeof small);
    feed(&p, fr, ok, &g);
    CHECK_EQ(g.frames, 1);
    /* A run with no delimiter at all never overflows the buffer. */
    for (int i = 0; i < 5000; ++i) {
        feed(&p, (const uint8_t[]){0x55}, 1, &g);
    }
    CHECK_EQ(p.oversize, 2);
    feed(&p, (const uint8_t[]){0}, 1, &g);
    feed(&p, fr, ok, &g);
    CHECK_EQ(g.frames, 2);
}

static void test_parser_length_mismatch(void)
{
    /* A body whose length field disagrees with its size is garbage, even with a correct CRC. */
    uint8_t body[16] = {SE_FRAME_PING, 0, 5, 0, 1, 2, 3, 4};
    const uint16_t crc = se_crc16(body, 8);
    body[8] = (uint8_t)crc;
    body[9] = (uint8_t)(crc >> 8);
    uint8_t enc[32];
    const size_t e = se_cobs_encode(body, 10, enc, sizeof enc);
    enc[e] = 0;
    se_parser_t p;
    got_t g = {0};
    se_parser_init(&p, g_pbuf, sizeof g_pbuf);
    feed(&p, enc, e + 1, &g);
    CHECK_EQ(g.frames, 0);
    CHECK_EQ(p.garbage_bytes, e);
    /* Too short to hold header and CRC. */
    feed(&p, (const uint8_t[]){0x03, 0x01, 0x02, 0x00}, 4, &g);
    CHECK_EQ(p.garbage_bytes, e + 3);
}

int main(void)
{
    RUN(test_crc_vectors);
    RUN(test_cobs_known_vectors);
    RUN(test_cobs_round_trips);
    RUN(test_cobs_malformed);
    RUN(test_frame_encode_matches_writer);
    RUN(test_parser_valid_and_zero_length);
    RUN(test_parser_garbage_between_frames);
    RUN(test_parser_bad_crc);
    RUN(test_parser_truncated);
    RUN(test_parser_oversize);
    RUN(test_parser_length_mismatch);
    TEST_MAIN_END();
}

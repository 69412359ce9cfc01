/* Serial framing: CRC-16/CCITT-FALSE, COBS, frame builder, streaming writer and parser. */
#include "se_protocol.h"

#include <string.h>

uint16_t se_crc16_update(uint16_t crc, const uint8_t *data, size_t n)
{
    /* Bitwise: 8 iterations per byte is ~2 kB/ms on a Cortex-M4, far above the link rate, and
     * saves a 512-byte table. */
    for (size_t i = 0; i < n; ++i) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (int b = 0; b < 8; ++b) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint16_t se_crc16(const uint8_t *data, size_t n) { return se_crc16_update(0xFFFFu, data, n); }

size_t se_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t code_at = 0; /* where the current block's code byte goes */
    size_t o = 1;
    uint8_t code = 1;
    bool after_full = false;
    if (cap == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; ++i) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            after_full = false;
        } else {
            if (o >= cap) {
                return 0;
            }
            out[o++] = in[i];
            ++code;
            after_full = false;
            if (code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
                after_full = true;
            }
        }
        if (o > cap) {
            return 0;
        }
    }
    if (after_full) {
        /* A full block carries no implied zero, so the reserved code slot is not needed. */
        return o - 1;
    }
    out[code_at] = code;
    return o;
}

int se_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t i = 0;
    size_t o = 0;
    if (n == 0) {
        return -1;
    }
    while (i < n) {
        const uint8_t code = in[i];
        if (code == 0 || (size_t)code > n - i) {
            return -1;
        }
        ++i;
        /* In-place decoding is safe: o never overtakes i (each block's code byte is consumed
         * before its data, and the implied zero replaces the next code byte at most). */
        for (uint8_t k = 1; k < code; ++k) {
            if (in[i] == 0 || o >= cap) {
                return -1;
            }
            out[o++] = in[i++];
        }
        if (code != 0xFF && i < n) {
            if (o >= cap) {
                return -1;
            }
            out[o++] = 0;
        }
    }
    *out_len = o;
    return 0;
}

size_t se_frame_encode(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len, uint8_t *out,
                       size_t cap)
{
    /* COBS-encode header, payload and CRC as one body without copying them together. */
    uint8_t hdr[SE_FRAME_HEADER_BYTES];
    uint8_t tail[2];
    size_t o = 0;
    size_t code_at = 0;
    uint8_t code = 1;
    bool after_full = false;
    if (len > SE_MAX_PAYLOAD_BYTES || cap < 2) {
        return 0;
    }
    hdr[0] = type;
    hdr[1] = seq;
    se_wr_u16(&hdr[2], (uint16_t)len);
    uint16_t crc = se_crc16_update(0xFFFFu, hdr, sizeof hdr);
    crc = se_crc16_update(crc, payload, len);
    se_wr_u16(tail, crc);

    const uint8_t *parts[3] = {hdr, payload, tail};
    const size_t sizes[3] = {sizeof hdr, len, sizeof tail};
    o = 1;
    for (int part = 0; part < 3; ++part) {
        for (size_t i = 0; i < sizes[part]; ++i) {
            const uint8_t b = parts[part][i];
            if (o >= cap) {
                return 0;
            }
            if (b == 0) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
                after_full = false;
            } else {
                out[o++] = b;
                after_full = false;
                if (++code == 0xFF) {
                    if (o >= cap) {
                        return 0;
                    }
                    out[code_at] = code;
                    code_at = o++;
                    code = 1;
                    after_full = true;
                }
            }
        }
    }
    if (after_full) {
        o -= 1; /* drop the unused code slot reserved after a full block */
    } else {
        out[code_at] = code;
    }
    if (o >= cap) {
        return 0;
    }
    out[o++] = 0x00;
    return o;
}

/* --- streaming writer ------------------------------------------------------------------- */

static void fw_flush_block(se_frame_writer_t *w, bool full)
{
    w->block[0] = (uint8_t)(w->n + 1);
    w->write(w->block, w->n + 1, w->ctx);
    w->n = 0;
    w->after_full = full;
}

static void fw_byte(se_frame_writer_t *w, uint8_t b)
{
    if (b == 0) {
        fw_flush_block(w, false);
        return;
    }
    w->block[1 + w->n++] = b;
    w->after_full = false;
    if (w->n == 254) {
        fw_flush_block(w, true);
    }
}

static void fw_bytes(se_frame_writer_t *w, const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        fw_byte(w, data[i]);
    }
}

void se_fw_begin(se_frame_writer_t *w, se_write_fn write, void *ctx, uint8_t type, uint8_t seq,
                 uint16_t len)
{
    uint8_t hdr[SE_FRAME_HEADER_BYTES];
    w->write = write;
    w->ctx = ctx;
    w->n = 0;
    w->after_full = false;
    w->remaining = len;
    hdr[0] = type;
    hdr[1] = seq;
    se_wr_u16(&hdr[2], len);
    w->crc = se_crc16_update(0xFFFFu, hdr, sizeof hdr);
    fw_bytes(w, hdr, sizeof hdr);
}

void se_fw_put(se_frame_writer_t *w, const uint8_t *data, size_t n)
{
    if (n > w->remaining) {
        n = w->remaining; /* never write more than the length field announced */
    }
    w->crc = se_crc16_update(w->crc, data, n);
    fw_bytes(w, data, n);
    w->remaining -= n;
}

void se_fw_end(se_frame_writer_t *w)
{
    static const uint8_t zero = 0;
    uint8_t tail[2];
    while (w->remaining > 0) {
        se_fw_put(w, &zero, 1);
    }
    se_wr_u16(tail, w->crc);
    fw_bytes(w, tail, sizeof tail);
    if (!w->after_full || w->n > 0) {
        fw_flush_block(w, false);
    }
    w->write(&zero, 1, w->ctx);
}

/* --- streaming parser ------------------------------------------------------------------- */

void se_parser_init(se_parser_t *p, uint8_t *buf, size_t cap)
{
    memset(p, 0, sizeof *p);
    p->buf = buf;
    p->cap = cap;
}

static bool parser_finish(se_parser_t *p, se_frame_t *out)
{
    size_t n = 0;
    const size_t encoded = p->n;
    p->n = 0;
    if (se_cobs_decode(p->buf, encoded, p->buf, p->cap, &n) != 0 || n < SE_FRAME_OVERHEAD_BYTES ||
        se_rd_u16(&p->buf[2]) != n - SE_FRAME_OVERHEAD_BYTES) {
        p->garbage_bytes += (uint32_t)encoded;
        return false;
    }
    const size_t body = n - 2;
    if (se_crc16(p->buf, body) != se_rd_u16(&p->buf[body])) {
        p->bad_crc++;
        return false;
    }
    out->type = p->buf[0];
    out->seq = p->buf[1];
    out->len = (uint16_t)(n - SE_FRAME_OVERHEAD_BYTES);
    out->payload = &p->buf[SE_FRAME_HEADER_BYTES];
    p->frames++;
    return true;
}

bool se_parser_push(se_parser_t *p, uint8_t byte, se_frame_t *out)
{
    if (byte == 0x00) {
        if (p->discarding) {
            p->discarding = false;
            p->n = 0;
            return false;
        }
        if (p->n == 0) {
            return false; /* empty candidate: repeated delimiters are allowed */
        }
        return parser_finish(p, out);
    }
    if (p->discarding) {
        return false;
    }
    if (p->n >= p->cap) {
        p->oversize++;
        p->discarding = true;
        p->n = 0;
        return false;
    }
    p->buf[p->n++] = byte;
    return false;
}

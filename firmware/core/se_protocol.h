/**
 * @file se_protocol.h
 * @brief Serial framing (docs/protocol.md): CRC-16/CCITT-FALSE, COBS, frame builder and a
 *        streaming frame parser. No heap; every buffer belongs to the caller.
 *
 * Frame on the wire = COBS(body) 0x00, body = type u8 | seq u8 | len u16 | payload | crc u16
 * (little-endian), crc = CRC-16/CCITT-FALSE over type..payload.
 */
#ifndef SE_PROTOCOL_H
#define SE_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sleepedge_constants.h"

#ifdef __cplusplus
extern "C" {
#endif

/** type, seq, len. */
#define SE_FRAME_HEADER_BYTES 4u
/** header + crc. */
#define SE_FRAME_OVERHEAD_BYTES 6u
/** Worst-case COBS output for n input bytes (one code byte per 254 data bytes, at least one). */
#define SE_COBS_MAX_ENCODED(n) ((n) + ((n) + 253u) / 254u + ((n) == 0u ? 1u : 0u))
/** Worst-case encoded frame without the 0x00 delimiter, for a payload of p bytes. */
#define SE_FRAME_MAX_ENCODED(p) SE_COBS_MAX_ENCODED((p) + SE_FRAME_OVERHEAD_BYTES)
/** Worst-case bytes on the wire for a payload of p bytes, delimiter included. */
#define SE_FRAME_MAX_WIRE(p) (SE_FRAME_MAX_ENCODED(p) + 1u)

/* ERROR frame codes (mirrored in host_tools/protocol.py, checked by tests/test_protocol.py). */
#define SE_ERR_UNKNOWN_TYPE 1u  /**< detail = frame type */
#define SE_ERR_BAD_LENGTH 2u    /**< detail = type << 16 | payload length */
#define SE_ERR_UNKNOWN_EPOCH 3u /**< detail = epoch of a CLOUD_LABEL that is not pending */
#define SE_ERR_BAD_VALUE 4u     /**< detail = frame type (stage >= SE_N_CLASSES, CONFIG out of range) */
#define SE_ERR_MODEL 5u         /**< detail = (uint32_t) return code of se_model_init / se_model_run */

/* RESULT flags. */
#define SE_RESULT_FLAG_INCOMPLETE 0x01u    /**< samples missing: no inference, stage 255 */
#define SE_RESULT_FLAG_MODEL_ERROR 0x02u   /**< inference failed: stage 255 */
/** Bits 2-4: the epoch's quality verdict (SE_QUALITY_*); non-zero = artefact, no inference. */
#define SE_RESULT_QUALITY_SHIFT 2u
#define SE_RESULT_QUALITY_MASK 0x1Cu

/** CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor. */
uint16_t se_crc16(const uint8_t *data, size_t n);
/** Continue a CRC over more bytes (start with 0xFFFF). */
uint16_t se_crc16_update(uint16_t crc, const uint8_t *data, size_t n);

/**
 * COBS-encode n bytes (no delimiter appended).
 * @return encoded length, or 0 if it does not fit in cap (a valid encoding is never empty).
 */
size_t se_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/**
 * COBS-decode n bytes (which must contain no 0x00). out may equal in (decoding in place).
 * @return 0 and *out_len on success; -1 on a malformed input or when cap is too small.
 */
int se_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/**
 * Build a complete frame (COBS body + 0x00) into out.
 * @return bytes written, or 0 if len > SE_MAX_PAYLOAD_BYTES or the frame does not fit in cap.
 */
size_t se_frame_encode(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len,
                       uint8_t *out, size_t cap);

/** Sink for encoded bytes (serial TX). */
typedef void (*se_write_fn)(const uint8_t *data, size_t len, void *ctx);

/**
 * Streaming frame writer: encodes a frame piece by piece through a 255-byte block buffer, so a
 * 6 kB ESCALATE never needs a 6 kB transmit buffer. Usage: begin, put the payload bytes (exactly
 * len of them, in any number of calls), end.
 */
typedef struct {
    se_write_fn write;
    void *ctx;
    uint8_t block[255]; /**< block[0] is the pending COBS code byte */
    size_t n;           /**< data bytes in the current block */
    uint16_t crc;
    size_t remaining;   /**< payload bytes still expected */
    bool after_full;    /**< the last block emitted was a full 0xFF block */
} se_frame_writer_t;

void se_fw_begin(se_frame_writer_t *w, se_write_fn write, void *ctx, uint8_t type, uint8_t seq,
                 uint16_t len);
void se_fw_put(se_frame_writer_t *w, const uint8_t *data, size_t n);
/** Appends the CRC and the delimiter. Missing payload bytes are padded with zeros. */
void se_fw_end(se_frame_writer_t *w);

/** A decoded frame; payload points into the parser's buffer and is valid until the next push. */
typedef struct {
    uint8_t type;
    uint8_t seq;
    uint16_t len;
    const uint8_t *payload;
} se_frame_t;

/**
 * Streaming frame parser. Bytes accumulate until 0x00, then the candidate is COBS-decoded in
 * place and checked (length field, CRC). Anything wrong is dropped and counted and parsing
 * resumes after the next 0x00.
 */
typedef struct {
    uint8_t *buf;
    size_t cap;        /**< largest encoded frame accepted (without delimiter) */
    size_t n;          /**< bytes of the current candidate */
    bool discarding;   /**< current candidate overflowed: skip to the next 0x00 */
    uint32_t frames;        /**< valid frames delivered */
    uint32_t bad_crc;       /**< well-formed candidates whose CRC did not match */
    uint32_t garbage_bytes; /**< bytes of candidates that are not frames (bad COBS, too short, bad len) */
    uint32_t oversize;      /**< candidates longer than cap */
} se_parser_t;

/** buf must hold cap bytes; use SE_FRAME_MAX_ENCODED(largest payload) for cap. */
void se_parser_init(se_parser_t *p, uint8_t *buf, size_t cap);

/**
 * Feed one byte.
 * @return true when it completed a valid frame, described by *out.
 */
bool se_parser_push(se_parser_t *p, uint8_t byte, se_frame_t *out);

/* Little-endian helpers shared by the message code. */
static inline uint16_t se_rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t se_rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void se_wr_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void se_wr_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#ifdef __cplusplus
}
#endif

#endif /* SE_PROTOCOL_H */

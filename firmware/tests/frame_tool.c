/* Host tool for the cross-language protocol tests.
 *   frame_tool encode          stdin lines "TYPE SEQ HEXPAYLOAD" -> binary frames on stdout
 *                              (even lines through se_frame_encode, odd ones the streaming writer)
 *   frame_tool decode [CAP]    binary stream on stdin -> "F TYPE SEQ HEX" per frame, then
 *                              "C frames bad_crc garbage_bytes oversize"; CAP = largest payload
 *   frame_tool constants       the C-side protocol constants, "NAME VALUE" per line */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_app.h"
#include "se_protocol.h"

static uint8_t g_payload[SE_MAX_PAYLOAD_BYTES + 1];
static uint8_t g_frame[SE_FRAME_MAX_WIRE(SE_MAX_PAYLOAD_BYTES)];
static char g_line[2 * SE_MAX_PAYLOAD_BYTES + 64];

static void stdout_write(const uint8_t *data, size_t len, void *ctx)
{
    (void)ctx;
    fwrite(data, 1, len, stdout);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int encode(void)
{
    unsigned type, seq;
    char *hex;
    for (int line = 0; fgets(g_line, sizeof g_line, stdin) != NULL; ++line) {
        int used = 0;
        if (sscanf(g_line, "%u %u %n", &type, &seq, &used) != 2 || type > 255 || seq > 255) {
            fprintf(stderr, "frame_tool: bad line %d\n", line + 1);
            return 2;
        }
        hex = g_line + used;
        size_t len = 0;
        while (hexval(hex[2 * len]) >= 0 && hexval(hex[2 * len + 1]) >= 0 && len < SE_MAX_PAYLOAD_BYTES) {
            g_payload[len] = (uint8_t)(hexval(hex[2 * len]) * 16 + hexval(hex[2 * len + 1]));
            ++len;
        }
        if (line % 2 == 0) {
            const size_t n = se_frame_encode((uint8_t)type, (uint8_t)seq, g_payload, len, g_frame, sizeof g_frame);
            if (n == 0) {
                return 3;
            }
            fwrite(g_frame, 1, n, stdout);
        } else {
            se_frame_writer_t w;
            se_fw_begin(&w, stdout_write, NULL, (uint8_t)type, (uint8_t)seq, (uint16_t)len);
            se_fw_put(&w, g_payload, len);
            se_fw_end(&w);
        }
    }
    return 0;
}

static int decode(size_t cap_payload)
{
    static uint8_t buf[SE_FRAME_MAX_ENCODED(SE_MAX_PAYLOAD_BYTES)];
    size_t cap = SE_FRAME_MAX_ENCODED(cap_payload);
    if (cap > sizeof buf) {
        cap = sizeof buf;
    }
    se_parser_t p;
    se_frame_t f;
    se_parser_init(&p, buf, cap);
    int c;
    while ((c = getchar()) != EOF) {
        if (se_parser_push(&p, (uint8_t)c, &f)) {
            printf("F %u %u ", f.type, f.seq);
            for (size_t i = 0; i < f.len; ++i) {
                printf("%02x", f.payload[i]);
            }
            printf("\n");
        }
    }
    printf("C %u %u %u %u\n", p.frames, p.bad_crc, p.garbage_bytes, p.oversize);
    return 0;
}

static int constants(void)
{
    printf("ERR_UNKNOWN_TYPE %u\nERR_BAD_LENGTH %u\nERR_UNKNOWN_EPOCH %u\nERR_BAD_VALUE %u\n"
           "ERR_MODEL %u\nFLAG_INCOMPLETE %u\nFLAG_MODEL_ERROR %u\nRX_MAX_PAYLOAD %u\n"
           "MAX_TIMEOUT_MS %u\nMIN_TIMEOUT_MS %u\nSTATUS_FIELDS %u\nSTATUS_EVERY_EPOCHS %u\n"
           "QUALITY_SHIFT %u\nQUALITY_MASK %u\n",
           SE_ERR_UNKNOWN_TYPE, SE_ERR_BAD_LENGTH, SE_ERR_UNKNOWN_EPOCH, SE_ERR_BAD_VALUE,
           SE_ERR_MODEL, SE_RESULT_FLAG_INCOMPLETE, SE_RESULT_FLAG_MODEL_ERROR,
           (unsigned)SE_APP_RX_MAX_PAYLOAD, SE_APP_MAX_TIMEOUT_MS, SE_APP_MIN_TIMEOUT_MS,
           SE_APP_STATUS_FIELDS, SE_APP_STATUS_EVERY_EPOCHS, SE_RESULT_QUALITY_SHIFT,
           SE_RESULT_QUALITY_MASK);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "encode") == 0) {
        return encode();
    }
    if (argc >= 2 && strcmp(argv[1], "decode") == 0) {
        return decode(argc >= 3 ? (size_t)strtoul(argv[2], NULL, 10) : SE_MAX_PAYLOAD_BYTES);
    }
    if (argc >= 2 && strcmp(argv[1], "constants") == 0) {
        return constants();
    }
    fprintf(stderr, "usage: frame_tool encode|decode [CAP]|constants\n");
    return 2;
}

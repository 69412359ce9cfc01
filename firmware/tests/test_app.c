/* Unit tests: the application state machine (se_app) with the mock model. */
#include <math.h>
#include <stdlib.h>

#include "mock_model.h"
#include "se_app.h"
#include "test_util.h"

static se_app_t g_app;
static capture_t g_cap;
static uint32_t g_now;
static uint32_t g_cycles;

/* What the blocks sent carry: the test signal, or a bad signal for the quality gate. */
typedef enum { SIG_EEG, SIG_FLAT, SIG_CLIPPED } sig_kind_t;
static sig_kind_t g_sig = SIG_EEG;
static uint8_t g_samples_type = SE_FRAME_SAMPLES;

static uint32_t fake_millis(void *ctx)
{
    (void)ctx;
    return g_now;
}

/* Every read advances the counter, so measured intervals are positive and reproducible. */
static uint32_t fake_cycles(void *ctx)
{
    (void)ctx;
    return g_cycles += 7;
}

static void boot(void)
{
    g_sig = SIG_EEG;
    g_samples_type = SE_FRAME_SAMPLES;
    mock_model_reset();
    capture_reset(&g_cap);
    g_now = 1000;
    g_cycles = 0;
    const se_platform_t plat = {capture_write, fake_millis, fake_cycles, &g_cap};
    se_app_init(&g_app, &plat);
}

static void send(uint8_t type, const uint8_t *payload, size_t len)
{
    uint8_t fr[SE_FRAME_MAX_WIRE(SE_MAX_PAYLOAD_BYTES)];
    const size_t n = se_frame_encode(type, 0x42, payload, len, fr, sizeof fr);
    se_app_rx(&g_app, fr, n);
}

/* The test signal: a 6 Hz sine of +-150 uV plus a slow ramp, as int16 at 0.25 uV. */
static int16_t signal_at(uint32_t n)
{
    const int16_t v = (int16_t)lrintf(600.0f * sinf(0.377f * (float)(n % 100000u)) + (float)(n % 3000u) * 0.1f);
    if (g_sig == SIG_FLAT) {
        return 40;
    }
    if (g_sig == SIG_CLIPPED) {
        return v > 300 ? 300 : v < -300 ? -300 : v;
    }
    return v;
}

static void send_block(uint32_t block)
{
    uint8_t p[SE_APP_RX_MAX_PAYLOAD];
    se_wr_u32(&p[0], block);
    se_wr_u16(&p[4], SE_SAMPLES_PER_BLOCK);
    for (uint32_t i = 0; i < SE_SAMPLES_PER_BLOCK; ++i) {
        se_wr_u16(&p[6 + 2 * i], (uint16_t)signal_at(block * SE_SAMPLES_PER_BLOCK + i));
    }
    send(g_samples_type, p, sizeof p);
}

static void send_blocks(uint32_t first, uint32_t last_inclusive)
{
    for (uint32_t b = first; b <= last_inclusive; ++b) {
        send_block(b);
    }
}

static void send_cloud_label(uint32_t epoch, uint8_t stage)
{
    uint8_t p[5];
    se_wr_u32(p, epoch);
    p[4] = stage;
    send(SE_FRAME_CLOUD_LABEL, p, sizeof p);
}

static void send_config(float threshold, uint32_t timeout_ms)
{
    uint8_t p[8];
    uint32_t bits;
    memcpy(&bits, &threshold, 4);
    se_wr_u32(p, bits);
    se_wr_u32(p + 4, timeout_ms);
    send(SE_FRAME_CONFIG, p, sizeof p);
}

static void set_output(int8_t top)
{
    const int8_t out[SE_N_CLASSES] = {-128, -128, top, -128, -128};
    memcpy(g_mock_output, out, sizeof out);
}

static float payload_f32(const cap_frame_t *f, size_t off)
{
    const uint32_t bits = se_rd_u32(&f->payload[off]);
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* Expected filtered epoch, computed outside se_app: blocks in missing[] are zeros. */
static void expected_epoch(uint32_t epoch, const uint32_t *missing, int n_missing, float *y_epoch)
{
    se_filter_t f;
    se_filter_reset(&f);
    const uint32_t end = (epoch + 1) * SE_EPOCH_SAMPLES;
    for (uint32_t n = 0; n < end; ++n) {
        int zero = 0;
        for (int m = 0; m < n_missing; ++m) {
            zero |= n / SE_SAMPLES_PER_BLOCK == missing[m];
        }
        const float x = zero ? 0.0f : (float)signal_at(n) * SE_SAMPLE_UV_PER_LSB;
        const float y = se_filter_step(&f, x);
        if (n >= epoch * SE_EPOCH_SAMPLES) {
            y_epoch[n - epoch * SE_EPOCH_SAMPLES] = y;
        }
    }
}

static int8_t q8(float y)
{
    const float inv = (float)(1.0 / (double)g_mock_in_scale);
    float v = floorf(y * inv + 0.5f) + (float)g_mock_in_zp;
    v = v < -128.0f ? -128.0f : v > 127.0f ? 127.0f : v;
    return (int8_t)v;
}

static int16_t q16(float y)
{
    float v = floorf(y * 4.0f + 0.5f);
    v = v < -32768.0f ? -32768.0f : v > 32767.0f ? 32767.0f : v;
    return (int16_t)v;
}

/* Checks a RESULT frame; returns its index or -1. */
static int expect_result(int k, uint32_t epoch, uint8_t stage, int escalated, uint8_t flags)
{
    const int i = capture_find(&g_cap, SE_FRAME_RESULT, k);
    CHECK(i >= 0);
    if (i < 0) {
        return -1;
    }
    const cap_frame_t *f = &g_cap.frames[i];
    CHECK_EQ(f->len, 16);
    CHECK_EQ(se_rd_u32(f->payload), epoch);
    CHECK_EQ(f->payload[4], stage);
    CHECK_EQ(f->payload[5], escalated);
    CHECK_EQ(f->payload[6], flags);
    return i;
}

static int expect_final(int k, uint32_t epoch, uint8_t stage, uint8_t source)
{
    const int i = capture_find(&g_cap, SE_FRAME_FINAL, k);
    CHECK(i >= 0);
    if (i < 0) {
        return -1;
    }
    const cap_frame_t *f = &g_cap.frames[i];
    CHECK_EQ(f->len, 6);
    CHECK_EQ(se_rd_u32(f->payload), epoch);
    CHECK_EQ(f->payload[4], stage);
    CHECK_EQ(f->payload[5], source);
    return i;
}

static void expect_error(int k, uint8_t code, uint32_t detail)
{
    const int i = capture_find(&g_cap, SE_FRAME_ERROR, k);
    CHECK(i >= 0);
    if (i >= 0) {
        CHECK_EQ(g_cap.frames[i].len, 5);
        CHECK_EQ(g_cap.frames[i].payload[0], code);
        CHECK_EQ(se_rd_u32(&g_cap.frames[i].payload[1]), detail);
    }
}

/* --- tests ------------------------------------------------------------------------------ */

static void test_hello_at_boot(void)
{
    boot();
    CHECK_EQ(g_cap.n, 1);
    const cap_frame_t *f = &g_cap.frames[0];
    CHECK_EQ(f->type, SE_FRAME_HELLO);
    CHECK_EQ(f->len, 25);
    CHECK_EQ(f->payload[0], SE_PROTOCOL_VERSION);
    CHECK(memcmp(&f->payload[1], SE_FIRMWARE_VERSION, strlen(SE_FIRMWARE_VERSION)) == 0);
    CHECK_EQ(f->payload[1 + strlen(SE_FIRMWARE_VERSION)], 0);
    CHECK_EQ(se_rd_u32(&f->payload[9]), se_model_hash());
    CHECK_EQ(se_rd_u16(&f->payload[13]), SE_FS_HZ);
    CHECK_EQ(se_rd_u16(&f->payload[15]), SE_EPOCH_SAMPLES);
    CHECK(payload_f32(f, 17) == SE_DEFAULT_CONFIDENCE_THRESHOLD);
    CHECK_EQ(se_rd_u32(&f->payload[21]), SE_DEFAULT_ESCALATION_TIMEOUT_MS);
    CHECK_EQ(g_cap.parser.garbage_bytes, 0); /* the leading 0x00 is an empty candidate */
}

static void test_confident_epoch(void)
{
    boot();
    set_output(127); /* confidence (127 + 128) / 256 */
    send_blocks(0, 29);
    CHECK_EQ(g_mock_runs, 0); /* inference happens in poll, not in rx */
    se_app_poll(&g_app);
    CHECK_EQ(g_mock_runs, 1);
    const int r = expect_result(0, 0, 2, 0, 0);
    if (r >= 0) {
        CHECK(payload_f32(&g_cap.frames[r], 12) == 255.0f / 256.0f);
        for (int c = 0; c < SE_N_CLASSES; ++c) {
            CHECK_EQ((int8_t)g_cap.frames[r].payload[7 + c], g_mock_output[c]);
        }
    }
    const int fi = expect_final(0, 0, 2, SE_SOURCE_EDGE);
    CHECK(fi > r); /* FINAL right after RESULT */
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_ESCALATE), 0);
    /* The model saw the filtered epoch quantized with the model's input parameters. */
    static float y[SE_EPOCH_SAMPLES];
    expected_epoch(0, NULL, 0, y);
    int same = 1;
    for (int i = 0; i < SE_EPOCH_SAMPLES; ++i) {
        same &= g_mock_last_input[i] == q8(y[i]);
    }
    CHECK(same);
    const se_app_status_t st = se_app_status(&g_app);
    CHECK_EQ(st.epochs, 1);
    CHECK_EQ(st.escalations, 0);
    CHECK(st.filter_cycles_last_epoch > 0 && st.infer_cycles_last_epoch > 0);
    CHECK_EQ(st.rx_frames, 30);
}

static void test_escalated_epoch_answered(void)
{
    boot();
    set_output(0); /* confidence 128/256 = 0.5 < 0.6 */
    send_blocks(0, 59); /* epoch 1 arrives before poll: epoch 0 must run first, from its own data */
    se_app_poll(&g_app);
    CHECK_EQ(g_mock_runs, 2);
    expect_result(0, 0, 2, 1, 0);
    expect_result(1, 1, 2, 1, 0);
    const int e = capture_find(&g_cap, SE_FRAME_ESCALATE, 0);
    CHECK(e >= 0);
    if (e >= 0) {
        const cap_frame_t *f = &g_cap.frames[e];
        CHECK_EQ(f->len, 6 + 2 * SE_EPOCH_SAMPLES);
        CHECK_EQ(se_rd_u32(f->payload), 0);
        CHECK_EQ(se_rd_u16(&f->payload[4]), SE_EPOCH_SAMPLES);
        static float y[SE_EPOCH_SAMPLES];
        expected_epoch(0, NULL, 0, y);
        int same = 1;
        for (int i = 0; i < SE_EPOCH_SAMPLES; ++i) {
            same &= (int16_t)se_rd_u16(&f->payload[6 + 2 * i]) == q16(y[i]);
        }
        CHECK(same);
    }
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_FINAL), 0);
    send_cloud_label(1, 4);
    send_cloud_label(0, 3);
    expect_final(0, 1, 4, SE_SOURCE_CLOUD);
    expect_final(1, 0, 3, SE_SOURCE_CLOUD);
    const se_app_status_t st = se_app_status(&g_app);
    CHECK_EQ(st.escalations, 2);
    CHECK_EQ(st.cloud_answers, 2);
    /* Answered epochs no longer time out. */
    g_now += 1000000;
    se_app_poll(&g_app);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_FINAL), 2);
}

static void test_escalated_epoch_times_out(void)
{
    boot();
    set_output(-20);
    send_blocks(0, 29);
    se_app_poll(&g_app); /* escalated at t = 1000 */
    g_now += SE_DEFAULT_ESCALATION_TIMEOUT_MS - 1;
    se_app_poll(&g_app);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_FINAL), 0);
    g_now += 1;
    se_app_poll(&g_app);
    expect_final(0, 0, 2, SE_SOURCE_TIMEOUT); /* keeps the edge label */
    CHECK_EQ(se_app_status(&g_app).timeouts, 1);
    /* A late cloud answer is an error, and changes nothing. */
    send_cloud_label(0, 1);
    expect_error(0, SE_ERR_UNKNOWN_EPOCH, 0);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_FINAL), 1);
}

static void test_timeout_across_millis_wrap(void)
{
    boot();
    g_now = UINT32_MAX - 100;
    set_output(0);
    send_blocks(0, 29);
    se_app_poll(&g_app);
    g_now += 1000; /* wrapped, deadline not reached */
    se_app_poll(&g_app);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_FINAL), 0);
    g_now += SE_DEFAULT_ESCALATION_TIMEOUT_MS;
    se_app_poll(&g_app);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_FINAL), 1);
}

static void test_missing_blocks_within_epoch(void)
{
    boot();
    send_blocks(0, 9);
    send_blocks(12, 29); /* 10 and 11 lost */
    se_app_poll(&g_app);
    CHECK_EQ(g_mock_runs, 0);
    const int r = expect_result(0, 0, SE_STAGE_UNKNOWN, 0, SE_RESULT_FLAG_INCOMPLETE);
    if (r >= 0) {
        CHECK(payload_f32(&g_cap.frames[r], 12) == 0.0f);
    }
    expect_final(0, 0, SE_STAGE_UNKNOWN, SE_SOURCE_INCOMPLETE);
    CHECK_EQ(se_app_status(&g_app).missing_blocks, 2);
    /* The next epoch is complete and sees the zero-filled history in its filter state. */
    send_blocks(30, 59);
    se_app_poll(&g_app);
    expect_result(1, 1, 2, 0, 0);
    static float y[SE_EPOCH_SAMPLES];
    const uint32_t missing[] = {10, 11};
    expected_epoch(1, missing, 2, y);
    int same = 1;
    for (int i = 0; i < SE_EPOCH_SAMPLES; ++i) {
        same &= g_mock_last_input[i] == q8(y[i]);
    }
    CHECK(same);
}

static void test_missing_blocks_across_epochs(void)
{
    boot();
    send_blocks(0, 29);
    send_blocks(75, 89); /* epoch 1 entirely and half of epoch 2 lost */
    send_blocks(90, 119);
    se_app_poll(&g_app);
    CHECK_EQ(g_mock_runs, 2);
    expect_result(0, 0, 2, 0, 0);
    expect_result(1, 1, SE_STAGE_UNKNOWN, 0, SE_RESULT_FLAG_INCOMPLETE);
    expect_result(2, 2, SE_STAGE_UNKNOWN, 0, SE_RESULT_FLAG_INCOMPLETE);
    expect_result(3, 3, 2, 0, 0); /* epochs keep their numbers */
    expect_final(1, 1, SE_STAGE_UNKNOWN, SE_SOURCE_INCOMPLETE);
    expect_final(2, 2, SE_STAGE_UNKNOWN, SE_SOURCE_INCOMPLETE);
    CHECK_EQ(se_app_status(&g_app).missing_blocks, 45);
    static float y[SE_EPOCH_SAMPLES];
    uint32_t missing[45];
    for (int i = 0; i < 45; ++i) {
        missing[i] = 30u + (uint32_t)i;
    }
    expected_epoch(3, missing, 45, y);
    int same = 1;
    for (int i = 0; i < SE_EPOCH_SAMPLES; ++i) {
        same &= g_mock_last_input[i] == q8(y[i]);
    }
    CHECK(same);
}

static void test_long_gap_resets(void)
{
    boot();
    send_blocks(0, 14);
    const uint32_t far = 100000u * SE_BLOCKS_PER_EPOCH + 5u;
    send_blocks(far, far + 24);           /* completes epoch 100000, incomplete */
    send_blocks(far + 25, far + 54);      /* epoch 100001, complete */
    se_app_poll(&g_app);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_RESULT), 3); /* no flood of frames for the gap */
    expect_result(0, 0, SE_STAGE_UNKNOWN, 0, SE_RESULT_FLAG_INCOMPLETE);
    expect_result(1, 100000, SE_STAGE_UNKNOWN, 0, SE_RESULT_FLAG_INCOMPLETE);
    expect_result(2, 100001, 2, 0, 0);
    CHECK_EQ(se_app_status(&g_app).missing_blocks, far - 15);
    /* A jump to the end of the u32 range is counted exactly... */
    send_block(UINT32_MAX - 29);
    CHECK_EQ(se_app_status(&g_app).missing_blocks, (far - 15) + (UINT32_MAX - 29 - (far + 55)));
    /* ...and the counter saturates instead of wrapping. */
    g_app.st.missing_blocks = UINT32_MAX - 5;
    send_block(UINT32_MAX - 18);
    CHECK_EQ(se_app_status(&g_app).missing_blocks, UINT32_MAX);
}

static void test_stale_and_presync_blocks(void)
{
    boot();
    send_blocks(5, 29); /* not on an epoch boundary: waits for block 30 */
    CHECK_EQ(g_app.presync_blocks, 25);
    send_blocks(30, 40);
    send_block(33); /* duplicate */
    send_block(2);  /* far behind */
    CHECK_EQ(se_app_status(&g_app).stale_blocks, 2);
    send_blocks(41, 59);
    se_app_poll(&g_app);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_RESULT), 1);
    expect_result(0, 1, 2, 0, 0); /* complete, numbered from block 30 */
    CHECK_EQ(se_app_status(&g_app).missing_blocks, 0);
}

static void test_config(void)
{
    boot();
    set_output(64); /* confidence 192/256 = 0.75 */
    send_config(0.9f, 100);
    CHECK_EQ(g_cap.frames[g_cap.n - 1].type, SE_FRAME_HELLO); /* acknowledged */
    CHECK(payload_f32(&g_cap.frames[g_cap.n - 1], 17) == 0.9f);
    CHECK_EQ(se_rd_u32(&g_cap.frames[g_cap.n - 1].payload[21]), 100);
    send_blocks(0, 29);
    se_app_poll(&g_app);
    expect_result(0, 0, 2, 1, 0); /* 0.75 < 0.9: escalated */
    g_now += 100;
    se_app_poll(&g_app);
    expect_final(0, 0, 2, SE_SOURCE_TIMEOUT); /* new timeout in force */
    /* Out-of-range values are refused and change nothing. */
    const int hellos = capture_count(&g_cap, SE_FRAME_HELLO);
    send_config(NAN, 100);
    send_config(1.5f, 100);
    send_config(-0.1f, 100);
    send_config(0.5f, 0);
    send_config(0.5f, SE_APP_MAX_TIMEOUT_MS + 1);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_ERROR), 5);
    for (int k = 0; k < 5; ++k) {
        expect_error(k, SE_ERR_BAD_VALUE, SE_FRAME_CONFIG);
    }
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_HELLO), hellos);
    CHECK(g_app.threshold == 0.9f && g_app.timeout_ms == 100);
    /* Threshold 0 never escalates; 1 escalates everything below certainty. */
    send_config(0.0f, 5000);
    send_blocks(30, 59);
    se_app_poll(&g_app);
    expect_result(1, 1, 2, 0, 0);
}

static void test_ping(void)
{
    boot();
    send_blocks(0, 3);
    se_app_rx(&g_app, (const uint8_t[]){0x07, 0x07, 0x00}, 3); /* garbage */
    const uint8_t token[4] = {0xEF, 0xBE, 0xAD, 0xDE};
    g_now += 250;
    send(SE_FRAME_PING, token, 4);
    CHECK(g_cap.n >= 3);
    const cap_frame_t *pong = &g_cap.frames[g_cap.n - 2];
    const cap_frame_t *st = &g_cap.frames[g_cap.n - 1];
    CHECK_EQ(pong->type, SE_FRAME_PONG);
    CHECK_EQ(se_rd_u32(pong->payload), 0xDEADBEEFu);
    CHECK_EQ(st->type, SE_FRAME_STATUS);
    CHECK_EQ(st->len, 56);
    CHECK_EQ(se_rd_u32(&st->payload[0]), 250); /* uptime */
    CHECK_EQ(se_rd_u32(&st->payload[4 * 6]), 5);  /* rx_frames: 4 blocks + ping */
    CHECK_EQ(se_rd_u32(&st->payload[4 * 8]), 2);  /* garbage_bytes */
    /* rx_bytes counts every byte handed to se_app_rx, the ping's own frame included. */
    CHECK_EQ(se_rd_u32(&st->payload[4 * 5]), g_app.st.rx_bytes);
    se_app_note_rx_overflow(&g_app, 3);
    CHECK_EQ(se_app_status(&g_app).rx_overflows, 3);
}

static void test_pending_table_overflow(void)
{
    boot();
    set_output(0);
    send_blocks(0, 30 * (SE_MAX_PENDING_ESCALATIONS + 1) - 1);
    se_app_poll(&g_app);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_ESCALATE), SE_MAX_PENDING_ESCALATIONS + 1);
    /* The oldest (epoch 0) gave up early, before the newest was escalated. */
    const int fi = expect_final(0, 0, 2, SE_SOURCE_TIMEOUT);
    const int last_esc = capture_find(&g_cap, SE_FRAME_ESCALATE, SE_MAX_PENDING_ESCALATIONS);
    CHECK(fi >= 0 && fi < last_esc);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_FINAL), 1);
    CHECK_EQ(se_app_status(&g_app).timeouts, 1);
    send_cloud_label(0, 1);
    expect_error(0, SE_ERR_UNKNOWN_EPOCH, 0);
    for (uint32_t e = 1; e <= SE_MAX_PENDING_ESCALATIONS; ++e) {
        send_cloud_label(e, 3);
    }
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_FINAL), 1 + SE_MAX_PENDING_ESCALATIONS);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_ERROR), 1);
}

static void test_bad_frames(void)
{
    boot();
    send_cloud_label(77, 2); /* nothing pending */
    expect_error(0, SE_ERR_UNKNOWN_EPOCH, 77);
    set_output(0);
    send_blocks(0, 29);
    se_app_poll(&g_app);
    send_cloud_label(0, SE_N_CLASSES); /* not a class */
    expect_error(1, SE_ERR_BAD_VALUE, SE_FRAME_CLOUD_LABEL);
    send(0x55, (const uint8_t[]){1, 2}, 2);
    expect_error(2, SE_ERR_UNKNOWN_TYPE, 0x55);
    send(SE_FRAME_RESULT, (const uint8_t[]){0}, 1); /* device->host type sent to the device */
    expect_error(3, SE_ERR_UNKNOWN_TYPE, SE_FRAME_RESULT);
    send(SE_FRAME_PING, (const uint8_t[]){1, 2, 3}, 3);
    expect_error(4, SE_ERR_BAD_LENGTH, ((uint32_t)SE_FRAME_PING << 16) | 3u);
    uint8_t p[SE_APP_RX_MAX_PAYLOAD] = {0};
    se_wr_u32(p, 30);
    se_wr_u16(p + 4, 99); /* wrong sample count, right frame length */
    send(SE_FRAME_SAMPLES, p, sizeof p);
    expect_error(5, SE_ERR_BAD_LENGTH, ((uint32_t)SE_FRAME_SAMPLES << 16) | SE_APP_RX_MAX_PAYLOAD);
    send(SE_FRAME_SAMPLES, p, 10);
    expect_error(6, SE_ERR_BAD_LENGTH, ((uint32_t)SE_FRAME_SAMPLES << 16) | 10u);
    CHECK_EQ(g_app.errors_sent, 7);
    /* The pending epoch is untouched and can still be answered. */
    send_cloud_label(0, 4);
    expect_final(0, 0, 4, SE_SOURCE_CLOUD);
    /* A frame too long for the device's receive buffer is dropped and counted. */
    uint8_t big[400] = {0};
    send(SE_FRAME_SAMPLES, big, sizeof big);
    CHECK_EQ(se_app_status(&g_app).rx_overflows, 1);
    CHECK_EQ(g_app.errors_sent, 7);
}

static void test_status_every_10_epochs(void)
{
    boot();
    send_blocks(0, 30 * 10 - 1);
    se_app_poll(&g_app);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_STATUS), 1);
    const cap_frame_t *last = &g_cap.frames[g_cap.n - 1];
    CHECK_EQ(last->type, SE_FRAME_STATUS);
    CHECK_EQ(se_rd_u32(&last->payload[4]), 10);
    send_blocks(300, 30 * 19 - 1);
    se_app_poll(&g_app);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_STATUS), 1);
}

static void test_model_failures(void)
{
    boot();
    g_mock_run_rc = -3;
    send_blocks(0, 29);
    se_app_poll(&g_app);
    expect_error(0, SE_ERR_MODEL, (uint32_t)-3);
    expect_result(0, 0, SE_STAGE_UNKNOWN, 0, SE_RESULT_FLAG_MODEL_ERROR);
    expect_final(0, 0, SE_STAGE_UNKNOWN, SE_SOURCE_INCOMPLETE);

    mock_model_reset();
    g_mock_init_rc = 9;
    capture_reset(&g_cap);
    const se_platform_t plat = {capture_write, fake_millis, NULL, &g_cap}; /* no cycle counter */
    se_app_init(&g_app, &plat);
    CHECK_EQ(g_cap.frames[0].type, SE_FRAME_HELLO);
    expect_error(0, SE_ERR_MODEL, 9);
    send_blocks(0, 29);
    se_app_poll(&g_app);
    CHECK_EQ(g_mock_runs, 0);
    expect_result(0, 0, SE_STAGE_UNKNOWN, 0, SE_RESULT_FLAG_MODEL_ERROR);
}

static void test_sequence_numbers(void)
{
    boot();
    for (int i = 0; i < 300; ++i) {
        send(SE_FRAME_PING, (const uint8_t[]){1, 2, 3, 4}, 4);
    }
    int ok = 1;
    for (int i = 1; i < g_cap.n; ++i) {
        ok &= g_cap.frames[i].seq == (uint8_t)(g_cap.frames[i - 1].seq + 1);
    }
    CHECK(ok);
    CHECK_EQ(g_cap.frames[0].seq, 0);
    CHECK_EQ(g_cap.parser.bad_crc + g_cap.parser.garbage_bytes, 0);
}

static void test_byte_by_byte_rx(void)
{
    /* The same stream split into single bytes gives the same frames. */
    boot();
    uint8_t p[SE_APP_RX_MAX_PAYLOAD];
    uint8_t fr[SE_FRAME_MAX_WIRE(SE_APP_RX_MAX_PAYLOAD)];
    for (uint32_t b = 0; b < 30; ++b) {
        se_wr_u32(&p[0], b);
        se_wr_u16(&p[4], SE_SAMPLES_PER_BLOCK);
        for (uint32_t i = 0; i < SE_SAMPLES_PER_BLOCK; ++i) {
            se_wr_u16(&p[6 + 2 * i], (uint16_t)signal_at(b * SE_SAMPLES_PER_BLOCK + i));
        }
        const size_t n = se_frame_encode(SE_FRAME_SAMPLES, (uint8_t)b, p, sizeof p, fr, sizeof fr);
        for (size_t i = 0; i < n; ++i) {
            se_app_rx(&g_app, &fr[i], 1);
        }
    }
    se_app_poll(&g_app);
    expect_result(0, 0, 2, 0, 0);
}

static void test_artefact_epochs(void)
{
    boot();
    set_output(-100); /* a low confidence: a good epoch would be escalated */
    g_sig = SIG_FLAT;
    send_blocks(0, 29);
    g_sig = SIG_CLIPPED;
    send_blocks(30, 59);
    se_app_poll(&g_app);
    CHECK_EQ(g_mock_runs, 0); /* no inference on artefacts */
    const int r0 = expect_result(0, 0, SE_STAGE_UNKNOWN, 0,
                                 (uint8_t)(SE_QUALITY_FLAT << SE_RESULT_QUALITY_SHIFT));
    expect_result(1, 1, SE_STAGE_UNKNOWN, 0, (uint8_t)(SE_QUALITY_CLIPPED << SE_RESULT_QUALITY_SHIFT));
    if (r0 >= 0) {
        CHECK(payload_f32(&g_cap.frames[r0], 12) == 0.0f);
        for (int c = 0; c < SE_N_CLASSES; ++c) {
            CHECK_EQ(g_cap.frames[r0].payload[7 + c], 0);
        }
    }
    expect_final(0, 0, SE_STAGE_UNKNOWN, SE_SOURCE_ARTEFACT);
    expect_final(1, 1, SE_STAGE_UNKNOWN, SE_SOURCE_ARTEFACT);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_ESCALATE), 0); /* never escalated */
    /* Good signal again: classified (and escalated) as usual. */
    g_sig = SIG_EEG;
    send_blocks(60, 89);
    se_app_poll(&g_app);
    CHECK_EQ(g_mock_runs, 1);
    expect_result(2, 2, 2, 1, 0);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_ESCALATE), 1);
    CHECK_EQ(se_app_status(&g_app).epochs, 3);
}

/* A model with SE_MODEL_INPUT_NORM 1: model_in is quantized at epoch end from the transport
 * samples and the running gain; only classified epochs (not artefact, not incomplete) enter. */
static void test_input_norm(void)
{
    boot();
    g_mock_input_norm = 1;
    capture_reset(&g_cap);
    se_app_init(&g_app, &(se_platform_t){capture_write, fake_millis, fake_cycles, &g_cap});
    CHECK(g_app.input_norm);
    static const uint32_t missing[] = {100}; /* epoch 3 incomplete */
    static uint16_t amp[5];
    static float y[SE_EPOCH_SAMPLES];
    static int16_t q[5][SE_EPOCH_SAMPLES];
    for (uint32_t e = 0; e < 5; ++e) {
        expected_epoch(e, missing, 1, y);
        for (int i = 0; i < SE_EPOCH_SAMPLES; ++i) {
            q[e][i] = q16(y[i]);
        }
        amp[e] = se_norm_epoch_amplitude(q[e], SE_EPOCH_SAMPLES);
    }
    send_blocks(0, 29);
    se_app_poll(&g_app);
    CHECK_EQ(g_app.norm.n, 1);
    send_blocks(30, 59);
    se_app_poll(&g_app);
    CHECK_EQ(g_app.norm.n, 2);
    send_blocks(60, 89);
    se_app_poll(&g_app);
    CHECK_EQ(g_app.norm.n, 3);
    /* expected input of epoch 2: scale = upper median of {a0, a1, a2} */
    uint16_t v[3] = {amp[0], amp[1], amp[2]};
    for (int i = 0; i < 3; ++i) {
        for (int j = i + 1; j < 3; ++j) {
            if (v[j] < v[i]) {
                const uint16_t t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
        }
    }
    const uint16_t s = v[1] < SE_NORM_FLOOR_LSB ? SE_NORM_FLOOR_LSB : v[1];
    const float gain = SE_NORM_TARGET_MAD_LSB / (float)s * 0.25f;
    int same = 1;
    for (int i = 0; i < SE_EPOCH_SAMPLES; ++i) {
        same &= g_mock_last_input[i] == q8((float)q[2][i] * gain);
    }
    CHECK(same);
    send_blocks(90, 99); /* epoch 3 loses block 100: incomplete, not in the ring */
    send_blocks(101, 119);
    se_app_poll(&g_app);
    CHECK_EQ(g_app.norm.n, 3);
    CHECK_EQ(g_mock_runs, 3);
    g_sig = SIG_FLAT; /* epoch 4: artefact, not in the ring */
    send_blocks(120, 149);
    se_app_poll(&g_app);
    CHECK_EQ(g_app.norm.n, 3);
    CHECK_EQ(g_mock_runs, 3);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_FINAL), 5);
}

/* The context head on: RESULT and the escalation follow the head; the head sees the ring of the
 * edge outputs (artefact epochs absent) quantized with its own input parameters. */
static void boot_with_context(void)
{
    g_sig = SIG_EEG;
    g_samples_type = SE_FRAME_SAMPLES;
    mock_model_reset();
    g_mock_ctx_enabled = 1;
    capture_reset(&g_cap);
    g_now = 1000;
    g_cycles = 0;
    const se_platform_t plat = {capture_write, fake_millis, fake_cycles, &g_cap};
    se_app_init(&g_app, &plat);
}

static void test_context_head_drives_results(void)
{
    boot_with_context();
    set_output(127); /* edge: confident stage 2 */
    send_blocks(0, 29);
    se_app_poll(&g_app);
    CHECK_EQ(g_mock_runs, 1);
    CHECK_EQ(g_mock_ctx_runs, 1);
    /* head output {-128, 127, ...}: stage 1, confidence 255/256, not escalated */
    int r = expect_result(0, 0, 1, 0, 0);
    if (r >= 0) {
        for (int c = 0; c < SE_N_CLASSES; ++c) {
            CHECK_EQ((int8_t)g_cap.frames[r].payload[7 + c], g_mock_ctx_output[c]);
        }
        CHECK(payload_f32(&g_cap.frames[r], 12) == 255.0f / 256.0f);
    }
    expect_final(0, 0, 1, SE_SOURCE_EDGE);
    /* Head input: L-1 absent entries (all values quantize to zp -128), then the epoch: edge
     * probs (q + 128) / 256 -> floor(p * 255 + 0.5) - 128, flag 1.0 -> 127. */
    const int F = SE_N_CLASSES + 1;
    for (int k = 0; k < SE_CONTEXT_EPOCHS - 1; ++k) {
        for (int c = 0; c < F; ++c) {
            CHECK_EQ(g_mock_ctx_last_input[k * F + c], -128);
        }
    }
    const int8_t *last = &g_mock_ctx_last_input[(SE_CONTEXT_EPOCHS - 1) * F];
    CHECK_EQ(last[0], -128);
    CHECK_EQ(last[2], (int8_t)(floorf((255.0f / 256.0f) * (float)(1.0 / (double)(1.0f / 255.0f)) + 0.5f) - 128.0f));
    CHECK_EQ(last[SE_N_CLASSES], 127);
    /* An artefact epoch: no inference, pushed absent; then a low-confidence head answer escalates. */
    g_sig = SIG_FLAT;
    send_blocks(30, 59);
    g_sig = SIG_EEG;
    g_mock_ctx_output[1] = -100; /* head confidence 28/256 */
    send_blocks(60, 89);
    se_app_poll(&g_app);
    CHECK_EQ(g_mock_ctx_runs, 2);
    expect_result(2, 2, 1, 1, 0);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_ESCALATE), 1);
    /* ring now: ..., epoch 0 present, epoch 1 absent, epoch 2 present */
    CHECK_EQ(g_mock_ctx_last_input[(SE_CONTEXT_EPOCHS - 3) * F + SE_N_CLASSES], 127);
    CHECK_EQ(g_mock_ctx_last_input[(SE_CONTEXT_EPOCHS - 2) * F + SE_N_CLASSES], -128);
    CHECK_EQ(g_mock_ctx_last_input[(SE_CONTEXT_EPOCHS - 1) * F + SE_N_CLASSES], 127);
    /* A failing head: model error, no label, no escalation. */
    g_mock_ctx_rc = 7;
    send_blocks(90, 119);
    se_app_poll(&g_app);
    expect_result(3, 3, SE_STAGE_UNKNOWN, 0, SE_RESULT_FLAG_MODEL_ERROR);
    CHECK_EQ(capture_count(&g_cap, SE_FRAME_ESCALATE), 1);
}

static int nack_count(void) { return capture_count(&g_cap, SE_FRAME_NACK); }

static void test_arq_recovers_a_lost_block(void)
{
    boot();
    set_output(127);
    g_samples_type = SE_FRAME_SAMPLES_ARQ;
    send_blocks(0, 9);
    send_blocks(11, 15); /* 10 lost; 11..15 arrive before the host hears the NACK */
    CHECK_EQ(nack_count(), 1);
    const int i = capture_find(&g_cap, SE_FRAME_NACK, 0);
    if (i >= 0) {
        CHECK_EQ(g_cap.frames[i].len, 6);
        CHECK_EQ(se_rd_u32(g_cap.frames[i].payload), 10);
        CHECK_EQ(se_rd_u16(&g_cap.frames[i].payload[4]), 1);
    }
    send_blocks(10, 29); /* the host goes back to 10 */
    se_app_poll(&g_app);
    expect_result(0, 0, 2, 0, 0); /* complete: not incomplete */
    expect_final(0, 0, 2, SE_SOURCE_EDGE);
    static float y[SE_EPOCH_SAMPLES];
    expected_epoch(0, NULL, 0, y);
    int same = 1;
    for (int k = 0; k < SE_EPOCH_SAMPLES; ++k) {
        same &= g_mock_last_input[k] == q8(y[k]);
    }
    CHECK(same); /* bit for bit what an undisturbed stream gives */
    const se_app_status_t st = se_app_status(&g_app);
    CHECK_EQ(st.missing_blocks, 0);
    CHECK_EQ(st.stale_blocks, 5);
    CHECK_EQ(nack_count(), 1);
}

static void test_arq_first_block_lost(void)
{
    boot();
    set_output(127);
    g_samples_type = SE_FRAME_SAMPLES_ARQ;
    send_blocks(61, 65); /* block 60, the epoch start, lost before the device synchronised */
    CHECK_EQ(nack_count(), 1);
    const int i = capture_find(&g_cap, SE_FRAME_NACK, 0);
    if (i >= 0) {
        CHECK_EQ(se_rd_u32(g_cap.frames[i].payload), 60);
        CHECK_EQ(se_rd_u16(&g_cap.frames[i].payload[4]), 1);
    }
    send_blocks(60, 89);
    se_app_poll(&g_app);
    expect_result(0, 2, 2, 0, 0);
    CHECK_EQ(se_app_status(&g_app).missing_blocks, 0);
}

static void test_arq_repeats_nack_then_gives_up(void)
{
    boot();
    set_output(127);
    g_samples_type = SE_FRAME_SAMPLES_ARQ;
    send_blocks(0, 9);
    send_blocks(11, 11 + SE_APP_NACK_EVERY_BLOCKS); /* the first NACK was lost: a second one */
    CHECK_EQ(nack_count(), 2);
    /* A host that never resends: after SE_APP_ARQ_MAX_DROPS the gap is zero-filled. */
    send_blocks(12 + SE_APP_NACK_EVERY_BLOCKS, 10 + SE_APP_ARQ_MAX_DROPS);
    CHECK_EQ(nack_count(), (int)((SE_APP_ARQ_MAX_DROPS + SE_APP_NACK_EVERY_BLOCKS - 1) / SE_APP_NACK_EVERY_BLOCKS));
    CHECK_EQ(g_mock_runs, 0);
    send_block(11 + SE_APP_ARQ_MAX_DROPS);
    se_app_poll(&g_app);
    expect_result(0, 0, SE_STAGE_UNKNOWN, 0, SE_RESULT_FLAG_INCOMPLETE);
    CHECK_EQ(se_app_status(&g_app).missing_blocks, SE_APP_ARQ_MAX_DROPS + 1);
    /* Plain SAMPLES never wait: a gap is zero-filled at once, no NACK. */
    boot();
    send_blocks(0, 9);
    send_blocks(11, 29);
    CHECK_EQ(nack_count(), 0);
    CHECK_EQ(se_app_status(&g_app).missing_blocks, 1);
}

int main(void)
{
    RUN(test_hello_at_boot);
    RUN(test_context_head_drives_results);
    RUN(test_confident_epoch);
    RUN(test_escalated_epoch_answered);
    RUN(test_escalated_epoch_times_out);
    RUN(test_timeout_across_millis_wrap);
    RUN(test_missing_blocks_within_epoch);
    RUN(test_missing_blocks_across_epochs);
    RUN(test_long_gap_resets);
    RUN(test_stale_and_presync_blocks);
    RUN(test_config);
    RUN(test_ping);
    RUN(test_pending_table_overflow);
    RUN(test_bad_frames);
    RUN(test_status_every_10_epochs);
    RUN(test_model_failures);
    RUN(test_sequence_numbers);
    RUN(test_byte_by_byte_rx);
    RUN(test_artefact_epochs);
    RUN(test_input_norm);
    RUN(test_arq_recovers_a_lost_block);
    RUN(test_arq_first_block_lost);
    RUN(test_arq_repeats_nack_then_gives_up);
    TEST_MAIN_END();
}

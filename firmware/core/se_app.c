/* The device application: see se_app.h and docs/protocol.md. */
#include "se_app.h"

#include <math.h>
#include <string.h>

#include "se_model.h"
#include "se_quant.h"

/* --- helpers ---------------------------------------------------------------------------- */

static void null_write(const uint8_t *data, size_t len, void *ctx)
{
    (void)data;
    (void)len;
    (void)ctx;
}

static uint32_t now_ms(const se_app_t *app)
{
    return app->platform.millis ? app->platform.millis(app->platform.ctx) : 0u;
}

static uint32_t cycles(const se_app_t *app)
{
    return app->platform.cycles ? app->platform.cycles(app->platform.ctx) : 0u;
}

static uint32_t sat_add(uint32_t a, uint32_t b) { return (a > UINT32_MAX - b) ? UINT32_MAX : a + b; }

static float f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t bits_from_f32(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* Escalation transport: clamp(floor(y * 4 + 0.5), int16) - the filtered signal at 0.25 uV. */
static int16_t quantize_transport(float y)
{
    float v = floorf(y * (1.0f / SE_SAMPLE_UV_PER_LSB) + 0.5f);
    if (!(v >= -32768.0f)) {
        v = -32768.0f;
    }
    if (v > 32767.0f) {
        v = 32767.0f;
    }
    return (int16_t)v;
}

/* --- transmit --------------------------------------------------------------------------- */

static void tx_begin(se_app_t *app, uint8_t type, uint16_t len)
{
    se_fw_begin(&app->writer, app->platform.write, app->platform.ctx, type, app->tx_seq++, len);
}

static void tx_frame(se_app_t *app, uint8_t type, const uint8_t *payload, uint16_t len)
{
    tx_begin(app, type, len);
    se_fw_put(&app->writer, payload, len);
    se_fw_end(&app->writer);
}

static void send_hello(se_app_t *app)
{
    uint8_t p[25];
    memset(p, 0, sizeof p);
    p[0] = SE_PROTOCOL_VERSION;
    /* char[8], NUL-padded; the version string is at most 8 characters by protocol. */
    const char *ver = SE_FIRMWARE_VERSION;
    for (size_t i = 0; i < 8 && ver[i] != '\0'; ++i) {
        p[1 + i] = (uint8_t)ver[i];
    }
    se_wr_u32(&p[9], se_model_hash());
    se_wr_u16(&p[13], SE_FS_HZ);
    se_wr_u16(&p[15], SE_EPOCH_SAMPLES);
    se_wr_u32(&p[17], bits_from_f32(app->threshold));
    se_wr_u32(&p[21], app->timeout_ms);
    tx_frame(app, SE_FRAME_HELLO, p, sizeof p);
}

static void send_error(se_app_t *app, uint8_t code, uint32_t detail)
{
    uint8_t p[5];
    p[0] = code;
    se_wr_u32(&p[1], detail);
    app->errors_sent++;
    tx_frame(app, SE_FRAME_ERROR, p, sizeof p);
}

static void send_result(se_app_t *app, uint32_t epoch, uint8_t stage, bool escalated, uint8_t flags,
                        const int8_t probs[SE_N_CLASSES], float confidence)
{
    uint8_t p[11 + SE_N_CLASSES];
    se_wr_u32(&p[0], epoch);
    p[4] = stage;
    p[5] = escalated ? 1u : 0u;
    p[6] = flags;
    for (int i = 0; i < SE_N_CLASSES; ++i) {
        p[7 + i] = (uint8_t)probs[i];
    }
    se_wr_u32(&p[7 + SE_N_CLASSES], bits_from_f32(confidence));
    tx_frame(app, SE_FRAME_RESULT, p, sizeof p);
}

static void send_final(se_app_t *app, uint32_t epoch, uint8_t stage, uint8_t source)
{
    uint8_t p[6];
    se_wr_u32(&p[0], epoch);
    p[4] = stage;
    p[5] = source;
    tx_frame(app, SE_FRAME_FINAL, p, sizeof p);
}

static void send_escalate(se_app_t *app, uint32_t epoch)
{
    uint8_t hdr[6];
    uint8_t chunk[2 * 50];
    tx_begin(app, SE_FRAME_ESCALATE, (uint16_t)(6u + 2u * SE_EPOCH_SAMPLES));
    se_wr_u32(&hdr[0], epoch);
    se_wr_u16(&hdr[4], SE_EPOCH_SAMPLES);
    se_fw_put(&app->writer, hdr, sizeof hdr);
    /* Serialise little-endian in small chunks whatever the host byte order. */
    for (size_t i = 0; i < SE_EPOCH_SAMPLES; i += 50) {
        size_t k = 0;
        for (; k < 50 && i + k < SE_EPOCH_SAMPLES; ++k) {
            se_wr_u16(&chunk[2 * k], (uint16_t)app->epoch_q[i + k]);
        }
        se_fw_put(&app->writer, chunk, 2 * k);
    }
    se_fw_end(&app->writer);
    app->st.escalations++;
}

static void send_nack(se_app_t *app, uint32_t first_block, uint32_t count)
{
    uint8_t p[6];
    se_wr_u32(&p[0], first_block);
    se_wr_u16(&p[4], (uint16_t)(count > 0xFFFFu ? 0xFFFFu : count));
    tx_frame(app, SE_FRAME_NACK, p, sizeof p);
}

static void send_status(se_app_t *app)
{
    const se_app_status_t st = se_app_status(app);
    const uint32_t v[SE_APP_STATUS_FIELDS] = {
        st.uptime_ms, st.epochs, st.escalations, st.cloud_answers, st.timeouts,
        st.rx_bytes, st.rx_frames, st.bad_crc, st.garbage_bytes, st.stale_blocks,
        st.missing_blocks, st.filter_cycles_last_epoch, st.infer_cycles_last_epoch,
        st.rx_overflows,
    };
    uint8_t p[4 * SE_APP_STATUS_FIELDS];
    for (size_t i = 0; i < SE_APP_STATUS_FIELDS; ++i) {
        se_wr_u32(&p[4 * i], v[i]);
    }
    tx_frame(app, SE_FRAME_STATUS, p, sizeof p);
}

/* --- escalation table ------------------------------------------------------------------- */

static int oldest_pending(const se_app_t *app, bool only_expired, uint32_t now)
{
    int best = -1;
    for (int i = 0; i < SE_MAX_PENDING_ESCALATIONS; ++i) {
        const se_pending_t *e = &app->pending[i];
        if (!e->used) {
            continue;
        }
        /* Wrap-safe "now >= deadline" on the 2^32 ms clock. */
        if (only_expired && (int32_t)(now - e->deadline_ms) < 0) {
            continue;
        }
        if (best < 0 || (int32_t)(e->order - app->pending[best].order) < 0) {
            best = i;
        }
    }
    return best;
}

static void time_out(se_app_t *app, int slot)
{
    se_pending_t *e = &app->pending[slot];
    e->used = false;
    app->st.timeouts++;
    send_final(app, e->epoch, e->edge_stage, SE_SOURCE_TIMEOUT);
}

static void add_pending(se_app_t *app, uint32_t epoch, uint8_t stage)
{
    int slot = -1;
    for (int i = 0; i < SE_MAX_PENDING_ESCALATIONS; ++i) {
        if (!app->pending[i].used) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        /* Table full: the oldest escalation gives up early and keeps its edge label. */
        slot = oldest_pending(app, false, 0);
        time_out(app, slot);
    }
    se_pending_t *e = &app->pending[slot];
    e->used = true;
    e->epoch = epoch;
    e->edge_stage = stage;
    e->deadline_ms = now_ms(app) + app->timeout_ms;
    e->order = app->pending_order++;
}

/* --- epochs ----------------------------------------------------------------------------- */

/* RESULT with no stage (flags say why) and FINAL "incomplete". */
static void report_without_label(se_app_t *app, uint32_t epoch, uint8_t flags)
{
    static const int8_t zeros[SE_N_CLASSES] = {0};
    send_result(app, epoch, SE_STAGE_UNKNOWN, false, flags, zeros, 0.0f);
    send_final(app, epoch, SE_STAGE_UNKNOWN, SE_SOURCE_INCOMPLETE);
}

static void close_epoch_without_label(se_app_t *app, uint32_t epoch, uint8_t flags)
{
    se_context_push(&app->ctx, epoch, NULL); /* no edge output: absent in the context */
    report_without_label(app, epoch, flags);
}

/* A bad-signal epoch: no inference, no escalation, the verdict in RESULT flags bits 2-4. */
static void close_epoch_artefact(se_app_t *app, uint32_t epoch, uint8_t verdict)
{
    static const int8_t zeros[SE_N_CLASSES] = {0};
    const uint8_t flags = (uint8_t)((verdict << SE_RESULT_QUALITY_SHIFT) & SE_RESULT_QUALITY_MASK);
    se_context_push(&app->ctx, epoch, NULL);
    send_result(app, epoch, SE_STAGE_UNKNOWN, false, flags, zeros, 0.0f);
    send_final(app, epoch, SE_STAGE_UNKNOWN, SE_SOURCE_ARTEFACT);
}

static void epoch_closed(se_app_t *app)
{
    app->st.epochs++;
    if (app->st.epochs % SE_APP_STATUS_EVERY_EPOCHS == 0u) {
        send_status(app);
    }
}

static void classify(se_app_t *app, uint32_t epoch)
{
    int8_t out[SE_N_CLASSES];
    const uint32_t t0 = cycles(app);
    const int rc = se_model_run(app->model_in, out);
    app->st.infer_cycles_last_epoch = cycles(app) - t0;
    app->st.filter_cycles_last_epoch = app->ready_filter_cycles;
    if (rc != 0) {
        send_error(app, SE_ERR_MODEL, (uint32_t)rc);
        close_epoch_without_label(app, epoch, SE_RESULT_FLAG_MODEL_ERROR);
        return;
    }
    float out_scale = app->out_scale;
    int32_t out_zp = app->out_zp;
    se_context_push(&app->ctx, epoch, out);
    if (app->ctx_on) {
        /* The head over the last SE_CONTEXT_EPOCHS edge outputs replaces the edge answer:
         * RESULT probs, stage, confidence and the escalation decision are the head's. */
        int8_t head_in[SE_CONTEXT_INPUT_BYTES];
        se_context_input(&app->ctx, &app->ctx_q, head_in);
        const int hrc = se_model_context_run(head_in, out);
        app->st.infer_cycles_last_epoch = cycles(app) - t0;
        if (hrc != 0) {
            send_error(app, SE_ERR_MODEL, (uint32_t)hrc);
            report_without_label(app, epoch, SE_RESULT_FLAG_MODEL_ERROR); /* edge output already in the ring */
            return;
        }
        out_scale = app->ctx_out_scale;
        out_zp = app->ctx_out_zp;
    }
    uint8_t stage = 0;
    for (uint8_t i = 1; i < SE_N_CLASSES; ++i) {
        if (out[i] > out[stage]) { /* first maximum wins, like numpy.argmax */
            stage = i;
        }
    }
    const float confidence = (float)((int32_t)out[stage] - out_zp) * out_scale;
    /* The negated comparison also escalates a NaN confidence (a broken output scale). */
    const bool escalate = !(confidence >= app->threshold);
    send_result(app, epoch, stage, escalate, 0u, out, confidence);
    if (escalate) {
        add_pending(app, epoch, stage);
        send_escalate(app, epoch);
    } else {
        send_final(app, epoch, stage, SE_SOURCE_EDGE);
    }
}

/* Normalized input (se_norm.h): the epoch enters the running ring, then model_in is quantized
 * from the transport samples with the gain, once per epoch (not per sample). */
static void quantize_normalized(se_app_t *app)
{
    const float gain = se_norm_gain(se_norm_update(&app->norm, app->epoch_q));
    for (size_t i = 0; i < SE_EPOCH_SAMPLES; ++i) {
        app->model_in[i] = se_quantize_f32((float)app->epoch_q[i] * gain, app->in_inv_scale, app->in_zp);
    }
}

/* Run the completed epoch, if any. Called before its buffers are reused. */
static void run_ready(se_app_t *app)
{
    if (!app->ready) {
        return;
    }
    app->ready = false;
    if (app->ready_incomplete) {
        close_epoch_without_label(app, app->ready_epoch, SE_RESULT_FLAG_INCOMPLETE);
    } else if (app->ready_quality != SE_QUALITY_OK) {
        close_epoch_artefact(app, app->ready_epoch, app->ready_quality);
    } else if (!app->model_ok) {
        close_epoch_without_label(app, app->ready_epoch, SE_RESULT_FLAG_MODEL_ERROR);
    } else {
        if (app->input_norm) { /* only classified epochs enter the running scale */
            const uint32_t t0 = cycles(app);
            quantize_normalized(app);
            app->ready_filter_cycles += cycles(app) - t0;
        }
        classify(app, app->ready_epoch);
    }
    epoch_closed(app);
}

/* Quality sums, filter and transport quantization of one block's samples; with plain_input
 * also the model input. Inlined with a constant flag, so each caller's loop has no branch. */
static inline void filter_samples(se_app_t *app, const uint8_t *q_le, size_t base, bool plain_input)
{
    for (size_t i = 0; i < SE_SAMPLES_PER_BLOCK; ++i) {
        const int16_t q = (int16_t)se_rd_u16(&q_le[2 * i]);
        se_quality_push(&app->quality, q);
        const float y = se_filter_step(&app->filter, (float)q * SE_SAMPLE_UV_PER_LSB);
        app->epoch_q[base + i] = quantize_transport(y);
        if (plain_input) {
            app->model_in[base + i] = se_quantize_f32(y, app->in_inv_scale, app->in_zp);
        }
    }
}

/* Filter one block (q == NULL: a missing block, zero-filled) into the open epoch. */
static void accept_block(se_app_t *app, const uint8_t *q_le)
{
    const uint32_t pos = app->next_block % SE_BLOCKS_PER_EPOCH;
    if (pos == 0u) {
        run_ready(app);
        app->cur_incomplete = false;
        app->cur_filter_cycles = 0;
        se_quality_reset(&app->quality);
    }
    const uint32_t t0 = cycles(app);
    if (q_le == NULL) {
        /* Keep the filter running on zeros so later epochs see a continuous state. */
        for (size_t i = 0; i < SE_SAMPLES_PER_BLOCK; ++i) {
            (void)se_filter_step(&app->filter, 0.0f);
        }
        app->cur_incomplete = true;
    } else {
        const size_t base = (size_t)pos * SE_SAMPLES_PER_BLOCK;
        if (app->input_norm) { /* model_in is quantized at epoch end (quantize_normalized) */
            filter_samples(app, q_le, base, false);
        } else {
            filter_samples(app, q_le, base, true);
        }
    }
    app->cur_filter_cycles += cycles(app) - t0;
    app->next_block++;
    if (pos == SE_BLOCKS_PER_EPOCH - 1u) {
        app->ready = true;
        app->ready_epoch = (app->next_block - 1u) / SE_BLOCKS_PER_EPOCH;
        app->ready_incomplete = app->cur_incomplete;
        app->ready_quality = se_quality_verdict(&app->quality);
        app->ready_filter_cycles = app->cur_filter_cycles;
    }
}

/* SAMPLES_ARQ gap: true if the block is dropped while the missing one is asked for again. */
static bool arq_hold(se_app_t *app, uint32_t block)
{
    if (!app->arq_waiting) {
        app->arq_waiting = true;
        app->arq_drops = 0;
    }
    if (app->arq_drops >= SE_APP_ARQ_MAX_DROPS) {
        app->arq_waiting = false; /* the host does not resend: zero-fill as for SAMPLES */
        return false;
    }
    if (app->arq_drops % SE_APP_NACK_EVERY_BLOCKS == 0u) {
        send_nack(app, app->next_block, block - app->next_block);
    }
    app->arq_drops++;
    app->st.stale_blocks++;
    return true;
}

static void on_samples(se_app_t *app, uint32_t block, const uint8_t *q_le, bool arq)
{
    if (!app->synced) {
        if (block % SE_BLOCKS_PER_EPOCH != 0u) {
            /* SAMPLES_ARQ: the epoch's first block was lost; ask for the epoch from its start. */
            if (arq && app->presync_blocks % SE_APP_NACK_EVERY_BLOCKS == 0u) {
                send_nack(app, block - block % SE_BLOCKS_PER_EPOCH, block % SE_BLOCKS_PER_EPOCH);
            }
            app->presync_blocks++;
            return;
        }
        app->synced = true;
        app->next_block = block;
    }
    if (block < app->next_block) {
        app->st.stale_blocks++;
        return;
    }
    if (block > app->next_block) {
        const uint32_t gap = block - app->next_block;
        if (arq && gap <= SE_APP_MAX_ZERO_FILL_BLOCKS && arq_hold(app, block)) {
            return;
        }
        app->st.missing_blocks = sat_add(app->st.missing_blocks, gap);
        if (gap <= SE_APP_MAX_ZERO_FILL_BLOCKS) {
            while (app->next_block < block) {
                accept_block(app, NULL);
            }
        } else {
            /* Too long to replay: report the open epoch, restart the filter from rest (the
             * state after a long run of zeros) in the new block's epoch. */
            run_ready(app);
            if (app->next_block % SE_BLOCKS_PER_EPOCH != 0u) {
                close_epoch_without_label(app, app->next_block / SE_BLOCKS_PER_EPOCH,
                                          SE_RESULT_FLAG_INCOMPLETE);
                epoch_closed(app);
            }
            se_filter_reset(&app->filter);
            app->cur_incomplete = (block % SE_BLOCKS_PER_EPOCH) != 0u;
            app->cur_filter_cycles = 0;
            se_quality_reset(&app->quality);
            app->next_block = block;
        }
    }
    app->arq_waiting = false;
    accept_block(app, q_le);
}

/* --- receive ---------------------------------------------------------------------------- */

static bool need_len(se_app_t *app, const se_frame_t *f, uint16_t len)
{
    if (f->len == len) {
        return true;
    }
    send_error(app, SE_ERR_BAD_LENGTH, ((uint32_t)f->type << 16) | f->len);
    return false;
}

static void handle_frame(se_app_t *app, const se_frame_t *f)
{
    const uint8_t *p = f->payload;
    switch (f->type) {
    case SE_FRAME_SAMPLES:
    case SE_FRAME_SAMPLES_ARQ:
        if (need_len(app, f, SE_APP_RX_MAX_PAYLOAD)) {
            if (se_rd_u16(&p[4]) != SE_SAMPLES_PER_BLOCK) {
                send_error(app, SE_ERR_BAD_LENGTH, ((uint32_t)f->type << 16) | f->len);
                return;
            }
            on_samples(app, se_rd_u32(&p[0]), &p[6], f->type == SE_FRAME_SAMPLES_ARQ);
        }
        break;
    case SE_FRAME_CLOUD_LABEL:
        if (need_len(app, f, 5)) {
            const uint32_t epoch = se_rd_u32(&p[0]);
            const uint8_t stage = p[4];
            if (stage >= SE_N_CLASSES) {
                send_error(app, SE_ERR_BAD_VALUE, f->type);
                return;
            }
            for (int i = 0; i < SE_MAX_PENDING_ESCALATIONS; ++i) {
                se_pending_t *e = &app->pending[i];
                if (e->used && e->epoch == epoch) {
                    e->used = false;
                    app->st.cloud_answers++;
                    send_final(app, epoch, stage, SE_SOURCE_CLOUD);
                    return;
                }
            }
            send_error(app, SE_ERR_UNKNOWN_EPOCH, epoch);
        }
        break;
    case SE_FRAME_CONFIG:
        if (need_len(app, f, 8)) {
            const float th = f32_from_bits(se_rd_u32(&p[0]));
            const uint32_t to = se_rd_u32(&p[4]);
            if (!(th >= 0.0f && th <= 1.0f) || to < SE_APP_MIN_TIMEOUT_MS || to > SE_APP_MAX_TIMEOUT_MS) {
                send_error(app, SE_ERR_BAD_VALUE, f->type);
                return;
            }
            app->threshold = th;
            app->timeout_ms = to;
            send_hello(app); /* acknowledgement carrying the values now in force */
        }
        break;
    case SE_FRAME_PING:
        if (need_len(app, f, 4)) {
            uint8_t pong[4];
            memcpy(pong, p, sizeof pong);
            tx_frame(app, SE_FRAME_PONG, pong, sizeof pong);
            send_status(app);
        }
        break;
    default:
        send_error(app, SE_ERR_UNKNOWN_TYPE, f->type);
        break;
    }
}

/* --- public API ------------------------------------------------------------------------- */

void se_app_init(se_app_t *app, const se_platform_t *platform)
{
    static const uint8_t delimiter = 0x00;
    memset(app, 0, sizeof *app);
    app->platform = *platform;
    if (app->platform.write == NULL) {
        app->platform.write = null_write;
    }
    se_parser_init(&app->parser, app->rx_buf, sizeof app->rx_buf);
    se_filter_reset(&app->filter);
    app->threshold = se_model_confidence_threshold();
    app->timeout_ms = SE_DEFAULT_ESCALATION_TIMEOUT_MS;
    app->boot_ms = now_ms(app);

    const int rc = se_model_init();
    const float in_scale = se_model_input_scale();
    app->model_ok = (rc == 0) && in_scale > 0.0f;
    /* float32(1 / scale) computed like the host (numpy divides in double, then rounds). */
    app->in_inv_scale = app->model_ok ? (float)(1.0 / (double)in_scale) : 0.0f;
    app->in_zp = se_model_input_zero_point();
    app->out_scale = se_model_output_scale();
    app->out_zp = se_model_output_zero_point();
    app->input_norm = se_model_input_norm() != 0;
    se_norm_reset(&app->norm);
    se_context_reset(&app->ctx);
    app->ctx_on = app->model_ok && se_model_has_context() != 0;
    if (app->ctx_on) {
        const float ctx_in_scale = se_model_context_input_scale();
        app->ctx_on = ctx_in_scale > 0.0f;
        app->ctx_q.edge_out_scale = app->out_scale;
        app->ctx_q.edge_out_zp = app->out_zp;
        app->ctx_q.head_in_inv_scale = app->ctx_on ? (float)(1.0 / (double)ctx_in_scale) : 0.0f;
        app->ctx_q.head_in_zp = se_model_context_input_zero_point();
        app->ctx_out_scale = se_model_context_output_scale();
        app->ctx_out_zp = se_model_context_output_zero_point();
    }

    /* A lone delimiter first: the host drops whatever boot noise preceded it. */
    app->platform.write(&delimiter, 1, app->platform.ctx);
    send_hello(app);
    if (!app->model_ok) {
        send_error(app, SE_ERR_MODEL, (uint32_t)rc);
    }
}

void se_app_rx(se_app_t *app, const uint8_t *data, size_t len)
{
    se_frame_t f;
    for (size_t i = 0; i < len; ++i) {
        app->st.rx_bytes++;
        if (se_parser_push(&app->parser, data[i], &f)) {
            handle_frame(app, &f);
        }
    }
}

void se_app_poll(se_app_t *app)
{
    run_ready(app);
    const uint32_t now = now_ms(app);
    int slot;
    while ((slot = oldest_pending(app, true, now)) >= 0) {
        time_out(app, slot);
    }
}

void se_app_note_rx_overflow(se_app_t *app, uint32_t n)
{
    app->board_overflows = sat_add(app->board_overflows, n);
}

se_app_status_t se_app_status(se_app_t *app)
{
    se_app_status_t st = app->st;
    st.uptime_ms = now_ms(app) - app->boot_ms;
    st.rx_frames = app->parser.frames;
    st.bad_crc = app->parser.bad_crc;
    st.garbage_bytes = app->parser.garbage_bytes;
    st.rx_overflows = sat_add(app->parser.oversize, app->board_overflows);
    return st;
}

/**
 * @file se_app.h
 * @brief The device application: epoch assembly, filtering, inference, escalation and the
 *        serial message handling of docs/protocol.md. Portable: no hardware access, no heap.
 *
 * The board owns one se_app_t (about 10 kB, put it in .bss), calls se_app_init() once, feeds
 * every received byte to se_app_rx() and calls se_app_poll() from its main loop. All output goes
 * through platform->write, from the caller's context (never from an interrupt unless the board
 * calls these functions from one).
 */
#ifndef SE_APP_H
#define SE_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "se_context.h"
#include "se_filter.h"
#include "se_norm.h"
#include "se_protocol.h"
#include "se_quality.h"
#include "sleepedge_constants.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What the application needs from the board. */
typedef struct {
    void (*write)(const uint8_t *data, size_t len, void *ctx); /**< serial TX (blocking is fine) */
    uint32_t (*millis)(void *ctx);                              /**< monotonic ms, wraps at 2^32 */
    uint32_t (*cycles)(void *ctx); /**< may be NULL; instruction/cycle counter, wraps at 2^32 */
    void *ctx;
} se_platform_t;

/** Largest host->device payload: a SAMPLES block. */
#define SE_APP_RX_MAX_PAYLOAD (6u + 2u * SE_SAMPLES_PER_BLOCK)
/** Receive buffer: one encoded SAMPLES frame. */
#define SE_APP_RX_BUF_BYTES SE_FRAME_MAX_ENCODED(SE_APP_RX_MAX_PAYLOAD)
/**
 * A forward jump of up to this many blocks is zero-filled through the filter and every epoch it
 * touches is reported incomplete. A longer jump resets the filter instead and only reports the
 * epoch that was open and the epoch the new block starts in (so one corrupt index cannot make
 * the device emit millions of frames).
 */
#define SE_APP_MAX_ZERO_FILL_BLOCKS (10u * SE_BLOCKS_PER_EPOCH)
/**
 * SAMPLES_ARQ (the host resends on NACK): a forward jump of up to SE_APP_MAX_ZERO_FILL_BLOCKS
 * is not zero-filled but NACKed; later blocks are dropped until the missing one arrives. A NACK
 * is repeated every SE_APP_NACK_EVERY_BLOCKS dropped blocks (the first may be lost too; more
 * than a host with a 2-epoch flow-control window has in flight, so a NACK the host is already
 * answering is not repeated), and after SE_APP_ARQ_MAX_DROPS dropped blocks the device gives up
 * and zero-fills as for SAMPLES.
 */
#define SE_APP_NACK_EVERY_BLOCKS (2u * SE_BLOCKS_PER_EPOCH)
#define SE_APP_ARQ_MAX_DROPS (5u * SE_BLOCKS_PER_EPOCH)
/** A STATUS frame follows every this many closed epochs. */
#define SE_APP_STATUS_EVERY_EPOCHS 10u
/** CONFIG limits (inclusive). */
#define SE_APP_MIN_TIMEOUT_MS 1u
#define SE_APP_MAX_TIMEOUT_MS 3600000u

/** Counters; the first 14 are the STATUS payload, in order. */
typedef struct {
    uint32_t uptime_ms;
    uint32_t epochs;         /**< epochs closed (classified or incomplete) */
    uint32_t escalations;    /**< ESCALATE frames sent */
    uint32_t cloud_answers;  /**< pending epochs finalised by CLOUD_LABEL */
    uint32_t timeouts;       /**< pending epochs finalised by timeout (incl. table overflow) */
    uint32_t rx_bytes;
    uint32_t rx_frames;      /**< valid frames received */
    uint32_t bad_crc;
    uint32_t garbage_bytes;
    uint32_t stale_blocks;   /**< blocks behind the expected index, or ahead while waiting for a resend */
    uint32_t missing_blocks; /**< blocks skipped by forward jumps (saturating) */
    uint32_t filter_cycles_last_epoch; /**< filter + quantization, summed over the epoch's blocks */
    uint32_t infer_cycles_last_epoch;  /**< around se_model_run */
    uint32_t rx_overflows;   /**< oversize frames + overruns reported by se_app_note_rx_overflow */
} se_app_status_t;

#define SE_APP_STATUS_FIELDS 14u

/** One escalated epoch waiting for the cloud. */
typedef struct {
    bool used;
    uint8_t edge_stage;
    uint32_t epoch;
    uint32_t deadline_ms;
    uint32_t order; /**< escalation order, to find the oldest */
} se_pending_t;

/** Application state. Treat as opaque outside se_app.c and the unit tests. */
typedef struct {
    se_platform_t platform;
    se_parser_t parser;
    uint8_t rx_buf[SE_APP_RX_BUF_BYTES];
    se_frame_writer_t writer;
    uint8_t tx_seq;

    /* configuration */
    float threshold;
    uint32_t timeout_ms;

    /* model */
    bool model_ok;
    float in_inv_scale; /**< 1 / input scale, as float32(1.0 / (double)scale) like the host */
    int32_t in_zp;
    float out_scale;
    int32_t out_zp;
    bool input_norm;    /**< se_model_input_norm(): quantize at epoch end with the running gain */
    se_norm_t norm;     /**< running amplitudes of the classified epochs (se_norm.h) */
    /* context head (se_context.h): on when the model folder exported one */
    bool ctx_on;
    se_context_t ctx;
    se_context_quant_t ctx_q;
    float ctx_out_scale;
    int32_t ctx_out_zp;

    /* epoch assembly */
    se_filter_t filter;
    bool synced;          /**< a block index multiple of SE_BLOCKS_PER_EPOCH has been seen */
    uint32_t next_block;  /**< block index expected next */
    bool cur_incomplete;  /**< the epoch being assembled has zero-filled blocks */
    se_quality_t quality; /**< signal-quality sums of the epoch being assembled (raw samples) */
    bool arq_waiting;     /**< a SAMPLES_ARQ gap was NACKed; waiting for block next_block */
    uint32_t arq_drops;   /**< blocks dropped while waiting */
    uint32_t cur_filter_cycles;
    int16_t epoch_q[SE_EPOCH_SAMPLES];    /**< filtered epoch at 0.25 uV for ESCALATE */
    int8_t model_in[SE_EPOCH_SAMPLES];    /**< quantized model input */

    /* a complete epoch waiting for se_app_poll (run early if the next epoch starts first) */
    bool ready;
    bool ready_incomplete;
    uint8_t ready_quality; /**< SE_QUALITY_* verdict of the ready epoch */
    uint32_t ready_epoch;
    uint32_t ready_filter_cycles;

    se_pending_t pending[SE_MAX_PENDING_ESCALATIONS];
    uint32_t pending_order;

    se_app_status_t st;      /**< app counters; parser counters are merged by se_app_status() */
    uint32_t boot_ms;
    uint32_t board_overflows; /**< from se_app_note_rx_overflow */
    uint32_t errors_sent;    /**< ERROR frames sent */
    uint32_t presync_blocks; /**< blocks dropped while waiting for an epoch boundary */
} se_app_t;

/**
 * Reset everything, call se_model_init() and send HELLO (preceded by one 0x00 so the host parser
 * drops any boot noise). If the model fails to initialise an ERROR (SE_ERR_MODEL) follows and
 * epochs are reported with SE_RESULT_FLAG_MODEL_ERROR.
 */
void se_app_init(se_app_t *app, const se_platform_t *platform);

/** Bytes from the host, any split. Handles frames as they complete (SAMPLES are filtered here). */
void se_app_rx(se_app_t *app, const uint8_t *data, size_t len);

/** Run a completed epoch (inference, RESULT/ESCALATE/FINAL) and expire pending escalations. */
void se_app_poll(se_app_t *app);

/** The board reports n bytes lost by its UART/ring buffer (counted in rx_overflows). */
void se_app_note_rx_overflow(se_app_t *app, uint32_t n);

/** Current counters (uptime refreshed). */
se_app_status_t se_app_status(se_app_t *app);

#ifdef __cplusplus
}
#endif

#endif /* SE_APP_H */

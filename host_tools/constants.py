"""Single source of truth for constants shared by host tools and firmware.

``sleepedge gen-headers`` writes these into ``firmware/generated/sleepedge_constants.h``; a test
checks that the committed header is up to date. Change a value here, never in C.
"""

from __future__ import annotations

# --- signal -------------------------------------------------------------------------------
FS_HZ: int = 100  #: Sleep-EDF EEG sample rate
EPOCH_S: int = 30  #: AASM / R&K scoring epoch
EPOCH_SAMPLES: int = FS_HZ * EPOCH_S  #: 3000
#: Transport / ADC scaling: the device receives int16 samples of this many microvolts each.
#: 0.25 uV keeps +-8 mV of range, far beyond scalp EEG, at a resolution below the EDF's own.
SAMPLE_UV_PER_LSB: float = 0.25
#: Samples per SAMPLES frame on the serial link (1 s of signal).
SAMPLES_PER_BLOCK: int = 100
BLOCKS_PER_EPOCH: int = EPOCH_SAMPLES // SAMPLES_PER_BLOCK

# --- Butterworth band-pass, applied causally on device and host ----------------------------
FILTER_LOW_HZ: float = 0.3
FILTER_HIGH_HZ: float = 30.0
FILTER_ORDER: int = 4

# --- model input -------------------------------------------------------------------------
#: The edge model sees the filtered signal clipped to +-this many microvolts: the int8 input
#: scale is fixed by it (~1.6 uV per step), so training clips the same way the device saturates.
EDGE_INPUT_CLIP_UV: float = 200.0

# --- labels -------------------------------------------------------------------------------
STAGES: tuple[str, ...] = ("W", "N1", "N2", "N3", "REM")
N_CLASSES: int = len(STAGES)
STAGE_UNKNOWN: int = 255  #: "no label" on the wire (incomplete epoch)
#: R&K annotation text in Sleep-EDF hypnograms -> AASM class index (None = dropped).
RK_TO_AASM: dict[str, int | None] = {
    "Sleep stage W": 0,
    "Sleep stage 1": 1,
    "Sleep stage 2": 2,
    "Sleep stage 3": 3,
    "Sleep stage 4": 3,
    "Sleep stage R": 4,
    "Sleep stage M": None,
    "Sleep stage ?": None,
    "Movement time": None,
}

# --- escalation ---------------------------------------------------------------------------
#: Edge confidence (max softmax probability) below which an epoch is escalated to the cloud.
#: `sleepedge bench accuracy` recommends a value per model; export bakes it into the model header.
DEFAULT_CONFIDENCE_THRESHOLD: float = 0.60
DEFAULT_ESCALATION_TIMEOUT_MS: int = 5000
MAX_PENDING_ESCALATIONS: int = 4
#: Edge outputs (RESULT probabilities) the proxy sends with each escalation, the escalated epoch
#: included: the cloud model's view of the night so far (host side only; 11 epochs = 5.5 min).
CLOUD_HISTORY_EPOCHS: int = 11
#: Edge outputs the device's context head sees (host_tools/learn/context.py), the current epoch
#: included (10 epochs = 5 min; 5 and 10 measured alike, docs/training.md). SE_CONTEXT_EPOCHS.
CONTEXT_EPOCHS: int = 10

# --- signal-quality gate (docs/signal-quality.md) ----------------------------------------------
#: Verdict per epoch, computed on the device and by the host reference (host_tools.data.quality)
#: in integer arithmetic on the raw int16 transport samples. Index = code on the wire.
QUALITY_VERDICTS: tuple[str, ...] = ("ok", "flat", "clipped", "amplitude", "mains")
#: Flat: standard deviation below this. The lowest real 10th percentile of any stage is 6.28 uV
#: (Fpz-Cz, N1; Sleep-EDF SC, raw signal): 1 uV is six times below it.
QUALITY_FLAT_STD_UV: float = 1.0
#: Implausible amplitude: standard deviation above this. The highest real 90th percentile of
#: any stage is 40.7 uV (Fpz-Cz, W): 250 uV is six times above it.
QUALITY_MAX_STD_UV: float = 250.0
#: Clipped: at least this many samples (2 % of an epoch) on the int16 rails, or equal to the
#: epoch's own minimum or maximum (an amplifier or EDF range that saturates below the rails).
QUALITY_CLIP_MIN_SAMPLES: int = 60
#: Mains-dominated: mean squared second difference above this many times the variance. The
#: second difference has power gain 16 at 50 Hz (Nyquist at 100 Hz), 13.1 at 60 Hz (aliased to
#: 40 Hz), 6 for white noise and < 1 for sleep EEG (real Hjorth statistics, docs).
QUALITY_MAINS_RATIO: int = 9
#: The same thresholds as exact integers on the 0.25-uV transport scale (variance in LSB^2).
QUALITY_FLAT_VAR_LSB2: int = round((QUALITY_FLAT_STD_UV / SAMPLE_UV_PER_LSB) ** 2)
QUALITY_MAX_VAR_LSB2: int = round((QUALITY_MAX_STD_UV / SAMPLE_UV_PER_LSB) ** 2)

# --- causal running input normalization (docs/training.md "Running normalization") ---------
#: Off unless the model folder's metadata says ``"input_norm": {...}`` (export bakes
#: SE_MODEL_INPUT_NORM into model_data.h). Computed on the 0.25-uV transport samples in integers
#: (host_tools.data.normalize and firmware/core/se_norm.c agree bit for bit).
#: Epoch amplitudes (MAD, LSB) kept in the running ring: the classified epochs of the last 30 min.
NORM_WINDOW_EPOCHS: int = 60
#: Gaussian std / MAD.
NORM_MAD_TO_STD: float = 1.4826
#: The running scale is brought to the MAD of a 15-uV std (~ the median real Fpz-Cz N2 epoch).
NORM_TARGET_STD_UV: float = 15.0
#: The same target in MAD LSB (float32 in C): 4 * 15 / 1.4826 = 40.469...
NORM_TARGET_MAD_LSB: float = NORM_TARGET_STD_UV / SAMPLE_UV_PER_LSB / NORM_MAD_TO_STD
#: Lower bound of the running scale in MAD LSB (~1.1 uV std, the flat-epoch gate's level), so
#: a nearly flat start of a recording is not blown up.
NORM_FLOOR_LSB: int = 3

# --- serial protocol (docs/protocol.md) ----------------------------------------------------
PROTOCOL_VERSION: int = 2
FIRMWARE_VERSION: str = "0.1.0"
#: Frame types. Device -> host are < 0x10, host -> device are >= 0x10.
FRAME_TYPES: dict[str, int] = {
    "HELLO": 0x01,
    "RESULT": 0x02,
    "ESCALATE": 0x03,
    "FINAL": 0x04,
    "STATUS": 0x05,
    "ERROR": 0x06,
    "PONG": 0x07,
    "NACK": 0x08,
    "SAMPLES": 0x10,
    "CLOUD_LABEL": 0x11,
    "CONFIG": 0x12,
    "PING": 0x13,
    "SAMPLES_ARQ": 0x14,
}
#: Where an epoch's final label came from (FINAL frame, results CSV).
FINAL_SOURCES: tuple[str, ...] = ("edge", "cloud", "timeout", "incomplete", "artefact")
#: Largest frame payload: ESCALATE carries a whole epoch of int16 samples plus its header.
MAX_PAYLOAD_BYTES: int = 8 + 2 * EPOCH_SAMPLES

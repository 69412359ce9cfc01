"""Python mirror of the device serial protocol (docs/protocol.md, firmware/core/se_protocol.c).

Frame on the wire: ``COBS(body) 0x00`` with
``body = type u8 | seq u8 | len u16 | payload | crc16 u16`` (little-endian) and the CRC being
CRC-16/CCITT-FALSE over ``type..payload``.

* :func:`encode_frame` / :class:`FrameDecoder` handle framing (streaming, resynchronising).
* One dataclass per message; ``msg.payload()`` encodes it, :func:`decode_message` decodes a
  :class:`Frame` into the right dataclass, :func:`encode_message` builds the whole frame.
* Builders for the host->device payloads: :func:`samples_payload`, :func:`cloud_label_payload`,
  :func:`config_payload`, :func:`ping_payload`.

Only numpy is imported (lazily, for sample arrays), so the CLI stays fast.
"""

from __future__ import annotations

import math
import struct
import threading
from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING, ClassVar, Union

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

if TYPE_CHECKING:  # numpy is imported lazily at run time
    import numpy as np

T = C.FRAME_TYPES
HEADER_BYTES = 4
CRC_BYTES = 2
OVERHEAD_BYTES = HEADER_BYTES + CRC_BYTES
MAX_PAYLOAD = C.MAX_PAYLOAD_BYTES
#: Largest host->device payload (a SAMPLES block); the device's receive buffer is sized for it.
DEVICE_RX_MAX_PAYLOAD = 6 + 2 * C.SAMPLES_PER_BLOCK

# ERROR codes (mirrors SE_ERR_* in firmware/core/se_protocol.h; a test compares them).
ERR_UNKNOWN_TYPE = 1  #: detail = frame type
ERR_BAD_LENGTH = 2  #: detail = type << 16 | payload length
ERR_UNKNOWN_EPOCH = 3  #: detail = epoch of a CLOUD_LABEL that is not pending
ERR_BAD_VALUE = 4  #: detail = frame type
ERR_MODEL = 5  #: detail = model return code (as u32)
ERROR_NAMES: dict[int, str] = {
    ERR_UNKNOWN_TYPE: "unknown frame type",
    ERR_BAD_LENGTH: "bad payload length",
    ERR_UNKNOWN_EPOCH: "cloud label for an epoch that is not pending",
    ERR_BAD_VALUE: "value out of range",
    ERR_MODEL: "model failure",
}

FLAG_INCOMPLETE = 0x01  #: RESULT flags bit 0: samples were missing, no inference
FLAG_MODEL_ERROR = 0x02  #: RESULT flags bit 1: the model failed, no label
#: RESULT flags bits 2-4: the epoch's signal-quality verdict (index into QUALITY_VERDICTS);
#: non-zero = artefact: no inference, stage 255, FINAL source "artefact".
QUALITY_SHIFT = 2
QUALITY_MASK = 0x1C


class ProtocolError(SleepEdgeError):
    """A frame or payload that does not follow docs/protocol.md."""


# --- CRC and COBS --------------------------------------------------------------------------

def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out)."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (no delimiter). A full 254-byte run carries no implied zero."""
    out = bytearray()
    block = bytearray()
    after_full = False
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
            after_full = False
        else:
            block.append(b)
            after_full = False
            if len(block) == 254:
                out.append(0xFF)
                out += block
                block.clear()
                after_full = True
    if not after_full or block:
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`; raises :class:`ProtocolError` on malformed input."""
    out = bytearray()
    i, n = 0, len(data)
    if n == 0:
        raise ProtocolError("empty COBS block")
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError(f"COBS: zero byte at offset {i}")
        end = i + code
        if end > n:
            raise ProtocolError(f"COBS: code {code} at offset {i} runs past the end ({n} bytes)")
        chunk = data[i + 1:end]
        if 0 in chunk:
            raise ProtocolError("COBS: zero byte inside a block")
        out += chunk
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def max_encoded_len(payload_len: int) -> int:
    """Worst-case encoded frame length (without delimiter) for a payload of this size."""
    n = payload_len + OVERHEAD_BYTES
    return n + (n + 253) // 254


# --- frames --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    ftype: int
    seq: int
    payload: bytes


def encode_frame(ftype: int, seq: int, payload: bytes) -> bytes:
    """Build a wire frame: COBS(type|seq|len|payload|crc) followed by 0x00."""
    if not 0 <= ftype <= 0xFF or not 0 <= seq <= 0xFF:
        raise ProtocolError(f"frame type {ftype} / seq {seq} must fit in a byte")
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    body = struct.pack("<BBH", ftype, seq, len(payload)) + payload
    body += struct.pack("<H", crc16(body))
    return cobs_encode(body) + b"\x00"


def decode_body(body: bytes) -> Frame:
    """Check a COBS-decoded body (length field, CRC) and return the frame."""
    if len(body) < OVERHEAD_BYTES:
        raise ProtocolError(f"frame body of {len(body)} bytes is shorter than {OVERHEAD_BYTES}")
    ftype, seq, length = struct.unpack_from("<BBH", body)
    if length != len(body) - OVERHEAD_BYTES:
        raise ProtocolError(f"length field {length} does not match the {len(body) - OVERHEAD_BYTES}-byte payload")
    (crc,) = struct.unpack_from("<H", body, len(body) - CRC_BYTES)
    if crc != crc16(body[:-CRC_BYTES]):
        raise ProtocolError("CRC mismatch")
    return Frame(ftype, seq, bytes(body[HEADER_BYTES:-CRC_BYTES]))


class FrameDecoder:
    """Streaming frame parser: feed any chunks of bytes, get complete valid frames.

    Same rules and counters as the C parser: bytes accumulate until 0x00; candidates longer
    than the largest possible frame are dropped (``oversize``), candidates that are not frames
    count their bytes in ``garbage_bytes``, frames with a wrong CRC count in ``bad_crc``; empty
    candidates (repeated 0x00) are ignored. ``frames`` counts valid frames.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_encoded = max_encoded_len(max_payload)
        self._buf = bytearray()
        self._discarding = False
        self.frames = 0
        self.bad_crc = 0
        self.garbage_bytes = 0
        self.oversize = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data`` (any split of the stream) and return the frames it completed.

        Parameters
        ----------
        data : bytes
            Received bytes.

        Returns
        -------
        list of Frame
            Valid frames completed by these bytes, in order.
        """
        out: list[Frame] = []
        start = 0
        while start < len(data):
            end = data.find(b"\x00", start)
            chunk = data[start:] if end < 0 else data[start:end]
            if not self._discarding:
                self._buf += chunk
                if len(self._buf) > self.max_encoded:
                    self.oversize += 1
                    self._buf.clear()
                    self._discarding = True
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
            elif self._buf:
                frame = self._finish(bytes(self._buf))
                self._buf.clear()
                if frame is not None:
                    out.append(frame)
            start = end + 1
        return out

    def _finish(self, encoded: bytes) -> Frame | None:
        try:
            body = cobs_decode(encoded)
        except ProtocolError:
            self.garbage_bytes += len(encoded)
            return None
        if len(body) < OVERHEAD_BYTES or struct.unpack_from("<H", body, 2)[0] != len(body) - OVERHEAD_BYTES:
            self.garbage_bytes += len(encoded)
            return None
        try:
            frame = decode_body(body)
        except ProtocolError:
            self.bad_crc += 1
            return None
        self.frames += 1
        return frame


# --- messages ------------------------------------------------------------------------------

def _need(frame: Frame, n: int, name: str) -> None:
    if len(frame.payload) != n:
        raise ProtocolError(f"{name} payload must be {n} bytes, got {len(frame.payload)}")


@dataclass(frozen=True)
class Hello:
    """Device -> host at boot and as the acknowledgement of CONFIG."""

    FTYPE: ClassVar[int] = T["HELLO"]
    FMT: ClassVar[str] = "<B8sIHHfI"
    protocol: int
    fw_version: str
    model_hash: int
    fs_hz: int
    epoch_samples: int
    threshold: float
    timeout_ms: int

    def payload(self) -> bytes:
        ver = self.fw_version.encode("ascii")
        if len(ver) > 8:
            raise ProtocolError(f"firmware version {self.fw_version!r} is longer than 8 bytes")
        return struct.pack(self.FMT, self.protocol, ver, self.model_hash, self.fs_hz,
                           self.epoch_samples, self.threshold, self.timeout_ms)

    @classmethod
    def decode(cls, frame: Frame) -> Hello:
        _need(frame, struct.calcsize(cls.FMT), "HELLO")
        p, ver, h, fs, es, th, to = struct.unpack(cls.FMT, frame.payload)
        return cls(p, ver.rstrip(b"\x00").decode("ascii", "replace"), h, fs, es, th, to)


@dataclass(frozen=True)
class Result:
    """Device -> host: the edge classification of one epoch."""

    FTYPE: ClassVar[int] = T["RESULT"]
    FMT: ClassVar[str] = "<IBBB5bf"
    epoch: int
    stage: int
    escalated: bool
    flags: int
    probs: tuple[int, ...]  # raw int8 model output
    confidence: float

    @property
    def incomplete(self) -> bool:
        return bool(self.flags & FLAG_INCOMPLETE)

    @property
    def quality(self) -> str:
        """The signal-quality verdict (``"ok"``, ``"flat"``, ``"clipped"``, ...)."""
        code = (self.flags & QUALITY_MASK) >> QUALITY_SHIFT
        return C.QUALITY_VERDICTS[code] if code < len(C.QUALITY_VERDICTS) else f"?{code}"

    @property
    def artefact(self) -> bool:
        """True when the device judged the signal unusable (no stage given)."""
        return bool(self.flags & QUALITY_MASK)

    def payload(self) -> bytes:
        if len(self.probs) != C.N_CLASSES:
            raise ProtocolError(f"RESULT needs {C.N_CLASSES} probs, got {len(self.probs)}")
        return struct.pack(self.FMT, self.epoch, self.stage, int(self.escalated), self.flags,
                           *self.probs, self.confidence)

    @classmethod
    def decode(cls, frame: Frame) -> Result:
        _need(frame, struct.calcsize(cls.FMT), "RESULT")
        v = struct.unpack(cls.FMT, frame.payload)
        return cls(v[0], v[1], bool(v[2]), v[3], tuple(v[4:9]), v[9])


@dataclass(frozen=True)
class Escalate:
    """Device -> host: the filtered epoch (int16 at 0.25 uV) of an uncertain epoch."""

    FTYPE: ClassVar[int] = T["ESCALATE"]
    epoch: int
    samples: np.ndarray  # int16 (n,)

    def payload(self) -> bytes:
        import numpy as np

        s = np.asarray(self.samples)
        if s.ndim != 1 or s.size > C.EPOCH_SAMPLES:
            raise ProtocolError(f"ESCALATE takes at most {C.EPOCH_SAMPLES} samples, got shape {s.shape}")
        return struct.pack("<IH", self.epoch, s.size) + s.astype("<i2").tobytes()

    @classmethod
    def decode(cls, frame: Frame) -> Escalate:
        import numpy as np

        if len(frame.payload) < 6:
            raise ProtocolError(f"ESCALATE payload of {len(frame.payload)} bytes is too short")
        epoch, n = struct.unpack_from("<IH", frame.payload)
        _need(frame, 6 + 2 * n, "ESCALATE")
        return cls(epoch, np.frombuffer(frame.payload, dtype="<i2", offset=6).astype(np.int16))

    def __eq__(self, other: object) -> bool:
        import numpy as np

        return (isinstance(other, Escalate) and self.epoch == other.epoch
                and np.array_equal(np.asarray(self.samples), np.asarray(other.samples)))


@dataclass(frozen=True)
class Final:
    """Device -> host: the final label of an epoch and where it came from."""

    FTYPE: ClassVar[int] = T["FINAL"]
    FMT: ClassVar[str] = "<IBB"
    epoch: int
    stage: int
    source: int  # index into constants.FINAL_SOURCES

    @property
    def source_name(self) -> str:
        return C.FINAL_SOURCES[self.source] if self.source < len(C.FINAL_SOURCES) else f"?{self.source}"

    def payload(self) -> bytes:
        return struct.pack(self.FMT, self.epoch, self.stage, self.source)

    @classmethod
    def decode(cls, frame: Frame) -> Final:
        _need(frame, struct.calcsize(cls.FMT), "FINAL")
        return cls(*struct.unpack(cls.FMT, frame.payload))


@dataclass(frozen=True)
class Status:
    """Device -> host: counters (after PING and every 10 epochs)."""

    FTYPE: ClassVar[int] = T["STATUS"]
    FMT: ClassVar[str] = "<14I"
    uptime_ms: int
    epochs: int
    escalations: int
    cloud_answers: int
    timeouts: int
    rx_bytes: int
    rx_frames: int
    bad_crc: int
    garbage_bytes: int
    stale_blocks: int
    missing_blocks: int
    filter_cycles_last_epoch: int
    infer_cycles_last_epoch: int
    rx_overflows: int

    def payload(self) -> bytes:
        return struct.pack(self.FMT, *astuple(self))

    @classmethod
    def decode(cls, frame: Frame) -> Status:
        _need(frame, struct.calcsize(cls.FMT), "STATUS")
        return cls(*struct.unpack(cls.FMT, frame.payload))


@dataclass(frozen=True)
class Error:
    """Device -> host: a frame the device rejected (see ERR_*)."""

    FTYPE: ClassVar[int] = T["ERROR"]
    FMT: ClassVar[str] = "<BI"
    code: int
    detail: int

    def describe(self) -> str:
        return f"{ERROR_NAMES.get(self.code, f'error {self.code}')} (detail {self.detail:#x})"

    def payload(self) -> bytes:
        return struct.pack(self.FMT, self.code, self.detail)

    @classmethod
    def decode(cls, frame: Frame) -> Error:
        _need(frame, struct.calcsize(cls.FMT), "ERROR")
        return cls(*struct.unpack(cls.FMT, frame.payload))


@dataclass(frozen=True)
class Pong:
    """Device -> host: answer to PING (a STATUS follows)."""

    FTYPE: ClassVar[int] = T["PONG"]
    FMT: ClassVar[str] = "<I"
    token: int

    def payload(self) -> bytes:
        return struct.pack(self.FMT, self.token)

    @classmethod
    def decode(cls, frame: Frame) -> Pong:
        _need(frame, 4, "PONG")
        return cls(*struct.unpack(cls.FMT, frame.payload))


@dataclass(frozen=True)
class Samples:
    """Host -> device: one block of raw int16 samples (0.25 uV)."""

    FTYPE: ClassVar[int] = T["SAMPLES"]
    block_index: int
    samples: np.ndarray  # int16 (n,)

    def payload(self) -> bytes:
        return samples_payload(self.block_index, self.samples)

    @classmethod
    def decode(cls, frame: Frame) -> Samples:
        import numpy as np

        if len(frame.payload) < 6:
            raise ProtocolError(f"SAMPLES payload of {len(frame.payload)} bytes is too short")
        block, n = struct.unpack_from("<IH", frame.payload)
        _need(frame, 6 + 2 * n, "SAMPLES")
        return cls(block, np.frombuffer(frame.payload, dtype="<i2", offset=6).astype(np.int16))

    def __eq__(self, other: object) -> bool:
        import numpy as np

        return (type(other) is type(self) and self.block_index == other.block_index
                and np.array_equal(np.asarray(self.samples), np.asarray(other.samples)))


@dataclass(frozen=True, eq=False)
class SamplesArq(Samples):
    """Host -> device: a SAMPLES block from a host that resends what the device NACKs."""

    FTYPE: ClassVar[int] = T["SAMPLES_ARQ"]


@dataclass(frozen=True)
class Nack:
    """Device -> host: blocks ``[first_block, first_block + count)`` never arrived intact; the
    device drops later SAMPLES_ARQ blocks until ``first_block`` comes again."""

    FTYPE: ClassVar[int] = T["NACK"]
    FMT: ClassVar[str] = "<IH"
    first_block: int
    count: int

    def payload(self) -> bytes:
        return struct.pack(self.FMT, self.first_block, self.count)

    @classmethod
    def decode(cls, frame: Frame) -> Nack:
        _need(frame, 6, "NACK")
        return cls(*struct.unpack(cls.FMT, frame.payload))


@dataclass(frozen=True)
class CloudLabel:
    """Host -> device: the cloud's stage for an escalated epoch."""

    FTYPE: ClassVar[int] = T["CLOUD_LABEL"]
    FMT: ClassVar[str] = "<IB"
    epoch: int
    stage: int

    def payload(self) -> bytes:
        return cloud_label_payload(self.epoch, self.stage)

    @classmethod
    def decode(cls, frame: Frame) -> CloudLabel:
        _need(frame, 5, "CLOUD_LABEL")
        return cls(*struct.unpack(cls.FMT, frame.payload))


@dataclass(frozen=True)
class Config:
    """Host -> device: escalation threshold and timeout (answered with HELLO)."""

    FTYPE: ClassVar[int] = T["CONFIG"]
    FMT: ClassVar[str] = "<fI"
    threshold: float
    timeout_ms: int

    def payload(self) -> bytes:
        return config_payload(self.threshold, self.timeout_ms)

    @classmethod
    def decode(cls, frame: Frame) -> Config:
        _need(frame, 8, "CONFIG")
        return cls(*struct.unpack(cls.FMT, frame.payload))


@dataclass(frozen=True)
class Ping:
    """Host -> device: liveness check (answered with PONG then STATUS)."""

    FTYPE: ClassVar[int] = T["PING"]
    FMT: ClassVar[str] = "<I"
    token: int

    def payload(self) -> bytes:
        return ping_payload(self.token)

    @classmethod
    def decode(cls, frame: Frame) -> Ping:
        _need(frame, 4, "PING")
        return cls(*struct.unpack(cls.FMT, frame.payload))


Message = Union[Hello, Result, Escalate, Final, Status, Error, Pong, Nack, Samples, SamplesArq, CloudLabel,
                Config, Ping]
MESSAGE_TYPES: dict[int, type] = {
    cls.FTYPE: cls
    for cls in (Hello, Result, Escalate, Final, Status, Error, Pong, Nack, Samples, SamplesArq, CloudLabel,
                Config, Ping)
}
STATUS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Status))


def decode_message(frame: Frame) -> Message:
    """Decode a frame's payload into its message dataclass (ProtocolError if malformed)."""
    cls = MESSAGE_TYPES.get(frame.ftype)
    if cls is None:
        raise ProtocolError(f"unknown frame type {frame.ftype:#04x}")
    return cls.decode(frame)


def encode_message(msg: Message, seq: int) -> bytes:
    """Whole wire frame for a message."""
    return encode_frame(msg.FTYPE, seq, msg.payload())


class Rewinder:
    """Host side of SAMPLES_ARQ recovery (go-back-N): the reader thread reports NACKs, the
    sending loop asks which block to send next.

    A NACK moves the send position back to the first missing block; everything from there is
    sent again (the device dropped it while waiting). Repeated NACKs for one gap only rewind to
    the earliest block asked for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: int | None = None
        self.nacks = 0  #: NACK frames received
        self.resent_blocks = 0  #: blocks sent again because of them

    def on_nack(self, msg: Nack) -> None:
        """Reader thread: the device asked for ``msg.first_block`` again."""
        with self._lock:
            self.nacks += 1
            self._first = msg.first_block if self._first is None else min(self._first, msg.first_block)

    @property
    def pending(self) -> bool:
        """A NACK is waiting for :meth:`next_block`."""
        with self._lock:
            return self._first is not None

    def clear(self) -> None:
        """Forget a pending NACK (the device rebooted: its requests are void)."""
        with self._lock:
            self._first = None

    def next_block(self, block: int) -> int:
        """The block to send next: ``block``, or an earlier one the device asked for again."""
        with self._lock:
            first, self._first = self._first, None
        if first is not None and first < block:
            self.resent_blocks += block - first
            return first
        return block


# --- host -> device payload builders -------------------------------------------------------

def samples_payload(block_index: int, samples_int16: np.ndarray) -> bytes:
    """SAMPLES: block_index u32, n u16, int16[n] (the device requires n = SAMPLES_PER_BLOCK)."""
    import numpy as np

    s = np.asarray(samples_int16)
    if s.ndim != 1:
        raise ProtocolError(f"SAMPLES takes a 1-D block, got shape {s.shape}")
    if s.dtype != np.int16:
        if s.size and (s.min() < -32768 or s.max() > 32767 or not np.all(np.equal(np.mod(s, 1), 0))):
            raise ProtocolError("SAMPLES values must be integers in the int16 range")
        s = s.astype(np.int16)
    if not 0 <= block_index <= 0xFFFFFFFF:
        raise ProtocolError(f"block index {block_index} does not fit in u32")
    if 6 + 2 * s.size > MAX_PAYLOAD:
        raise ProtocolError(f"SAMPLES block of {s.size} samples is too long")
    return struct.pack("<IH", block_index, s.size) + s.astype("<i2").tobytes()


def cloud_label_payload(epoch: int, stage: int) -> bytes:
    """CLOUD_LABEL: epoch u32, stage u8 (class index into STAGES)."""
    if not 0 <= stage < C.N_CLASSES:
        raise ProtocolError(f"stage {stage} is not a class index 0..{C.N_CLASSES - 1}")
    if not 0 <= epoch <= 0xFFFFFFFF:
        raise ProtocolError(f"epoch {epoch} does not fit in u32")
    return struct.pack("<IB", epoch, stage)


def config_payload(threshold: float, timeout_ms: int) -> bytes:
    """CONFIG: threshold f32 in [0, 1], timeout_ms u32 in [1, 3600000] (the device's limits)."""
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ProtocolError(f"threshold {threshold} must be within [0, 1]")
    if not 1 <= timeout_ms <= 3_600_000:
        raise ProtocolError(f"timeout {timeout_ms} ms must be within [1, 3600000]")
    return struct.pack("<fI", threshold, timeout_ms)


def ping_payload(token: int) -> bytes:
    """PING: token u32, echoed in PONG."""
    if not 0 <= token <= 0xFFFFFFFF:
        raise ProtocolError(f"ping token {token} does not fit in u32")
    return struct.pack("<I", token)


# --- device -> host payload builders (tests and the fake device use them) -----------------

def hello_payload(model_hash: int, threshold: float = C.DEFAULT_CONFIDENCE_THRESHOLD,
                  timeout_ms: int = C.DEFAULT_ESCALATION_TIMEOUT_MS) -> bytes:
    """HELLO with this project's protocol, firmware version, fs and epoch length."""
    return Hello(C.PROTOCOL_VERSION, C.FIRMWARE_VERSION, model_hash, C.FS_HZ, C.EPOCH_SAMPLES,
                 threshold, timeout_ms).payload()


def result_payload(epoch: int, stage: int, escalated: bool, flags: int, probs: tuple[int, ...],
                   confidence: float) -> bytes:
    """RESULT payload (``probs`` are the raw int8 model outputs)."""
    return Result(epoch, stage, escalated, flags, tuple(int(p) for p in probs), confidence).payload()


def escalate_payload(epoch: int, samples_int16: np.ndarray) -> bytes:
    """ESCALATE payload: the filtered epoch as int16 at 0.25 uV."""
    return Escalate(epoch, samples_int16).payload()


def final_payload(epoch: int, stage: int, source: int) -> bytes:
    """FINAL payload; ``source`` indexes ``constants.FINAL_SOURCES``."""
    return Final(epoch, stage, source).payload()


def status_payload(**counters: int) -> bytes:
    """STATUS from keyword counters (missing ones are 0)."""
    unknown = set(counters) - set(STATUS_FIELDS)
    if unknown:
        raise ProtocolError(f"unknown STATUS fields: {sorted(unknown)}")
    return Status(**{name: int(counters.get(name, 0)) for name in STATUS_FIELDS}).payload()


def error_payload(code: int, detail: int) -> bytes:
    """ERROR payload (``code`` is one of ``ERR_*``)."""
    return Error(code, detail).payload()


def pong_payload(token: int) -> bytes:
    """PONG payload echoing a PING token."""
    return Pong(token).payload()


__all__ = [
    "Frame", "FrameDecoder", "ProtocolError", "encode_frame", "decode_body", "decode_message",
    "encode_message", "crc16", "cobs_encode", "cobs_decode", "Hello", "Result", "Escalate",
    "Final", "Status", "Error", "Pong", "Nack", "Samples", "SamplesArq", "CloudLabel", "Config", "Ping",
    "Rewinder",
    "samples_payload", "cloud_label_payload", "config_payload", "ping_payload", "hello_payload",
    "result_payload", "escalate_payload", "final_payload", "status_payload", "error_payload",
    "pong_payload", "STATUS_FIELDS",
]

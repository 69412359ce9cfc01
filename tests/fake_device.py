"""Test stand-ins for the escalation path: a fake device and a fake cloud model.

* :class:`FakeDevice` speaks the firmware's serial protocol over a TCP socket (pyserial URL
  ``socket://127.0.0.1:PORT``), like the emulator does, with injectable faults (reset,
  disconnect, corrupted output, slow inference). Its "edge model" is a real computation, so
  tests can predict its labels independently with :func:`edge_reference`.
* :class:`StandInCloudModel` is a small deterministic cloud model (a fixed random linear map
  and a softmax); uvicorn worker processes load it as ``py:tests.fake_device:make_model``.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from host_tools import constants as C
from host_tools.data import filters
from host_tools.device import protocol as P


class StandInCloudModel:
    """Linear softmax model over the epoch; counts calls and can simulate compute time.

    Parameters
    ----------
    delay_s
        Sleep this long per call (simulates a model whose cost is mostly per call, not per epoch).
    seed
        Seed of the weight matrix.
    sharpness
        Multiplies the logits: higher values give more confident predictions.
    """

    def __init__(self, delay_s: float = 0.0, seed: int = 0, sharpness: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.standard_normal((C.EPOCH_SAMPLES, C.N_CLASSES)).astype(np.float32)
        self.delay_s = delay_s
        self.sharpness = np.float32(sharpness)
        self.name = f"standin-linear-{seed}"
        self.sha256 = "0" * 64
        self.calls = 0
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def predict_proba(self, x_uv: np.ndarray) -> np.ndarray:
        x = np.asarray(x_uv, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != C.EPOCH_SAMPLES:
            raise ValueError(f"expected (N, {C.EPOCH_SAMPLES}), got {x.shape}")
        with self._lock:
            self.calls += 1
            self.batch_sizes.append(len(x))
        if self.delay_s:
            time.sleep(self.delay_s)
        # Row-wise normalisation keeps logits O(1) whatever the amplitude.
        logits = self.sharpness * (x @ self.weights) / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-3)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def stage_of(self, samples_int16: np.ndarray) -> int:
        """The class index this model gives one epoch of int16 transport samples."""
        x = np.asarray(samples_int16, dtype=np.int16).astype(np.float32) * np.float32(C.SAMPLE_UV_PER_LSB)
        return int(np.argmax(self.predict_proba(x[None, :])[0]))


def make_model() -> StandInCloudModel:
    """Factory for ``sleepedge cloud serve --model py:tests.fake_device:make_model``."""
    return StandInCloudModel()


# --- a Python stand-in for the firmware ------------------------------------------------------

#: The fake edge model's int8 output quantisation (like a TFLite softmax: scale 1/256, zp -128).
OUT_SCALE = 1.0 / 256.0
OUT_ZP = -128


def edge_probs_int8(filtered_uv: np.ndarray, model: StandInCloudModel) -> np.ndarray:
    """The fake device's "int8 model": the stand-in linear softmax, quantised like TFLite."""
    p = model.predict_proba(np.asarray(filtered_uv, np.float32)[None])[0]
    return np.clip(np.floor(p / OUT_SCALE + 0.5) + OUT_ZP, -128, 127).astype(np.int8)


def edge_reference(signal_int16: np.ndarray, first_epoch: int, n_epochs: int,
                   model: StandInCloudModel | None = None, threshold: float = C.DEFAULT_CONFIDENCE_THRESHOLD
                   ) -> list[tuple[int, int, float, bool, np.ndarray]]:
    """What the fake device should output when the stream starts at ``first_epoch``:
    ``(epoch, stage, confidence, escalated, filtered int16 epoch)`` per epoch, computed in one
    piece on the host (the device computes it block by block)."""
    model = model or StandInCloudModel(seed=1, sharpness=4.0)
    seg = np.asarray(signal_int16[first_epoch * C.EPOCH_SAMPLES:(first_epoch + n_epochs) * C.EPOCH_SAMPLES])
    y, _ = filters.filter_causal(filters.from_device_samples(seg))
    out = []
    for k in range(n_epochs):
        ep = y[k * C.EPOCH_SAMPLES:(k + 1) * C.EPOCH_SAMPLES]
        q = edge_probs_int8(ep, model)
        conf = float(np.float32((int(q.max()) - OUT_ZP) * OUT_SCALE))
        filt = np.clip(np.floor(ep * np.float32(4.0) + np.float32(0.5)), -32768, 32767).astype(np.int16)
        out.append((first_epoch + k, int(np.argmax(q)), conf, conf < threshold, filt))
    return out


@dataclass
class FakeDeviceFaults:
    """Faults to inject. Block counts are SAMPLES frames received since power-on."""

    reset_after_blocks: int | None = None  #: reboot (HELLO again) after this many blocks
    drop_connection_on_reset: bool = False  #: the reboot also closes the socket (emulator restart)
    corrupt_tx_every: int = 0  #: flip one byte in every Nth frame the device sends
    infer_delay_s: float = 0.0  #: pretend inference takes this long


@dataclass
class _Pending:
    epoch: int
    edge_stage: int
    deadline: float


class FakeDevice:
    """The firmware's protocol behaviour in Python, serving one TCP client at a time.

    It numbers epochs by block index, filters causally from the first block after (re)boot,
    escalates below ``threshold``, waits ``timeout_ms`` for a CLOUD_LABEL and otherwise keeps
    its own label, answers CONFIG with HELLO and PING with PONG + STATUS, marks skipped epochs
    incomplete and drops stale blocks — as docs/protocol.md specifies for the real device.
    Use as a context manager; ``url`` is the ``socket://`` address for pyserial.
    """

    def __init__(self, threshold: float = C.DEFAULT_CONFIDENCE_THRESHOLD,
                 timeout_ms: int = C.DEFAULT_ESCALATION_TIMEOUT_MS, faults: FakeDeviceFaults | None = None,
                 model: StandInCloudModel | None = None, local_signal: np.ndarray | None = None) -> None:
        self.local_signal = local_signal  # blocks the device "samples itself" (no host streaming)
        self.default_threshold = threshold
        self.default_timeout_ms = timeout_ms
        self.faults = faults or FakeDeviceFaults()
        self.model = model or StandInCloudModel(seed=1, sharpness=4.0)
        self.model_hash = 0x5EED0001
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.port = self._server.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-device", daemon=True)
        self.boots = 0
        self.blocks_total = 0
        self.sent_frames: list[P.Message] = []  # everything sent, for assertions
        self._boot()

    # -- state
    def _boot(self) -> None:
        self.boots += 1
        self.threshold = self.default_threshold
        self.timeout_ms = self.default_timeout_ms
        self.synced = False
        self.next_block = 0
        self.zi: np.ndarray | None = None
        self.buf: list[np.ndarray] = []
        self.cur_epoch = 0
        self.cur_incomplete = False
        self.pending: list[_Pending] = []
        self.status = {name: 0 for name in P.STATUS_FIELDS}
        self.decoder = P.FrameDecoder(max_payload=P.DEVICE_RX_MAX_PAYLOAD)
        self.boot_time = time.monotonic()
        self.seq = 0
        self.tx_frames = 0

    def __enter__(self) -> "FakeDevice":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    # -- output
    def _send(self, conn: socket.socket, msg: P.Message) -> None:
        frame = bytearray(P.encode_message(msg, self.seq & 0xFF))
        self.seq += 1
        self.tx_frames += 1
        self.sent_frames.append(msg)
        n = self.faults.corrupt_tx_every
        if n and self.tx_frames % n == 0 and len(frame) > 4:
            i = len(frame) // 2
            # Corrupt a byte but never into 0x00, which would also split the frame in two.
            frame[i] = (frame[i] ^ 0x5A) or 0x01
        conn.sendall(bytes(frame))

    def _hello(self, conn: socket.socket) -> None:
        conn.sendall(b"\x00")
        self._send(conn, P.Hello(C.PROTOCOL_VERSION, C.FIRMWARE_VERSION, self.model_hash, C.FS_HZ,
                                 C.EPOCH_SAMPLES, self.threshold, self.timeout_ms))

    # -- the loop
    def _serve(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(0.01)
                try:
                    self._hello(conn)
                except OSError:  # the client went away at once (a port probe, a failed open)
                    continue
                if not self._session(conn):
                    continue

    def _session(self, conn: socket.socket) -> bool:
        """Serve one connection; returns when it closes (True) or the device 'restarts'."""
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
                if not data:
                    return True
            except socket.timeout:
                data = b""
            except OSError:
                return True
            if data:
                self.status["rx_bytes"] += len(data)
                for frame in self.decoder.feed(data):
                    self.status["rx_frames"] += 1
                    if self._handle(conn, frame) == "reset":
                        self._boot()
                        if self.faults.drop_connection_on_reset:
                            return False
                        self._hello(conn)
                self.status["bad_crc"] = self.decoder.bad_crc
                self.status["garbage_bytes"] = self.decoder.garbage_bytes
            self._local_block(conn)
            self._expire(conn)
        return True

    def _local_block(self, conn: socket.socket) -> None:
        """With ``local_signal``: ingest one block per loop, as if from an on-board ADC."""
        sig = self.local_signal
        if sig is None or self.next_block * C.SAMPLES_PER_BLOCK >= len(sig) - C.SAMPLES_PER_BLOCK + 1:
            return
        b = self.next_block
        self._samples(conn, P.Samples(b, sig[b * C.SAMPLES_PER_BLOCK:(b + 1) * C.SAMPLES_PER_BLOCK]))

    def _handle(self, conn: socket.socket, frame: P.Frame) -> str | None:
        try:
            msg = P.decode_message(frame)
        except P.ProtocolError:
            self._send(conn, P.Error(P.ERR_BAD_LENGTH, frame.ftype << 16 | len(frame.payload)))
            return None
        if isinstance(msg, P.Samples):
            self.blocks_total += 1
            self._samples(conn, msg)
            if self.faults.reset_after_blocks is not None and self.blocks_total == self.faults.reset_after_blocks:
                return "reset"
        elif isinstance(msg, P.CloudLabel):
            for p in self.pending:
                if p.epoch == msg.epoch:
                    self.pending.remove(p)
                    self.status["cloud_answers"] += 1
                    self._send(conn, P.Final(p.epoch, msg.stage, 1))
                    break
            else:
                self._send(conn, P.Error(P.ERR_UNKNOWN_EPOCH, msg.epoch))
        elif isinstance(msg, P.Config):
            self.threshold, self.timeout_ms = msg.threshold, msg.timeout_ms
            self._send(conn, P.Hello(C.PROTOCOL_VERSION, C.FIRMWARE_VERSION, self.model_hash, C.FS_HZ,
                                     C.EPOCH_SAMPLES, self.threshold, self.timeout_ms))
        elif isinstance(msg, P.Ping):
            self._send(conn, P.Pong(msg.token))
            self._send(conn, self._status())
        else:
            self._send(conn, P.Error(P.ERR_UNKNOWN_TYPE, frame.ftype))
        return None

    def _status(self) -> P.Status:
        self.status["uptime_ms"] = int((time.monotonic() - self.boot_time) * 1000)
        return P.Status(**self.status)

    def _samples(self, conn: socket.socket, msg: P.Samples) -> None:
        b = msg.block_index
        if not self.synced:
            if b % C.BLOCKS_PER_EPOCH:
                return  # waiting for an epoch boundary
            self.synced, self.next_block, self.cur_epoch = True, b, b // C.BLOCKS_PER_EPOCH
        if b < self.next_block:
            self.status["stale_blocks"] += 1
            return
        while b > self.next_block:  # a jump: zero-fill, mark incomplete
            self.status["missing_blocks"] += 1
            self.cur_incomplete = True
            self._block(conn, np.zeros(C.SAMPLES_PER_BLOCK, np.int16))
        self._block(conn, np.asarray(msg.samples, np.int16))

    def _block(self, conn: socket.socket, samples: np.ndarray) -> None:
        y, self.zi = filters.filter_causal(filters.from_device_samples(samples), zi=self.zi)
        self.buf.append(y)
        self.next_block += 1
        if len(self.buf) == C.BLOCKS_PER_EPOCH:
            self._epoch(conn, np.concatenate(self.buf))
            self.buf = []
            self.cur_epoch += 1
            self.cur_incomplete = False

    def _epoch(self, conn: socket.socket, y: np.ndarray) -> None:
        k = self.cur_epoch
        self.status["epochs"] += 1
        if self.cur_incomplete:
            self._send(conn, P.Result(k, C.STAGE_UNKNOWN, False, P.FLAG_INCOMPLETE, (0,) * 5, 0.0))
            self._send(conn, P.Final(k, C.STAGE_UNKNOWN, 3))
        else:
            if self.faults.infer_delay_s:
                time.sleep(self.faults.infer_delay_s)
            q = edge_probs_int8(y, self.model)
            conf = float(np.float32((int(q.max()) - OUT_ZP) * OUT_SCALE))
            stage = int(np.argmax(q))
            esc = conf < self.threshold
            self._send(conn, P.Result(k, stage, esc, 0, tuple(int(v) for v in q), conf))
            if esc:
                if len(self.pending) >= C.MAX_PENDING_ESCALATIONS:  # table full: oldest times out
                    old = self.pending.pop(0)
                    self.status["timeouts"] += 1
                    self._send(conn, P.Final(old.epoch, old.edge_stage, 2))
                filt = np.clip(np.floor(y * np.float32(4.0) + np.float32(0.5)), -32768, 32767).astype(np.int16)
                self.status["escalations"] += 1
                self._send(conn, P.Escalate(k, filt))
                self.pending.append(_Pending(k, stage, time.monotonic() + self.timeout_ms / 1000.0))
            else:
                self._send(conn, P.Final(k, stage, 0))
        if self.status["epochs"] % 10 == 0:
            self._send(conn, self._status())

    def _expire(self, conn: socket.socket) -> None:
        now = time.monotonic()
        for p in [p for p in self.pending if p.deadline <= now]:
            self.pending.remove(p)
            self.status["timeouts"] += 1
            self._send(conn, P.Final(p.epoch, p.edge_stage, 2))


def stream_signal(n_epochs: int, seed: int = 0) -> np.ndarray:
    """int16 transport samples of a simple test recording: noise whose amplitude and rhythm
    change every few epochs, so epochs differ in class and confidence."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_epochs * C.EPOCH_SAMPLES) / C.FS_HZ
    amp = np.repeat(rng.uniform(10, 80, n_epochs), C.EPOCH_SAMPLES)
    freq = np.repeat(rng.uniform(1, 12, n_epochs), C.EPOCH_SAMPLES)
    x = amp * np.sin(2 * np.pi * freq * t) + rng.standard_normal(t.size) * 15
    return filters.to_device_samples(x)


class TcpRelay:
    """A TCP man-in-the-middle between the host (``url``) and a device on ``target_port``.

    It injects link faults the device itself cannot: ``corrupt_every`` flips one byte in every
    that many host->device bytes; :meth:`swap_target` connects the same host connection to a
    different device (a board reset behind a USB-serial bridge: the port stays open and a HELLO
    arrives mid-stream); :meth:`drop` closes the host connection (the port goes away).
    """

    def __init__(self, target_port: int, corrupt_every: int = 0) -> None:
        self.target_port = target_port
        self.corrupt_every = corrupt_every
        self.corrupted = 0
        self._seen = 0
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.port = self._server.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._host: socket.socket | None = None
        self._dev: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tcp-relay")

    def __enter__(self) -> "TcpRelay":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in (self._host, self._dev, self._server):
            if s is not None:
                s.close()

    def swap_target(self, port: int) -> None:
        with self._lock:
            old = self._dev
            self._dev = socket.create_connection(("127.0.0.1", port))
            self.target_port = port
        if old is not None:
            old.close()

    def drop(self) -> None:
        with self._lock:
            if self._host is not None:
                self._host.close()
                self._host = None

    def _run(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            if self._host is not None:
                time.sleep(0.05)
                continue
            try:
                host, _ = self._server.accept()
            except socket.timeout:
                continue
            with self._lock:
                self._host = host
                if self._dev is None:
                    self._dev = socket.create_connection(("127.0.0.1", self.target_port))
            # One pump per direction: QEMU's UART transmit blocks until its output is read, so
            # a single-threaded relay blocked on one direction could deadlock the other.
            for to_dev in (True, False):
                threading.Thread(target=self._pump, args=(host, to_dev), daemon=True).start()

    def _pump(self, host: socket.socket, to_dev: bool) -> None:
        import select

        while not self._stop.is_set():
            with self._lock:
                if self._host is not host:
                    return
                src, dst = (host, self._dev) if to_dev else (self._dev, host)
            if src is None or dst is None:
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready:
                    continue
                data = src.recv(65536)
            except (OSError, ValueError):
                data = b""
            if not data:
                if to_dev:  # the host went away
                    with self._lock:
                        if self._host is host:
                            self._host = None
                    return
                time.sleep(0.01)  # the old device closed after a swap; keep going
                continue
            try:
                dst.sendall(self._corrupt(data) if to_dev else data)
            except OSError:
                pass

    def _corrupt(self, data: bytes) -> bytes:
        if not self.corrupt_every:
            return data
        buf = bytearray(data)
        for i in range(len(buf)):
            self._seen += 1
            if self._seen % self.corrupt_every == 0 and buf[i] != 0:
                buf[i] = (buf[i] ^ 0x24) or 0x01
                self.corrupted += 1
        return bytes(buf)

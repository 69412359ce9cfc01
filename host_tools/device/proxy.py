"""Escalation proxy: ESCALATE frames from a device -> cloud requests -> CLOUD_LABEL frames.

Three pieces, used by ``sleepedge monitor`` in-process and by ``sleepedge proxy`` standalone:

* :class:`DeviceLink` owns a pyserial port (``/dev/ttyUSB0``, ``socket://host:port``,
  ``rfc2217://...``): a reader thread decodes frames continuously (QEMU's UART transmit is
  synchronous, so the device stalls unless the host reads while it writes), and ``send`` is
  thread-safe so the sample streamer and the proxy can share the port.
* :class:`CloudClient` posts one epoch to ``/v1/classify`` with retries and exponential backoff,
  all within a deadline.
* :class:`EscalationBridge` answers each ESCALATE from a worker thread. Its deadline is a
  fraction of the device's escalation timeout (from HELLO): a late label is useless because the
  device has already finalised the epoch with its own stage (source "timeout"). Every escalation
  ends as an :class:`EscalationRecord`, so nothing is lost silently; an answer counts as
  *answered* only when the device's FINAL frame says it used it (source "cloud"), and as *late*
  when the cloud answered but the device had finalised the epoch on its own.
"""

from __future__ import annotations

import argparse
import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from host_tools import constants as C
from host_tools.device import protocol as P
from host_tools.errors import SleepEdgeError

if TYPE_CHECKING:
    import httpx
    import serial

#: Share of the device's escalation timeout the proxy may spend; the rest covers the ESCALATE
#: frame's own transfer time (6 kB: ~0.3 s through QEMU) and the CLOUD_LABEL's way back.
DEFAULT_DEADLINE_FRACTION = 0.6


# --- the serial link -------------------------------------------------------------------------

@dataclass
class LinkCounters:
    """Host-side link statistics (the device's own are in its STATUS frames)."""

    rx_bytes: int = 0
    tx_bytes: int = 0
    frames_in: int = 0
    frames_out: int = 0
    bad_crc: int = 0
    garbage_bytes: int = 0
    oversize: int = 0
    undecodable: int = 0  #: valid frames whose payload did not parse as a message
    reconnects: int = 0


class DeviceLink:
    """A device on a pyserial URL, with a reader thread and a thread-safe writer.

    Parameters
    ----------
    url
        pyserial URL or device path.
    on_message
        Called from the reader thread with each decoded message (``host_tools.device.protocol``
        dataclasses). Keep it short; hand heavy work to other threads.
    baudrate
        For real serial ports (ignored by ``socket://``).
    on_disconnect
        Called from the reader thread when the port fails (e.g. the emulator went away).
    """

    def __init__(self, url: str, on_message: Callable[[Any], None], *, baudrate: int = 115200,
                 on_disconnect: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.baudrate = baudrate
        self.on_message = on_message
        self.on_disconnect = on_disconnect
        self.counters = LinkCounters()
        self._decoder = P.FrameDecoder()
        self._write_lock = threading.Lock()
        self._seq = itertools.count()
        self._port: serial.SerialBase | None = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self.connected = threading.Event()

    # -- lifecycle
    def open(self, timeout_s: float = 10.0) -> DeviceLink:
        """Open the port, retrying until ``timeout_s`` (an emulator may still be starting)."""
        import serial

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.05,
                                             write_timeout=30, do_not_open=True)
                # pyserial flushes the input at open(); the device's HELLO may already be
                # there (an emulator boots the moment we connect), and the decoder copes with
                # stale bytes, so keep them.
                port.reset_input_buffer = lambda: None  # type: ignore[method-assign]
                port.open()
                del port.reset_input_buffer
                break
            except (serial.SerialException, OSError, ValueError) as exc:
                if time.monotonic() >= deadline:
                    raise SleepEdgeError(f"--port {self.url}: cannot open the device: {exc}") from None
                time.sleep(0.2)
        self._port = port
        # A fresh decoder: bytes of a frame cut by the previous connection must not merge.
        self._decoder = self._new_decoder_keeping_counts()
        self._stop.clear()
        self.connected.set()
        self._reader = threading.Thread(target=self._read_loop, name="sleepedge-link-reader", daemon=True)
        self._reader.start()
        return self

    def reopen(self, timeout_s: float = 30.0) -> None:
        """Close and open again (after the device reset or the emulator restarted)."""
        self.close()
        self.counters.reconnects += 1
        self.open(timeout_s)

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(2.0)
        self._reader = None
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # closing a dead port must not mask the original problem
                pass
        self._port = None
        self.connected.clear()

    def __enter__(self) -> DeviceLink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- I/O
    def send(self, msg: Any) -> None:
        """Encode and write one message (thread-safe). Raises ``SleepEdgeError`` if the port
        is gone."""
        import serial

        with self._write_lock:
            frame = P.encode_message(msg, next(self._seq) & 0xFF)
            port = self._port
            if port is None:
                raise SleepEdgeError(f"--port {self.url}: the device link is closed")
            try:
                port.write(frame)
            except (serial.SerialException, OSError) as exc:
                self.connected.clear()
                raise SleepEdgeError(f"--port {self.url}: write failed: {exc}") from None
            self.counters.tx_bytes += len(frame)
            self.counters.frames_out += 1

    def write_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests use it to inject corruption)."""
        with self._write_lock:
            if self._port is not None:
                self._port.write(data)
                self.counters.tx_bytes += len(data)

    def _new_decoder_keeping_counts(self) -> P.FrameDecoder:
        self._sync_decoder_counts()
        self._base = (self.counters.bad_crc, self.counters.garbage_bytes, self.counters.oversize)
        return P.FrameDecoder()

    def _sync_decoder_counts(self) -> None:
        base = getattr(self, "_base", (0, 0, 0))
        d = self._decoder
        self.counters.bad_crc = base[0] + d.bad_crc
        self.counters.garbage_bytes = base[1] + d.garbage_bytes
        self.counters.oversize = base[2] + d.oversize

    def _read_loop(self) -> None:
        import serial

        port = self._port
        assert port is not None
        while not self._stop.is_set():
            try:
                # Block for one byte (up to the port timeout), then take whatever else is there.
                waiting = port.in_waiting
                data = port.read(waiting if waiting else 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if self._stop.is_set():
                    return
                self.connected.clear()
                if self.on_disconnect is not None:
                    self.on_disconnect(str(exc))
                return
            if not data:
                continue
            self.counters.rx_bytes += len(data)
            frames = self._decoder.feed(data)
            self._sync_decoder_counts()
            for frame in frames:
                self.counters.frames_in += 1
                try:
                    msg = P.decode_message(frame)
                except P.ProtocolError:
                    self.counters.undecodable += 1
                    continue
                self.on_message(msg)


# --- the cloud client ------------------------------------------------------------------------

class CloudError(Exception):
    """The cloud did not answer usefully (``permanent`` errors are not retried)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class CloudAnswer:
    stage: int
    probs: list[float]
    model: str
    attempts: int
    context_used: bool = False  #: the cloud model used the edge history


class CloudClient:
    """POSTs epochs to the cloud service with bounded retries.

    Parameters
    ----------
    url
        Base URL of the service, e.g. ``http://127.0.0.1:8000``.
    token
        Bearer token.
    backoff_s
        First retry delay; doubles on each retry (capped by the time left).
    max_attempts
        Most attempts per epoch.
    transport
        httpx transport override (tests use ``httpx.MockTransport``).
    """

    def __init__(self, url: str, token: str, *, backoff_s: float = 0.05, max_attempts: int = 6,
                 transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise SleepEdgeError(f"--cloud {url}: expected an http:// or https:// URL")
        if not token:
            raise SleepEdgeError("--token: the cloud service needs a bearer token")
        self.url = url.rstrip("/")
        self.backoff_s = backoff_s
        self.max_attempts = max_attempts
        self._client: httpx.Client = httpx.Client(
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=2 * C.MAX_PENDING_ESCALATIONS),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def health(self, timeout_s: float = 2.0) -> dict[str, Any]:
        """``GET /health``; raises CloudError when unreachable."""
        import httpx

        try:
            r = self._client.get(f"{self.url}/health", timeout=timeout_s)
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise CloudError(f"{self.url}/health: {exc}") from None

    def classify(self, device_id: str, epoch: int, samples: np.ndarray, deadline: float,
                 history: tuple[int, list[list[int] | None]] | None = None) -> CloudAnswer:
        """Classify one filtered epoch (int16 at 0.25 uV) before ``deadline`` (monotonic s).

        ``history`` is ``(model_hash_u32, entries)``: the device's raw RESULT outputs for the
        epochs up to this one, oldest first, None where missing (the cloud model's context).
        Retries connection failures, timeouts, 429 and 5xx with exponential backoff; a 4xx
        (bad token, rejected input) fails at once because repeating it cannot help.
        """
        import httpx

        doc: dict[str, Any] = {"device_id": device_id, "epoch": int(epoch),
                               "samples": np.asarray(samples, dtype=np.int16).tolist(),
                               "uv_per_lsb": C.SAMPLE_UV_PER_LSB}
        if history is not None:
            doc["edge_model"] = f"{history[0] & 0xFFFFFFFF:08x}"
            doc["edge_history"] = history[1]
        last = "no attempt made: deadline already passed"
        delay = self.backoff_s
        for attempt in range(1, self.max_attempts + 1):
            left = deadline - time.monotonic()
            if left <= 0.005:
                break
            try:
                r = self._client.post(f"{self.url}/v1/classify", json=doc, timeout=left)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if r.status_code == 200:
                    body = r.json()
                    stage = int(body["stage_index"])
                    if not 0 <= stage < C.N_CLASSES:
                        raise CloudError(f"cloud answered stage_index {stage}", permanent=True)
                    return CloudAnswer(stage, [float(p) for p in body["probs"]], str(body.get("model", "")), attempt,
                                       bool(body.get("context_used", False)))
                detail = r.text[:200]
                last = f"HTTP {r.status_code}: {detail}"
                if 400 <= r.status_code < 500 and r.status_code != 429:
                    raise CloudError(last, permanent=True)
            sleep = min(delay, deadline - time.monotonic())
            if sleep > 0:
                time.sleep(sleep)
            delay *= 2
        raise CloudError(f"gave up after {attempt} attempt(s): {last}")


# --- the bridge ------------------------------------------------------------------------------

@dataclass
class EscalationRecord:
    """What happened to one escalated epoch on the host side."""

    epoch: int
    received_s: float  #: monotonic time the ESCALATE frame was decoded
    done_s: float | None = None
    cloud_stage: int | None = None
    attempts: int = 0
    sent: bool = False  #: a CLOUD_LABEL was written to the device
    error: str | None = None
    generation: int = 0  #: device boot count when received (labels are not sent across a reset)
    context_used: bool = False  #: the cloud answered with the edge history
    too_late: bool = False  #: the answer came after the deadline (or the device's FINAL): not sent
    device_source: str | None = None  #: how the device finalised the epoch (its FINAL frame)

    @property
    def latency_s(self) -> float | None:
        """ESCALATE received -> CLOUD_LABEL written, for labels that were sent."""
        return None if not self.sent or self.done_s is None else self.done_s - self.received_s

    @property
    def outcome(self) -> str:
        """``answered``: the device's FINAL used the cloud's label. ``late``: the cloud answered,
        but the device finalised the epoch without it (the answer missed the deadline, or the
        device refused the label as late). ``unconfirmed``: a label was sent and no FINAL came
        (yet). ``failed``: no usable answer. ``pending``: still being answered."""
        if self.device_source == "cloud":
            return "answered"
        if self.done_s is None:
            return "pending"
        if self.cloud_stage is not None and (self.too_late or (self.sent and self.device_source is not None)):
            return "late"
        return "unconfirmed" if self.sent else "failed"


class EscalationBridge:
    """Answers ESCALATE messages with CLOUD_LABEL frames, concurrently, within a deadline.

    Parameters
    ----------
    client
        The cloud client.
    send
        Thread-safe function writing a message to the device (``DeviceLink.send``).
    device_id
        Sent to the cloud with every epoch.
    timeout_ms
        The device's escalation timeout (update it from HELLO with :meth:`on_hello`).
    deadline_fraction
        Share of the timeout the bridge may spend on one epoch.
    model_hash
        The device's edge model hash (HELLO); with it, every request carries the edge history
        (:meth:`on_result` collects it) so a context cloud model can use the night so far.
    history_epochs
        Entries per history, the escalated epoch included.
    """

    def __init__(self, client: CloudClient, send: Callable[[Any], None], *, device_id: str = "device",
                 timeout_ms: int = C.DEFAULT_ESCALATION_TIMEOUT_MS,
                 deadline_fraction: float = DEFAULT_DEADLINE_FRACTION,
                 on_record: Callable[[EscalationRecord], None] | None = None,
                 model_hash: int | None = None, history_epochs: int = C.CLOUD_HISTORY_EPOCHS) -> None:
        if not 0 < deadline_fraction <= 1:
            raise ValueError(f"deadline_fraction must be in (0, 1], got {deadline_fraction}")
        if history_epochs < 0:
            raise ValueError(f"history_epochs must be >= 0, got {history_epochs}")
        self.client = client
        self.send = send
        self.device_id = device_id
        self.timeout_ms = timeout_ms
        self.deadline_fraction = deadline_fraction
        self.on_record = on_record
        self.model_hash = model_hash
        self.history_epochs = history_epochs
        self.records: list[EscalationRecord] = []
        self.generation = 0
        #: epoch -> raw int8 outputs from RESULT frames; only the newest epochs are kept.
        self._results: dict[int, list[int]] = {}
        #: epoch -> its escalation awaiting the device's FINAL frame.
        self._awaiting_final: dict[int, EscalationRecord] = {}
        self._lock = threading.Lock()
        # More workers than the device can have pending, so a slow epoch never blocks a new one.
        self._pool = ThreadPoolExecutor(max_workers=2 * C.MAX_PENDING_ESCALATIONS,
                                        thread_name_prefix="sleepedge-escalation")

    def set_timeout_ms(self, timeout_ms: int) -> None:
        self.timeout_ms = int(timeout_ms)

    def on_hello(self, hello: P.Hello) -> None:
        """Take the escalation timeout and the edge model hash from a HELLO."""
        self.set_timeout_ms(hello.timeout_ms)
        self.model_hash = int(hello.model_hash)

    def on_result(self, msg: P.Result) -> None:
        """Remember an epoch's edge output for the histories of later escalations."""
        if msg.incomplete or msg.stage >= C.N_CLASSES or self.history_epochs == 0:
            return
        with self._lock:
            self._results[int(msg.epoch)] = [int(v) for v in msg.probs]
            if len(self._results) > 4 * self.history_epochs + 64:
                for e in sorted(self._results)[: len(self._results) - 2 * self.history_epochs]:
                    del self._results[e]

    def history_for(self, epoch: int) -> tuple[int, list[list[int] | None]] | None:
        """``(model_hash, entries)`` for an escalated epoch, or None without a model hash."""
        if self.model_hash is None or self.history_epochs == 0:
            return None
        with self._lock:
            entries = [self._results.get(e) for e in range(epoch - self.history_epochs + 1, epoch + 1)]
        return self.model_hash, entries

    def device_reset(self) -> None:
        """The device rebooted: its pending escalations are gone, answers would be refused."""
        with self._lock:
            self.generation += 1
            self._awaiting_final.clear()

    def on_final(self, msg: P.Final) -> None:
        """Note how the device finalised an escalated epoch (from its FINAL frame): an answer
        counts as answered only when the device used it."""
        with self._lock:
            rec = self._awaiting_final.pop(int(msg.epoch), None)
            if rec is not None:
                rec.device_source = msg.source_name

    def on_escalate(self, msg: P.Escalate) -> EscalationRecord:
        """Take one ESCALATE (from the reader thread) and answer it in the background."""
        rec = EscalationRecord(epoch=int(msg.epoch), received_s=time.monotonic(), generation=self.generation)
        with self._lock:
            self.records.append(rec)
            self._awaiting_final[rec.epoch] = rec
        deadline = rec.received_s + self.deadline_fraction * self.timeout_ms / 1000.0
        self._pool.submit(self._answer, rec, np.asarray(msg.samples, dtype=np.int16), deadline,
                          self.history_for(rec.epoch))
        return rec

    def _answer(self, rec: EscalationRecord, samples: np.ndarray, deadline: float,
                history: tuple[int, list[list[int] | None]] | None) -> None:
        try:
            if samples.size != C.EPOCH_SAMPLES:
                raise CloudError(f"ESCALATE carried {samples.size} samples, expected {C.EPOCH_SAMPLES}", True)
            ans = self.client.classify(self.device_id, rec.epoch, samples, deadline, history)
            rec.attempts, rec.cloud_stage, rec.context_used = ans.attempts, ans.stage, ans.context_used
            if time.monotonic() > deadline or rec.device_source is not None:
                rec.too_late = True
                raise CloudError("answer arrived after the deadline; the device keeps its own label")
            if rec.generation != self.generation:
                raise CloudError("device reset while the epoch was pending")
            self.send(P.CloudLabel(rec.epoch, ans.stage))
            rec.sent = True
        except CloudError as exc:
            rec.error = str(exc)
        except SleepEdgeError as exc:  # the link went away while answering
            rec.error = str(exc)
        except Exception as exc:  # never let a worker die silently: the record says why
            rec.error = f"{type(exc).__name__}: {exc}"
        finally:
            rec.done_s = time.monotonic()
            if self.on_record is not None:
                self.on_record(rec)

    def pending(self) -> int:
        with self._lock:
            return sum(1 for r in self.records if r.done_s is None)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every escalation has an outcome; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def stats(self) -> dict[str, Any]:
        """Counts by :attr:`EscalationRecord.outcome` and round-trip latencies (ms) of the
        answered escalations so far."""
        with self._lock:
            recs = list(self.records)
            outcomes = [r.outcome for r in recs]
        answered = [r for r, o in zip(recs, outcomes) if o == "answered"]
        lat = np.array([r.latency_s for r in answered if r.latency_s is not None], dtype=np.float64) * 1000.0
        return {
            "escalations": len(recs),
            "answered": len(answered),  #: the device used the cloud's label
            "late": outcomes.count("late"),  #: the cloud answered, the device had finalised without it
            "failed": outcomes.count("failed"),
            "unconfirmed": outcomes.count("unconfirmed"),  #: sent, no FINAL seen
            "pending": outcomes.count("pending"),
            "with_context": sum(r.context_used for r in answered),
            "latency_ms_median": float(np.median(lat)) if lat.size else None,
            "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else None,
            "errors": sorted({r.error for r in recs if r.error})[:10],
        }


# --- standalone CLI --------------------------------------------------------------------------

def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="device: /dev/ttyUSB0, socket://127.0.0.1:PORT, rfc2217://...")
    parser.add_argument("--cloud", required=True, help="cloud service base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--token", default=None, help="bearer token (default: $SLEEPEDGE_CLOUD_TOKEN)")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate for real serial ports")
    parser.add_argument("--device-id", default=None, help="name sent to the cloud (default: the port)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")


def run(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("SLEEPEDGE_CLOUD_TOKEN", "")
    client = CloudClient(args.cloud, token)
    try:
        health = client.health()
    except CloudError as exc:
        print(f"sleepedge proxy: warning: cloud not reachable yet ({exc}); the device keeps its labels until it is")
        health = {}
    done = threading.Event()
    bridge: EscalationBridge | None = None

    def on_message(msg: Any) -> None:
        assert bridge is not None
        if isinstance(msg, P.Hello):
            bridge.on_hello(msg)
            bridge.device_reset()
            print(f"device: firmware {msg.fw_version}, model {msg.model_hash:08x}, "
                  f"threshold {msg.threshold:.2f}, timeout {msg.timeout_ms} ms", flush=True)
        elif isinstance(msg, P.Result):
            bridge.on_result(msg)
        elif isinstance(msg, P.Escalate):
            bridge.on_escalate(msg)
        elif isinstance(msg, P.Final):
            bridge.on_final(msg)
            stage = C.STAGES[msg.stage] if msg.stage < C.N_CLASSES else "?"
            print(f"epoch {msg.epoch}: {stage} ({msg.source_name})", flush=True)
        elif isinstance(msg, P.Error):
            print(f"device error: {msg.describe()}", flush=True)

    def on_record(rec: EscalationRecord) -> None:
        what = f"cloud {C.STAGES[rec.cloud_stage]}" if rec.sent and rec.cloud_stage is not None else f"failed: {rec.error}"
        print(f"escalation epoch {rec.epoch}: {what}", flush=True)

    link = DeviceLink(args.port, on_message, baudrate=args.baud, on_disconnect=lambda why: done.set())
    bridge = EscalationBridge(client, link.send, device_id=args.device_id or args.port, on_record=on_record)
    print(f"sleepedge proxy: {args.port} <-> {args.cloud} (model {health.get('model', '?')}); Ctrl-C to stop", flush=True)
    try:
        with link:
            done.wait(args.duration)
    finally:
        bridge.close()
        client.close()
        s = bridge.stats()
        print(f"sleepedge proxy: {s['escalations']} escalations, {s['answered']} answered, {s['late']} late, "
              f"{s['failed']} failed" + (f", {s['unconfirmed']} unconfirmed" if s["unconfirmed"] else ""))
    return 0

"""``sleepedge monitor``: stream a recording to the device, collect its labels, report.

The host sends the EEG channel as SAMPLES frames (int16 at 0.25 uV, 100-sample blocks numbered
from the start of the recording) in real time x ``--speed`` or as fast as the link allows,
while a reader thread consumes RESULT/ESCALATE/FINAL/STATUS frames (see host_tools.device.proxy).
With ``--cloud`` the escalation proxy runs in-process.

Flow control: before sending the first block of epoch ``e`` the host waits (bounded) until the
device has reported on epoch ``e - 2``, so at most about one epoch is buffered in the device
while it runs inference, whatever the link speed.

A HELLO in mid-stream that is not the answer to our CONFIG means the device rebooted: the
monitor re-opens the port if it dropped, re-sends CONFIG, resumes at the next epoch boundary
and marks the epochs that got no FINAL as a "gap". Every streamed epoch ends with a row.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools.device import protocol as P
from host_tools.errors import SleepEdgeError
from host_tools.device.live_view import LiveView, ViewState

BPE = C.BLOCKS_PER_EPOCH
#: Final sources beyond the device's own: the host's verdict for epochs without a FINAL frame.
SOURCE_GAP = "gap"  #: the device rebooted (or the link dropped) before finishing the epoch
SOURCE_LOST = "lost"  #: the device's FINAL never arrived intact (corrupted link)
CSV_FIELDS = ("epoch", "onset_s", "edge_stage", "edge_confidence", "escalated", "cloud_stage",
              "final_stage", "final_source", "expert_stage")
HYPNO_TEXT = {0: "Sleep stage W", 1: "Sleep stage 1", 2: "Sleep stage 2", 3: "Sleep stage 3", 4: "Sleep stage R"}


@dataclass
class EpochRow:
    """Everything known about one streamed epoch."""

    epoch: int
    edge_stage: int | None = None
    edge_confidence: float | None = None
    escalated: bool = False
    incomplete: bool = False
    cloud_stage: int | None = None
    final_stage: int | None = None
    final_source: str | None = None
    expert_stage: int | None = None

    @property
    def onset_s(self) -> int:
        return self.epoch * C.EPOCH_S

    def csv_row(self) -> dict[str, Any]:
        def name(s: int | None) -> str:
            return C.STAGES[s] if s is not None and 0 <= s < C.N_CLASSES else ""

        return {
            "epoch": self.epoch, "onset_s": self.onset_s, "edge_stage": name(self.edge_stage),
            "edge_confidence": "" if self.edge_confidence is None else f"{self.edge_confidence:.4f}",
            "escalated": int(self.escalated), "cloud_stage": name(self.cloud_stage),
            "final_stage": name(self.final_stage), "final_source": self.final_source or "",
            "expert_stage": name(self.expert_stage),
        }


@dataclass
class MonitorOptions:
    """One monitoring session (the CLI and ``make demo`` both build one)."""

    port: str
    signal: np.ndarray  #: the whole channel as int16 transport samples
    start_epoch: int = 0
    n_epochs: int | None = None  #: default: to the end of the recording
    speed: float | None = None  #: x real time; None = as fast as the link allows
    cloud: str | None = None
    token: str | None = None
    threshold: float | None = None  #: sent as CONFIG when given (with timeout_ms)
    timeout_ms: int | None = None
    expert: np.ndarray | None = None  #: per-epoch class index from the start of the recording, -1 unknown
    device_id: str = "sleepedge-device"
    baudrate: int = 115200
    title: str = "SleepEdge monitor"
    window_epochs: int = 2
    hello_timeout_s: float = 15.0
    reconnect_timeout_s: float = 30.0
    flow_timeout_s: float = 30.0
    final_grace_s: float = 10.0
    deadline_fraction: float | None = None


@dataclass
class ResetEvent:
    at_block: int
    resumed_epoch: int
    reconnected: bool
    gap_epochs: list[int] = field(default_factory=list)


class Monitor:
    """Runs one session: see :func:`run_monitor`."""

    def __init__(self, opts: MonitorOptions, view: LiveView | None = None) -> None:
        self.o = opts
        total_epochs = len(opts.signal) // C.EPOCH_SAMPLES
        if total_epochs == 0:
            raise SleepEdgeError("the recording is shorter than one 30-s epoch")
        if not 0 <= opts.start_epoch < total_epochs:
            raise SleepEdgeError(f"--start-epoch {opts.start_epoch}: the recording has {total_epochs} epochs")
        n = total_epochs - opts.start_epoch if opts.n_epochs is None else opts.n_epochs
        if n < 1:
            raise SleepEdgeError(f"--epochs {n}: need at least 1")
        self.first = opts.start_epoch
        self.n = min(n, total_epochs - opts.start_epoch)
        self.rows = {e: EpochRow(e) for e in range(self.first, self.first + self.n)}
        if opts.expert is not None:
            for e, row in self.rows.items():
                if e < len(opts.expert) and opts.expert[e] >= 0:
                    row.expert_stage = int(opts.expert[e])
        self.view = view or LiveView(plain=True)
        self.state = ViewState(title=opts.title, total_epochs=self.n)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.hello: P.Hello | None = None
        self.hellos = 0
        self.config_acks_expected = 0
        self.reset_pending = False
        self.disconnected = False
        self.last_status: P.Status | None = None
        self.pongs: set[int] = set()
        self.device_errors: dict[str, int] = {}
        self.reported_upto = self.first - 1  #: highest epoch the device said anything about
        self.resets: list[ResetEvent] = []
        self.flow_stalls = 0
        self.bridge: Any = None
        self.client: Any = None
        self.link: Any = None

    # -- reader-thread callbacks
    def _on_message(self, msg: Any) -> None:
        with self.cond:
            if isinstance(msg, P.Hello):
                self.hellos += 1
                if self.bridge is not None:
                    self.bridge.on_hello(msg)
                if self.config_acks_expected > 0:
                    self.config_acks_expected -= 1
                elif self.hello is not None:
                    self.reset_pending = True  # an unsolicited HELLO: the device rebooted
                    if self.bridge is not None:
                        self.bridge.device_reset()
                self.hello = msg
            elif isinstance(msg, P.Result):
                if self.bridge is not None:
                    self.bridge.on_result(msg)
                row = self.rows.get(msg.epoch)
                if row is not None:
                    row.incomplete = msg.incomplete or msg.stage >= C.N_CLASSES
                    row.edge_stage = None if row.incomplete else msg.stage
                    row.edge_confidence = None if row.incomplete else float(msg.confidence)
                    row.escalated = bool(msg.escalated)
                    self.reported_upto = max(self.reported_upto, msg.epoch)
                    self.state.current_epoch, self.state.current_stage = msg.epoch, row.edge_stage
                    self.state.current_confidence, self.state.current_source = row.edge_confidence, "edge"
            elif isinstance(msg, P.Escalate):
                self.reported_upto = max(self.reported_upto, msg.epoch)
                if msg.epoch in self.rows:
                    self.rows[msg.epoch].escalated = True
                if self.bridge is not None:
                    self.bridge.on_escalate(msg)
            elif isinstance(msg, P.Final):
                row = self.rows.get(msg.epoch)
                if row is not None and row.final_source is None:
                    row.final_source = msg.source_name
                    row.final_stage = msg.stage if msg.stage < C.N_CLASSES else None
                    self.reported_upto = max(self.reported_upto, msg.epoch)
                    self.state.done_epochs += 1
                    self.state.recent.append((row.final_stage, row.escalated))
                    if self.state.current_epoch == msg.epoch:
                        self.state.current_stage, self.state.current_source = row.final_stage, row.final_source
                    self.view.epoch_line(row.epoch, row.onset_s, row.edge_stage, row.edge_confidence,
                                         row.final_stage, row.final_source)
            elif isinstance(msg, P.Status):
                self.last_status = msg
            elif isinstance(msg, P.Pong):
                self.pongs.add(msg.token)
            elif isinstance(msg, P.Error):
                key = P.ERROR_NAMES.get(msg.code, f"error {msg.code}")
                self.device_errors[key] = self.device_errors.get(key, 0) + 1
            self.cond.notify_all()

    def _on_disconnect(self, why: str) -> None:
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def _on_record(self, rec: Any) -> None:
        with self.cond:
            row = self.rows.get(rec.epoch)
            if row is not None and rec.cloud_stage is not None:
                row.cloud_stage = rec.cloud_stage
            if rec.error:
                self.view.message(f"escalation of epoch {rec.epoch} failed: {rec.error}")

    # -- helpers
    def _wait(self, pred: Any, timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout_s)

    def _configure(self) -> None:
        """Send CONFIG (when asked for) and wait for the HELLO that acknowledges it."""
        if self.o.threshold is None and self.o.timeout_ms is None:
            return
        hello = self.hello
        threshold = self.o.threshold if self.o.threshold is not None else (
            hello.threshold if hello else C.DEFAULT_CONFIDENCE_THRESHOLD)
        timeout_ms = self.o.timeout_ms if self.o.timeout_ms is not None else (
            hello.timeout_ms if hello else C.DEFAULT_ESCALATION_TIMEOUT_MS)
        with self.cond:
            self.config_acks_expected += 1
            before = self.hellos
        self.link.send(P.Config(float(threshold), int(timeout_ms)))
        if not self._wait(lambda: self.hellos > before, 5.0):
            with self.cond:
                self.config_acks_expected = max(0, self.config_acks_expected - 1)
            self.view.message("device did not acknowledge CONFIG within 5 s; continuing")

    def _connect(self) -> None:
        from host_tools.device.proxy import DeviceLink

        self.link = DeviceLink(self.o.port, self._on_message, baudrate=self.o.baudrate,
                               on_disconnect=self._on_disconnect).open(self.o.hello_timeout_s)
        if not self._wait(lambda: self.hello is not None, self.o.hello_timeout_s):
            # A device that booted before we connected has said HELLO already: ask it to speak.
            self.link.send(P.Ping(0x5E5E))
            if not self._wait(lambda: 0x5E5E in self.pongs, 3.0):
                raise SleepEdgeError(f"--port {self.o.port}: no HELLO or PONG from the device within "
                                     f"{self.o.hello_timeout_s:.0f} s: is the SleepEdge firmware running?")
        if self.hello is not None and self.hello.protocol != C.PROTOCOL_VERSION:
            raise SleepEdgeError(f"--port {self.o.port}: device speaks protocol {self.hello.protocol}, "
                                 f"this host speaks {C.PROTOCOL_VERSION}")
        self._configure()

    def _handle_reset(self, block: int) -> int:
        """The device rebooted or the link dropped: reconnect, reconfigure, and return the
        block to resume from (the next epoch boundary)."""
        with self.cond:
            reconnect = self.disconnected
            self.reset_pending = False
        if reconnect:
            self.view.message(f"device link dropped at block {block}; reconnecting to {self.o.port}")
            with self.cond:
                self.hello = None
            self.link.close()
            self.link.counters.reconnects += 1
            self.link.open(self.o.reconnect_timeout_s)
            with self.cond:
                self.disconnected = False
            if not self._wait(lambda: self.hello is not None, self.o.reconnect_timeout_s):
                raise SleepEdgeError(f"--port {self.o.port}: reconnected, but the device sent no HELLO")
            if self.bridge is not None:
                self.bridge.device_reset()
        self._configure()
        resume = -(-block // BPE) * BPE
        with self.cond:
            gap = [e for e, r in self.rows.items() if e < resume // BPE and r.final_source is None]
            for e in gap:
                self.rows[e].final_source = SOURCE_GAP
                self.state.recent.append((None, False))
                self.state.done_epochs += 1
            self.resets.append(ResetEvent(block, resume // BPE, reconnect, gap))
            self.state.resets = len(self.resets)
            self.state.gap_epochs += len(gap)
        self.view.message(f"device reset at block {block}: resuming at epoch {resume // BPE}; "
                          f"{len(gap)} epoch(s) without a result")
        return resume

    def _refresh_view(self, t0: float, block: int, force: bool = False) -> None:
        st = self.state
        st.elapsed_s = time.monotonic() - t0
        st.streamed_s = (block - self.first * BPE) * C.SAMPLES_PER_BLOCK / C.FS_HZ
        c = self.link.counters
        st.link = {"tx kB": c.tx_bytes // 1024, "rx kB": c.rx_bytes // 1024, "frames in": c.frames_in,
                   "bad crc": c.bad_crc, "garbage B": c.garbage_bytes}
        if self.last_status is not None:
            st.link["dev bad crc"] = self.last_status.bad_crc
            st.link["dev missing"] = self.last_status.missing_blocks
        if self.bridge is not None:
            s = self.bridge.stats()
            st.escalations, st.answered, st.failed = s["escalations"], s["answered"], s["failed"]
            st.with_context = s["with_context"]
        else:
            st.escalations = sum(r.escalated for r in self.rows.values())
        self.view.update(st, force)

    # -- the session
    def run(self) -> dict[str, Any]:
        """Stream, collect, and return the summary (rows are in ``self.rows``)."""
        from host_tools.device.proxy import DEFAULT_DEADLINE_FRACTION, CloudClient, EscalationBridge

        if self.o.cloud:
            self.client = CloudClient(self.o.cloud, self.o.token or "")
        t0 = time.monotonic()
        self._connect()
        if self.client is not None:
            self.bridge = EscalationBridge(
                self.client, self.link.send, device_id=self.o.device_id,
                timeout_ms=self.hello.timeout_ms if self.hello else C.DEFAULT_ESCALATION_TIMEOUT_MS,
                deadline_fraction=self.o.deadline_fraction or DEFAULT_DEADLINE_FRACTION, on_record=self._on_record,
                model_hash=self.hello.model_hash if self.hello else None)
        self.state.device = (f"{self.o.port}  firmware {self.hello.fw_version}  model {self.hello.model_hash:08x}"
                             if self.hello else self.o.port)
        try:
            with self.view:
                self._stream(t0)
                self._drain(t0)
        finally:
            if self.bridge is not None:
                self.bridge.wait_idle(10.0)
                self.bridge.close()
            if self.client is not None:
                self.client.close()
            self.link.close()
        return self.summary(time.monotonic() - t0)

    def _stream(self, t0: float) -> None:
        start_block, end_block = self.first * BPE, (self.first + self.n) * BPE
        block = start_block
        pace_t0, pace_b0 = time.monotonic(), start_block
        sig = self.o.signal
        while block < end_block:
            if self.reset_pending or self.disconnected:
                block = self._handle_reset(block)
                pace_t0, pace_b0 = time.monotonic(), block
                continue
            epoch = block // BPE
            if block % BPE == 0 and epoch - self.o.window_epochs >= self.first:
                need = epoch - self.o.window_epochs
                if not self._wait(lambda: self.reported_upto >= need or self.reset_pending or self.disconnected,
                                  self.o.flow_timeout_s):
                    self.flow_stalls += 1
                if self.reset_pending or self.disconnected:
                    continue
            if self.o.speed:
                delay = pace_t0 + (block - pace_b0) * (C.SAMPLES_PER_BLOCK / C.FS_HZ) / self.o.speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            chunk = sig[block * C.SAMPLES_PER_BLOCK:(block + 1) * C.SAMPLES_PER_BLOCK]
            try:
                self.link.send(P.Samples(block, chunk))
            except SleepEdgeError:
                with self.cond:
                    self.disconnected = True
                continue
            block += 1
            self._refresh_view(t0, block)

    def _drain(self, t0: float) -> None:
        """Wait for the last FINALs (escalations may take up to the device timeout), then ask
        for a last STATUS."""
        timeout_ms = self.hello.timeout_ms if self.hello else C.DEFAULT_ESCALATION_TIMEOUT_MS
        end_block = (self.first + self.n) * BPE
        deadline = time.monotonic() + timeout_ms / 1000.0 + self.o.final_grace_s
        while time.monotonic() < deadline:
            if self._wait(lambda: all(r.final_source for r in self.rows.values())
                          or self.reset_pending or self.disconnected, 0.2):
                break
            self._refresh_view(t0, end_block)
        if self.reset_pending or self.disconnected:
            # The device went away during the tail: what it did not finish is a gap.
            try:
                self._handle_reset(end_block)
            except SleepEdgeError as exc:
                self.view.message(str(exc))
                with self.cond:
                    for r in self.rows.values():
                        if r.final_source is None:
                            r.final_source = SOURCE_GAP
        if self.link.connected.is_set():
            try:
                with self.cond:
                    self.last_status = None
                self.link.send(P.Ping(0x51A7))
                self._wait(lambda: self.last_status is not None, 3.0)
            except SleepEdgeError:
                pass
        with self.cond:
            for r in self.rows.values():
                if r.final_source is None:
                    r.final_source = SOURCE_LOST
        self._refresh_view(t0, end_block, force=True)

    # -- results
    def summary(self, elapsed_s: float) -> dict[str, Any]:
        from host_tools.evaluation import scores

        rows = [self.rows[e] for e in sorted(self.rows)]

        def score(pairs: list[tuple[int, int]]) -> dict[str, Any] | None:
            if not pairs:
                return None
            s = scores(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
            return {"n": s["n"], "accuracy": s["acc"], "kappa": s["kappa"], "macro_f1": s["mf1"]}

        classified = [r for r in rows if r.edge_stage is not None]
        sources: dict[str, int] = {}
        for r in rows:
            sources[r.final_source or SOURCE_LOST] = sources.get(r.final_source or SOURCE_LOST, 0) + 1
        c = self.link.counters
        out: dict[str, Any] = {
            "epochs_streamed": len(rows),
            "first_epoch": self.first,
            "elapsed_s": round(elapsed_s, 2),
            "device": None if self.hello is None else {
                "fw_version": self.hello.fw_version, "model_hash": f"{self.hello.model_hash:08x}",
                "threshold": round(float(self.hello.threshold), 4), "timeout_ms": self.hello.timeout_ms},
            "edge_only": score([(r.expert_stage, r.edge_stage) for r in classified if r.expert_stage is not None]),
            "final": score([(r.expert_stage, r.final_stage) for r in rows
                            if r.expert_stage is not None and r.final_stage is not None]),
            "escalation_rate": (sum(r.escalated for r in classified) / len(classified)) if classified else None,
            "final_sources": sources,
            "gap_epochs": [r.epoch for r in rows if r.final_source == SOURCE_GAP],
            "resets": [asdict(e) for e in self.resets],
            "escalation": self.bridge.stats() if self.bridge is not None else None,
            "link_host": asdict(c),
            "link_device": None if self.last_status is None else asdict(self.last_status),
            "device_errors": self.device_errors,
            "flow_stalls": self.flow_stalls,
        }
        return out


def run_monitor(opts: MonitorOptions, view: LiveView | None = None) -> tuple[list[EpochRow], dict[str, Any]]:
    """Stream ``opts.signal`` to the device at ``opts.port``; return the rows and the summary."""
    m = Monitor(opts, view)
    summary = m.run()
    return [m.rows[e] for e in sorted(m.rows)], summary


# --- inputs and outputs ----------------------------------------------------------------------

def expert_labels(hypno_path: str | Path, n_epochs: int, psg_start: dt.datetime | None = None, *,
                  stage_seconds: float = 30, codes: str | None = None, signal_s: float | None = None,
                  psg: str | Path | None = None) -> np.ndarray:
    """Per-epoch expert class index from a hypnogram (-1 where unscored).

    ``hypno_path`` is an EDF+ hypnogram or a stage-per-line ``.csv``/``.txt`` (``stage_seconds``
    per line, numeric ``codes`` scheme; see :mod:`host_tools.data.recordings`). Epoch ``k`` covers
    ``[30k, 30k + 30)`` s from the PSG start; it takes the stage of the annotation covering its
    start. A hypnogram scoring a whole epoch or more past the signal (``signal_s``, default
    ``30 * n_epochs``) is refused: it does not belong to this recording.
    """
    from host_tools.data.recordings import Hypnogram, check_fits, read_hypnogram

    hyp = read_hypnogram(hypno_path, stage_seconds, codes)
    offset = 0.0
    if psg_start is not None and hyp.start is not None:
        a = hyp.start if hyp.start.tzinfo else hyp.start.replace(tzinfo=dt.timezone.utc)
        b = psg_start if psg_start.tzinfo else psg_start.replace(tzinfo=dt.timezone.utc)
        offset = (a - b).total_seconds()
    shifted = Hypnogram(hyp.path, hyp.onsets + offset, hyp.durations, hyp.descriptions, None)
    check_fits(shifted, psg if psg is not None else "the recording",
               signal_s if signal_s is not None else n_epochs * C.EPOCH_S)
    y = np.full(n_epochs, -1, dtype=np.int64)
    for onset, dur, desc in zip(shifted.onsets, shifted.durations, shifted.descriptions):
        label = C.RK_TO_AASM.get(str(desc))
        if label is None:
            continue
        # Sleep-EDF annotations are whole epochs; the half-epoch tolerance absorbs rounding.
        k0 = max(0, int(math.floor(onset / C.EPOCH_S + 0.5)))
        k1 = min(n_epochs, int(math.floor((onset + dur) / C.EPOCH_S + 0.5)))
        y[k0:k1] = label
    return y


def sleep_period(expert: np.ndarray, margin_epochs: int = 60) -> tuple[int, int]:
    """(first epoch, number of epochs) of the sleep period +- ``margin_epochs``."""
    asleep = np.flatnonzero((expert >= 1) & (expert < C.N_CLASSES))
    if asleep.size == 0:
        return 0, len(expert)
    first = max(0, int(asleep[0]) - margin_epochs)
    last = min(len(expert) - 1, int(asleep[-1]) + margin_epochs)
    return first, last - first + 1


def write_outputs(out: str | Path, rows: list[EpochRow], summary: dict[str, Any], *, name: str = "monitor",
                  start: dt.datetime | None = None) -> dict[str, Path]:
    """Write results.csv, summary.json, ``<name>-Hypnogram.edf`` and ``hypnogram.png`` to ``out``."""
    from host_tools.data.edf_io import write_hypnogram

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "results.csv", "summary": out / "summary.json",
             "edf": out / f"{name}-Hypnogram.edf", "png": out / "hypnogram.png"}
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(r.csv_row())
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    # EDF+ hypnogram: one annotation per run of equal final labels (like the real files).
    onsets, durs, descs = [], [], []
    for r in rows:
        text = HYPNO_TEXT.get(r.final_stage if r.final_stage is not None else -1, "Sleep stage ?")
        if descs and descs[-1] == text and onsets[-1] + durs[-1] == r.onset_s:
            durs[-1] += C.EPOCH_S
        else:
            onsets.append(r.onset_s)
            durs.append(C.EPOCH_S)
            descs.append(text)
    start = start or dt.datetime(1989, 4, 24, 16, 13, tzinfo=dt.timezone.utc)
    write_hypnogram(paths["edf"], onsets, durs, descs, start)
    plot_hypnogram(paths["png"], rows)
    return paths


def plot_hypnogram(path: str | Path, rows: list[EpochRow]) -> None:
    """Device (final and edge-only) against expert hypnogram, escalated epochs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from host_tools.device.live_view import HYPNO_ORDER

    level = {s: len(HYPNO_ORDER) - 1 - i for i, s in enumerate(HYPNO_ORDER)}  # W on top

    def ys(stages: list[int | None]) -> np.ndarray:
        return np.array([level[s] if s is not None and s in level else np.nan for s in stages], dtype=float)

    hours = np.array([r.onset_s for r in rows]) / 3600.0
    fig, axes = plt.subplots(2, 1, figsize=(12, 5), sharex=True)
    expert = [r.expert_stage for r in rows]
    panels = [("expert", expert)] if any(s is not None for s in expert) else []
    panels.append(("device final", [r.final_stage for r in rows]))
    axes[0].step(hours, ys([r.final_stage for r in rows]), where="post", color="tab:blue", lw=1, label="device final")
    esc = np.array([r.escalated for r in rows])
    if esc.any():
        axes[0].plot(hours[esc], ys([r.final_stage for r in rows])[esc], "o", ms=2.5, color="tab:red",
                     label="escalated")
    gap = np.array([r.final_source in (SOURCE_GAP, SOURCE_LOST) for r in rows])
    if gap.any():
        axes[0].plot(hours[gap], np.full(gap.sum(), -0.5), "|", color="black", label="gap / lost")
    axes[1].step(hours, ys([r.edge_stage for r in rows]), where="post", color="tab:gray", lw=1, label="edge only")
    if panels[0][0] == "expert":
        for ax in axes:
            ax.step(hours, ys(expert), where="post", color="tab:green", lw=1, alpha=0.7, label="expert")
    for ax in axes:
        ax.set_yticks(range(len(HYPNO_ORDER)), [C.STAGES[s] for s in reversed(HYPNO_ORDER)])
        ax.set_ylim(-1, len(HYPNO_ORDER))
        ax.legend(loc="upper right", fontsize=7, ncol=4)
    axes[1].set_xlabel("hours from recording start")
    axes[0].set_title("SleepEdge device hypnogram")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_summary(summary: dict[str, Any]) -> str:
    """A few human lines for the end of a run."""
    def acc(key: str) -> str:
        s = summary.get(key)
        return "n/a (no expert labels)" if not s else f"accuracy {s['accuracy']:.3f}, kappa {s['kappa']:.3f} (n={s['n']})"

    esc = summary.get("escalation") or {}
    rate = summary.get("escalation_rate")
    lines = [
        f"epochs streamed: {summary['epochs_streamed']} in {summary['elapsed_s']:.0f} s; "
        f"final sources: {summary['final_sources']}",
        f"edge only vs expert: {acc('edge_only')}",
        f"final     vs expert: {acc('final')}",
        f"escalation rate: {'n/a' if rate is None else f'{100 * rate:.1f} %'}"
        + (f"; answered {esc.get('answered')}/{esc.get('escalations')} "
           f"({esc.get('with_context', 0)} with the night's context), round trip median "
           f"{esc.get('latency_ms_median') or float('nan'):.0f} ms, p95 {esc.get('latency_ms_p95') or float('nan'):.0f} ms"
           if esc else ""),
    ]
    if summary.get("gap_epochs"):
        lines.append(f"gap (device reset): {len(summary['gap_epochs'])} epochs")
    return "\n".join(lines)


def load_recording(edf: str | Path, channel: str) -> tuple[np.ndarray, dt.datetime | None]:
    """A recording's EEG channel as int16 transport samples at 100 Hz, and the recording start.

    Any format of :mod:`host_tools.data.recordings` (EDF, BDF, BrainVision, FIF); ``channel`` may
    list alternatives; rates from 50 Hz up are resampled to the device's 100 Hz on the host.
    """
    from host_tools.data.filters import to_device_samples
    from host_tools.data.recordings import read_eeg

    if not Path(edf).is_file():
        raise SleepEdgeError(f"--edf {edf}: file not found")
    x_uv, _fs_in, start, _name = read_eeg(edf, channel)
    return to_device_samples(x_uv), start


# --- CLI -------------------------------------------------------------------------------------

def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed must be a number or 'max', got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"--speed must be > 0, got {text}")
    return v


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="device: /dev/ttyUSB0, socket://127.0.0.1:PORT, rfc2217://...")
    parser.add_argument("--edf", required=True,
                        help="recording to stream: EDF/EDF+, BDF, BrainVision .vhdr or FIF (resampled to 100 Hz)")
    parser.add_argument("--hypno", default=None,
                        help="expert hypnogram (for accuracy): EDF+, or .csv/.txt with one stage per line")
    parser.add_argument("--channel", default="Fpz-Cz",
                        help="EEG channel as the file names it, or comma-separated alternatives (default: Fpz-Cz)")
    parser.add_argument("--stage-seconds", type=float, default=30.0,
                        help="text hypnograms: seconds per line (30, 20, 5, ...; default 30)")
    parser.add_argument("--codes", choices=("aasm", "rk", "rk-dreams"), default=None,
                        help="text hypnograms with numeric stages: their code scheme")
    parser.add_argument("--speed", type=_speed, default=None, help="x real time, or 'max' (default: max)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs to stream (default: to the end)")
    parser.add_argument("--start-epoch", type=int, default=0, help="first epoch (default: 0)")
    parser.add_argument("--cloud", default=None, help="cloud service URL: run the escalation proxy in-process")
    parser.add_argument("--token", default=None, help="cloud bearer token (default: $SLEEPEDGE_CLOUD_TOKEN)")
    parser.add_argument("--threshold", type=float, default=None, help="send CONFIG: escalation threshold")
    parser.add_argument("--timeout-ms", type=int, default=None, help="send CONFIG: escalation timeout")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate of real serial ports")
    parser.add_argument("--out", default=None, help="write results.csv, summary.json, hypnogram EDF+ and PNG here")
    parser.add_argument("--plain", action="store_true", help="plain lines instead of the live view")


def run(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("SLEEPEDGE_CLOUD_TOKEN")
    if args.cloud and not token:
        raise SleepEdgeError("--cloud needs --token (or $SLEEPEDGE_CLOUD_TOKEN)")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise SleepEdgeError(f"--threshold {args.threshold}: must be within [0, 1]")
    if args.timeout_ms is not None and not 1 <= args.timeout_ms <= 3_600_000:
        raise SleepEdgeError(f"--timeout-ms {args.timeout_ms}: must be within 1..3600000")
    signal, start = load_recording(args.edf, args.channel)
    n_total = len(signal) // C.EPOCH_SAMPLES
    expert = expert_labels(args.hypno, n_total, start, stage_seconds=args.stage_seconds, codes=args.codes,
                           signal_s=len(signal) / C.FS_HZ, psg=args.edf) if args.hypno else None
    opts = MonitorOptions(port=args.port, signal=signal, start_epoch=args.start_epoch, n_epochs=args.epochs,
                          speed=args.speed, cloud=args.cloud, token=token, threshold=args.threshold,
                          timeout_ms=args.timeout_ms, expert=expert, baudrate=args.baud,
                          title=f"SleepEdge monitor: {Path(args.edf).name}")
    rows, summary = run_monitor(opts, LiveView(plain=True if args.plain else None))
    if args.out:
        from host_tools.data.recordings import recording_id

        name = recording_id(args.edf)
        paths = write_outputs(args.out, rows, summary, name=name, start=start)
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(format_summary(summary))
    return 0

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

The pieces: :mod:`host_tools.device.epoch_table` (the rows and how frames fill them in),
:mod:`host_tools.device.connection` (handshake, reset detection, reconnect), this module's
:class:`Monitor` (dispatching frames, the streaming loop, the end of the night),
:mod:`host_tools.device.monitor_summary`, :mod:`host_tools.device.night_report` (sleep
statistics), :mod:`host_tools.device.monitor_outputs` (the files) and
:mod:`host_tools.device.night_folder` (``--out``: durable, ``--resume``, early stops).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from host_tools import constants as C
from host_tools.device import protocol as P
from host_tools.device.connection import DeviceConnection, ResetEvent
from host_tools.device.epoch_table import SOURCE_GAP, SOURCE_LOST, EpochRow, EpochTable
from host_tools.device.live_view import LiveView, ViewState
from host_tools.device.monitor_outputs import previous_night
from host_tools.device.monitor_summary import format_summary, summarize
from host_tools.device.night_folder import NightFolder, Terminated, run_night
from host_tools.device.night_report import format_report, night_statistics
from host_tools.errors import SleepEdgeError

BPE = C.BLOCKS_PER_EPOCH


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
    tail_wait_s: float = 2.0  #: after the last block, how long to wait for the last epoch before resending
    deadline_fraction: float | None = None


def _epoch_range(opts: MonitorOptions) -> tuple[int, int]:
    """(first epoch, number of epochs) to stream, checked against the recording."""
    total_epochs = len(opts.signal) // C.EPOCH_SAMPLES
    if total_epochs == 0:
        raise SleepEdgeError("the recording is shorter than one 30-s epoch")
    if not 0 <= opts.start_epoch < total_epochs:
        raise SleepEdgeError(f"--start-epoch {opts.start_epoch}: the recording has {total_epochs} epochs")
    n = total_epochs - opts.start_epoch if opts.n_epochs is None else opts.n_epochs
    if n < 1:
        raise SleepEdgeError(f"--epochs {n}: need at least 1")
    return opts.start_epoch, min(n, total_epochs - opts.start_epoch)


class Monitor:
    """Runs one session: see :func:`run_monitor`.

    ``rows`` (epoch -> :class:`EpochRow`) and ``cond`` (held while frames update them) are public.
    ``on_done`` is called from the streaming thread (so its errors stop the night) with each
    completed epoch's row, in epoch order, up to the first epoch still waiting for its FINAL.
    """

    def __init__(self, opts: MonitorOptions, view: LiveView | None = None,
                 on_done: Callable[[list[EpochRow]], None] | None = None) -> None:
        self.o = opts
        self.on_done = on_done  #: gets each completed epoch once, in order (results.csv)
        self.first, self.n = _epoch_range(opts)
        self.table = EpochTable(self.first, self.n, opts.expert)
        self.rows = self.table.rows
        self.view = view or LiveView(plain=True)
        self.state = ViewState(title=opts.title, total_epochs=self.n)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.conn = DeviceConnection(opts.port, self.cond, self.view.message, baudrate=opts.baudrate,
                                     threshold=opts.threshold, timeout_ms=opts.timeout_ms,
                                     hello_timeout_s=opts.hello_timeout_s,
                                     reconnect_timeout_s=opts.reconnect_timeout_s)
        self.resets: list[ResetEvent] = []
        self.flow_stalls = 0
        self.rewinder = P.Rewinder()  #: SAMPLES_ARQ: blocks the device asked for again
        self.tail_resends = 0
        self.bridge: Any = None
        self.client: Any = None

    @property
    def hello(self) -> P.Hello | None:
        return self.conn.hello

    @property
    def link(self) -> Any:
        return self.conn.link

    # -- reader-thread callbacks
    def _on_message(self, msg: Any) -> None:
        with self.cond:
            if isinstance(msg, P.Hello):
                self._on_hello(msg)
            elif isinstance(msg, P.Result):
                if self.bridge is not None:
                    self.bridge.on_result(msg)
                row = self.table.on_result(msg)
                if row is not None:
                    self._show_result(row)
            elif isinstance(msg, P.Escalate):
                self.table.on_escalate(msg)
                if self.bridge is not None:
                    self.bridge.on_escalate(msg)
            elif isinstance(msg, P.Final):
                if self.bridge is not None:
                    self.bridge.on_final(msg)  # answered = used by the device
                row = self.table.on_final(msg)
                if row is not None:
                    self._show_final(row)
            elif isinstance(msg, P.Nack):
                self.rewinder.on_nack(msg)  # the streaming loop goes back (docs/protocol.md)
            else:
                self.conn.on_link_message(msg)
            self.cond.notify_all()

    def _on_hello(self, msg: P.Hello) -> None:
        if self.bridge is not None:
            self.bridge.on_hello(msg)
        if self.conn.on_hello(msg) and self.bridge is not None:
            self.bridge.device_reset()  # an unsolicited HELLO: the device rebooted

    def _on_record(self, rec: Any) -> None:
        """The escalation bridge finished one escalation (answered or failed)."""
        with self.cond:
            self.table.on_cloud_answer(rec.epoch, rec.cloud_stage)
            if rec.error:
                self.view.message(f"escalation of epoch {rec.epoch} failed: {rec.error}")

    # -- the live view
    def _show_result(self, row: EpochRow) -> None:
        st = self.state
        st.current_epoch, st.current_stage = row.epoch, row.edge_stage
        st.current_confidence, st.current_source = row.edge_confidence, "edge"

    def _show_final(self, row: EpochRow) -> None:
        st = self.state
        st.done_epochs += 1
        st.recent.append((row.final_stage, row.escalated))
        source = f"artefact: {row.quality}" if row.final_source == "artefact" else row.final_source
        if st.current_epoch == row.epoch:
            st.current_stage, st.current_source = row.final_stage, source
        self.view.epoch_line(row.epoch, row.onset_s, row.edge_stage, row.edge_confidence,
                             row.final_stage, source)

    def _refresh_view(self, t0: float, block: int, force: bool = False) -> None:
        st = self.state
        st.elapsed_s = time.monotonic() - t0
        st.streamed_s = (block - self.first * BPE) * C.SAMPLES_PER_BLOCK / C.FS_HZ
        c = self.link.counters
        st.link = {"tx kB": c.tx_bytes // 1024, "rx kB": c.rx_bytes // 1024, "frames in": c.frames_in,
                   "bad crc": c.bad_crc, "garbage B": c.garbage_bytes}
        if self.conn.last_status is not None:
            st.link["dev bad crc"] = self.conn.last_status.bad_crc
            st.link["dev missing"] = self.conn.last_status.missing_blocks
        if self.bridge is not None:
            s = self.bridge.stats()
            st.escalations, st.answered, st.failed = s["escalations"], s["answered"], s["failed"]
            st.with_context = s["with_context"]
        else:
            st.escalations = sum(r.escalated for r in self.rows.values())
        self.view.update(st, force)

    # -- resets
    def _handle_reset(self, block: int) -> int:
        """The device rebooted or the link dropped: reconnect, reconfigure, and return the
        block to resume from (the next epoch boundary)."""
        reconnected = self.conn.reconnect_if_dropped(block)
        if reconnected and self.bridge is not None:
            self.bridge.device_reset()
        self.conn.configure()
        resume = -(-block // BPE) * BPE
        with self.cond:
            gap = [r.epoch for r in self.table.close(self.table.open_epochs(before=resume // BPE), SOURCE_GAP)]
            for _ in gap:
                self.state.recent.append((None, False))
                self.state.done_epochs += 1
            self.resets.append(ResetEvent(block, resume // BPE, reconnected, gap))
            self.state.resets = len(self.resets)
            self.state.gap_epochs += len(gap)
        self.view.message(f"device reset at block {block}: resuming at epoch {resume // BPE}; "
                          f"{len(gap)} epoch(s) without a result")
        return resume

    # -- the session
    def run(self) -> dict[str, Any]:
        """Stream, collect, and return the summary (rows are in ``self.rows``)."""
        self.t0 = time.monotonic()
        try:
            self._start()
            with self.view:
                self._stream(self.t0)
                self._drain(self.t0)
        except BaseException:
            self._stop(wait_s=0.0)  # Ctrl-C, SIGTERM, the device lost: do not wait for the cloud
            raise
        self._stop()
        self.save_done()
        return self.summary(time.monotonic() - self.t0)

    def save_done(self) -> None:
        """Hand the newly completed rows to ``on_done``."""
        if self.on_done is None:
            return
        with self.cond:
            done = self.table.take_done()
        if done:
            self.on_done(done)

    def _start(self) -> None:
        """Connect to the device, and start the escalation proxy when there is a cloud."""
        from host_tools.device.proxy import DEFAULT_DEADLINE_FRACTION, CloudClient, EscalationBridge

        if self.o.cloud:
            self.client = CloudClient(self.o.cloud, self.o.token or "")
        self.conn.open(self._on_message)
        if self.client is not None:
            self.bridge = EscalationBridge(
                self.client, self.link.send, device_id=self.o.device_id,
                timeout_ms=self.conn.escalation_timeout_ms,
                deadline_fraction=self.o.deadline_fraction or DEFAULT_DEADLINE_FRACTION, on_record=self._on_record,
                model_hash=self.hello.model_hash if self.hello else None)
        self.state.device = (f"{self.o.port}  firmware {self.hello.fw_version}  model {self.hello.model_hash:08x}"
                             if self.hello else self.o.port)

    def _stop(self, wait_s: float = 10.0) -> None:
        if self.bridge is not None:
            self.bridge.wait_idle(wait_s)
            self.bridge.close()
        if self.client is not None:
            self.client.close()
        self.conn.close()

    def _stream(self, t0: float) -> None:
        """Send every block of the streamed epochs, paced, with flow control and resets."""
        start_block, end_block = self.first * BPE, (self.first + self.n) * BPE
        block = start_block
        pace_t0, pace_b0 = time.monotonic(), start_block
        sig = self.o.signal
        while block < end_block:
            if self.conn.lost:
                block = self._handle_reset(block)
                self.rewinder.clear()
                pace_t0, pace_b0 = time.monotonic(), block
                continue
            block = self.rewinder.next_block(block)
            if block % BPE == 0 and not self._wait_for_window(block // BPE):
                continue
            if self.rewinder.pending:  # a NACK came while waiting: go back first
                continue
            if self.o.speed:
                delay = pace_t0 + (block - pace_b0) * (C.SAMPLES_PER_BLOCK / C.FS_HZ) / self.o.speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            chunk = sig[block * C.SAMPLES_PER_BLOCK:(block + 1) * C.SAMPLES_PER_BLOCK]
            if not self.conn.send(P.SamplesArq(block, chunk)):
                continue
            block += 1
            self.save_done()
            self._refresh_view(t0, block)
            if block == end_block:
                block = self._tail_resend(end_block)

    def _tail_resend(self, end_block: int) -> int:
        """After the last block: a lost block near the end has no later block to reveal it to the
        device, so when the last epoch goes unreported, send again from the first unreported
        epoch (the device drops what it already has as stale). Returns the block to go on from."""
        last = self.first + self.n - 1
        self.conn.wait(lambda: self.table.reported_upto >= last or self.rewinder.pending or self.conn.lost,
                       self.o.tail_wait_s)
        if self.rewinder.pending or self.conn.lost:
            return self.rewinder.next_block(end_block) if not self.conn.lost else end_block
        if self.table.reported_upto >= last or self.tail_resends >= 2:
            return end_block
        self.tail_resends += 1
        return max(self.first, self.table.reported_upto + 1) * BPE

    def _wait_for_window(self, epoch: int) -> bool:
        """Flow control before the first block of ``epoch``: wait (bounded) until the device has
        reported on ``epoch - window_epochs``. False when the device went away meanwhile."""
        need = epoch - self.o.window_epochs
        if need < self.first:
            return True
        if not self.conn.wait(lambda: self.table.reported_upto >= need or self.conn.lost or self.rewinder.pending,
                              self.o.flow_timeout_s):
            self.flow_stalls += 1
        return not self.conn.lost

    def _drain(self, t0: float) -> None:
        """Wait for the last FINALs (escalations may take up to the device timeout), then ask
        for a last STATUS."""
        end_block = (self.first + self.n) * BPE
        deadline = time.monotonic() + self.conn.escalation_timeout_ms / 1000.0 + self.o.final_grace_s
        while time.monotonic() < deadline:
            if self.conn.wait(lambda: self.table.all_final() or self.conn.lost, 0.2):
                break
            self.save_done()
            self._refresh_view(t0, end_block)
        if self.conn.lost:
            # The device went away during the tail: what it did not finish is a gap.
            try:
                self._handle_reset(end_block)
            except SleepEdgeError as exc:
                self.view.message(str(exc))
                with self.cond:
                    self.table.close(self.table.open_epochs(), SOURCE_GAP)
        self.conn.request_status()
        with self.cond:
            self.table.close(self.table.open_epochs(), SOURCE_LOST)
        self._refresh_view(t0, end_block, force=True)

    # -- results
    def summary(self, elapsed_s: float, rows: list[EpochRow] | None = None) -> dict[str, Any]:
        """The night's summary (see :func:`host_tools.device.monitor_summary.summarize`) of
        ``rows`` (default: every streamed epoch), with the artefacts by reason and the
        lost-block recovery counters (docs/signal-quality.md, docs/protocol.md 3.1)."""
        rows = list(self.table) if rows is None else rows
        summary = summarize(rows, first_epoch=self.first, elapsed_s=elapsed_s,
                            hello=self.hello, escalation=self.bridge.stats() if self.bridge is not None else None,
                            link_host=self.link.counters if self.link is not None else None,
                            link_device=self.conn.last_status, device_errors=self.conn.device_errors,
                            resets=self.resets, flow_stalls=self.flow_stalls)
        artefacts: dict[str, int] = {}
        for r in rows:
            if r.final_source == "artefact":
                artefacts[r.quality] = artefacts.get(r.quality, 0) + 1
        summary["artefacts"] = artefacts
        summary["link_recovery"] = {"nacks": self.rewinder.nacks, "resent_blocks": self.rewinder.resent_blocks,
                                    "tail_resends": self.tail_resends}
        return summary


def run_monitor(opts: MonitorOptions, view: LiveView | None = None) -> tuple[list[EpochRow], dict[str, Any]]:
    """Stream ``opts.signal`` to the device at ``opts.port``; return the rows and the summary."""
    m = Monitor(opts, view)
    summary = m.run()
    return list(m.table), summary


# --- inputs ----------------------------------------------------------------------

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
    parser.add_argument("--reconnect-s", type=float, default=30.0,
                        help="how long to wait for a device that dropped off the port (default: 30)")
    parser.add_argument("--out", default=None,
                        help="write results.csv (as the night goes), summary.json, report.md, hypnogram EDF+ and PNG")
    parser.add_argument("--resume", action="store_true",
                        help="continue the night in --out from the last epoch of its results.csv")
    parser.add_argument("--force", action="store_true", help="overwrite the results.csv in --out")
    parser.add_argument("--plain", action="store_true", help="plain lines instead of the live view")


def _check_args(args: argparse.Namespace, token: str | None) -> None:
    if args.cloud and not token:
        raise SleepEdgeError("--cloud needs --token (or $SLEEPEDGE_CLOUD_TOKEN)")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise SleepEdgeError(f"--threshold {args.threshold}: must be within [0, 1]")
    if args.timeout_ms is not None and not 1 <= args.timeout_ms <= 3_600_000:
        raise SleepEdgeError(f"--timeout-ms {args.timeout_ms}: must be within 1..3600000")
    if (args.resume or args.force) and not args.out:
        raise SleepEdgeError(f"{'--resume' if args.resume else '--force'} needs --out (the night's folder)")
    if args.resume and args.force:
        raise SleepEdgeError("--resume continues the night in --out, --force overwrites it: choose one")


def _resume_range(previous: list[EpochRow], args: argparse.Namespace, n_total: int, csv_path: Path) -> tuple[int, int]:
    """(first epoch, epochs) still to stream of the night ``--start-epoch``/``--epochs`` whose
    first rows are ``previous``."""
    if previous[0].epoch != args.start_epoch:
        raise SleepEdgeError(f"{csv_path}: the night there starts at epoch {previous[0].epoch}, not at "
                             f"--start-epoch {args.start_epoch}: give the same --start-epoch/--epochs to resume it")
    end = n_total if args.epochs is None else min(n_total, args.start_epoch + args.epochs)
    return previous[-1].epoch + 1, end - previous[-1].epoch - 1


def run(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("SLEEPEDGE_CLOUD_TOKEN")
    _check_args(args, token)
    signal_i16, start = load_recording(args.edf, args.channel)
    n_total = len(signal_i16) // C.EPOCH_SAMPLES
    expert = expert_labels(args.hypno, n_total, start, stage_seconds=args.stage_seconds, codes=args.codes,
                           signal_s=len(signal_i16) / C.FS_HZ, psg=args.edf) if args.hypno else None
    out = Path(args.out) if args.out else None
    previous = previous_night(out, resume=args.resume, force=args.force) if out else []
    first, n = args.start_epoch, args.epochs
    if previous:
        first, n = _resume_range(previous, args, n_total, out / "results.csv")  # type: ignore[operator]
        print(f"resuming the night in {out} at epoch {first} ({len(previous)} epochs done)")
    from host_tools.data.recordings import recording_id

    name = recording_id(args.edf)
    night = NightFolder(out, previous, name=name, start=start) if out else None
    if previous and n <= 0:
        print(f"{out}: the night is complete; nothing left to stream")
        night.finish(None, complete=True)  # type: ignore[union-attr]
        return 0
    opts = MonitorOptions(port=args.port, signal=signal_i16, start_epoch=first, n_epochs=n,
                          speed=args.speed, cloud=args.cloud, token=token, threshold=args.threshold,
                          timeout_ms=args.timeout_ms, expert=expert, baudrate=args.baud,
                          reconnect_timeout_s=args.reconnect_s, title=f"SleepEdge monitor: {Path(args.edf).name}")
    view = LiveView(plain=True if args.plain else None)
    if night is None:
        rows, summary = run_monitor(opts, view)
        print(format_summary(summary))
        print()
        print(format_report(night_statistics([r.final_stage for r in rows], [r.final_source for r in rows])))
        return 0
    try:
        run_night(opts, view, night)
    except Terminated:
        print("sleepedge: terminated", file=sys.stderr)
        return 143
    return 0

"""The folder of one monitored night (``sleepedge monitor --out``): results.csv as the night
goes, everything else at the end — or when the night stops early (Ctrl-C, SIGTERM, the device
lost), with what was completed and ``"complete": false``. See
:mod:`host_tools.device.monitor_outputs` for the files themselves."""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from host_tools.device.epoch_table import EpochRow
from host_tools.device.monitor_outputs import ResultsLog, write_outputs
from host_tools.device.monitor_summary import add_night_report, format_summary, summarize
from host_tools.errors import SleepEdgeError

if TYPE_CHECKING:
    from host_tools.device.monitor import Monitor


class Terminated(Exception):
    """SIGTERM arrived: stop the night like Ctrl-C, keeping what was done."""


@contextlib.contextmanager
def sigterm_stops_the_night() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` in the main thread (the default would kill the
    process without writing the outputs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class NightFolder:
    """The night's folder ``out``; ``previous`` are the rows of the night being resumed.

    ``extra`` returns keys added to summary.json before the report is made (``make demo``: the
    recording's origin, the wall time); ``print_paths`` prints the files written.
    """

    def __init__(self, out: Path, previous: list[EpochRow], *, name: str, start: dt.datetime,
                 extra: Callable[[], dict[str, Any]] | None = None, print_paths: bool = True) -> None:
        self.out, self.previous, self.name, self.start = out, previous, name, start
        self.extra, self.print_paths = extra, print_paths
        self.log: ResultsLog | None = None

    def open_log(self) -> Callable[[list[EpochRow]], None]:
        """Start results.csv (the previous rows, if any); returns what appends completed rows."""
        self.log = ResultsLog(self.out, self.previous)
        return self.log.append

    def finish(self, m: Monitor | None, *, complete: bool, reason: str | None = None) -> dict[str, Any]:
        """Write the outputs of the rows saved so far (the previous session's and this one's),
        print the summary and the night's report, and return the summary."""
        if m is not None:
            m.save_done()
        if self.log is not None:
            self.log.close()
        rows = self.previous + (m.table.saved_rows() if m is not None else [])
        if m is not None:
            summary = m.summary(time.monotonic() - m.t0, rows)
        else:
            summary = summarize(rows, first_epoch=rows[0].epoch, elapsed_s=0.0, hello=None, escalation=None,
                                link_host=None, link_device=None, device_errors={}, resets=[], flow_stalls=0)
        if self.previous:
            summary["resumed_at_epoch"] = self.previous[-1].epoch + 1
        if self.extra is not None:
            summary.update(self.extra())
        report = add_night_report(summary, rows, complete=complete, reason=reason)
        paths = write_outputs(self.out, rows, summary, name=self.name, start=self.start, report_md=report)
        if self.print_paths:
            print(f"wrote {', '.join(str(p) for p in paths.values())}")
        if not complete:
            print(f"the night stopped early ({reason}): {len(rows)} completed epochs kept in {self.out}; "
                  f"continue it with --resume")
        print(format_summary(summary))
        print()
        print(report)
        return summary

    def finish_quietly(self, m: Monitor, *, reason: str) -> None:
        """:meth:`finish` on the way out of an error: the error is what the user must see, so a
        second one (the disk is still full) is dropped."""
        try:
            self.finish(m, complete=False, reason=reason)
        except SleepEdgeError:
            pass


def run_night(opts: Any, view: Any, folder: NightFolder) -> dict[str, Any]:
    """Run a :class:`~host_tools.device.monitor.Monitor` with its rows saved in ``folder`` as they
    complete, and finish the folder at the end or when the night stops early (then re-raise:
    KeyboardInterrupt, :class:`Terminated`, SleepEdgeError). Returns the summary."""
    from host_tools.device.monitor import Monitor

    m = Monitor(opts, view, on_done=folder.open_log())
    with sigterm_stops_the_night():
        try:
            m.run()
        except KeyboardInterrupt:
            folder.finish(m, complete=False, reason="interrupted (Ctrl-C)")
            raise
        except Terminated:
            folder.finish(m, complete=False, reason="terminated (SIGTERM)")
            raise
        except SleepEdgeError as exc:
            folder.finish_quietly(m, reason=f"stopped: {exc}")
            raise
    return folder.finish(m, complete=True)

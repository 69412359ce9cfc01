"""Helpers of the tests that stop a `sleepedge monitor --out` night part-way (test_monitor_durable
with the fake device, test_monitor_qemu with the real firmware): read the growing results.csv,
lose the device after some epochs, and check what the folder holds then."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path
from typing import Callable


def results_rows(out: Path) -> list[dict[str, str]]:
    """The rows of ``out/results.csv`` as dicts; none before the file exists."""
    if not (out / "results.csv").exists():
        return []
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def wait_rows(out: Path, k: int, timeout_s: float = 120.0) -> bool:
    """Wait until results.csv holds at least ``k`` epochs (it grows during the night); False
    when it did not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(results_rows(out)) >= k:
            return True
        time.sleep(0.05)
    return False


def monitor_losing_device(argv: list[str], out: Path, k: int, lose: Callable[[], None]) -> int:
    """``sleepedge <argv>`` (a monitor night into ``out``) in this process, while a thread calls
    ``lose()`` (the device goes away) once results.csv holds ``k`` epochs; returns the exit code.

    ``lose()`` is called after the wait even if the night never got that far, so the monitor
    cannot hang; the caller's checks on the rows then fail.
    """
    from host_tools.cli import main

    def lose_after_k_epochs() -> None:
        wait_rows(out, k)
        lose()

    killer = threading.Thread(target=lose_after_k_epochs, daemon=True)
    killer.start()
    rc = main(argv)
    killer.join(10)
    return rc


def check_device_lost(rc: int, err: str, port: str, out: Path, *, at_least: int, n: int) -> list[dict[str, str]]:
    """A night whose device went away for good after ``at_least`` of its ``n`` epochs: exit 2 with
    one line naming the port, and a folder marked incomplete that holds the completed epochs.
    Returns those rows (their labels are the caller's to check)."""
    assert rc == 2 and f"--port {port}" in err and "Traceback" not in err
    rows = results_rows(out)
    assert at_least <= len(rows) < n, "the device must have gone in the middle of the night"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["reason"].startswith("stopped: --port")
    assert summary["epochs_streamed"] == len(rows)
    return rows

"""`sleepedge monitor --out`: a night that stops (Ctrl-C, SIGTERM, the device lost, a full disk)
keeps every completed epoch, `--resume` continues it, nothing is overwritten without `--force`."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.cli import main
from host_tools.data import edf_io
from host_tools.data.filters import from_device_samples, to_device_samples
from host_tools.device import monitor_outputs
from host_tools.device.epoch_table import EpochRow
from host_tools.device.monitor import expert_labels
from host_tools.device.monitor_outputs import ResultsLog, read_results
from tests.fake_device import FakeDevice, edge_reference, stream_signal
from tests.monitor_helpers import check_device_lost, monitor_losing_device, results_rows, wait_rows
from tests.test_monitor import START

REPO = Path(__file__).resolve().parent.parent
N = 14


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """A PSG of N epochs and its hypnogram; the device samples as the monitor will send them."""
    d = tmp_path_factory.mktemp("night")
    psg, hyp = d / "SC4981E0-PSG.edf", d / "SC4981EC-Hypnogram.edf"
    edf_io.write_psg(psg, {"EEG Fpz-Cz": from_device_samples(stream_signal(N, seed=8)).astype(np.float64)},
                     C.FS_HZ, START)
    expert = np.random.default_rng(2).integers(0, C.N_CLASSES, N)
    texts = {0: "Sleep stage W", 1: "Sleep stage 1", 2: "Sleep stage 2", 3: "Sleep stage 3", 4: "Sleep stage R"}
    edf_io.write_hypnogram(hyp, [30 * k for k in range(N)], [30] * N, [texts[int(s)] for s in expert], START)
    x_uv, _fs, _start = edf_io.read_psg_channel(psg, "Fpz-Cz")
    return psg, hyp, to_device_samples(x_uv)


def _args(dev: FakeDevice, psg: Path, hyp: Path, out: Path, *extra: str) -> list[str]:
    return ["monitor", "--port", dev.url, "--edf", str(psg), "--hypno", str(hyp), "--threshold", "0.0",
            "--timeout-ms", "300", "--out", str(out), "--plain", *extra]


def _check_labels(rows: list[dict[str, str]], sig: np.ndarray, first: int, n: int) -> None:
    """Rows ``first .. first + n - 1`` are the device's labels of a stream started at ``first``."""
    ref = edge_reference(sig, first, n, threshold=0.0)
    assert [(int(r["epoch"]), r["final_stage"], r["final_source"]) for r in rows[first:first + n]] == \
        [(e, C.STAGES[s], "edge") for e, s, *_ in ref]


def _resume_and_check(psg: Path, hyp: Path, sig: np.ndarray, out: Path, k: int, capsys,
                      same_device: FakeDevice | None = None) -> None:
    """--resume: every epoch exactly once, the first k untouched. On a restarted device the
    labels from epoch k are those of a stream started there; on the device that kept running,
    those of the uninterrupted night."""
    before = results_rows(out)
    if same_device is not None:
        assert main(_args(same_device, psg, hyp, out, "--resume")) == 0
    else:
        with FakeDevice() as dev:
            assert main(_args(dev, psg, hyp, out, "--resume")) == 0
    printed = capsys.readouterr().out
    assert f"resuming the night in {out} at epoch {k}" in printed
    rows = results_rows(out)
    assert [int(r["epoch"]) for r in rows] == list(range(N))
    assert rows[:k] == before
    if same_device is None:
        _check_labels(rows, sig, k, N - k)  # the restarted device filters from rest at epoch k
    else:
        # It drops the blocks it already has (stale) and carries on with its filter state: the
        # uninterrupted night's labels, except an epoch it finished while no host listened.
        ref = edge_reference(sig, 0, N, threshold=0.0)
        lost = [r for r in rows[k:] if r["final_source"] == "lost"]
        assert len(lost) <= 2
        assert all(r["final_stage"] == C.STAGES[ref[int(r["epoch"])][1]] for r in rows if r not in lost)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["resumed_at_epoch"] == k
    assert summary["epochs_streamed"] == N and summary["sleep_statistics"]["epochs"] == N
    assert summary["sleep_statistics"]["statistics"]["TIB"] == N / 2
    back = expert_labels(out / "SC4981E0-Hypnogram.edf", N)
    assert [C.STAGES[s] for s in back] == [r["final_stage"] for r in rows]
    assert "total sleep time (TST)" in (out / "report.md").read_text() and "time in bed" in printed


@pytest.mark.parametrize("sig_name", ["SIGINT", "SIGTERM"])
def test_stopped_night_keeps_completed_epochs_and_resumes(night, tmp_path: Path, capsys, sig_name: str) -> None:
    """Ctrl-C, then --resume on the same (still running) device; SIGTERM, then --resume on a
    restarted one."""
    psg, hyp, sig = night
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with FakeDevice() as dev:
        # Paced at 30x real time (1 s per epoch) so the signal lands mid-night even on a busy machine.
        # Ctrl-C as at a terminal: a job started in the background by a non-interactive shell (as
        # CI may run this suite) inherits SIGINT ignored, and Python then installs no handler.
        proc = subprocess.Popen([sys.executable, "-m", "host_tools", *_args(dev, psg, hyp, out, "--speed", "30")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            assert wait_rows(out, 3, timeout_s=60), "results.csv did not reach 3 rows"
            assert proc.poll() is None, "the night ended before the signal could be sent"
            proc.send_signal(getattr(signal, sig_name))
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
        if sig_name == "SIGINT":
            _check_stopped(out, sig, proc.returncode, stdout, stderr, sig_name)
            _resume_and_check(psg, hyp, sig, out, len(results_rows(out)), capsys, same_device=dev)
            return
    _check_stopped(out, sig, proc.returncode, stdout, stderr, sig_name)
    _resume_and_check(psg, hyp, sig, out, len(results_rows(out)), capsys)


def _check_stopped(out: Path, sig: np.ndarray, returncode: int, stdout: str, stderr: str, sig_name: str) -> None:
    """The folder of a night stopped by ``sig_name``: every completed epoch, complete = false."""
    assert returncode == (130 if sig_name == "SIGINT" else 143), stderr
    assert ("sleepedge: interrupted" if sig_name == "SIGINT" else "sleepedge: terminated") in stderr
    assert "Traceback" not in stderr
    rows = results_rows(out)
    k = len(rows)
    assert 3 <= k < N, "the night must have stopped in the middle"
    _check_labels(rows, sig, 0, k)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False
    assert ("Ctrl-C" if sig_name == "SIGINT" else "SIGTERM") in summary["reason"]
    assert summary["epochs_streamed"] == k and summary["sleep_statistics"]["epochs"] == k
    assert "Incomplete night" in (out / "report.md").read_text()
    back = expert_labels(out / "SC4981E0-Hypnogram.edf", N)  # the EDF+ covers the k epochs, no more
    assert [C.STAGES[s] for s in back[:k]] == [r["final_stage"] for r in rows] and (back[k:] == -1).all()
    assert "continue it with --resume" in stdout
    assert not list(out.glob(".*tmp*")), "no temporary files left behind"


def test_device_lost_mid_night_keeps_outputs_and_resumes(night, tmp_path: Path, capsys) -> None:
    """The device goes away for good (QEMU killed): exit 2 naming the port, the folder holds
    every completed epoch, and --resume on a restarted device completes the night."""
    psg, hyp, sig = night
    out = tmp_path / "out"
    dev = FakeDevice().__enter__()
    rc = monitor_losing_device(_args(dev, psg, hyp, out, "--speed", "60", "--reconnect-s", "1"), out, 4,
                               lambda: dev.__exit__(None, None, None))
    rows = check_device_lost(rc, capsys.readouterr().err, dev.url, out, at_least=4, n=N)
    k = len(rows)
    _check_labels(rows, sig, 0, k)
    _resume_and_check(psg, hyp, sig, out, k, capsys)


def test_existing_results_are_not_overwritten_without_force(night, tmp_path: Path, capsys) -> None:
    psg, hyp, _sig = night
    out = tmp_path / "out"
    with FakeDevice() as dev:
        assert main(_args(dev, psg, hyp, out, "--epochs", "6")) == 0
        before = (out / "results.csv").read_text()
        capsys.readouterr()
        assert main(_args(dev, psg, hyp, out, "--start-epoch", "3")) == 2
        err = capsys.readouterr().err
        assert err.strip() == (f"sleepedge: error: {out / 'results.csv'} exists: add --resume to continue that "
                               "night, or --force to overwrite it")
        assert (out / "results.csv").read_text() == before
        # Resuming with another start is refused too (it is not that night).
        assert main(_args(dev, psg, hyp, out, "--start-epoch", "3", "--resume")) == 2
        assert "starts at epoch 0, not at --start-epoch 3" in capsys.readouterr().err
        assert main(_args(dev, psg, hyp, out, "--start-epoch", "10", "--force")) == 0
    assert [int(r["epoch"]) for r in results_rows(out)] == list(range(10, N))


def test_resume_of_a_complete_night_streams_nothing(night, tmp_path: Path, capsys) -> None:
    psg, hyp, _sig = night
    out = tmp_path / "out"
    with FakeDevice() as dev:
        assert main(_args(dev, psg, hyp, out, "--epochs", "5")) == 0
        before = results_rows(out)
        blocks = dev.blocks_total
        assert main(_args(dev, psg, hyp, out, "--epochs", "5", "--resume")) == 0
        assert dev.blocks_total == blocks
    assert "the night is complete" in capsys.readouterr().out
    assert results_rows(out) == before


def test_full_disk_names_the_file(night, tmp_path: Path, capsys, monkeypatch) -> None:
    psg, hyp, _sig = night
    out = tmp_path / "out"

    def full_for_summary(path, *a, **k):  # the disk fills up when summary.json is written
        if "summary" in Path(path).name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open(path, *a, **k)

    monkeypatch.setattr(monitor_outputs, "open", full_for_summary, raising=False)
    with FakeDevice() as dev:
        rc = main(_args(dev, psg, hyp, out, "--epochs", "5"))
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == f"sleepedge: error: cannot write {out / 'summary.json'}: No space left on device"
    assert not (out / "summary.json").exists() and not list(out.glob(".*tmp*"))
    assert [int(r["epoch"]) for r in results_rows(out)] == list(range(5)), "the completed epochs are kept"


def test_results_log_appends_and_a_torn_line_is_dropped(tmp_path: Path) -> None:
    rows = [EpochRow(e, edge_stage=e % 5, edge_confidence=0.5, final_stage=e % 5, final_source="edge",
                     expert_stage=1) for e in range(7, 11)]
    log = ResultsLog(tmp_path, rows[:1])
    log.append(rows[1:3])
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 4  # on disk before close
    log.close()
    with open(tmp_path / "results.csv", "a") as f:
        f.write("10,300,N3,0.5")  # the host died in the middle of a line
    back = read_results(tmp_path / "results.csv")
    assert back == rows[:3]
    (tmp_path / "results.csv").write_text("epoch,stage\n1,W\n")
    with pytest.raises(Exception, match="not a results.csv"):
        read_results(tmp_path / "results.csv")


def test_full_disk_mid_night_names_results_csv(night, tmp_path: Path, capsys, monkeypatch) -> None:
    """The disk fills up while rows are appended: one line naming results.csv, exit 2, and the
    folder still holds the completed epochs with complete = false."""
    psg, hyp, _sig = night
    out = tmp_path / "out"
    real_open = open

    class FillsUp:
        def __init__(self, f) -> None:
            self.f, self.lines = f, 0

        def write(self, text: str) -> int:
            self.lines += text.count("\n")
            if self.lines > 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(text)

        def __getattr__(self, name: str):
            return getattr(self.f, name)

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return FillsUp(f) if Path(path).name == "results.csv" and "a" in mode else f

    monkeypatch.setattr(monitor_outputs, "open", fake_open, raising=False)
    with FakeDevice() as dev:
        rc = main(_args(dev, psg, hyp, out, "--epochs", "8"))
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == f"sleepedge: error: cannot write {out / 'results.csv'}: No space left on device"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["reason"].startswith("stopped: cannot write")
    rows = results_rows(out)
    assert 3 <= len(rows) < 8 and [int(r["epoch"]) for r in rows] == list(range(len(rows)))

"""`sleepedge monitor` against the fake device: outputs, corrupted link, device reset -> gap."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.data import edf_io
from host_tools.cli import main
from host_tools.data.filters import from_device_samples
from host_tools.device.live_view import LiveView, ViewState
from host_tools.device.monitor import MonitorOptions, expert_labels, run_monitor, sleep_period
from tests.fake_device import FakeDevice, FakeDeviceFaults, TcpRelay, edge_reference, stream_signal

N = 14
START = dt.datetime(2026, 1, 2, 22, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A small PSG + expert hypnogram written with the project's EDF writers."""
    d = tmp_path_factory.mktemp("rec")
    sig = stream_signal(N + 2, seed=5)
    psg, hyp = d / "SC4991E0-PSG.edf", d / "SC4991EC-Hypnogram.edf"
    edf_io.write_psg(psg, {"EEG Fpz-Cz": from_device_samples(sig).astype(np.float64)}, C.FS_HZ, START)
    expert = np.random.default_rng(1).integers(0, C.N_CLASSES, N + 2)
    texts = {0: "Sleep stage W", 1: "Sleep stage 1", 2: "Sleep stage 2", 3: "Sleep stage 4", 4: "Sleep stage R"}
    edf_io.write_hypnogram(hyp, [30 * k for k in range(N + 2)], [30] * (N + 2), [texts[int(s)] for s in expert], START)
    return psg, hyp, sig, expert


def test_cli_writes_all_outputs(recording, tmp_path: Path, capsys) -> None:
    psg, hyp, _sig, expert = recording
    signal, _fs, _start = edf_io.read_psg_channel(psg, "Fpz-Cz")
    from host_tools.data.filters import to_device_samples

    dev_sig = to_device_samples(signal)
    ref = edge_reference(dev_sig, 1, N, threshold=0.9)
    with FakeDevice() as dev:
        rc = main(["monitor", "--port", dev.url, "--edf", str(psg), "--hypno", str(hyp), "--start-epoch", "1",
                   "--epochs", str(N), "--threshold", "0.9", "--timeout-ms", "300", "--out", str(tmp_path), "--plain"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "edge only vs expert" in out
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, N + 1))
    assert list(rows[0]) == ["epoch", "onset_s", "edge_stage", "edge_confidence", "escalated", "cloud_stage",
                             "final_stage", "final_source", "expert_stage", "quality"]
    for r, (epoch, stage, conf, esc, _f) in zip(rows, ref):
        assert int(r["onset_s"]) == 30 * epoch
        assert r["edge_stage"] == C.STAGES[stage] and int(r["escalated"]) == esc
        assert abs(float(r["edge_confidence"]) - conf) < 1e-4
        # No cloud: unsure epochs time out and keep the edge label.
        assert (r["final_source"], r["final_stage"]) == (("timeout" if esc else "edge"), C.STAGES[stage])
        assert r["expert_stage"] == C.STAGES[expert[epoch]]
    summary = json.loads((tmp_path / "summary.json").read_text())
    truth = np.array([expert[e] for e, *_ in ref])
    pred = np.array([s for _e, s, *_ in ref])
    assert summary["edge_only"]["n"] == N
    assert summary["edge_only"]["accuracy"] == pytest.approx(float((truth == pred).mean()))
    assert summary["final"]["accuracy"] == pytest.approx(float((truth == pred).mean()))
    assert summary["escalation_rate"] == pytest.approx(np.mean([r[3] for r in ref]))
    assert summary["link_device"] is not None and summary["link_host"]["bad_crc"] == 0
    # The EDF+ hypnogram reads back as the device's final labels.
    back = expert_labels(tmp_path / "SC4991E0-Hypnogram.edf", N + 1)
    assert [C.STAGES[k] for k in back[1:]] == [r["final_stage"] for r in rows]
    assert (tmp_path / "hypnogram.png").stat().st_size > 10_000


def test_corrupted_host_to_device_bytes(recording) -> None:
    """Flipped bytes on the way to the device: frames dropped and counted, epochs reported
    incomplete, and still one row per epoch."""
    _psg, _hyp, sig, _expert = recording
    with FakeDevice() as dev, TcpRelay(dev.port, corrupt_every=9001) as relay:
        rows, summary = run_monitor(MonitorOptions(port=relay.url, signal=sig, n_epochs=N, threshold=0.0,
                                                   timeout_ms=300))
    assert relay.corrupted >= 5
    assert [r.epoch for r in rows] == list(range(N))
    dev_status = summary["link_device"]
    assert dev_status["bad_crc"] + dev_status["garbage_bytes"] > 0
    assert dev_status["missing_blocks"] >= 1
    incomplete = [r for r in rows if r.final_source == "incomplete"]
    assert incomplete and all(r.final_stage is None and r.edge_stage is None for r in incomplete)
    assert all(r.final_source in ("edge", "incomplete", "lost") for r in rows)
    # Epochs before the first corrupted byte are exact.
    ref = edge_reference(sig, 0, N, threshold=0.0)
    first_bad = min(r.epoch for r in incomplete)
    assert [r.final_stage for r in rows[:first_bad]] == [x[1] for x in ref[:first_bad]]


def test_corrupted_device_to_host_frames(recording) -> None:
    _psg, _hyp, sig, _expert = recording
    with FakeDevice(faults=FakeDeviceFaults(corrupt_tx_every=5)) as dev:
        rows, summary = run_monitor(MonitorOptions(port=dev.url, signal=sig, n_epochs=N, threshold=0.0,
                                                   timeout_ms=300, final_grace_s=1.0))
    host = summary["link_host"]
    assert host["bad_crc"] + host["garbage_bytes"] > 0
    assert [r.epoch for r in rows] == list(range(N))
    lost = [r for r in rows if r.final_source == "lost"]
    assert lost, "some FINAL frames must have been destroyed"
    ref = edge_reference(sig, 0, N, threshold=0.0)
    for r in rows:
        if r.final_source == "edge":
            assert r.final_stage == ref[r.epoch][1]


@pytest.mark.parametrize("drop", [False, True], ids=["hello-mid-stream", "port-dropped"])
def test_device_reset_mid_stream_reports_gap(recording, drop: bool) -> None:
    _psg, _hyp, sig, _expert = recording
    reset_block = 5 * C.BLOCKS_PER_EPOCH + 10  # inside epoch 5
    faults = FakeDeviceFaults(reset_after_blocks=reset_block, drop_connection_on_reset=drop)
    with FakeDevice(faults=faults) as dev:
        # Paced (300x real time) so the host notices the HELLO within a block or two.
        rows, summary = run_monitor(MonitorOptions(port=dev.url, signal=sig, n_epochs=N, threshold=0.0,
                                                   timeout_ms=300, speed=300.0))
    assert [r.epoch for r in rows] == list(range(N))
    (reset,) = summary["resets"]
    # The host resumes at the epoch boundary after it noticed the reset: at once (epoch 6), or on
    # a loaded machine a few blocks later (a TCP close or a HELLO can take a while to read).
    k = reset["resumed_epoch"]
    assert 6 <= k <= 8 and reset["reconnected"] == drop
    gap = summary["gap_epochs"]
    assert gap[0] == 5 and gap == list(range(5, gap[-1] + 1)) and gap[-1] < k
    assert all(rows[e].final_source == "gap" and rows[e].final_stage is None for e in gap)
    assert dev.boots == 2
    # The rebooted device filters from rest from the first epoch boundary it got after the reboot:
    # epoch 6 when the host kept streaming into it, the resume epoch when the port dropped.
    synced = gap[-1] + 1
    before = edge_reference(sig, 0, 5, threshold=0.0)
    after = edge_reference(sig, synced, N - synced, threshold=0.0)
    assert [r.final_stage for r in rows[:5]] == [x[1] for x in before]
    assert [r.final_stage for r in rows[synced:]] == [x[1] for x in after]
    assert all(r.final_source == "edge" for r in rows if r.epoch not in gap)
    assert summary["flow_stalls"] == 0  # the gap epochs do not hold up flow control
    # The CONFIG sent again after the reset took effect: nothing escalated.
    assert summary["device"]["timeout_ms"] == 300


def test_bad_inputs_are_one_line_errors(recording, tmp_path: Path, capsys) -> None:
    psg, _hyp, _sig, _expert = recording
    assert main(["monitor", "--port", "socket://127.0.0.1:1", "--edf", str(tmp_path / "none.edf")]) == 2
    assert "none.edf: file not found" in capsys.readouterr().err
    assert main(["monitor", "--port", "socket://127.0.0.1:1", "--edf", str(psg), "--start-epoch", "999"]) == 2
    assert "--start-epoch 999" in capsys.readouterr().err
    assert main(["monitor", "--port", "socket://127.0.0.1:1", "--edf", str(psg), "--cloud", "http://x"]) == 2
    assert "--token" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["monitor", "--port", "x", "--edf", str(psg), "--speed", "fast"])


def test_no_device_answering(recording, capsys) -> None:
    import socket

    psg, *_ = recording
    with socket.socket() as silent:  # accepts the connection, never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        from host_tools.errors import SleepEdgeError
        from host_tools.device.monitor import Monitor

        m = Monitor(MonitorOptions(port=f"socket://127.0.0.1:{silent.getsockname()[1]}",
                                   signal=stream_signal(2), hello_timeout_s=0.5))
        with pytest.raises(SleepEdgeError, match="no HELLO or PONG"):
            m.run()


def test_sleep_period_and_expert_labels(recording) -> None:
    _psg, hyp, _sig, expert = recording
    y = expert_labels(hyp, N + 5)
    assert list(y[: N + 2]) == list(expert) and list(y[N + 2:]) == [-1] * 3
    labels = np.array([0] * 100 + [2] * 50 + [0] * 100)
    assert sleep_period(labels, margin_epochs=60) == (40, 170)
    assert sleep_period(np.zeros(10, int)) == (0, 10)


def test_live_view_renders_hypnogram() -> None:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=100, record=True)
    view = LiveView(plain=False, console=console, width=20)
    st = ViewState(title="t", total_epochs=10, done_epochs=4, current_epoch=3, current_stage=2,
                   current_confidence=0.8, recent=[(0, False), (2, True), (None, False), (3, False)])
    console.print(view.render(st))
    text = console.export_text()
    inner = [line.strip("│ ") for line in text.splitlines()]  # drop the panel border
    lines = {line.split()[0]: line for line in inner if line and line.split()[0] in C.STAGES}
    # W row has the first epoch, N2 the (escalated) second, N3 the fourth; the gap is a dot on every row.
    assert "█" in lines["W"] and "▲" in lines["N2"] and "█" in lines["N3"] and "▲" not in lines["W"]
    assert "4/10 epochs" in text

"""Recordings in, on the consumers' side: ``predict``, ``monitor`` and the demo's stream copy take
any format and rate, channel alternatives and text hypnograms, and refuse a hypnogram longer than
the signal. Signals are synthetic test signals; the model is the shipped ``models/edge``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.cli import main
from host_tools.data import edf_io, filters, recordings
from host_tools.deploy import predict as P
from host_tools.device.monitor import expert_labels, load_recording

from tests.conftest import REPO_ROOT
from tests.test_recordings import START, sines, write_brainvision, write_mne

EDGE = REPO_ROOT / "models" / "edge"
N_EPOCHS = 6


def aperiodic(fs: float, seconds: float) -> np.ndarray:
    """:func:`sines` with a slow, incommensurate amplitude wander and a delta component: a
    strictly periodic test tone repeats its extremes exactly and the device's quality gate would
    rightly call it clipped."""
    t = np.arange(int(round(fs * seconds))) / fs
    return sines(fs, seconds) * (1 + 0.4 * np.sin(2 * np.pi * 0.037 * t)) + 30 * np.sin(2 * np.pi * 1.3 * t + 0.1)


def test_predict_any_format_and_rate(tmp_path: Path) -> None:
    if not (EDGE / "model.tflite").is_file():
        pytest.skip("models/edge/model.tflite not built")
    seconds = 30 * N_EPOCHS
    bdf = write_mne(tmp_path / "n1-PSG.bdf", {"EMG": sines(256, seconds), "C3-A1": aperiodic(256, seconds)}, 256)
    edf_io.write_psg(tmp_path / "ref-PSG.edf", {"Fpz-Cz": aperiodic(100, seconds)}, 100, START)
    # The 256-Hz BDF, resampled, gives the epochs of the same signal recorded at 100 Hz.
    a, name_a = P.recording_epochs(bdf, "Fpz-Cz,C3-A1")
    b, _ = P.recording_epochs(tmp_path / "ref-PSG.edf", "Fpz-Cz")
    assert name_a == "n1" and a.shape == b.shape == (N_EPOCHS, C.EPOCH_SAMPLES)
    assert np.max(np.abs(a[:, 200:] - b[:, 200:])[1:-1]) < 0.5
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(EDGE), "--in", str(bdf), "--channel", "Fpz-Cz,C3-A1",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["recording"] for r in rows] == ["n1"] * N_EPOCHS and [int(r["epoch"]) for r in rows] == list(range(N_EPOCHS))
    _raw, stages, _conf = P.predict_epochs_int8(EDGE, a)
    assert {r["quality"] for r in rows} == {"ok"}, "an EEG-like signal passes the quality gate"
    assert [r["stage"] for r in rows] == [C.STAGES[s] for s in stages]


def test_predict_folder_of_mixed_formats(tmp_path: Path) -> None:
    write_mne(tmp_path / "a-PSG.fif", {"C3-A1": sines(200, 60)}, 200)
    write_brainvision(tmp_path / "b-PSG.vhdr", {"C3-A1": sines(250, 60)}, 250)
    (tmp_path / "notes.txt").write_text("not a recording")
    assert [p.name for p in P.find_recordings(tmp_path)] == ["a-PSG.fif", "b-PSG.vhdr"]


def test_monitor_loads_any_format_and_text_hypnograms(tmp_path: Path) -> None:
    vhdr = write_brainvision(tmp_path / "r-PSG.vhdr", {"Cz-A1": sines(500, 30 * N_EPOCHS)}, 500)
    signal, start = load_recording(vhdr, "C3-A1,Cz-A1")
    assert start == START and signal.dtype == np.int16 and len(signal) == N_EPOCHS * C.EPOCH_SAMPLES
    assert np.array_equal(signal, filters.to_device_samples(recordings.read_eeg(vhdr, "Cz-A1")[0]))
    hyp = tmp_path / "r-Hypnogram.csv"
    hyp.write_text("W\nW\nW\nN2\nN2\nN2\nN3\nREM\nREM\n")  # 20-s stages: 180 s, 6 epochs
    y = expert_labels(hyp, N_EPOCHS, start, stage_seconds=20, signal_s=len(signal) / C.FS_HZ, psg=vhdr)
    assert [C.STAGES[k] for k in y] == ["W", "W", "N2", "N2", "N3", "REM"]


def test_monitor_refuses_a_hypnogram_longer_than_the_signal(tmp_path: Path, capsys) -> None:
    psg = write_mne(tmp_path / "r-PSG.edf", {"C3-A1": sines(100, 30 * N_EPOCHS)}, 100)
    hyp = tmp_path / "r-Hypnogram.txt"
    hyp.write_text("N2\n" * (N_EPOCHS + 2))
    # The port is never opened: the inputs are checked first.
    rc = main(["monitor", "--port", "socket://127.0.0.1:9", "--edf", str(psg), "--hypno", str(hyp),
               "--channel", "C3-A1", "--plain"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert str(hyp) in err and "hypnogram longer than the signal" in err and "r-PSG.edf" in err
    # The same hypnogram one epoch shorter fits.
    hyp.write_text("N2\n" * N_EPOCHS)
    assert list(expert_labels(hyp, N_EPOCHS, signal_s=30 * N_EPOCHS)) == [2] * N_EPOCHS


def test_demo_stream_copy_of_a_bdf(tmp_path: Path) -> None:
    from host_tools.device.demo import write_stream_copy

    (tmp_path / "in").mkdir()
    bdf = write_mne(tmp_path / "in" / "x-PSG.bdf", {"EEG C3-A1": sines(256, 30 * N_EPOCHS)}, 256)
    copy, samples, start = write_stream_copy(bdf, "c3-a1", 1, 3, tmp_path)
    assert copy.name == "x-PSG.edf" and start == START.replace(second=30)
    full = filters.to_device_samples(recordings.read_eeg(bdf, "C3-A1")[0])
    # The copy is the resampled segment, requantized by the 16-bit EDF: within a transport step or two.
    assert len(samples) == 3 * C.EPOCH_SAMPLES
    assert np.max(np.abs(samples.astype(int) - full[C.EPOCH_SAMPLES:4 * C.EPOCH_SAMPLES])) <= 2
    assert recordings.read_channel(copy, "C3-A1")[1:] == (100.0, start, "EEG C3-A1")

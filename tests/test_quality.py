"""Signal-quality gate: the host reference (host_tools.data.quality) against the C unit
(firmware/core/se_quality.c through firmware/tests/quality_tool), the thresholds against the
real Sleep-EDF statistics, and the artefact outcome of ``sleepedge predict``.

Signals here are synthetic (crafted epochs and random noise); the thresholds are checked against
the real per-stage statistics in ../shared/data/sleep-edfx-real-epoch-statistics.json.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.data import quality as Q
from tests.test_firmware_core import host_build  # noqa: F401 - the fixture that builds the tools

N = C.EPOCH_SAMPLES
FS = C.FS_HZ


def eeg(rng: np.random.Generator, std_uv: float, offset_uv: float = 0.0) -> np.ndarray:
    """One EEG-like epoch (AR(1) noise, mostly below 10 Hz) as int16 transport samples."""
    import scipy.signal

    x = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(N))
    return np.round((x / x.std() * std_uv + offset_uv) / C.SAMPLE_UV_PER_LSB).astype(np.int16)


def crafted(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Epochs with a known verdict each."""
    t = np.arange(N) / FS
    rows, want = [], []

    def add(q: np.ndarray, verdict: str) -> None:
        rows.append(np.clip(q, -32768, 32767).astype(np.int16))
        want.append(verdict)

    add(eeg(rng, 15.0), "ok")
    add(eeg(rng, 6.0, offset_uv=-800.0), "ok")  # quiet REM-like epoch with an electrode offset
    add(eeg(rng, 120.0), "ok")  # large wake-like epoch
    add(np.full(N, 321), "flat")
    add(rng.integers(-1, 2, N) + 50, "flat")  # ADC noise of a detached electrode
    add(np.full(N, 32767), "clipped")  # saturated transport (corrupt EDF header)
    big = eeg(rng, 300.0).astype(np.int64)
    add(np.clip(big, -400, 400), "clipped")  # an amplifier clipping at +-100 uV
    sat = np.where(rng.random(N) < 0.998, 32767, eeg(rng, 20.0))  # 99.8 % saturated
    add(sat, "clipped")
    add(eeg(rng, 400.0), "amplitude")
    for hz in (50, 60):
        add(eeg(rng, 10.0) + np.round(4 * 60 * np.sin(2 * np.pi * hz * t + 0.3)).astype(np.int64), "mains")
    return np.stack(rows), want


def run_c(host_build, q: np.ndarray) -> np.ndarray:  # noqa: F811
    r = subprocess.run([str(host_build / "quality_tool")], input=q.astype("<i2").tobytes(),
                       capture_output=True, check=True, timeout=60)
    return np.frombuffer(r.stdout, dtype=np.uint8).astype(np.int8)


def test_crafted_epochs_get_their_verdicts():
    q, want = crafted(np.random.default_rng(0))
    assert Q.verdict_names(Q.epoch_verdicts(q)) == want


def test_c_gate_is_bit_exact_with_host(host_build):  # noqa: F811
    rng = np.random.default_rng(1)
    q, want = crafted(rng)
    # Random epochs of every kind: white noise at random scales (some mains-like, some flat, some
    # huge), EEG-like epochs, and epochs with random runs pinned at random levels near the rule edges.
    rand = []
    t = np.arange(N) / FS
    for k in range(500):
        kind = k % 5
        if kind == 0:
            rand.append(np.clip(rng.normal(0, 10 ** rng.uniform(-0.5, 4), N), -32768, 32767).astype(np.int16))
        elif kind == 1:
            rand.append(eeg(rng, 10 ** rng.uniform(-0.5, 2.8)))
        elif kind == 2:
            e = eeg(rng, 30.0).astype(np.int64)
            lim = int(rng.integers(50, 600))
            rand.append(np.clip(e, -lim, lim).astype(np.int16))
        elif kind == 3:
            rand.append(rng.integers(-32768, 32768, N, dtype=np.int64).astype(np.int16))
        else:  # EEG plus a tone between 30 and 50 Hz at a random level: both sides of the mains rule
            tone = 10 ** rng.uniform(0, 2.3) * np.sin(2 * np.pi * rng.uniform(30, 50) * t + rng.uniform(0, 6))
            rand.append((eeg(rng, 15.0) + np.round(tone / C.SAMPLE_UV_PER_LSB)).astype(np.int16))
    q_all = np.concatenate([q, np.stack(rand)])
    host = Q.epoch_verdicts(q_all)
    c = run_c(host_build, q_all)
    assert np.array_equal(c, host)
    assert host[: len(want)].tolist() == [C.QUALITY_VERDICTS.index(w) for w in want]
    # the random part must exercise every verdict, or the comparison proves little
    assert set(host[len(want):].tolist()) == set(range(len(C.QUALITY_VERDICTS)))


def test_thresholds_follow_the_real_statistics(repo_root):
    stats = json.loads((repo_root.parent / "shared" / "data" / "sleep-edfx-real-epoch-statistics.json").read_text())
    std = stats["time_domain"]["Fpz-Cz"]["std_uV"]  # quantiles 10, 25, 50, 75, 90 per stage
    lowest_p10 = min(v[0] for v in std.values())
    highest_p90 = max(v[-1] for v in std.values())
    assert C.QUALITY_FLAT_STD_UV <= lowest_p10 / 5  # far below any real stage
    assert C.QUALITY_MAX_STD_UV >= highest_p90 * 5  # far above any real stage
    assert C.QUALITY_FLAT_VAR_LSB2 == round((C.QUALITY_FLAT_STD_UV / C.SAMPLE_UV_PER_LSB) ** 2)
    assert C.QUALITY_MAX_VAR_LSB2 == round((C.QUALITY_MAX_STD_UV / C.SAMPLE_UV_PER_LSB) ** 2)
    # Mains: mean (second difference)^2 / variance is 16 at 50 Hz and 13.1 at 60 Hz (aliased to
    # 40 Hz), 6 for white noise; real sleep EEG is low-pass (Hjorth mobility p90 <= 1.1).
    mob_p90 = max(v[-1] for v in stats["time_domain"]["Fpz-Cz"]["hjorth_mobility"].values())
    # A second difference has power gain <= 4 x that of a first difference, so real EEG at the
    # p90 mobility stays below 4 * mobility^2.
    assert mob_p90 ** 2 * 4 < C.QUALITY_MAINS_RATIO < (4 * np.sin(np.pi * 40 / 100) ** 2) ** 2


def test_gate_rejects_bad_shapes():
    with pytest.raises(ValueError):
        Q.epoch_verdicts(np.zeros((2, N), dtype=np.int32))


# --- recordings: sleepedge predict and the EDF reader --------------------------------------

def bad_night(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Microvolts: 2 EEG-like epochs, 2 flat (detached electrode), 2 clipped at +-100 uV, 2 EEG."""
    good = lambda: eeg(rng, 20.0).astype(np.float64) * C.SAMPLE_UV_PER_LSB  # noqa: E731
    clipped = np.clip(eeg(rng, 150.0).astype(np.float64) * C.SAMPLE_UV_PER_LSB, -100.0, 100.0)
    parts = [good(), good(), np.full(N, 3.0), np.full(N, 3.0), clipped[: N], np.clip(good() * 8, -100, 100),
             good(), good()]
    return np.concatenate(parts), ["ok", "ok", "flat", "flat", "clipped", "clipped", "ok", "ok"]


def write_night(path, uv: np.ndarray) -> None:
    import datetime as dt

    from host_tools.data import edf_io

    edf_io.write_psg(path, {"Fpz-Cz": uv}, C.FS_HZ, dt.datetime(2020, 1, 1, 22, 0))


def test_predict_gives_artefact_outcomes(repo_root, tmp_path):
    import csv

    from host_tools.cli import main

    uv, want = bad_night(np.random.default_rng(5))
    psg = tmp_path / "BAD0001-PSG.edf"
    write_night(psg, uv)
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(repo_root / "models" / "edge"), "--in", str(psg), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["quality"] for r in rows] == want
    for r in rows:
        if r["quality"] == "ok":
            assert r["stage"] in C.STAGES and 0 < float(r["confidence"]) <= 1
        else:  # never a sleep stage, never a confidence
            assert r["stage"] == "artefact" and r["confidence"] == ""


def test_reader_refuses_an_empty_range(tmp_path):
    from host_tools.cli import main
    from host_tools.data import edf_io
    from host_tools.errors import SleepEdgeError

    psg = tmp_path / "CORRUPT-PSG.edf"
    write_night(psg, eeg(np.random.default_rng(0), 20.0).astype(np.float64) * C.SAMPLE_UV_PER_LSB)
    b = bytearray(psg.read_bytes())
    ns = int(b[252:256])
    dmin = 256 + ns * 120
    b[256 + ns * 128: 256 + ns * 136] = b[dmin: dmin + 8]  # digital max := digital min
    psg.write_bytes(bytes(b))
    with pytest.raises(SleepEdgeError, match=r"CORRUPT-PSG\.edf: channel .* empty range"):
        edf_io.read_psg_channel(psg, "Fpz-Cz")
    assert main(["predict", "--in", str(psg), "--out", str(tmp_path / "x.csv")]) == 2


def test_monitor_table_and_hypnogram_carry_the_artefact(tmp_path):
    """RESULT/FINAL of an artefact epoch -> results.csv row and EDF+ annotation 'Artefact: flat'."""
    import datetime as dt

    from host_tools.data import edf_io
    from host_tools.device import protocol as P
    from host_tools.device.epoch_table import EpochTable
    from host_tools.device.monitor_outputs import write_hypnogram_edf

    table = EpochTable(0, 3)
    for e, (flags, stage) in enumerate([(0, 2), (Q.FLAT << P.QUALITY_SHIFT, 255), (0, 2)]):
        table.on_result(P.Result(e, stage, False, flags, (0,) * 5, 0.9 if stage < 5 else 0.0))
        table.on_final(P.Final(e, stage, 0 if stage < 5 else C.FINAL_SOURCES.index("artefact")))
    rows = list(table)
    csv_rows = [r.csv_row() for r in rows]
    assert [r["quality"] for r in csv_rows] == ["ok", "flat", "ok"]
    assert csv_rows[1]["final_source"] == "artefact" and csv_rows[1]["final_stage"] == ""
    path = tmp_path / "hyp.edf"
    write_hypnogram_edf(path, rows, dt.datetime(2020, 1, 1, 22, 0))
    ann = edf_io.read_hypnogram(path)
    assert list(ann.description) == ["Sleep stage 2", "Artefact: flat", "Sleep stage 2"]


def test_prepare_refuses_an_empty_range(tmp_path, capsys):
    """`sleepedge data prepare` stops with one line naming the PSG whose header range is empty."""
    import datetime as dt

    from host_tools.cli import main
    from host_tools.data import edf_io

    src = tmp_path / "in"
    src.mkdir()
    psg = src / "SC4991E0-PSG.edf"
    write_night(psg, np.concatenate([eeg(np.random.default_rng(k), 20.0) for k in range(4)]).astype(np.float64)
                * C.SAMPLE_UV_PER_LSB)
    edf_io.write_hypnogram(src / "SC4991EC-Hypnogram.edf", [0], [120], ["Sleep stage 2"],
                           dt.datetime(2020, 1, 1, 22, 0))
    b = bytearray(psg.read_bytes())
    ns = int(b[252:256])
    b[256 + ns * 112: 256 + ns * 120] = b[256 + ns * 104: 256 + ns * 112]  # physical max := min
    psg.write_bytes(bytes(b))
    assert main(["data", "prepare", "--in", str(src), "--out", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert "SC4991E0-PSG.edf" in err and "empty range" in err and "Traceback" not in err

"""Synthetic PSG generator: files, determinism, hypnogram consistency, per-stage physiology."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import mne
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from host_tools import cli
from host_tools.data import synth
from host_tools import constants as C
from host_tools.errors import SleepEdgeError

ALLOWED = {"Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage 4",
           "Sleep stage R", "Sleep stage ?", "Movement time"}


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def small_sc(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_sc")
    synth.generate_corpus(out, n_subjects=2, nights=2, domain="sc", seed=11, night_minutes=120, workers=2)
    return out


@pytest.fixture(scope="module")
def full_night(tmp_path_factory) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One whole SC night read back through MNE: epochs per channel and written AASM labels."""
    from host_tools.data.calibration import read_night

    out = tmp_path_factory.mktemp("synth_full")
    files = synth.generate_corpus(out, n_subjects=1, nights=1, domain="sc", seed=5, workers=1)
    return read_night(files[0], files[1])


def test_names_channels_and_mne_readable(small_sc: Path) -> None:
    names = sorted(p.name for p in small_sc.iterdir())
    psgs = [n for n in names if n.endswith("-PSG.edf")]
    hyps = [n for n in names if n.endswith("-Hypnogram.edf")]
    assert [n[:7] for n in psgs] == ["SC4001E", "SC4002E", "SC4011E", "SC4012E"]
    for n in psgs:
        assert re.fullmatch(r"SC4\d\d[12]E0-PSG\.edf", n)
    for n in hyps:
        assert re.fullmatch(r"SC4\d\d[12]E[A-Z]-Hypnogram\.edf", n)
    assert sorted(n[:7] for n in hyps) == sorted(n[:7] for n in psgs)
    for n in psgs:
        raw = mne.io.read_raw_edf(small_sc / n, verbose="error")
        assert raw.ch_names == list(synth.CHANNELS)
        assert raw.info["sfreq"] == C.FS_HZ
        assert raw.n_times == 120 * 60 * C.FS_HZ  # --night-minutes crops exactly


def test_hypnogram_matches_psg(small_sc: Path) -> None:
    for psg in sorted(small_sc.glob("*-PSG.edf")):
        hyp = next(small_sc.glob(psg.name[:7] + "?-Hypnogram.edf"))
        raw = mne.io.read_raw_edf(psg, verbose="error")
        ann = mne.read_annotations(hyp)
        assert set(ann.description) <= ALLOWED
        # Contiguous 30-s multiples from t=0; scored part covers the PSG exactly, then "?" like real files.
        ends = ann.onset + ann.duration
        assert ann.onset[0] == 0 and np.allclose(ann.onset[1:], ends[:-1])
        assert np.allclose(ann.duration % C.EPOCH_S, 0)
        scored = ann.description != "Sleep stage ?"
        assert ann.duration[scored].sum() == pytest.approx(raw.n_times / C.FS_HZ)
        assert ann.description[-1] == "Sleep stage ?"
        # The crop contains sleep onset with wake before it, and most stages.
        labels = [C.RK_TO_AASM[d] for d, du in zip(ann.description, ann.duration) for _ in range(int(du // 30))
                  if d != "Sleep stage ?"]
        assert labels[0] == 0
        assert any(lab in (1, 2) for lab in labels)
        assert len({lab for lab in labels if lab is not None}) >= 4


def test_same_seed_same_bytes_any_workers(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synth.generate_corpus(a, 1, 2, "st", seed=3, night_minutes=45, workers=1)
    synth.generate_corpus(b, 1, 2, "st", seed=3, night_minutes=45, workers=2)
    synth.generate_corpus(c, 1, 2, "st", seed=4, night_minutes=45, workers=1)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert all(re.fullmatch(r"ST70[0-1][12]J[0A-Z]-(PSG|Hypnogram)\.edf", n) for n in da)
    psg = "ST7001J0-PSG.edf"
    assert da[psg] != dc[psg]


def test_one_night_regenerates_byte_for_byte(tmp_path: Path) -> None:
    """The demo regenerates a held-out subject's night alone: it must be the corpus's night."""
    corpus, alone = tmp_path / "corpus", tmp_path / "alone"
    synth.generate_corpus(corpus, 3, 2, "sc", seed=5, night_minutes=40, workers=1)
    psg, hyp = synth.generate_night(alone, 2, 2, "sc", seed=5, night_minutes=40)
    whole = _digest(corpus)
    assert _digest(alone) == {psg.name: whole[psg.name], hyp.name: whole[hyp.name]}


def test_whole_night_has_capped_wake_around_sleep(full_night) -> None:
    _, y = full_night
    sleep = np.flatnonzero((y >= 1) & (y <= 4))
    lead_min = sleep[0] * C.EPOCH_S / 60
    trail_min = (y.size - 1 - sleep[-1]) * C.EPOCH_S / 60
    # Wake before/after is capped to 60-120 min (with scorer noise near onset): beyond the 30-min trim.
    assert 45 <= lead_min <= 125 and 45 <= trail_min <= 125
    assert 5 * 60 <= (sleep[-1] - sleep[0]) * C.EPOCH_S / 60 <= 14 * 60
    counts = np.bincount(y[y >= 0], minlength=5)
    assert np.all(counts > 10)


def _band(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    f, p = scipy.signal.welch(x, fs=C.FS_HZ, nperseg=400, axis=-1)
    return p[:, (f >= lo) & (f < hi)].mean(axis=1)


def test_stage_spectral_signatures(full_night) -> None:
    ep, y = full_night
    fpz, pz = ep["Fpz-Cz"], ep["Pz-Oz"]
    med = {s: np.median(_band(fpz[y == i], 0.5, 2.0)) for i, s in enumerate(C.STAGES)}
    # Real Fpz-Cz medians (0.5-4 Hz): N3 2.7x W (frontal eye artefacts), 5.6x N2, N2 2.5x REM.
    assert med["N3"] > 2 * med["W"] and med["N3"] > 3 * med["N2"] and med["N2"] > 1.5 * med["REM"]
    # Alpha of the awake (eyes-closed) subject is occipital: higher share of power at Pz-Oz.
    w = y == 0
    rel = lambda x: _band(x, 8, 13) / _band(x, 0.5, 30)  # noqa: E731
    assert np.median(rel(pz[w])) > 1.3 * np.median(rel(fpz[w]))
    # REM is low-voltage: smaller than N2 and N3 in amplitude.
    std = {s: np.median(fpz[y == i].std(axis=1)) for i, s in enumerate(C.STAGES)}
    assert std["REM"] < std["N2"] < std["N3"]


def _spindle_rate(x: np.ndarray) -> float:
    """Bursts per minute of 11-16 Hz activity 0.5-2 s long above 2.5x the night's median envelope."""
    sos = scipy.signal.butter(4, [11, 16], btype="bandpass", fs=C.FS_HZ, output="sos")
    env = np.abs(scipy.signal.hilbert(scipy.signal.sosfiltfilt(sos, x, axis=1), axis=1))
    env = scipy.ndimage.uniform_filter1d(env, 20, axis=1)
    thr = 2.5 * np.median(env)
    above = env > thr
    n = 0
    for row in above:
        edges = np.diff(np.concatenate([[0], row.astype(int), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        n += int(np.count_nonzero((stops - starts >= 40) & (stops - starts <= 250)))
    return n / (x.shape[0] * 0.5)


def test_n2_has_spindle_bursts(full_night) -> None:
    ep, y = full_night
    fpz = ep["Fpz-Cz"]
    n2, rem = _spindle_rate(fpz[y == 2]), _spindle_rate(fpz[y == 4])
    assert n2 > 1.0  # bursts per minute
    assert n2 > 2.0 * rem


def test_n3_slow_waves_over_75uv(full_night) -> None:
    """R&K: stage 3/4 has 0.5-2 Hz waves > 75 uV peak-to-peak over more than 20 % of the epoch.

    Waves are measured on a zero-phase 0.3-2.5 Hz band-pass (a little wider than 0.5-2 Hz so the
    filter skirts do not shrink the waves being measured).
    """
    ep, y = full_night
    sos = scipy.signal.butter(2, [0.3, 2.5], btype="bandpass", fs=C.FS_HZ, output="sos")

    def sw_fraction(x: np.ndarray) -> np.ndarray:
        d = scipy.signal.sosfiltfilt(sos, x, axis=1)
        out = []
        for row in d:
            z = np.flatnonzero(np.diff(np.signbit(row)))
            covered = 0
            for a, b, c in zip(z[:-2], z[1:-1], z[2:]):  # one full wave between three crossings
                if np.ptp(row[a:c + 1]) > 75:
                    covered += c - a
            out.append(min(covered / row.size, 1.0) / 2)  # each wave counted from both half-waves
        return np.array(out)

    n3 = sw_fraction(ep["Fpz-Cz"][y == 3])
    wake = sw_fraction(ep["Fpz-Cz"][y == 0][:200])
    rem = sw_fraction(ep["Fpz-Cz"][y == 4])
    assert np.mean(n3 > 0.2) > 0.4
    assert np.mean(wake > 0.2) < 0.05 and np.mean(rem > 0.2) < 0.05


def test_bad_inputs(tmp_path: Path, monkeypatch, capsys) -> None:
    with pytest.raises(SleepEdgeError, match="domain"):
        synth.generate_corpus(tmp_path, 1, 1, "xx", 0)
    with pytest.raises(SleepEdgeError, match="subjects"):
        synth.generate_corpus(tmp_path, 0, 1, "sc", 0)
    with pytest.raises(SleepEdgeError, match="nights"):
        synth.generate_corpus(tmp_path, 1, 3, "sc", 0)
    with pytest.raises(SleepEdgeError, match="night-minutes"):
        synth.generate_corpus(tmp_path, 1, 1, "sc", 0, night_minutes=5)
    empty = tmp_path / "no_hypnograms"
    empty.mkdir()
    monkeypatch.setenv(synth.HYPNOGRAM_DIR_ENV, str(empty))
    with pytest.raises(SleepEdgeError, match="no_hypnograms"):
        synth.generate_corpus(tmp_path / "out", 1, 1, "sc", 0, night_minutes=60)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "SC4001EC-Hypnogram.edf").write_bytes(b"not an edf at all")
    monkeypatch.setenv(synth.HYPNOGRAM_DIR_ENV, str(bad))
    with pytest.raises(SleepEdgeError, match="SC4001EC-Hypnogram.edf"):
        synth.load_real_sequences()
    monkeypatch.delenv(synth.HYPNOGRAM_DIR_ENV)
    # Through the CLI: one line, exit status 2.
    assert cli.main(["data", "synth", "--out", str(tmp_path / "x"), "--subjects", "101"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sleepedge: error:") and "--subjects 101" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["data", "synth"]) == 2


def test_crop_window_prefers_all_stages() -> None:
    seq = np.array([0] * 100 + [1] * 4 + [2] * 40 + [3] * 20 + [2] * 30 + [4] * 10 + [0] * 50, dtype=np.int8)
    score, start = synth.crop_window(seq, 120)
    w = seq[start:start + 120]
    assert score == 5 and set(np.unique(w)) == {0, 1, 2, 3, 4}
    assert start <= 100  # contains sleep onset
    # A window too short for everything still contains onset and the most stages it can.
    score, start = synth.crop_window(seq, 40)
    assert start <= 100 < start + 40 and score >= 2

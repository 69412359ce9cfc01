"""Recordings in (host_tools.data.recordings): EDF/BDF/FIF/BrainVision written in tmp with MNE
(BrainVision by hand: MNE needs pybv to write it), channel alternatives, resampling to 100 Hz
checked against the analytic signal, text hypnograms at 30/20/5 s, generic pairing through
``data prepare``, and one clear error per bad input. All signals here are synthetic test signals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from host_tools import cli
from host_tools import constants as C
from host_tools.data import edf_io, prepare, recordings
from host_tools.errors import SleepEdgeError

START = dt.datetime(2001, 2, 3, 22, 15, 0, tzinfo=dt.timezone.utc)


def sines(fs: float, seconds: float) -> np.ndarray:
    """5 Hz + 11 Hz in uV: inside the device band, far below every Nyquist used here."""
    t = np.arange(int(round(fs * seconds))) / fs
    return 60 * np.sin(2 * np.pi * 5 * t) + 25 * np.sin(2 * np.pi * 11 * t + 0.3)


def write_mne(path: Path, channels: dict[str, np.ndarray], fs: float, start: dt.datetime | None = START) -> Path:
    """Write ``channels`` (uV) with MNE: EDF/BDF through mne.export, FIF with Raw.save."""
    import mne

    info = mne.create_info(list(channels), fs, "eeg")
    raw = mne.io.RawArray(np.stack(list(channels.values())) * 1e-6, info, verbose="error")
    raw.set_meas_date(start)
    if path.name.endswith(".fif"):
        raw.save(path, overwrite=True, verbose="error")
    else:
        mne.export.export_raw(path, raw, overwrite=True, verbose="error")
    return path


def write_brainvision(vhdr: Path, channels: dict[str, np.ndarray], fs: float) -> Path:
    """A BrainVision triplet (.vhdr, .vmrk, float32 multiplexed .eeg), as recorders write it."""
    stem = vhdr.name[: -len(".vhdr")]
    np.stack(list(channels.values())).T.astype("<f4").tofile(vhdr.with_name(stem + ".eeg"))
    chans = "\n".join(f"Ch{i}={name},,1,µV" for i, name in enumerate(channels, 1))
    vhdr.write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem}.eeg\nMarkerFile={stem}.vmrk\nDataFormat=BINARY\nDataOrientation=MULTIPLEXED\n"
        f"NumberOfChannels={len(channels)}\nSamplingInterval={1e6 / fs:g}\n\n[Binary Infos]\n"
        f"BinaryFormat=IEEE_FLOAT_32\n\n[Channel Infos]\n{chans}\n", encoding="utf-8")
    vhdr.with_name(stem + ".vmrk").write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem}.eeg\n\n[Marker Infos]\nMk1=New Segment,,1,1,0,{START:%Y%m%d%H%M%S}000000\n",
        encoding="utf-8")
    return vhdr


def write_any(path: Path, channels: dict[str, np.ndarray], fs: float) -> Path:
    if path.name.endswith(".vhdr"):
        return write_brainvision(path, channels, fs)
    return write_mne(path, channels, fs)


# --- channels ------------------------------------------------------------------------------------

def test_channel_alternatives_case_and_eeg_prefix() -> None:
    avail = ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "CZ-A1", "c3-a1"]
    assert recordings.match_channel(avail, "fpz-cz") == "EEG Fpz-Cz"
    assert recordings.match_channel(avail, "Cz-A1") == "CZ-A1"
    assert recordings.match_channel(avail, "EEG C3-A1") == "c3-a1"
    assert recordings.match_channel(avail, "EOG") == "EOG horizontal"  # the Sleep-EDF aliases still hold
    # Alternatives in the user's order: the first that exists wins, not the file's order.
    assert recordings.match_channel(avail, "F4-M1, C3-A1,Fpz-Cz") == "c3-a1"
    assert recordings.match_channel(avail, ["O2-M1", "Pz-Oz"]) == "EEG Pz-Oz"
    assert recordings.match_channel(avail, "F4-M1,O2") is None
    # An exact spelling beats a prefix-insensitive one.
    assert recordings.match_channel(["C3-A1", "EEG C3-A1"], "EEG C3-A1") == "EEG C3-A1"
    with pytest.raises(SleepEdgeError, match="no channel name"):
        recordings.parse_channels(" , ")


# --- formats and resampling ----------------------------------------------------------------------

@pytest.mark.parametrize("name, fs", [("r-PSG.edf", 200), ("r-PSG.bdf", 256), ("r_raw-PSG.fif", 128),
                                      ("r-PSG.vhdr", 250), ("r-PSG.edf", 50)])
def test_every_format_reads_and_resamples_to_100_hz(tmp_path: Path, name: str, fs: int) -> None:
    seconds = 120
    x = sines(fs, seconds)
    path = write_any(tmp_path / name, {"EEG C3-A1": x, "EOG": np.zeros_like(x)}, fs)
    y, fs_in, start, channel = recordings.read_eeg(path, "Fpz-Cz,c3-a1,Cz-A1")
    assert (fs_in, channel) == (fs, "EEG C3-A1")
    assert start == START
    assert len(y) == seconds * C.FS_HZ
    # Against the analytic signal at 100 Hz (edges excluded: the FIR sees zeros past them).
    ref = sines(C.FS_HZ, seconds)
    inner = slice(2 * C.FS_HZ, -2 * C.FS_HZ)
    assert np.max(np.abs(y[inner] - ref[inner])) < 0.5


def test_100_hz_passes_unchanged(tmp_path: Path) -> None:
    x = sines(100, 90) + np.random.default_rng(0).normal(0, 5, 9000)
    edf_io.write_psg(tmp_path / "a-PSG.edf", {"Fpz-Cz": x}, 100, START)
    y, fs_in, _start, _ch = recordings.read_eeg(tmp_path / "a-PSG.edf", "Fpz-Cz")
    legacy, _fs, _ = edf_io.read_psg_channel(tmp_path / "a-PSG.edf", "Fpz-Cz")
    assert fs_in == 100 and np.array_equal(y, legacy)


def test_resampler_is_the_stated_kaiser_fir() -> None:
    from scipy.signal import resample_poly

    x = np.random.default_rng(1).normal(0, 20, 200 * 60)
    assert np.allclose(recordings.resample_to_device(x, 200), resample_poly(x, 1, 2, window=("kaiser", 5.0)))
    assert recordings.resample_ratio(256) == (25, 64) and recordings.resample_ratio(50) == (2, 1)
    # 40 Hz of a 200 Hz signal is removed (anti-alias), 10 Hz kept.
    t = np.arange(200 * 60) / 200
    y = recordings.resample_to_device(np.sin(2 * np.pi * 10 * t) + np.sin(2 * np.pi * 70 * t), 200)
    spec = np.abs(np.fft.rfft(y[500:-500])) / (len(y) - 1000) * 2
    freqs = np.fft.rfftfreq(len(y) - 1000, 1 / 100)
    assert spec[np.argmin(np.abs(freqs - 10))] > 0.9
    assert spec[np.argmin(np.abs(freqs - 30))] < 0.01  # 70 Hz would alias to 30 Hz


@pytest.mark.parametrize("fs", [40, 49.5])
def test_rate_below_50_hz_is_refused(tmp_path: Path, fs: float) -> None:
    path = write_mne(tmp_path / "low-PSG.fif", {"C3-A1": sines(fs, 60)}, fs)
    with pytest.raises(SleepEdgeError, match=rf"{path}: sampled at {fs:g} Hz; SleepEdge needs at least 50 Hz"):
        recordings.read_eeg(path, "C3-A1")


def test_missing_channel_lists_the_files_channels(tmp_path: Path) -> None:
    path = write_mne(tmp_path / "a-PSG.bdf", {"F4-M1": sines(100, 30), "EMG chin": sines(100, 30)}, 100)
    with pytest.raises(SleepEdgeError, match="no channel 'Fpz-Cz, C3-A1'; available: F4-M1, EMG chin") as err:
        recordings.read_eeg(path, "Fpz-Cz,C3-A1")
    assert str(path) in str(err.value)


def test_unknown_format_and_truncated_bdf(tmp_path: Path) -> None:
    bad = tmp_path / "a-PSG.set"
    bad.write_bytes(b"x" * 100)
    with pytest.raises(SleepEdgeError, match=rf"{bad}: unknown recording format"):
        recordings.read_eeg(bad)
    bdf = write_mne(tmp_path / "b-PSG.bdf", {"C3-A1": sines(100, 60)}, 100)
    bdf.write_bytes(bdf.read_bytes()[:-3000])
    with pytest.raises(SleepEdgeError, match=rf"{bdf}: truncated BDF"):
        recordings.read_eeg(bdf, "C3-A1")


# --- text hypnograms -----------------------------------------------------------------------------

def test_text_stage_names_and_codes(tmp_path: Path) -> None:
    f = tmp_path / "h.txt"
    f.write_text("[Hypnogram]\nW\nn1\nStage 2\nS3\nS4\nREM\nsleep stage ?\nMT\n\nN3\n")
    assert recordings.read_text_stages(f) == ["W", "1", "2", "3", "4", "R", "?", "M", "3"]
    f.write_text("epoch,stage\n0,5\n1,4\n2,3\n3,2\n4,1\n5,0\n6,-1\n")
    assert recordings.read_text_stages(f, "rk-dreams") == ["W", "R", "1", "2", "3", "4", "?"]
    f.write_text("0\n1\n2\n3\n4\n-2\n")
    assert recordings.read_text_stages(f, "aasm") == ["W", "1", "2", "3", "R", "?"]
    assert recordings.read_text_stages(f, "rk") == ["W", "1", "2", "3", "4", "?"]


@pytest.mark.parametrize("text, codes, words", [
    ("W\nN2\nX7\n", None, "line 3: unknown stage 'X7'"),
    ("2\n2\n", None, "line 1: numeric stage code '2': say which scheme with --codes"),
    ("0\n5\n", "aasm", "line 2: unknown stage code 5 for --codes aasm"),
    ("5\n7\n", "rk-dreams", "line 2: unknown stage code 7 for --codes rk-dreams"),
    ("2.5\n", "aasm", "line 1: unknown stage code '2.5'"),
    ("[Hypnogram]\n\n", None, "no stages"),
])
def test_bad_text_hypnograms(tmp_path: Path, text: str, codes: str | None, words: str) -> None:
    f = tmp_path / "x-Hypnogram.txt"
    f.write_text(text)
    with pytest.raises(SleepEdgeError, match=words) as err:
        recordings.read_text_stages(f, codes)
    assert str(f) in str(err.value)


def test_majority_reduction_5_and_20_seconds() -> None:
    # 5 s: six labels per epoch; 4 of 6 is a majority, 3 of 6 is not; S3 and S4 together are N3.
    five = ["2"] * 4 + ["1"] * 2 + ["2"] * 3 + ["W"] * 3 + ["3"] * 2 + ["4"] * 3 + ["2"] + ["M"] * 4 + ["W"] * 2
    assert recordings.reduce_to_epochs(five, 5) == [
        "Sleep stage 2", "Sleep stage ?", "Sleep stage 4", "Sleep stage M"]
    # 20 s: epoch k covers 20 s of one stage and 10 s of the next, time-weighted.
    twenty = ["W", "2", "2", "R", "1", "1"]
    assert recordings.reduce_to_epochs(twenty, 20) == [
        "Sleep stage W", "Sleep stage 2", "Sleep stage R", "Sleep stage 1"]
    assert recordings.reduce_to_epochs(["W", "2"], 30) == ["Sleep stage W", "Sleep stage 2"]
    # A partial last epoch (10 s of 30) has no majority.
    assert recordings.reduce_to_epochs(["2", "2", "2", "2", "2", "2", "3", "3"], 5)[-1] == "Sleep stage ?"


def test_edf_plus_aasm_names_are_mapped_and_unknown_stages_refused(tmp_path: Path) -> None:
    f = tmp_path / "a-Hypnogram.edf"
    edf_io.write_hypnogram(f, [0, 30, 60, 90], [30, 30, 30, 30], ["W", "Sleep stage N2", "Lights off", "N3"], START)
    hyp = recordings.read_hypnogram(f)
    assert hyp.descriptions == ["Sleep stage W", "Sleep stage 2", "Lights off", "Sleep stage 3"]
    edf_io.write_hypnogram(f, [0], [30], ["Sleep stage 9"], START)
    with pytest.raises(SleepEdgeError, match=rf"{f}: unknown stage annotation 'Sleep stage 9'"):
        recordings.read_hypnogram(f)


# --- pairing and prepare ---------------------------------------------------------------------------

def stage_lines(stages: list[str], stage_seconds: int) -> str:
    """The test's 30-s stage sequence written as ``stage_seconds`` lines."""
    if stage_seconds == 20:  # two 30-s epochs = three 20-s stages: a, a, b keeps the majorities
        return "".join(f"{a}\n{a}\n{b}\n" for a, b in zip(stages[::2], stages[1::2], strict=True))
    return "".join(f"{s}\n" * (30 // stage_seconds) for s in stages)


STAGES_30 = ["W"] * 4 + ["N1", "N2", "N2", "N3", "N3", "REM", "N2", "W"]


def test_generic_pairs_in_every_format(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    seconds = 30 * len(STAGES_30)
    write_mne(d / "alice_n1-PSG.bdf", {"C3-A1": sines(256, seconds)}, 256)
    (d / "alice_n1-Hypnogram.csv").write_text("stage\n" + stage_lines(STAGES_30, 30))
    write_mne(d / "alice_n2-PSG.fif", {"EEG Cz-A1": sines(200, seconds)}, 200)
    (d / "alice_n2-Hypnogram.txt").write_text(stage_lines(STAGES_30, 30))
    write_brainvision(d / "bob-PSG.vhdr", {"Fpz-Cz": sines(500, seconds)}, 500)
    edf_io.write_hypnogram(d / "bob-Hypnogram.edf", [30 * k for k in range(len(STAGES_30))],
                           [30] * len(STAGES_30), STAGES_30, START)
    edf_io.write_psg(d / "SC4001E0-PSG.edf", {"Fpz-Cz": sines(100, seconds)}, 100, START)
    edf_io.write_hypnogram(d / "SC4001EC-Hypnogram.edf", [0, 120], [120, seconds - 120],
                           ["Sleep stage W", "Sleep stage 2"], START)
    pairs = recordings.find_pairs(d)
    assert [(p.name, h.name) for p, h in pairs] == [
        ("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf"), ("alice_n1-PSG.bdf", "alice_n1-Hypnogram.csv"),
        ("alice_n2-PSG.fif", "alice_n2-Hypnogram.txt"), ("bob-PSG.vhdr", "bob-Hypnogram.edf")]

    rc = cli.main(["data", "prepare", "--in", str(d), "--out", str(tmp_path / "c"), "--channel",
                   "Fpz-Cz,C3-A1,Cz-A1", "--wake-margin-min", "60", "--folds", "2"])
    assert rc == 0
    index = prepare.load_index(tmp_path / "c")
    by_id = {e["id"]: e for e in index["nights"]}
    assert {k: (e["subject"], e["night"], e["domain"], e["channel"], e["fs_in"]) for k, e in by_id.items()} == {
        "SC4001E0": ("SC400", 1, "sc", "EEG Fpz-Cz", 100.0),
        "alice_n1": ("alice", 1, "user", "C3-A1", 256.0),
        "alice_n2": ("alice", 2, "user", "EEG Cz-A1", 200.0),
        "bob": ("bob", 1, "user", "Fpz-Cz", 500.0),
    }
    want = {s: STAGES_30.count(s) for s in C.STAGES}
    for nid in ("alice_n1", "alice_n2", "bob"):
        assert by_id[nid]["stage_counts"] == want
        night = prepare.load_night(tmp_path / "c", nid)
        assert [C.STAGES[i] for i in night["y"]] == STAGES_30 and int(night["fs"]) == 100
    # Both nights of alice in the same fold.
    assert any({"alice"} <= set(f) for f in index["folds"])


@pytest.mark.parametrize("stage_seconds", [20, 5])
def test_short_stages_reduce_to_the_same_epochs(tmp_path: Path, stage_seconds: int) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_mne(d / "rec-PSG.edf", {"C3-A1": sines(100, 30 * len(STAGES_30))}, 100)
    (d / "rec-Hypnogram.txt").write_text(stage_lines(STAGES_30, stage_seconds))
    index = prepare.prepare_corpus(d, tmp_path / "c", channel="C3-A1", stage_seconds=stage_seconds,
                                   wake_margin_min=60, progress=False)
    night = prepare.load_night(tmp_path / "c", "rec")
    assert [C.STAGES[i] for i in night["y"]] == STAGES_30
    assert index["nights"][0]["n_epochs"] == len(STAGES_30)


def _bad_hyp_longer(d: Path) -> Path:
    write_mne(d / "r-PSG.edf", {"C3-A1": sines(100, 300)}, 100)
    (d / "r-Hypnogram.txt").write_text("N2\n" * 12)  # 360 s of stages, 300 s of signal
    return d / "r-Hypnogram.txt"


def _bad_code(d: Path) -> Path:
    write_mne(d / "r-PSG.edf", {"C3-A1": sines(100, 300)}, 100)
    (d / "r-Hypnogram.csv").write_text("N2\nN2\nZ\n")
    return d / "r-Hypnogram.csv"


def _bad_psg_format(d: Path) -> Path:
    (d / "r-PSG.set").write_bytes(b"EEGLAB")
    (d / "r-Hypnogram.txt").write_text("N2\n")
    return d / "r-PSG.set"


def _bad_hyp_format(d: Path) -> Path:
    write_mne(d / "r-PSG.edf", {"C3-A1": sines(100, 300)}, 100)
    (d / "r-Hypnogram.xml").write_text("<xml/>")
    return d / "r-Hypnogram.xml"


def _bad_rate(d: Path) -> Path:
    write_mne(d / "r-PSG.fif", {"C3-A1": sines(32, 300)}, 32)
    (d / "r-Hypnogram.txt").write_text("N2\n" * 10)
    return d / "r-PSG.fif"


def _bad_channel(d: Path) -> Path:
    write_brainvision(d / "r-PSG.vhdr", {"O1-M2": sines(250, 300), "ECG": sines(250, 300)}, 250)
    (d / "r-Hypnogram.txt").write_text("N2\n" * 10)
    return d / "r-PSG.vhdr"


@pytest.mark.parametrize("make, words", [
    (_bad_hyp_longer, "hypnogram longer than the signal"),
    (_bad_code, "line 3: unknown stage 'Z'"),
    (_bad_psg_format, "unknown recording format"),
    (_bad_hyp_format, "unknown hypnogram format"),
    (_bad_rate, "sampled at 32 Hz"),
    (_bad_channel, "available: O1-M2, ECG"),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_bad_recordings_exit_2_naming_the_file(tmp_path: Path, capsys, make, words: str) -> None:
    d = tmp_path / "in"
    d.mkdir()
    culprit = make(d)
    rc = cli.main(["data", "prepare", "--in", str(d), "--out", str(tmp_path / "c"), "--channel", "C3-A1,Cz-A1"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert rc == 2 and "Traceback" not in err
    assert last.startswith("sleepedge: error:") and str(culprit) in last and words in last


def test_pairing_errors(tmp_path: Path) -> None:
    (tmp_path / "a-PSG.edf").write_bytes(b"")
    with pytest.raises(SleepEdgeError, match=r"a-PSG.edf: no hypnogram .*a-Hypnogram.edf\|.csv\|.txt"):
        recordings.find_pairs(tmp_path)
    (tmp_path / "a-Hypnogram.txt").write_text("W\n")
    (tmp_path / "a-Hypnogram.csv").write_text("W\n")
    with pytest.raises(SleepEdgeError, match="several hypnograms"):
        recordings.find_pairs(tmp_path)
    (tmp_path / "a-Hypnogram.csv").unlink()
    (tmp_path / "b-Hypnogram.edf").write_bytes(b"")
    with pytest.raises(SleepEdgeError, match=r"b-Hypnogram.edf: hypnogram without a PSG"):
        recordings.find_pairs(tmp_path)
    (tmp_path / "b-Hypnogram.edf").unlink()
    (tmp_path / "a-PSG.edf.part").write_bytes(b"")  # downloads in progress are not recordings
    assert [(p.name, h.name) for p, h in recordings.find_pairs(tmp_path)] == [("a-PSG.edf", "a-Hypnogram.txt")]


def test_one_name_one_recording(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    write_mne(tmp_path / "a" / "r-PSG.edf", {"C3-A1": sines(100, 60)}, 100)
    (tmp_path / "a" / "r-Hypnogram.txt").write_text("N2\nN2\n")
    (tmp_path / "b").mkdir()
    write_mne(tmp_path / "b" / "r-PSG.fif", {"C3-A1": sines(100, 60)}, 100)
    (tmp_path / "b" / "r-Hypnogram.txt").write_text("N2\nN2\n")
    # The same night id in two folders would overwrite one cache file with the other.
    with pytest.raises(SleepEdgeError, match=r"r-PSG.fif: recording r also at .*a/r-PSG.edf"):
        prepare.prepare_corpus(tmp_path, tmp_path / "c", channel="C3-A1", progress=False)
    # Two formats of one NAME in one folder share the hypnogram: refused.
    write_mne(tmp_path / "a" / "r-PSG.bdf", {"C3-A1": sines(100, 60)}, 100)
    with pytest.raises(SleepEdgeError, match="pairs with the same hypnogram r-Hypnogram.txt"):
        recordings.find_pairs(tmp_path / "a")


def test_fif_start_with_microseconds_pairs_with_an_edf_plus_hypnogram(tmp_path: Path) -> None:
    write_mne(tmp_path / "r-PSG.fif", {"C3-A1": sines(200, 90)}, 200, start=START + dt.timedelta(microseconds=250_000))
    edf_io.write_hypnogram(tmp_path / "r-Hypnogram.edf", [0], [90], ["N2"], START)
    index = prepare.prepare_corpus(tmp_path, tmp_path / "c", channel="C3-A1", progress=False)
    assert index["nights"][0]["stage_counts"]["N2"] == 3
    edf_io.write_hypnogram(tmp_path / "r-Hypnogram.edf", [0], [90], ["N2"], START + dt.timedelta(seconds=1))
    with pytest.raises(SleepEdgeError, match="mismatched pair: hypnogram starts"):
        prepare.prepare_corpus(tmp_path, tmp_path / "c", channel="C3-A1", progress=False)

"""Sleep-EDF file I/O: writers round-trip through MNE, readers agree with MNE on the real
hypnograms, pairing and bad files give one clear error naming the file."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from host_tools.data import edf_io
from host_tools.constants import RK_TO_AASM
from host_tools.errors import SleepEdgeError

START = dt.datetime(1989, 4, 24, 16, 13, 0)


def _signals(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 100.0
    return {
        "Fpz-Cz": rng.normal(0, 30, n) + 40 * np.sin(2 * np.pi * 1.5 * t),
        "EEG Pz-Oz": rng.normal(0, 15, n),
        "EOG": rng.normal(0, 80, n) + 300 * (t > t[-1] / 2),  # a large step, asymmetric range
    }


def test_psg_round_trip_within_one_digital_step(tmp_path: Path) -> None:
    import mne

    sig = _signals(100 * 600)
    path = tmp_path / "SC4001E0-PSG.edf"
    edf_io.write_psg(path, sig, 100, START, patient="Female 33yr")

    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    assert raw.ch_names == ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal"]
    assert raw.info["sfreq"] == 100
    for alias, label in [("Fpz-Cz", "EEG Fpz-Cz"), ("EEG Pz-Oz", "EEG Pz-Oz"), ("EOG", "EOG horizontal")]:
        x, fs, start = edf_io.read_psg_channel(path, alias)
        ref = sig[alias]
        step = 2 * np.max(np.abs(ref)) / 65535  # physical range / digital codes
        assert fs == 100 and len(x) == len(ref)
        assert start == START.replace(tzinfo=dt.timezone.utc)
        assert np.max(np.abs(x - ref)) <= step
        # MNE's own reading of the same channel agrees with ours.
        np.testing.assert_allclose(x, raw.get_data(picks=[label])[0] * 1e6, rtol=0, atol=1e-9)
    # the other alias spellings name the same signal
    a, _, _ = edf_io.read_psg_channel(path, "horizontal")
    b, _, _ = edf_io.read_psg_channel(path, "EOG horizontal")
    np.testing.assert_array_equal(a, b)
    head = path.read_bytes()[:256]
    assert b"Female_33yr" in head and b"24.04.89" in head and b"16.13.00" in head


def test_hypnogram_round_trip_identical(tmp_path: Path) -> None:
    import mne

    onsets = [0.0, 600.0, 630.0, 1230.0, 1290.0]
    durations = [600.0, 30.0, 600.0, 60.0, 3000.0]
    descriptions = ["Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Movement time", "Sleep stage ?"]
    path = tmp_path / "SC4001EC-Hypnogram.edf"
    edf_io.write_hypnogram(path, onsets, durations, descriptions, START)

    for ann in (mne.read_annotations(path), edf_io.read_hypnogram(path)):
        np.testing.assert_array_equal(ann.onset, onsets)
        np.testing.assert_array_equal(ann.duration, durations)
        assert list(ann.description) == descriptions
    assert edf_io.read_hypnogram(path).orig_time == START.replace(tzinfo=dt.timezone.utc)


def test_written_hypnogram_has_the_real_files_structure(tmp_path: Path, shared_edfx: Path) -> None:
    """One data record of duration 0 holding only an EDF+ annotation signal, like Sleep-EDF."""
    import edfio

    real_path = shared_edfx / "sleep-cassette" / "SC4001EC-Hypnogram.edf"
    real = edfio.read_edf(real_path)
    ann = edf_io.read_hypnogram(real_path)
    mine_path = tmp_path / "SC4001EC-Hypnogram.edf"
    edf_io.write_hypnogram(mine_path, ann.onset, ann.duration, ann.description, ann.orig_time)
    mine = edfio.read_edf(mine_path)
    assert (mine.num_data_records, mine.data_record_duration, mine.num_signals) == (
        real.num_data_records, real.data_record_duration, real.num_signals)
    assert (mine.startdate, mine.starttime) == (real.startdate, real.starttime)
    assert [(a.onset, a.duration, a.text) for a in mine.annotations] == [
        (a.onset, a.duration, a.text) for a in real.annotations]
    assert mine_path.read_bytes()[192:197] == real_path.read_bytes()[192:197] == b"EDF+C"


def test_all_real_hypnograms_read_like_mne(shared_edfx: Path) -> None:
    import mne

    files = sorted((shared_edfx / "sleep-cassette").glob("SC4*-Hypnogram.edf"))
    assert len(files) == 54
    for f in files:
        ours = edf_io.read_hypnogram(f)
        ref = mne.read_annotations(f)
        np.testing.assert_array_equal(ours.onset, ref.onset, err_msg=f.name)
        np.testing.assert_array_equal(ours.duration, ref.duration, err_msg=f.name)
        assert list(ours.description) == list(ref.description), f.name
        # the header start is the recording start the PSG shares (SC recordings start in the
        # afternoon or evening of the study day)
        assert ours.orig_time.year in (1989, 1990, 1991) and ours.orig_time.hour >= 12, f.name
        assert set(ours.description) <= set(RK_TO_AASM), f.name


def test_mixed_rate_psg_keeps_each_channel_rate(tmp_path: Path) -> None:
    """Real PSGs mix 100-Hz EEG with 1-Hz channels; reading the EEG must not resample it."""
    import edfio

    n = 3000 * 4
    eeg = np.sin(np.arange(n) / 7.0) * 50
    edf = edfio.Edf(
        [
            edfio.EdfSignal(eeg, 100, label="EEG Fpz-Cz", physical_dimension="uV", physical_range=(-60, 60)),
            edfio.EdfSignal(np.full(n // 100, 37.0), 1, label="Temp rectal", physical_dimension="DegC",
                            physical_range=(0, 50)),
        ],
        recording=edfio.Recording(startdate=START.date()), starttime=START.time(), data_record_duration=30,
    )
    path = tmp_path / "SC4001E0-PSG.edf"
    edf.write(path)
    x, fs, _ = edf_io.read_psg_channel(path, "Fpz-Cz")
    assert fs == 100 and len(x) == n
    assert np.max(np.abs(x - eeg)) <= 120 / 65535
    _, fs_temp, _ = edf_io.read_psg_channel(path, "Temp rectal")
    assert fs_temp == 1


def test_missing_channel_lists_available(tmp_path: Path) -> None:
    path = tmp_path / "SC4001E0-PSG.edf"
    edf_io.write_psg(path, {"Fpz-Cz": np.zeros(3000)}, 100, START)
    with pytest.raises(SleepEdgeError) as err:
        edf_io.read_psg_channel(path, "Pz-Oz")
    msg = str(err.value)
    assert str(path) in msg and "Pz-Oz" in msg and "available: EEG Fpz-Cz" in msg


def test_truncated_psg_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "SC4001E0-PSG.edf"
    edf_io.write_psg(path, {"Fpz-Cz": np.ones(3000 * 3)}, 100, START)
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    with pytest.raises(SleepEdgeError, match="truncated EDF") as err:
        edf_io.read_psg_channel(path, "Fpz-Cz")
    assert str(path) in str(err.value)
    path.write_bytes(data[:100])  # inside the fixed header
    with pytest.raises(SleepEdgeError, match="not an EDF"):
        edf_io.read_psg_channel(path, "Fpz-Cz")


def test_not_an_edf_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "SC4001EC-Hypnogram.edf"
    junk.write_bytes(b"hello" * 100)
    with pytest.raises(SleepEdgeError, match=str(junk)):
        edf_io.read_hypnogram(junk)
    with pytest.raises(SleepEdgeError, match="not found"):
        edf_io.read_psg_channel(tmp_path / "nope-PSG.edf", "Fpz-Cz")


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same length"):
        edf_io.write_psg(tmp_path / "a.edf", {"Fpz-Cz": np.zeros(3000), "Pz-Oz": np.zeros(2999)}, 100, START)
    with pytest.raises(ValueError, match="NaN"):
        edf_io.write_psg(tmp_path / "a.edf", {"Fpz-Cz": np.full(3000, np.nan)}, 100, START)
    with pytest.raises(ValueError, match="same length"):
        edf_io.write_hypnogram(tmp_path / "h.edf", [0, 30], [30], ["Sleep stage W"], START)


def _touch_pair(d: Path, psg: str, hyp: str | None) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / psg).write_bytes(b"")
    if hyp:
        (d / hyp).write_bytes(b"")


def test_find_pairs_matches_first_seven_characters(tmp_path: Path) -> None:
    _touch_pair(tmp_path / "sleep-cassette", "SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf")
    _touch_pair(tmp_path / "sleep-cassette", "SC4002E0-PSG.edf", "SC4002EJ-Hypnogram.edf")
    _touch_pair(tmp_path / "sleep-telemetry", "ST7011J0-PSG.edf", "ST7011JP-Hypnogram.edf")
    (tmp_path / "sleep-cassette" / "SC4003E0-PSG.edf.part").write_bytes(b"")  # ignored
    pairs = edf_io.find_pairs(tmp_path)
    assert [(p.name, h.name) for p, h in pairs] == [
        ("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf"),
        ("SC4002E0-PSG.edf", "SC4002EJ-Hypnogram.edf"),
        ("ST7011J0-PSG.edf", "ST7011JP-Hypnogram.edf"),
    ]
    assert all(p.parent == h.parent for p, h in pairs)


@pytest.mark.parametrize(
    "files, culprit, words",
    [
        (["SC4001E0-PSG.edf", "SC4002EC-Hypnogram.edf"], "SC4001E0-PSG.edf", "no hypnogram"),
        (["SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf", "SC4011EH-Hypnogram.edf"],
         "SC4011EH-Hypnogram.edf", "without a PSG"),
        (["SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf", "SC4001EH-Hypnogram.edf"],
         "SC4001E0-PSG.edf", "several hypnograms"),
        ([], "", "no Sleep-EDF PSG"),
    ],
)
def test_find_pairs_errors(tmp_path: Path, files: list[str], culprit: str, words: str) -> None:
    for f in files:
        (tmp_path / f).write_bytes(b"")
    with pytest.raises(SleepEdgeError, match=words) as err:
        edf_io.find_pairs(tmp_path)
    assert str(tmp_path / culprit).rstrip("/") in str(err.value)


def test_find_pairs_on_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SleepEdgeError, match="not found"):
        edf_io.find_pairs(tmp_path / "absent")


def test_real_hypnogram_pairs_with_a_written_psg(tmp_path: Path, shared_edfx: Path) -> None:
    """The README's pairing: a PSG named after a real night finds that night's real hypnogram."""
    shutil.copy(shared_edfx / "sleep-cassette" / "SC4012EC-Hypnogram.edf", tmp_path)
    start = edf_io.read_hypnogram(tmp_path / "SC4012EC-Hypnogram.edf").orig_time
    edf_io.write_psg(tmp_path / "SC4012E0-PSG.edf", {"Fpz-Cz": np.zeros(3000)}, 100, start)
    [(psg, hyp)] = edf_io.find_pairs(tmp_path)
    assert hyp.name == "SC4012EC-Hypnogram.edf"
    assert edf_io.read_psg_channel(psg, "Fpz-Cz")[2] == start

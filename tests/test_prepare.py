"""``sleepedge data prepare``: labels, epoch cutting, filtering, wake trimming, folds, and one
clear error (exit 2, file named) per kind of bad input.

PSG signals here are written by the tests (real Sleep-EDF PSGs are not available offline); the
hypnograms of the "real" corpus are the real Sleep-EDF ones, paired by file name as the shared
README suggests. Counts are checked against an independent expansion of MNE's annotations.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from host_tools import cli
from host_tools.data import edf_io, filters, prepare
from host_tools import constants as C
from host_tools.errors import SleepEdgeError

START = dt.datetime(1990, 3, 5, 22, 0, 0)
W, S1, S2, S3, S4, R, M, Q = (
    "Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage 4",
    "Sleep stage R", "Movement time", "Sleep stage ?",
)
#: Nights whose real hypnograms drive the "real" corpus: 3 subjects x 2 nights.
REAL_NIGHTS = ["SC4001", "SC4002", "SC4011", "SC4012", "SC4021", "SC4022"]


def epoch_number_signal(n_samples: int) -> np.ndarray:
    """Sample i carries the number of the epoch it belongs to (in uV): cutting is checkable."""
    return (np.arange(n_samples) // C.EPOCH_SAMPLES).astype(np.float64)


def write_pair(
    d: Path,
    stages: list[tuple[float, float, str]],
    seconds: int,
    *,
    name: str = "SC4001E0",
    hyp_letter: str = "C",
    fs: int = 100,
    start: dt.datetime = START,
    hyp_start: dt.datetime | None = None,
    channels: tuple[str, ...] = ("Fpz-Cz",),
) -> tuple[Path, Path]:
    """A PSG (epoch-number signal) and its hypnogram ``(onset, duration, text)``."""
    d.mkdir(parents=True, exist_ok=True)
    psg = d / f"{name}-PSG.edf"
    hyp = d / f"{name[:7]}{hyp_letter}-Hypnogram.edf"
    x = epoch_number_signal(seconds * fs)
    edf_io.write_psg(psg, {ch: x for ch in channels}, fs, start)
    onsets, durations, texts = zip(*stages, strict=True)
    edf_io.write_hypnogram(hyp, onsets, durations, texts, hyp_start or start)
    return psg, hyp


def expand(onsets: np.ndarray, durations: np.ndarray, descriptions: list[str]) -> list[str]:
    """Independent per-epoch expansion of contiguous 30-s-aligned annotations (test oracle)."""
    out: list[str] = []
    for o, d, t in zip(onsets, durations, descriptions, strict=True):
        assert o == len(out) * 30, "oracle needs contiguous annotations"
        out += [t] * int(d // 30)
    return out


# --- labels on the real hypnograms ------------------------------------------------------------

def test_epoch_labels_match_mne_durations_on_all_real_hypnograms(shared_edfx: Path) -> None:
    import mne

    files = sorted((shared_edfx / "sleep-cassette").glob("*-Hypnogram.edf"))
    assert len(files) == 54
    for f in files:
        ref = mne.read_annotations(f)
        per_desc: Counter[str] = Counter()
        for d, t in zip(ref.duration, ref.description, strict=True):
            per_desc[str(t)] += d / 30
        ann = edf_io.read_hypnogram(f)
        end = ann.onset[-1] + ann.duration[-1]
        label, text = prepare.epoch_labels(ann.onset, ann.duration, list(ann.description), int(end // 30))
        assert Counter(text) == per_desc, f.name
        # R&K -> AASM: 3 and 4 merge into N3, M and ? are dropped
        assert np.sum(label == 3) == per_desc[S3] + per_desc[S4], f.name
        assert np.sum(label == -1) == per_desc[M] + per_desc[Q], f.name
        assert np.sum(label == 4) == per_desc[R], f.name


# --- a corpus of real hypnograms with written PSGs ----------------------------------------------

@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory, shared_edfx: Path) -> Path:
    out = tmp_path_factory.mktemp("real_hyp_corpus")
    for night in REAL_NIGHTS:
        [hyp] = (shared_edfx / "sleep-cassette").glob(f"{night}E?-Hypnogram.edf")
        shutil.copy(hyp, out)
        ann = edf_io.read_hypnogram(hyp)
        # Real PSGs end where the hypnogram's trailing "Sleep stage ?" padding begins.
        assert ann.description[-1] == Q
        seconds = int(ann.onset[-1])
        edf_io.write_psg(out / f"{night}E0-PSG.edf", {"Fpz-Cz": epoch_number_signal(seconds * 100)},
                         100, ann.orig_time)
    return out


@pytest.fixture(scope="module")
def real_cache(real_corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real_hyp_cache")
    prepare.prepare_corpus(real_corpus, out, folds=3, seed=0, progress=False)
    return out


def test_cache_counts_match_independent_trim(real_corpus: Path, real_cache: Path) -> None:
    index = prepare.load_index(real_cache)
    assert index["version"] == 1 and index["channel"] == "EEG Fpz-Cz" and index["fs"] == 100
    assert [e["id"] for e in index["nights"]] == [f"{n}E0" for n in REAL_NIGHTS]
    for entry in index["nights"]:
        [hyp] = real_corpus.glob(f"{entry['id'][:7]}?-Hypnogram.edf")
        ann = edf_io.read_hypnogram(hyp)
        seq = expand(ann.onset, ann.duration, list(ann.description))[: int(ann.onset[-1]) // 30]
        sleep = [k for k, t in enumerate(seq) if t in (S1, S2, S3, S4, R)]
        lo, hi = max(0, sleep[0] - 60), min(len(seq), sleep[-1] + 61)  # 30 min = 60 epochs
        kept = [(k, t) for k, t in enumerate(seq) if lo <= k < hi and t not in (M, Q)]
        aasm = {W: "W", S1: "N1", S2: "N2", S3: "N3", S4: "N3", R: "REM"}
        assert entry["stage_counts"] == {s: sum(aasm[t] == s for _, t in kept) for s in C.STAGES}
        assert entry["dropped"] == dict(Counter(t for k, t in enumerate(seq) if lo <= k < hi and t in (M, Q)))
        night = prepare.load_night(real_cache, entry["id"])
        np.testing.assert_array_equal(night["epoch_index"], [k for k, _ in kept])
        assert entry["n_epochs"] == len(kept) == len(night["y"])
        assert str(night["subject"]) == entry["subject"] == entry["id"][:5]
        assert int(night["night"]) == entry["night"] == int(entry["id"][5])
        assert str(night["domain"]) == "sc" and int(night["fs"]) == 100
        assert str(night["channel"]) == "EEG Fpz-Cz"
        dtypes = [night[k].dtype for k in ("x_raw", "x_filt", "y", "epoch_index")]
        assert dtypes == [np.int16, np.float32, np.int8, np.int32]


def test_epochs_are_cut_at_multiples_of_3000_samples(real_cache: Path) -> None:
    index = prepare.load_index(real_cache)
    for entry in index["nights"]:
        night = prepare.load_night(real_cache, entry["id"])
        # the signal holds k uV in epoch k; device samples are 4 per uV
        expected = np.repeat(night["epoch_index"][:, None] * 4, C.EPOCH_SAMPLES, axis=1)
        np.testing.assert_array_equal(night["x_raw"], expected)


def test_x_filt_is_the_whole_recording_filtered_then_cut(real_corpus: Path, real_cache: Path) -> None:
    import mne

    nid = prepare.load_index(real_cache)["nights"][0]["id"]
    raw = mne.io.read_raw_edf(real_corpus / f"{nid}-PSG.edf", preload=True, verbose="error")
    x = raw.get_data(picks=["EEG Fpz-Cz"])[0] * 1e6
    whole = filters.filter_device(x)
    night = prepare.load_night(real_cache, nid)
    k = night["epoch_index"]
    cut = whole[: len(whole) // 3000 * 3000].reshape(-1, 3000)[k]
    np.testing.assert_array_equal(night["x_filt"], cut)
    # filtering each epoch from rest would not give this (the test can tell the two apart)
    per_epoch = filters.filter_device(night["x_raw"][5] * 0.25)
    assert np.max(np.abs(per_epoch - night["x_filt"][5])) > 1.0


def test_folds_keep_subjects_whole_and_are_deterministic(real_corpus: Path, real_cache: Path,
                                                        tmp_path: Path) -> None:
    index = prepare.load_index(real_cache)
    subjects = sorted({e["subject"] for e in index["nights"]})
    assert subjects == ["SC400", "SC401", "SC402"]
    assert sorted(s for f in index["folds"] for s in f) == subjects  # each subject in one fold
    for train, test in prepare.subject_folds(index):
        assert not set(train) & set(test) and sorted(train + test) == subjects
        X, y, subj, ids = prepare.load_epochs(real_cache, [e["id"] for e in index["nights"]])
        test_nights = {i for i, s in zip(ids, subj, strict=True) if s in test}
        train_nights = {i for i, s in zip(ids, subj, strict=True) if s in train}
        assert not test_nights & train_nights
        assert all(any(n[:5] == s for n in test_nights) for s in test)
        break  # load_epochs once is enough
    # same seed -> same folds, from the CLI too
    assert cli.main(["data", "prepare", "--in", str(real_corpus), "--out", str(tmp_path / "c2"),
                     "--folds", "3", "--seed", "0"]) == 0
    assert prepare.load_index(tmp_path / "c2")["folds"] == index["folds"]


def test_make_folds_partition_and_seed() -> None:
    subjects = [f"SC4{i:02d}" for i in range(20)] * 2  # two nights each
    a = prepare.make_folds(subjects, 5, seed=0)
    assert a == prepare.make_folds(list(reversed(subjects)), 5, seed=0)
    assert sorted(s for f in a for s in f) == sorted(set(subjects))
    assert [len(f) for f in a] == [4] * 5
    assert any(prepare.make_folds(subjects, 5, seed=s) != a for s in (1, 2, 3))
    assert len(prepare.make_folds(subjects[:3], 5, seed=0)) == 3  # fewer subjects than folds
    with pytest.raises(SleepEdgeError, match="--folds"):
        prepare.make_folds(subjects, 0, seed=0)


def test_load_epochs(real_cache: Path) -> None:
    index = prepare.load_index(real_cache)
    ids = [index["nights"][2]["id"], index["nights"][0]["id"]]
    X, y, subj, nids = prepare.load_epochs(real_cache, ids)
    n2, n0 = (index["nights"][i]["n_epochs"] for i in (2, 0))
    assert X.shape == (n2 + n0, 3000) and X.dtype == np.float32 and y.dtype == np.int64
    assert list(nids[:1]) + list(nids[-1:]) == ids and list(subj[:1]) == [ids[0][:5]]
    np.testing.assert_array_equal(X[:n2], prepare.load_night(real_cache, ids[0])["x_filt"])
    Xr, yr, _, _ = prepare.load_epochs(real_cache, ids, filtered=False)
    np.testing.assert_array_equal(Xr[:n2], prepare.load_night(real_cache, ids[0])["x_raw"] * np.float32(0.25))
    np.testing.assert_array_equal(yr, y)
    assert len(prepare.load_epochs(real_cache)[0]) == sum(e["n_epochs"] for e in index["nights"])
    with pytest.raises(SleepEdgeError, match="not in the cache"):
        prepare.load_night(real_cache, "SC4999E0")


def test_load_index_errors(tmp_path: Path) -> None:
    with pytest.raises(SleepEdgeError, match="index.json"):
        prepare.load_index(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(SleepEdgeError, match="version 99"):
        prepare.load_index(tmp_path)


# --- wake trimming and dropped epochs on small hypnograms ------------------------------------

NIGHT = [(0, 3600, W), (3600, 60, S1), (3660, 1740, S2), (5400, 60, S3), (5460, 30, S4),
         (5490, 30, M), (5520, 480, R), (6000, 3000, W), (9000, 600, Q)]


@pytest.mark.parametrize("margin, lo, hi", [(10, 100, 220), (0, 120, 200), (1000, 0, 300)])
def test_wake_trimming(tmp_path: Path, margin: float, lo: int, hi: int) -> None:
    write_pair(tmp_path / "in", NIGHT, seconds=9000)
    index = prepare.prepare_corpus(tmp_path / "in", tmp_path / "out", wake_margin_min=margin,
                                   progress=False)
    night = prepare.load_night(tmp_path / "out", "SC4001E0")
    expected = [k for k in range(lo, hi) if k != 5490 // 30]  # the M epoch is dropped
    np.testing.assert_array_equal(night["epoch_index"], expected)
    entry = index["nights"][0]
    assert entry["dropped"] == {M: 1}
    n_wake = (min(hi, 300) - 200) + (120 - lo)
    assert entry["stage_counts"] == {"W": n_wake, "N1": 2, "N2": 58, "N3": 3, "REM": 16}
    assert index["wake_margin_min"] == margin


def test_unscored_gap_and_inner_question_marks_are_dropped(tmp_path: Path) -> None:
    stages = [(0, 600, W), (600, 300, S2), (900, 60, Q), (1020, 300, S2), (1320, 600, W)]
    write_pair(tmp_path / "in", stages, seconds=1920)
    index = prepare.prepare_corpus(tmp_path / "in", tmp_path / "out", wake_margin_min=5, progress=False)
    entry = index["nights"][0]
    assert entry["dropped"] == {Q: 2, "unscored": 2}
    night = prepare.load_night(tmp_path / "out", "SC4001E0")
    assert list(night["epoch_index"]) == list(range(10, 30)) + list(range(34, 54))


def test_st_names_and_other_channel(tmp_path: Path) -> None:
    write_pair(tmp_path / "in", [(0, 900, W), (900, 900, S2), (1800, 300, W)], seconds=2100,
               name="ST7022J0", hyp_letter="M", channels=("Fpz-Cz", "Pz-Oz"))
    index = prepare.prepare_corpus(tmp_path / "in", tmp_path / "out", channel="Pz-Oz", progress=False)
    entry = index["nights"][0]
    assert (entry["id"], entry["subject"], entry["night"], entry["domain"]) == ("ST7022J0", "ST702", 2, "st")
    assert index["channel"] == "EEG Pz-Oz"
    assert str(prepare.load_night(tmp_path / "out", "ST7022J0")["channel"]) == "EEG Pz-Oz"


def test_trailing_question_mark_past_the_end_is_tolerated(tmp_path: Path, capsys) -> None:
    # like the real files: scored until the PSG end, then "?" padding to 24 h
    write_pair(tmp_path / "in", [(0, 600, W), (600, 1200, S2), (1800, 600, W), (2400, 84000, Q)],
               seconds=2400)
    assert cli.main(["data", "prepare", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "1 nights" in out and "N2 40" in out
    assert prepare.load_index(tmp_path / "out")["nights"][0]["n_epochs"] == 80


# --- bad inputs: exit 2, one line naming the file ---------------------------------------------

SHORT = [(0, 1800, W), (1800, 1800, S2)]


def _case_no_hypnogram(d: Path) -> Path:
    psg, hyp = write_pair(d, SHORT, 3600)
    hyp.unlink()
    return psg


def _case_no_psg(d: Path) -> Path:
    write_pair(d, SHORT, 3600)
    _, hyp = write_pair(d / "x", SHORT, 3600, name="SC4011E0")
    (d / "x" / "SC4011E0-PSG.edf").unlink()
    return hyp


def _case_start_mismatch(d: Path) -> Path:
    return write_pair(d, SHORT, 3600, hyp_start=START + dt.timedelta(hours=1))[1]


def _case_far_longer(d: Path) -> Path:
    return write_pair(d, SHORT + [(3600, 30000, W)], 3600)[1]


def _case_past_end(d: Path) -> Path:
    return write_pair(d, SHORT + [(3600, 300, W)], 3600)[1]


def _case_missing_channel(d: Path) -> Path:
    return write_pair(d, SHORT, 3600, channels=("Pz-Oz", "EOG"))[0]


def _case_sample_rate(d: Path) -> Path:
    return write_pair(d, SHORT, 3600, fs=40)[0]  # below 50 Hz: not resampled, refused


def _case_truncated(d: Path) -> Path:
    psg, _ = write_pair(d, SHORT, 3600)
    psg.write_bytes(psg.read_bytes()[:-5000])
    return psg


@pytest.mark.parametrize(
    "make, words",
    [
        (_case_no_hypnogram, "no hypnogram"),
        (_case_no_psg, "hypnogram without a PSG"),
        (_case_start_mismatch, "mismatched pair"),
        (_case_far_longer, "mismatched pair"),
        (_case_past_end, "past the end of the signal"),
        (_case_missing_channel, "available: EEG Pz-Oz, EOG horizontal"),
        (_case_sample_rate, "sampled at 40 Hz; SleepEdge needs at least 50 Hz"),
        (_case_truncated, "truncated EDF"),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_bad_input_exits_2_naming_the_file(tmp_path: Path, capsys, make, words: str) -> None:
    culprit = make(tmp_path / "in")
    rc = cli.main(["data", "prepare", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert rc == 2
    assert last.startswith("sleepedge: error:") and str(culprit) in last and words in last
    assert "Traceback" not in err


@pytest.mark.parametrize("args, words", [(["--folds", "0"], "--folds"),
                                         (["--wake-margin-min", "-5"], "--wake-margin-min")])
def test_bad_arguments_exit_2(tmp_path: Path, capsys, args: list[str], words: str) -> None:
    write_pair(tmp_path / "in", SHORT, 3600)
    rc = cli.main(["data", "prepare", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "out"), *args])
    assert rc == 2 and words in capsys.readouterr().err


def test_missing_input_folder_exits_2(tmp_path: Path, capsys) -> None:
    rc = cli.main(["data", "prepare", "--in", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert rc == 2 and str(tmp_path / "nope") in capsys.readouterr().err


# --- the project's synthetic corpus, when the generator is in the tree ------------------------

def test_tiny_cache_is_consistent(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("host_tools.data.synth")
    tiny_cache: Path = request.getfixturevalue("tiny_cache")
    index = prepare.load_index(tiny_cache)
    assert len(index["nights"]) == 6 and len(index["folds"]) == 3
    for e in index["nights"]:
        night = prepare.load_night(tiny_cache, e["id"])
        assert len(night["y"]) == e["n_epochs"] == sum(e["stage_counts"].values())
        assert np.all(np.diff(night["epoch_index"]) > 0)
        assert Counter(C.STAGES[i] for i in night["y"]) == Counter(
            {k: v for k, v in e["stage_counts"].items() if v})

"""``sleepedge data convert``: the real DREAMS excerpts (../shared/data/dreams-spindles, read in
place, converted only into tmp) become EDF pairs that prepare loads at 100 Hz with both channel
names; stage counts are checked against an independent majority of the raw 5-s codes; plus the
generic text path and its errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from host_tools import cli
from host_tools import constants as C
from host_tools.data import convert, prepare, recordings
from host_tools.errors import SleepEdgeError

from tests.conftest import SHARED_DATA

DREAMS = SHARED_DATA / "dreams-spindles"
#: Per the folder's README: rate and channel of each excerpt.
DREAMS_FILES = {1: (100, "C3-A1"), 2: (200, "CZ-A1"), 3: (50, "C3-A1"), 4: (200, "CZ-A1")}
RK_DREAMS_AASM = {"5": "W", "4": "REM", "3": "N1", "2": "N2", "1": "N3", "0": "N3"}


@pytest.fixture(scope="module")
def dreams_pairs(tmp_path_factory) -> tuple[Path, list[tuple[Path, Path]]]:
    if not DREAMS.is_dir():
        pytest.fail(f"{DREAMS} is missing: CI and developers keep ../shared beside the checkout")
    out = tmp_path_factory.mktemp("dreams")  # never inside the repository: CC BY-NC-ND
    rc = cli.main(["data", "convert", "--dreams", str(DREAMS), "--out", str(out)])
    assert rc == 0
    return out, recordings.find_pairs(out)


def independent_epochs(hypnogram: Path) -> list[str | None]:
    """Majority (4 of 6) of each 30-s epoch's six 5-s codes, AASM classes; None = no majority."""
    codes = hypnogram.read_text().split()[1:]
    out = []
    for k in range(0, len(codes), 6):
        stage, n = Counter(RK_DREAMS_AASM.get(c) for c in codes[k:k + 6]).most_common(1)[0]
        out.append(stage if n >= 4 else None)
    return out


def test_dreams_converts_and_loads_at_100_hz(dreams_pairs) -> None:
    out, pairs = dreams_pairs
    assert [(p.name, h.name) for p, h in pairs] == [
        (f"excerpt{k}-PSG.edf", f"excerpt{k}-Hypnogram.edf") for k in DREAMS_FILES]
    for k, (fs, channel) in DREAMS_FILES.items():
        psg = out / f"excerpt{k}-PSG.edf"
        y, fs_in, _start, name = recordings.read_eeg(psg, "Fpz-Cz,C3-A1,Cz-A1")
        assert (fs_in, name) == (fs, f"EEG {channel}")
        assert len(y) == 30 * 60 * C.FS_HZ  # 30 min at 100 Hz whatever the file's rate
        # The EDF holds the text samples within one 16-bit step; 100 Hz is passed through.
        text = np.loadtxt(DREAMS / f"excerpt{k}.txt", skiprows=1)
        native, fs_native, _s, _n = recordings.read_channel(psg, channel)
        step = 2 * np.max(np.abs(text)) / 65535
        assert fs_native == fs and np.max(np.abs(native - text)) <= step
        if fs == 100:
            assert np.array_equal(y, native)


def test_dreams_prepare_matches_the_raw_hypnograms(dreams_pairs, tmp_path: Path) -> None:
    out, _pairs = dreams_pairs
    index = prepare.prepare_corpus(out, tmp_path / "cache", channel="Fpz-Cz,C3-A1,Cz-A1", wake_margin_min=600,
                                   folds=4, domain="dreams", progress=False)
    assert [e["id"] for e in index["nights"]] == [f"excerpt{k}" for k in DREAMS_FILES]
    assert sorted(s for f in index["folds"] for s in f) == [f"excerpt{k}" for k in DREAMS_FILES]
    total: Counter = Counter()
    for e in index["nights"]:
        k = int(e["id"][-1])
        assert (e["fs_in"], e["channel"], e["domain"]) == (DREAMS_FILES[k][0], f"EEG {DREAMS_FILES[k][1]}", "dreams")
        ref = independent_epochs(DREAMS / f"Hypnogram_excerpt{k}.txt")
        night = prepare.load_night(tmp_path / "cache", e["id"])
        assert [C.STAGES[i] for i in night["y"]] == [s for s in ref if s is not None]
        assert list(night["epoch_index"]) == [i for i, s in enumerate(ref) if s is not None]
        total.update(e["stage_counts"])
    # The folder's README: 240 epochs, W 34, N1 31, N2 131, N3 44, REM 0 (independently counted above).
    assert sum(total.values()) == 240 and total["N2"] > total["N3"] > total["W"] > total["N1"] > total["REM"] == 0


def test_convert_generic_text_pair(tmp_path: Path, capsys) -> None:
    fs = 128
    x = np.round(50 * np.sin(2 * np.pi * 3 * np.arange(fs * 95) / fs), 3)  # 95 s: a partial 4th epoch
    (tmp_path / "sig.txt").write_text("[Cz-M1]\n" + "\n".join(f"{v:.3f}" for v in x) + "\n")
    (tmp_path / "stages.csv").write_text("epoch,stage\n" + "".join(f"{i},{s}\n" for i, s in enumerate([0, 0, 2, 2, 3, 4])))
    rc = cli.main(["data", "convert", "--signal", str(tmp_path / "sig.txt"), "--fs", str(fs), "--hypnogram",
                   str(tmp_path / "stages.csv"), "--stage-seconds", "15", "--codes", "aasm", "--name", "night7",
                   "--out", str(tmp_path / "out")])
    assert rc == 0 and "night7-PSG.edf" in capsys.readouterr().out
    native, fs_in, _start, name = recordings.read_channel(tmp_path / "out" / "night7-PSG.edf", "cz-m1")
    assert (fs_in, name, len(native)) == (fs, "EEG Cz-M1", 90 * fs)  # whole 30-s records only
    assert np.max(np.abs(native - x[:90 * fs])) <= 2 * 50 / 65535
    hyp = recordings.read_hypnogram(tmp_path / "out" / "night7-Hypnogram.edf")
    assert list(zip(hyp.onsets, hyp.durations, hyp.descriptions)) == [
        (0, 30, "Sleep stage W"), (30, 30, "Sleep stage 2"), (60, 30, "Sleep stage ?")]


@pytest.mark.parametrize("args, words", [
    (["--fs", "40"], "sampled at 40 Hz"),
    (["--fs", "100", "--hypnogram", "{long}"], "hypnogram longer than the signal"),
    (["--fs", "100", "--hypnogram", "{codes}", "--codes", "rk-dreams"], "unknown stage code 9"),
    (["--fs", "100", "--signal", "{bad}"], "line 3 is not a sample value"),
    (["--fs", "100", "--name", "a/b"], "--name 'a/b'"),
])
def test_convert_errors_exit_2(tmp_path: Path, capsys, args: list[str], words: str) -> None:
    files = {"long": tmp_path / "long.txt", "codes": tmp_path / "codes.txt", "bad": tmp_path / "bad.txt"}
    files["long"].write_text("N2\n" * 7)  # 7 x 30 s of stages for 60 s of signal
    files["codes"].write_text("5\n9\n")
    files["bad"].write_text("[C3]\n1.0\nnan?\n")
    (tmp_path / "sig.txt").write_text("\n".join(["1.5"] * 6000))
    args = [a.format(**files) for a in args]
    if "--signal" not in args:
        args = ["--signal", str(tmp_path / "sig.txt"), *args]
    rc = cli.main(["data", "convert", *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_dreams_rates_are_the_readmes() -> None:
    for k, (fs, _ch) in DREAMS_FILES.items():
        assert convert.DREAMS_RATES[k] == fs
    with pytest.raises(SleepEdgeError, match="no excerpt 9"):
        convert.convert_dreams(DREAMS, "/tmp/unused-sleepedge-test", [9])

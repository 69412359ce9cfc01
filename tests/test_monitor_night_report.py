"""The night's report: our numpy sleep statistics against yasa's on real Sleep-EDF hypnograms."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from host_tools import SHARED_DIR
from host_tools.device.monitor import expert_labels, sleep_period
from host_tools.device.night_report import format_report, night_statistics, sleep_statistics

HYPNO_DIR = Path(SHARED_DIR) / "data" / "sleep-edfx" / "sleep-cassette"
HYPNOS = sorted(HYPNO_DIR.glob("*-Hypnogram.edf"))[::4]  # every 4th night: 14 real hypnograms


def _real_night(path: Path) -> np.ndarray:
    """Expert labels of a real night, cropped to the sleep period +-30 min (as ``make demo``)."""
    from host_tools.data.edf_io import read_hypnogram

    ann = read_hypnogram(path)
    n = int((ann.onset[-1] + ann.duration[-1]) // 30)
    y = expert_labels(path, n)
    first, k = sleep_period(y, 60)
    return y[first:first + k]


def _yasa_stats(h: np.ndarray) -> dict[str, float]:
    import yasa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return yasa.sleep_statistics(h, sf_hyp=1 / 30)


def _yasa_awakenings(h: np.ndarray) -> float:
    """Transitions sleep -> W, from yasa.Hypnogram's fragmentation index (per hour of TST)."""
    import yasa

    names = np.array(["ART", "WAKE", "N1", "N2", "N3", "REM"])[h + 1]
    st = yasa.Hypnogram(names, n_stages=5, freq="30s").sleep_statistics()
    return float(st["SFI"] * st["TST"] / 60)


@pytest.mark.skipif(not HYPNOS, reason="no Sleep-EDF hypnograms in ../shared/data")
@pytest.mark.parametrize("path", HYPNOS, ids=lambda p: p.name[:8])
def test_matches_yasa_on_real_hypnograms(path: Path) -> None:
    h = _real_night(path)
    ours, ref = sleep_statistics(h), _yasa_stats(h)
    for key, want in ref.items():
        got = ours[key]
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-9), key
    assert ours["awakenings"] == pytest.approx(_yasa_awakenings(h), abs=0.02)
    assert ours["W"] + ours["NREM"] + ours["REM"] <= ours["TIB"]


def test_unusable_epochs_are_excluded_and_counted() -> None:
    """Gaps behave as yasa's artefact epochs: time passes, neither sleep nor wake."""
    rng = np.random.default_rng(3)
    h = rng.integers(0, 5, 200)
    h[:10] = 0
    holes = [40, 41, 120, 199]
    sources = ["edge"] * 200
    for i, src in zip(holes, ["gap", "gap", "lost", "artefact"]):
        sources[i] = src
    stages: list[int | None] = [int(s) for s in h]
    for i in holes[:3]:
        stages[i] = None
    # An artefact epoch is excluded even when the device still sent a stage.
    report = night_statistics(stages, sources)
    assert report["epochs"] == 200 and report["excluded_epochs"] == {"gap": 2, "lost": 1, "artefact": 1}
    h_art = h.copy()
    h_art[holes] = -1
    ref = _yasa_stats(h_art)
    for key, want in ref.items():
        assert report["statistics"][key] == pytest.approx(round(want, 2), abs=1e-9), key
    # The excluded epochs are in time in bed but not in TST nor WASO.
    assert report["statistics"]["TIB"] == 100.0
    assert report["statistics"]["TST"] + report["statistics"]["WASO"] < report["statistics"]["SPT"]


def test_no_sleep_and_report_text() -> None:
    report = night_statistics([0] * 20, ["edge"] * 20)
    s = report["statistics"]
    assert s["TST"] == 0 and s["SE"] == 0 and s["SOL"] is None and s["WASO"] is None
    text = format_report(report)
    assert "| sleep onset latency (SOL) | n/a |" in text and "| W | 10.0 min |" in text
    # With the expert's hypnogram of the same epochs beside it.
    expert = night_statistics([0] * 4 + [2] * 16, ["expert"] * 20)
    text = format_report(report, expert=expert)
    assert "| total sleep time (TST) | 0.0 min | 8.0 min |" in text
    assert "| N2 | 0.0 min (n/a of TST) | 8.0 min (100.0 % of TST) |" in text
    awake_then_asleep = night_statistics([0, 0, 2, 2, 0, 2, 4, 0], ["edge"] * 8)["statistics"]
    assert awake_then_asleep["awakenings"] == 2 and awake_then_asleep["SOL"] == 1.0
    assert night_statistics([2], ["edge"])["statistics"] is None

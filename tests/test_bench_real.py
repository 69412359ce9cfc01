"""`sleepedge bench real` on the real DREAMS files (../shared/data/dreams-spindles, read in place):
reading, the shipped int8 edge model zero-shot, YASA, scoring and reports. GSSC runs only where
its environment (.venv-gssc, made by `make bench-real`) exists; elsewhere that test is skipped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from host_tools import REPO_ROOT
from host_tools import constants as C
from host_tools.bench import real as R
from host_tools.cli import main

EDGE = REPO_ROOT / "models" / "edge"


@pytest.fixture(scope="module")
def people():
    if not R.DREAMS_DIR.is_dir():
        pytest.fail(f"{R.DREAMS_DIR} is missing: CI and developers keep ../shared beside the checkout")
    return R.load_dreams()


def test_dreams_people_read_in_place(people):
    """Four people, 30 min each at 100 Hz; the stage counts the database's README documents."""
    assert [p.name for p in people] == ["excerpt1", "excerpt2", "excerpt3", "excerpt4"]
    assert [p.channel for p in people] == ["C3-A1", "CZ-A1", "C3-A1", "CZ-A1"]
    for p in people:
        assert p.n_epochs == 60 and len(p.signal_uv) == 60 * C.EPOCH_SAMPLES
        assert np.array_equal(p.epochs, np.arange(60))
    y = np.concatenate([p.y for p in people])
    counts = {s: int(np.sum(y == i)) for i, s in enumerate(C.STAGES)}
    assert counts == {"W": 34, "N1": 31, "N2": 131, "N3": 44, "REM": 0}


def test_resampling_keeps_the_signal(people):
    """Excerpt 2 (200 Hz) halved to 100 Hz: same duration, and its every other sample agrees
    closely with the original (the EEG has little power above 50 Hz)."""
    from host_tools.data.convert import read_text_signal

    x200, _ = read_text_signal(R.DREAMS_DIR / "excerpt2.txt")
    x100 = people[1].signal_uv
    ref = x200[: 2 * len(x100):2]
    assert len(x200) // 2 == len(x100)
    assert np.corrcoef(ref[1000:-1000], x100[1000:-1000])[0, 1] > 0.95


def test_edge_zero_shot_is_the_device_path(people):
    """bench real's edge predictions equal `sleepedge predict`'s int8 path on the same epochs."""
    from host_tools.deploy.predict import ContextHead, TflmModel, decide, reported_outputs

    preds = R.edge_zero_shot(EDGE, people[:2])
    tflm = TflmModel.load(EDGE)
    for p in people[:2]:  # with a context head in models/edge, what the device reports is the head's
        x = R.device_epochs(p)
        raw, scale, zp = reported_outputs(tflm, ContextHead.find(EDGE), x, np.ones(len(x), bool))
        assert np.array_equal(preds[p.name], decide(raw, scale, zp)[0])
    s = R.score_model(people[:2], preds)
    hits = sum(int((preds[p.name] == p.y).sum()) for p in people[:2])
    assert s["n"] == 120 and s["acc"] == pytest.approx(hits / 120)
    per = [s["per_person"][p.name]["acc"] for p in people[:2]]
    assert s["per_person_spread"]["acc"]["mean"] == pytest.approx(np.mean(per))


@pytest.mark.slow
def test_bench_real_cli_without_gssc(tmp_path):
    """Edge zero-shot and YASA on all 240 epochs; GSSC absent is reported as skipped, never faked."""
    out = tmp_path / "bench-real"
    rc = main(["bench", "real", "--out", str(out), "--gssc-python", str(tmp_path / "no-venv" / "python"),
               "--no-adapt", "--nested"])
    assert rc == 0
    r = json.loads((out / "bench-real.json").read_text())
    assert r["corpus"]["epochs"] == 240 and r["corpus"]["people"] == 4
    assert set(r["scores"]) >= {"edge_int8", "yasa"} and "gssc" not in r["scores"]
    assert "make bench-real" in r["skipped"]["gssc"] and "adapt_lopo" in r["skipped"]
    assert "--no-adapt" in r["skipped"]["adapt_nested_float"] and "adapt_nested_float" not in r["scores"]
    for name, s in r["scores"].items():
        assert s["n"] == 240 and sum(map(sum, s["confusion"])) == 240, name
        assert set(s["per_person"]) == {"excerpt1", "excerpt2", "excerpt3", "excerpt4"}
    md = (out / "README.md").read_text()
    assert "DREAMS" in md and "240 epochs" in md and "skipped" in md
    for f in ("confusion_edge_int8.png", "confusion_yasa.png", "hypnogram_excerpt1.png"):
        assert (out / f).stat().st_size > 0, f


def test_bench_real_missing_files_is_one_line_error(tmp_path, capsys):
    rc = main(["bench", "real", "--dreams", str(tmp_path), "--out", str(tmp_path / "o"), "--no-gssc"])
    err = capsys.readouterr().err
    assert rc == 2 and "excerpt1.txt" in err and "Traceback" not in err


def test_gssc_on_one_person(people):
    if not R.GSSC_PYTHON.is_file():
        pytest.skip(f"GSSC not run: no GSSC environment at {R.GSSC_PYTHON} (`make bench-real` creates it)")
    p = people[0]
    staged = R.gssc_stages([p])[p.name]
    assert staged.shape == p.y.shape and set(staged.tolist()) <= set(range(C.N_CLASSES))
    from host_tools import evaluation

    assert evaluation.scores(p.y, staged)["kappa"] > 0.2  # a real stager, not noise


def test_adapt_input_is_the_same_people(people, tmp_path):
    """What `sleepedge adapt` is given (EDF pairs in a temporary folder, one person each) reads
    back with adapt's own loader as the same 240 epochs, labels and (to EDF precision) signals.
    A full adapt run takes minutes (`make bench-real` does it); a small one is the next test."""
    from host_tools.learn.adapt import load_recordings

    person_of = R.write_dreams_pairs(R.DREAMS_DIR, tmp_path)
    rec = load_recordings(tmp_path, ["C3-A1", "CZ-A1"], person_of)
    assert sorted(rec.people) == [p.name for p in people] and len(rec.y) == 240
    for p in people:
        m = rec.person == p.name
        assert np.array_equal(rec.y[m], p.y)
        x = R.device_epochs(p)
        assert np.abs(rec.x[m] - x).max() < 0.05 * np.abs(x).max()


@pytest.mark.slow  # ~1-2 min: one small leave-one-person-out adapt run
def test_adapt_lopo_returns_the_held_out_labels_adapt_scored(people):
    """bench's adapt row is scored from per-epoch labels; they are the ones `sleepedge adapt`
    itself scored (its metrics.json accuracy), one per bench epoch of every person."""
    from host_tools.learn.adapt import SourceStrategy, Strategy

    preds, info = R.adapt_lopo(REPO_ROOT / "models", R.DREAMS_DIR, people, budget=0.1, prune=False,
                               strategies=[Strategy("head", "head", 3e-3, 4)],
                               source_strategies=[SourceStrategy("none", "none", 0.0, 0)])
    assert sorted(preds) == [p.name for p in people]
    for p in people:
        assert preds[p.name].shape == p.y.shape and set(preds[p.name].tolist()) <= set(range(C.N_CLASSES))
    s = R.score_model(people, preds)
    assert s["n"] == 240 and s["acc"] == pytest.approx(info["after_int8_acc"], abs=1e-12)
    assert info["choice"]["edge"]["name"] == "head" and info["pruned"] is False


@pytest.mark.slow  # ~1-2 min: four inner choices with one classifier-only candidate
def test_adapt_nested_with_one_candidate_is_that_candidates_plain_lopo(people):
    """With a single candidate there is nothing to choose, so the nested estimate must stage every
    held-out person as that candidate's plain leave-one-person-out does (trained on the others)."""
    from host_tools.learn import adapt as A

    head = A.Strategy("head", "head", 3e-3, 4)
    preds, chosen = R.adapt_nested(R.DREAMS_DIR, people, REPO_ROOT / "models", strategies=[head])
    assert chosen == {p.name: "head" for p in people}
    rec = R.dreams_recordings(R.DREAMS_DIR)
    plain = A.choose(REPO_ROOT / "models", rec, strategies=[head],
                     source_strategies=[A.SourceStrategy("none", "none", 0.0, 0)]).edge_probs["head"].argmax(1)
    for p in people:
        rows = np.flatnonzero(rec.person == p.name)
        rows = rows[np.argsort(rec.epoch_index[rows])]
        assert preds[p.name].shape == p.y.shape
        # Same data, seed and passes (measured: equal on every epoch); at most one epoch of 60 may
        # flip on float summation order. A model that also saw the person agrees on 83-95 %.
        assert np.mean(preds[p.name] == plain[rows]) >= 0.98

"""``sleepedge adapt``, learning half: the leave-one-person-out choice, the data checks and the
AdaBN step, on small synthetic recordings (signal corpus: sine/noise epochs made here, not
Sleep-EDF, not DREAMS) and the shipped models."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.errors import SleepEdgeError
from host_tools.learn import adapt as A

REPO = Path(__file__).resolve().parent.parent
START = dt.datetime(2001, 2, 3, 22, 0, 0)


def _epoch(kind: int, rng: np.random.Generator) -> np.ndarray:
    """Three easily told apart signals: slow 1-Hz waves, 10-Hz alpha, low-amplitude noise."""
    t = np.arange(C.EPOCH_SAMPLES) / C.FS_HZ
    if kind == 0:
        x = 120 * np.sin(2 * np.pi * (0.8 + 0.4 * rng.random()) * t)
    elif kind == 1:
        x = 30 * np.sin(2 * np.pi * (9.5 + rng.random()) * t)
    else:
        x = np.zeros_like(t)
    return x + rng.normal(0, 8, C.EPOCH_SAMPLES)


def _recordings(n_people: int = 3, per_kind: int = 8, labels: tuple[int, int, int] = (0, 3, 2),
                seed: int = 0) -> A.Recordings:
    """Filtered epochs of ``n_people`` people; signal kind k is labelled ``labels[k]`` (by default
    slow waves 'W' and alpha 'N3': the opposite of what the shipped models learnt)."""
    from host_tools.data.filters import filter_device

    rng = np.random.default_rng(seed)
    xs, ys, ps, es = [], [], [], []
    for p in range(n_people):
        kinds = np.repeat(np.arange(3), per_kind)
        rng.shuffle(kinds)
        x = np.concatenate([_epoch(int(k), rng) for k in kinds])
        xs.append(filter_device(x).reshape(-1, C.EPOCH_SAMPLES))
        ys.append(np.array([labels[k] for k in kinds]))
        ps += [f"P{p}"] * len(kinds)
        es.append(np.arange(len(kinds)))
    person = np.array(ps)
    return A.Recordings(x=np.concatenate(xs).astype(np.float32), y=np.concatenate(ys).astype(np.int64),
                        person=person, recording=person.copy(), epoch_index=np.concatenate(es))


def _write_pair(folder: Path, nid: str, stages: list[str], seed: int = 0, channel: str = "EEG C3-A1") -> None:
    from host_tools.data import edf_io

    rng = np.random.default_rng(seed)
    n = len(stages)
    edf_io.write_psg(folder / f"{nid}0-PSG.edf", {channel: rng.normal(0, 20, n * C.EPOCH_SAMPLES)}, C.FS_HZ, START)
    edf_io.write_hypnogram(folder / f"{nid}C-Hypnogram.edf", [30.0 * k for k in range(n)], [30.0] * n,
                           [f"Sleep stage {s}" for s in stages], START)


# --- data checks ------------------------------------------------------------------------------

def test_recording_without_a_scored_epoch_is_a_one_line_error(tmp_path) -> None:
    _write_pair(tmp_path, "SC4801E", ["W", "2", "2", "3"], seed=1)
    _write_pair(tmp_path, "SC4811E", ["?"] * 4, seed=2)
    with pytest.raises(SleepEdgeError, match=r"SC4811EC-Hypnogram\.edf: no scored epoch") as exc:
        A.load_recordings(tmp_path, "C3-A1")
    assert "\n" not in str(exc.value)


def test_channel_alternatives_subject_map_and_rare_stage_warning(tmp_path) -> None:
    _write_pair(tmp_path, "SC4801E", ["W"] * 3 + ["2"] * 12, seed=1, channel="EEG C3-A1")
    _write_pair(tmp_path, "SC4811E", ["2"] * 12 + ["3"] * 2, seed=2, channel="EEG CZ-A1")
    _write_pair(tmp_path, "SC4821E", ["2"] * 5, seed=3, channel="EEG CZ-A1")
    with pytest.raises(SleepEdgeError, match="SC4811E0-PSG.edf: no channel 'C3-A1'"):
        A.load_recordings(tmp_path, "C3-A1")
    notes: list[str] = []
    rec = A.load_recordings(tmp_path, "C3-A1,CZ-A1", {"SC4801E0": "ann", "SC4821E0": "ann"}, warn=notes.append)
    assert rec.channels == {"SC4801E0": "EEG C3-A1", "SC4811E0": "EEG CZ-A1", "SC4821E0": "EEG CZ-A1"}
    assert rec.people == ["SC4811E0", "ann"]
    assert rec.stage_counts() == {"W": 3, "N1": 0, "N2": 29, "N3": 2, "REM": 0}
    assert any("stage W has only 3" in n for n in notes) and any("stage N3 has only 2" in n for n in notes)
    assert not any("stage N2" in n for n in notes)
    with pytest.warns(A.AdaptWarning, match="stage N3 has only 2"):
        A.check_recordings(rec, "x")
    with pytest.raises(SleepEdgeError, match="at least 2 people, found 1"):
        A.load_recordings(tmp_path, "C3-A1,CZ-A1", {"SC4801E0": "a", "SC4811E0": "a", "SC4821E0": "a"}, warn=notes.append)
    with pytest.raises(SleepEdgeError, match=r"subject-map names recordings not in .*\['nope'\]"):
        A.load_recordings(tmp_path, "C3-A1,CZ-A1", {"nope": "a"}, warn=notes.append)


def test_subject_map_files(tmp_path) -> None:
    (tmp_path / "m.json").write_text(json.dumps({"r1": "p", "r2": "p"}))
    (tmp_path / "m.csv").write_text("recording,person\nr1, p\n# note\nr2,q\n")
    (tmp_path / "bad.csv").write_text("r1\n")
    assert A.read_subject_map(tmp_path / "m.json") == {"r1": "p", "r2": "p"}
    assert A.read_subject_map(tmp_path / "m.csv") == {"r1": "p", "r2": "q"}
    assert A.read_subject_map(None) == {}
    with pytest.raises(SleepEdgeError, match=r"bad.csv:1: expected 'recording,person'"):
        A.read_subject_map(tmp_path / "bad.csv")
    with pytest.raises(SleepEdgeError, match="subject map not found"):
        A.read_subject_map(tmp_path / "none.csv")
    assert A.parse_channels(" C3-A1, CZ-A1 ,") == ["C3-A1", "CZ-A1"]
    with pytest.raises(SleepEdgeError):
        A.parse_channels(" , ")


# --- the choice -------------------------------------------------------------------------------

def test_lopo_choice_prefers_the_strategy_that_learns_and_scores_held_out_people_only() -> None:
    """Labels the shipped models get backwards: a classifier that trains must win by leave-one-
    person-out over one that cannot move (lr ~ 0), and every figure is a held-out one."""
    rec = _recordings()
    frozen = A.Strategy("frozen", "head", 1e-9, 1)
    learns = A.Strategy("learns", "head", 1e-2, 40)
    r = A.choose(REPO / "models", rec, strategies=[frozen, learns],
                 source_strategies=[A.SourceStrategy("none", "none", 0.0, 0)])
    assert r.edge_choice == learns and r.source_choice.name == "none"
    assert r.edge["learns"]["objective"] == max(v["objective"] for v in r.edge.values())
    assert r.edge["learns"]["acc"] > r.edge["frozen"]["acc"] + 0.3
    assert r.edge["frozen"]["acc"] == pytest.approx(r.base_edge_float["acc"], abs=0.05)
    assert set(r.edge["learns"]["per_person"]) == {"P0", "P1", "P2"}
    assert sum(v["n"] for v in r.edge["learns"]["per_person"].values()) == len(rec.y)
    # Held out means held out: a person's predictions come from a model that never saw them.
    # With every label of P2 flipped to one P0/P1 never use for that signal, P2 scores ~0.
    odd = _recordings(labels=(0, 3, 2))
    odd.y[odd.person == "P2"] = np.where(odd.y[odd.person == "P2"] == 3, 1, odd.y[odd.person == "P2"])
    # The same with shifted copies: they borrow only from the training people's recordings.
    shifts = A.Strategy("learns-shift", "head", 1e-2, 10, shift=True)
    r2 = A.choose(REPO / "models", odd, strategies=[learns, shifts],
                  source_strategies=[A.SourceStrategy("none", "none", 0.0, 0)])
    assert r2.edge["learns"]["per_person"]["P2"]["acc"] < 0.75
    assert r2.edge["learns-shift"]["per_person"]["P2"]["acc"] < 0.75
    # ... and they learn: kinds 0 and 2 keep one label across P1/P2 (2/3 of P0's epochs).
    assert r2.edge["learns-shift"]["per_person"]["P0"]["acc"] > 0.6


def test_adabn_sets_batchnorm_statistics_to_the_data_and_keeps_weights() -> None:
    from host_tools.learn import models as M

    rec = _recordings(n_people=1, per_kind=4)
    model = M.load_keras_model(REPO / "models" / "edge" / "float.keras")
    bn1 = model.get_layer("bn1")
    gamma0 = bn1.get_weights()[0].copy()
    mean0 = bn1.get_weights()[2].copy()
    conv1 = model.get_weights()[0].copy()
    A.recompute_bn(model, A.edge_input(rec.x))
    h = np.asarray(M.keras().Model(model.inputs[0], bn1.input)(A.edge_input(rec.x)[..., None]))
    h = h.reshape(-1, h.shape[-1])
    assert np.allclose(bn1.get_weights()[2], h.mean(0), rtol=1e-4, atol=1e-4)
    assert np.allclose(bn1.get_weights()[3], h.var(0), rtol=1e-3, atol=1e-4)
    assert not np.allclose(bn1.get_weights()[2], mean0)
    assert np.array_equal(bn1.get_weights()[0], gamma0) and np.array_equal(model.get_weights()[0], conv1)


def test_split_model_trains_the_tail_only() -> None:
    from host_tools.learn import models as M

    rec = _recordings(n_people=1, per_kind=4)
    s = A.Strategy("top1", "top1", 1e-2, 3)
    base = M.load_keras_model(REPO / "models" / "edge" / "float.keras")
    model = A.fit_edge(REPO / "models" / "edge" / "float.keras", s, rec.x, rec.y)
    for layer in base.layers:
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()))
        moves = layer.name in ("conv6", "logits")
        assert same != moves, layer.name


def test_cli_names_unknown_candidates_in_one_line(tmp_path, capsys) -> None:
    from host_tools.cli import main

    rc = main(["adapt", "--in", str(tmp_path), "--out", str(tmp_path / "o"), "--strategies", "head,nope"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--strategies 'head,nope': unknown ['nope']" in err and "\n" not in err
    rc = main(["adapt", "--in", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "missing: input folder not found" in err


def test_soup_averages_the_tails_of_runs_with_consecutive_seeds() -> None:
    """soup=2 delivers the weight mean of the seed-0 and seed-1 runs; frozen layers stay put."""
    rec = _recordings(n_people=1, per_kind=16)  # 48 epochs: two batches, so the seed's shuffle matters
    edge = REPO / "models" / "edge" / "float.keras"
    single = A.Strategy("head", "head", 1e-2, 3)
    runs = [A.fit_edge(edge, single, rec.x, rec.y, seed=s).get_layer("logits").get_weights() for s in (0, 1)]
    assert not np.allclose(runs[0][0], runs[1][0])  # the seeds differ, so the mean is not a no-op
    soup = A.fit_edge(edge, A.Strategy("head-soup", "head", 1e-2, 3, soup=2), rec.x, rec.y, seed=0)
    for got, a, b in zip(soup.get_layer("logits").get_weights(), *runs):
        assert np.allclose(got, (a + b) / 2, atol=1e-5)
    from host_tools.learn import models as M

    ref = M.load_keras_model(edge)
    assert np.array_equal(soup.get_layer("conv6").get_weights()[0], ref.get_layer("conv6").get_weights()[0])
    with pytest.raises(SleepEdgeError, match="soup must be >= 1"):
        A.Strategy("bad", "head", 1e-3, 1, soup=0)


def test_shifted_copies_are_windows_of_the_same_stream_and_never_cross_recordings() -> None:
    """A window shifted by t seconds is the stream's slice t seconds later (earlier), taken only
    from the epoch's own recording; an epoch without that neighbour stays as it is."""
    rng = np.random.default_rng(3)
    stream = {r: rng.normal(0, 10, 4 * C.EPOCH_SAMPLES).astype(np.float32) for r in ("a", "b")}
    # Recording "a" has epochs 0, 1, 3 (2 unscored); "b" has 0, 1; rows interleaved on purpose.
    rows = [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 3)]
    x = np.stack([stream[r][e * C.EPOCH_SAMPLES:(e + 1) * C.EPOCH_SAMPLES] for r, e in rows])
    near = A.neighbours(np.array([r for r, _ in rows]), np.array([e for _, e in rows]))
    assert near[0].tolist() == [-1, -1, 0, 1, -1] and near[1].tolist() == [2, 3, -1, -1, -1]
    k = 5 * C.FS_HZ
    later, earlier = A.shifted(x, near, 5), A.shifted(x, near, -5)
    assert np.array_equal(later[0], stream["a"][k:k + C.EPOCH_SAMPLES])  # a0 -> a0/a1
    assert np.array_equal(earlier[3], stream["b"][C.EPOCH_SAMPLES - k:2 * C.EPOCH_SAMPLES - k])  # b1 <- b0
    # a1 has no scored a2; a3 has neither a2 nor a4: kept as they are.
    assert np.array_equal(later[2], x[2]) and np.array_equal(later[4], x[4]) and np.array_equal(earlier[4], x[4])
    assert np.array_equal(earlier[2], stream["a"][C.EPOCH_SAMPLES - k:2 * C.EPOCH_SAMPLES - k])
    s = A.Strategy("shift-aug", "top3", 1e-3, 1, augment=True, shift=True)
    copies = A.augment(x, s, near)
    assert A.n_copies(s) == len(A.AUG_GAINS) * (1 + len(A.AUG_SHIFTS_S)) and len(copies) == A.n_copies(s) * len(x)
    rows_of_b = A.aug_rows(np.array([1, 3]), len(x), A.n_copies(s))
    assert len(rows_of_b) == 2 * A.n_copies(s)
    with pytest.raises(SleepEdgeError, match="neighbours"):
        A.augment(x, s)

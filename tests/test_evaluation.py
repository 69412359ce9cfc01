"""host_tools.evaluation against scikit-learn and against the hybrid's definition."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score

from host_tools import constants as C
from host_tools import evaluation as E


def _random_probs(rng: np.random.Generator, n: int, sharp: float) -> np.ndarray:
    logits = rng.standard_normal((n, C.N_CLASSES)) * sharp
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C.N_CLASSES, 500)
    pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, C.N_CLASSES, 500))
    s = E.scores(y, pred)
    assert s["n"] == 500
    assert s["acc"] == pytest.approx(accuracy_score(y, pred))
    assert s["mf1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert s["kappa"] == pytest.approx(cohen_kappa_score(y, pred))
    per = f1_score(y, pred, average=None, labels=range(C.N_CLASSES))
    assert [s["f1"][k] for k in C.STAGES] == pytest.approx(list(per))
    assert np.array_equal(s["confusion"], confusion_matrix(y, pred, labels=range(C.N_CLASSES)))


def test_absent_class_is_none_and_excluded_from_macro_f1():
    y = np.array([0, 0, 2, 2, 3])
    pred = np.array([0, 2, 2, 2, 3])
    s = E.scores(y, pred)
    assert s["f1"]["N1"] is None and s["f1"]["REM"] is None
    assert s["mf1"] == pytest.approx(f1_score(y, pred, average="macro"))


def test_perfect_and_chance_kappa():
    y = np.repeat(np.arange(C.N_CLASSES), 20)
    assert E.scores(y, y)["kappa"] == pytest.approx(1.0)
    assert E.scores(y, np.zeros_like(y))["kappa"] == pytest.approx(0.0)


def test_hybrid_escalates_exactly_below_threshold():
    rng = np.random.default_rng(3)
    edge, cloud = _random_probs(rng, 300, 2.0), _random_probs(rng, 300, 2.0)
    t = float(np.median(edge.max(axis=1)))
    labels, esc = E.hybrid(edge, cloud, t)
    assert np.array_equal(esc, edge.max(axis=1) < t)
    assert np.array_equal(labels[esc], cloud.argmax(1)[esc])
    assert np.array_equal(labels[~esc], edge.argmax(1)[~esc])
    assert 0.4 < esc.mean() < 0.6
    # Threshold 0 never escalates; above 1 always does.
    assert not E.hybrid(edge, cloud, 0.0)[1].any()
    assert np.array_equal(E.hybrid(edge, cloud, 1.01)[0], cloud.argmax(1))


def test_escalation_curve_and_recommendation():
    rng = np.random.default_rng(4)
    n = 2000
    y = rng.integers(0, C.N_CLASSES, n)
    cloud = _random_probs(rng, n, 1.0)
    cloud[np.arange(n), y] += 2.0  # a good cloud model
    cloud /= cloud.sum(axis=1, keepdims=True)
    edge = _random_probs(rng, n, 3.0)  # an edge model that is right only when confident
    right = edge.max(axis=1) > 0.7
    edge[right] = np.eye(C.N_CLASSES)[y[right]] * 0.9 + 0.02
    curve = E.escalation_curve(y, edge, cloud)
    esc = [p.escalated_fraction for p in curve]
    assert esc == sorted(esc) and esc[0] == 0.0
    rec = E.recommend_threshold(curve, 0.2)
    assert rec.escalated_fraction <= 0.2
    allowed = [p for p in curve if p.escalated_fraction <= 0.2]
    assert rec.acc == max(p.acc for p in allowed)
    assert rec.acc > curve[0].acc  # escalating the unsure epochs helps here
    # Ties go to the lower threshold.
    flat = [E.CurvePoint(t, 0.0, 0.5, 0.5, 0.5) for t in (0.3, 0.1, 0.2)]
    assert E.recommend_threshold(flat).threshold == 0.1


@pytest.mark.parametrize(
    "call",
    [
        lambda: E.scores(np.array([0, 1]), np.array([0])),
        lambda: E.scores(np.array([0, 5]), np.array([0, 1])),
        lambda: E.scores(np.array([-1]), np.array([0])),
        lambda: E.scores(np.array([], dtype=int), np.array([], dtype=int)),
        lambda: E.hybrid(np.ones((3, 4)), np.ones((3, 4)), 0.5),
        lambda: E.hybrid(np.ones((3, 5)), np.ones((2, 5)), 0.5),
        lambda: E.recommend_threshold([]),
        lambda: E.recommend_threshold([E.CurvePoint(0.5, 0.9, 1, 1, 1)], 0.2),
    ],
)
def test_bad_inputs_raise(call):
    with pytest.raises(ValueError):
        call()

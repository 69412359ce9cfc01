"""Scoring: accuracy, macro-F1, Cohen's kappa, per-class F1, confusion matrix, and the hybrid
edge+cloud decision with its escalation curve.

The hybrid mirrors the firmware: an epoch whose edge confidence (max softmax probability) is
*below* the threshold is escalated and takes the cloud model's label; every other epoch keeps the
edge label. The recommended threshold is chosen by :func:`recommend_threshold` (rule documented
there and in docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host_tools import constants as C

#: Default cap on the share of epochs sent to the cloud when recommending a threshold.
MAX_ESCALATED_FRACTION: float = 0.20


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= C.N_CLASSES):
        raise ValueError(f"{name} holds class indices outside 0..{C.N_CLASSES - 1}")
    return y.astype(np.int64)


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Confusion matrix (N_CLASSES, N_CLASSES), rows = truth, columns = prediction."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in length")
    cm = np.zeros((C.N_CLASSES, C.N_CLASSES), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, macro-F1, Cohen's kappa, per-class F1 and the confusion matrix.

    Returns
    -------
    dict
        ``{"n", "acc", "mf1", "kappa", "f1": {stage: f1}, "confusion": [[...]]}``. Macro-F1
        averages over the classes present in ``y_true`` or ``y_pred`` (as scikit-learn does
        with ``labels=None``); a class absent from both has F1 reported as ``None``.
    """
    cm = confusion(y_true, y_pred)
    n = int(cm.sum())
    if n == 0:
        raise ValueError("no epochs to score")
    tp = np.diag(cm).astype(np.float64)
    support_true, support_pred = cm.sum(axis=1), cm.sum(axis=0)
    present = (support_true + support_pred) > 0
    denom = support_true + support_pred
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    acc = float(tp.sum() / n)
    # Cohen's kappa from the confusion matrix: (p_o - p_e) / (1 - p_e).
    p_e = float((support_true.astype(np.float64) * support_pred).sum() / n**2)
    kappa = 1.0 if p_e == 1.0 else (acc - p_e) / (1.0 - p_e)
    return {
        "n": n,
        "acc": acc,
        "mf1": float(f1[present].mean()),
        "kappa": float(kappa),
        "f1": {s: (float(f1[i]) if present[i] else None) for i, s in enumerate(C.STAGES)},
        "confusion": cm.tolist(),
    }


def recall(cm: np.ndarray | list[list[int]]) -> dict[str, float | None]:
    """Per-stage recall from a confusion matrix (rows = truth); None for a stage absent in truth."""
    m = np.asarray(cm, dtype=np.float64)
    support = m.sum(axis=1)
    return {s: (float(m[i, i] / support[i]) if support[i] > 0 else None) for i, s in enumerate(C.STAGES)}


def _probs(p: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != C.N_CLASSES:
        raise ValueError(f"{name} must have shape (n, {C.N_CLASSES}), got {p.shape}")
    return p


def hybrid(
    edge_probs: np.ndarray, cloud_probs: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Final labels of the edge+cloud system at one confidence threshold.

    Parameters
    ----------
    edge_probs, cloud_probs
        (n, 5) class probabilities of the edge (dequantized int8) and cloud models.
    threshold
        Epochs whose edge confidence ``max(edge_probs)`` is strictly below it are escalated.

    Returns
    -------
    labels : ndarray of int64 (n,)
    escalated : ndarray of bool (n,)
    """
    e, c = _probs(edge_probs, "edge_probs"), _probs(cloud_probs, "cloud_probs")
    if e.shape != c.shape:
        raise ValueError(f"edge_probs {e.shape} and cloud_probs {c.shape} differ")
    escalated = e.max(axis=1) < threshold
    labels = np.where(escalated, c.argmax(axis=1), e.argmax(axis=1))
    return labels.astype(np.int64), escalated


@dataclass(frozen=True)
class CurvePoint:
    """One threshold of the escalation curve."""

    threshold: float
    escalated_fraction: float
    acc: float
    mf1: float
    kappa: float


def escalation_curve(
    y_true: np.ndarray,
    edge_probs: np.ndarray,
    cloud_probs: np.ndarray,
    thresholds: np.ndarray | None = None,
) -> list[CurvePoint]:
    """Hybrid accuracy / macro-F1 / kappa and escalated fraction for each threshold.

    The default grid is 0.0 .. 1.0 in steps of 0.025 (0 = never escalate; 1.0 escalates every
    epoch whose confidence is below 1, i.e. practically all).
    """
    if thresholds is None:
        thresholds = np.round(np.arange(0.0, 1.0001, 0.025), 4)
    out = []
    for t in np.asarray(thresholds, dtype=np.float64):
        labels, esc = hybrid(edge_probs, cloud_probs, float(t))
        s = scores(y_true, labels)
        out.append(CurvePoint(float(t), float(esc.mean()), s["acc"], s["mf1"], s["kappa"]))
    return out


def recommend_threshold(
    curve: list[CurvePoint], max_escalated: float = MAX_ESCALATED_FRACTION
) -> CurvePoint:
    """The recommended operating point of an escalation curve.

    Rule: among thresholds that escalate at most ``max_escalated`` of the epochs, take the one
    with the highest hybrid accuracy; ties go to the *lower* threshold (fewer escalations, less
    radio time). Threshold 0 (never escalate) always qualifies, so a point always exists.
    """
    if not curve:
        raise ValueError("empty escalation curve")
    ok = [p for p in curve if p.escalated_fraction <= max_escalated + 1e-12]
    if not ok:
        raise ValueError(f"no threshold escalates <= {max_escalated:.0%} of the epochs")
    best_acc = max(p.acc for p in ok)
    return min((p for p in ok if p.acc >= best_acc - 1e-12), key=lambda p: p.threshold)

"""Reusable figures: hypnogram, confusion matrix, escalation curve, generic line curves.

Every function writes a PNG with the non-interactive Agg backend and returns its path; every
figure carries a caption line (``note``) so a reader always sees which corpus it comes from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from host_tools import constants as C

#: Hypnogram y order (top to bottom), the clinical convention: W, REM, N1, N2, N3.
HYPNO_ORDER: tuple[str, ...] = ("W", "REM", "N1", "N2", "N3")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path, note: str | None) -> Path:
    if note:
        import textwrap

        # Wrapped to the figure's width and hung below it; the tight bounding box keeps it in.
        width_chars = max(40, int(fig.get_figwidth() * 72 / (7 * 0.55)))
        fig.text(0.01, 0.0, textwrap.fill(note, width_chars), fontsize=7, color="0.35", ha="left", va="top")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.1)
    _plt().close(fig)
    return path


def hypnogram(
    path: str | Path, stages: dict[str, np.ndarray], *, title: str = "Hypnogram",
    escalated: np.ndarray | None = None, note: str | None = None,
) -> Path:
    """Step plots of one or more label sequences (class indices; 255 = unknown, drawn as gaps).

    Parameters
    ----------
    stages
        ``{"truth": y, "edge": y_edge, ...}``, all of the same length, one row per epoch.
    escalated
        Optional boolean mask of escalated epochs, marked under the first sequence.
    """
    plt = _plt()
    n = len(stages)
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.6 * n + 0.6), sharex=True, squeeze=False)
    level = {C.STAGES.index(s): len(HYPNO_ORDER) - 1 - i for i, s in enumerate(HYPNO_ORDER)}
    for ax, (label, y) in zip(axes[:, 0], stages.items()):
        y = np.asarray(y)
        v = np.array([level.get(int(s), np.nan) for s in y], dtype=float)
        hours = np.arange(len(y)) * C.EPOCH_S / 3600.0
        ax.step(hours, v, where="post", lw=0.9, color="k")
        ax.set_yticks(range(len(HYPNO_ORDER)))
        ax.set_yticklabels(list(reversed(HYPNO_ORDER)), fontsize=7)
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(-0.6, len(HYPNO_ORDER) - 0.4)
    if escalated is not None:
        esc = np.asarray(escalated, dtype=bool)
        hours = np.arange(len(esc)) * C.EPOCH_S / 3600.0
        axes[0, 0].plot(hours[esc], np.full(esc.sum(), -0.4), "|", color="tab:red", ms=5, label="escalated")
        axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[0, 0].set_title(title, fontsize=10)
    axes[-1, 0].set_xlabel("hours from recording start")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, path, note)


def confusion_matrix(
    path: str | Path, cm: np.ndarray | Sequence[Sequence[int]], *, title: str = "Confusion matrix",
    note: str | None = None,
) -> Path:
    """Row-normalised confusion matrix (rows = truth) with the counts written in each cell."""
    plt = _plt()
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (C.N_CLASSES, C.N_CLASSES):
        raise ValueError(f"confusion matrix must be {C.N_CLASSES}x{C.N_CLASSES}, got {cm.shape}")
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(C.N_CLASSES):
        for j in range(C.N_CLASSES):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(C.N_CLASSES), C.STAGES)
    ax.set_yticks(range(C.N_CLASSES), C.STAGES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path, note)


def escalation_curve(
    path: str | Path, curve: Sequence[Any], *, recommended: Any | None = None,
    references: dict[str, float] | None = None, max_escalated: float | None = None,
    title: str = "Hybrid accuracy vs escalated fraction", note: str | None = None,
) -> Path:
    """Hybrid accuracy and macro-F1 against the share of escalated epochs.

    ``curve`` holds :class:`host_tools.evaluation.CurvePoint` items (or dicts with the same
    keys); ``references`` draws horizontal lines (e.g. edge alone, cloud alone).
    """
    plt = _plt()
    pts = [p if isinstance(p, dict) else vars(p) for p in curve]
    esc = np.array([p["escalated_fraction"] for p in pts])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(esc * 100, [p["acc"] for p in pts], "o-", ms=3, label="hybrid accuracy")
    ax.plot(esc * 100, [p["mf1"] for p in pts], "s-", ms=3, label="hybrid macro-F1")
    for name, value in (references or {}).items():
        ax.axhline(value, ls="--", lw=0.8, color="0.5")
        ax.text(100, value, f" {name}", fontsize=7, va="center", ha="right", color="0.3")
    if max_escalated is not None:
        ax.axvline(max_escalated * 100, ls=":", color="tab:red", lw=0.8)
    if recommended is not None:
        r = recommended if isinstance(recommended, dict) else vars(recommended)
        ax.plot([r["escalated_fraction"] * 100], [r["acc"]], "*", ms=12, color="tab:red",
                label=f"recommended t={r['threshold']:.3f}")
    ax.set_xlabel("epochs escalated to the cloud (%)")
    ax.set_ylabel("score")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path, note)


def curves(
    path: str | Path, x: Sequence[float], series: dict[str, Sequence[float]], *, xlabel: str,
    ylabel: str, title: str, note: str | None = None,
) -> Path:
    """Several named line series over a shared x axis (learning / transfer curves)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        ax.plot(list(x), list(ys), "o-", ms=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path, note)


def grouped_bars(
    path: str | Path, groups: Sequence[str], series: dict[str, Sequence[float]], *, ylabel: str,
    title: str, note: str | None = None,
) -> Path:
    """One bar per series within each named group (e.g. each model's accuracy per person):
    groups are categories, so bars rather than lines between them."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(groups) + 2), 4))
    width = 0.8 / max(1, len(series))
    for i, (name, ys) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, list(ys), width=width, label=name)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(4, len(series)), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path, note)

"""What a monitored night leaves in ``--out``: results.csv, summary.json, the EDF+ hypnogram of
the device's final labels and a PNG of it against the expert."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools.device.epoch_table import CSV_FIELDS, SOURCE_GAP, SOURCE_LOST, EpochRow

HYPNO_TEXT = {0: "Sleep stage W", 1: "Sleep stage 1", 2: "Sleep stage 2", 3: "Sleep stage 3", 4: "Sleep stage R"}
#: The EDF+ start used when the recording's own is unknown (Sleep-EDF's first night).
DEFAULT_START = dt.datetime(1989, 4, 24, 16, 13, tzinfo=dt.timezone.utc)


def write_outputs(out: str | Path, rows: list[EpochRow], summary: dict[str, Any], *, name: str = "monitor",
                  start: dt.datetime | None = None) -> dict[str, Path]:
    """Write results.csv, summary.json, ``<name>-Hypnogram.edf`` and ``hypnogram.png`` to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "results.csv", "summary": out / "summary.json",
             "edf": out / f"{name}-Hypnogram.edf", "png": out / "hypnogram.png"}
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(r.csv_row())
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    write_hypnogram_edf(paths["edf"], rows, start or DEFAULT_START)
    plot_hypnogram(paths["png"], rows)
    return paths


def write_hypnogram_edf(path: Path, rows: list[EpochRow], start: dt.datetime) -> None:
    """EDF+ hypnogram: one annotation per run of equal final labels (like the real files)."""
    from host_tools.data.edf_io import write_hypnogram

    onsets: list[int] = []
    durs: list[int] = []
    descs: list[str] = []
    for r in rows:
        text = HYPNO_TEXT.get(r.final_stage if r.final_stage is not None else -1, "Sleep stage ?")
        if r.final_source == "artefact":  # the device's quality gate: no stage, the reason instead
            text = f"Artefact: {r.quality or 'bad signal'}"
        if descs and descs[-1] == text and onsets[-1] + durs[-1] == r.onset_s:
            durs[-1] += C.EPOCH_S
        else:
            onsets.append(r.onset_s)
            durs.append(C.EPOCH_S)
            descs.append(text)
    write_hypnogram(path, onsets, durs, descs, start)


def plot_hypnogram(path: str | Path, rows: list[EpochRow]) -> None:
    """Device (final and edge-only) against expert hypnogram, escalated epochs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from host_tools.device.live_view import HYPNO_ORDER

    level = {s: len(HYPNO_ORDER) - 1 - i for i, s in enumerate(HYPNO_ORDER)}  # W on top

    def ys(stages: list[int | None]) -> np.ndarray:
        return np.array([level[s] if s is not None and s in level else np.nan for s in stages], dtype=float)

    hours = np.array([r.onset_s for r in rows]) / 3600.0
    fig, axes = plt.subplots(2, 1, figsize=(12, 5), sharex=True)
    expert = [r.expert_stage for r in rows]
    has_expert = any(s is not None for s in expert)
    axes[0].step(hours, ys([r.final_stage for r in rows]), where="post", color="tab:blue", lw=1, label="device final")
    esc = np.array([r.escalated for r in rows])
    if esc.any():
        axes[0].plot(hours[esc], ys([r.final_stage for r in rows])[esc], "o", ms=2.5, color="tab:red",
                     label="escalated")
    gap = np.array([r.final_source in (SOURCE_GAP, SOURCE_LOST) for r in rows])
    if gap.any():
        axes[0].plot(hours[gap], np.full(gap.sum(), -0.5), "|", color="black", label="gap / lost")
    axes[1].step(hours, ys([r.edge_stage for r in rows]), where="post", color="tab:gray", lw=1, label="edge only")
    if has_expert:
        for ax in axes:
            ax.step(hours, ys(expert), where="post", color="tab:green", lw=1, alpha=0.7, label="expert")
    for ax in axes:
        ax.set_yticks(range(len(HYPNO_ORDER)), [C.STAGES[s] for s in reversed(HYPNO_ORDER)])
        ax.set_ylim(-1, len(HYPNO_ORDER))
        ax.legend(loc="upper right", fontsize=7, ncol=4)
    axes[1].set_xlabel("hours from recording start")
    axes[0].set_title("SleepEdge device hypnogram")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

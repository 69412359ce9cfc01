"""What a monitored night leaves in ``--out``: results.csv, summary.json, report.md, the EDF+
hypnogram of the device's final labels and a PNG of it against the expert.

Durable: results.csv is appended and flushed as each epoch completes (:class:`ResultsLog`), so a
night that stops (Ctrl-C, SIGTERM, the device lost, the host killed) keeps every completed epoch
and ``--resume`` can continue it (:func:`read_results`). The other files, and results.csv itself
at the end, are replaced atomically (temporary file + ``os.replace``): a reader sees the old file
or the new one, never half of one. Every write error names the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from host_tools import constants as C
from host_tools.device.epoch_table import CSV_FIELDS, SOURCE_GAP, SOURCE_LOST, EpochRow
from host_tools.errors import SleepEdgeError

HYPNO_TEXT = {0: "Sleep stage W", 1: "Sleep stage 1", 2: "Sleep stage 2", 3: "Sleep stage 3", 4: "Sleep stage R"}
#: The EDF+ start used when the recording's own is unknown (Sleep-EDF's first night).
DEFAULT_START = dt.datetime(1989, 4, 24, 16, 13, tzinfo=dt.timezone.utc)
RESULTS_CSV = "results.csv"


def cannot_write(path: str | Path, exc: OSError) -> SleepEdgeError:
    """The one-line error for a failed write: ``cannot write OUT/summary.json: No space left on device``."""
    return SleepEdgeError(f"cannot write {path}: {exc.strerror or exc}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:  # also a second Ctrl-C: no temporary file left behind
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise cannot_write(path, exc) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def csv_text(rows: list[EpochRow]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r.csv_row())
    return buf.getvalue()


def make_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SleepEdgeError(f"cannot create {out}: {exc.strerror or exc}") from None


class ResultsLog:
    """results.csv of a night in progress: rewritten atomically with ``rows_before`` (the rows of
    the night being resumed; none for a new night), then one line appended and flushed per
    completed epoch."""

    def __init__(self, out: Path, rows_before: list[EpochRow] | None = None) -> None:
        self.path = out / RESULTS_CSV
        make_out_dir(out)
        atomic_write_text(self.path, csv_text(rows_before or []))
        try:
            self._f: TextIO | None = open(self.path, "a", newline="")
        except OSError as exc:
            raise cannot_write(self.path, exc) from None
        self._w = csv.DictWriter(self._f, fieldnames=CSV_FIELDS, lineterminator="\n")

    def append(self, rows: list[EpochRow]) -> None:
        if not rows or self._f is None:
            return
        try:
            for r in rows:
                self._w.writerow(r.csv_row())
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as exc:
            raise cannot_write(self.path, exc) from None

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass  # the final atomic rewrite reports the file if it still cannot be written
            self._f = None


def _stage(path: Path, line: int, text: str) -> int | None:
    if text == "":
        return None
    if text not in C.STAGES:
        raise SleepEdgeError(f"{path}:{line}: unknown stage {text!r}")
    return C.STAGES.index(text)


def read_results(path: Path) -> list[EpochRow]:
    """The rows of a results.csv (to resume its night). A torn last line (the host died while
    writing it) is dropped; anything else malformed is an error naming the file and line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SleepEdgeError(f"cannot read {path}: {exc.strerror or exc}") from None
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != CSV_FIELDS:
        raise SleepEdgeError(f"{path}: not a results.csv of sleepedge monitor (columns {reader.fieldnames})")
    rows: list[EpochRow] = []
    for line, r in enumerate(reader, start=2):
        try:
            row = EpochRow(int(r["epoch"]), edge_stage=_stage(path, line, r["edge_stage"]),
                           edge_confidence=float(r["edge_confidence"]) if r["edge_confidence"] else None,
                           escalated=bool(int(r["escalated"])), cloud_stage=_stage(path, line, r["cloud_stage"]),
                           final_stage=_stage(path, line, r["final_stage"]), final_source=r["final_source"] or None,
                           expert_stage=_stage(path, line, r["expert_stage"]), quality=r["quality"])
        except (TypeError, ValueError):
            raise SleepEdgeError(f"{path}:{line}: malformed row") from None
        if row.final_source is None:
            raise SleepEdgeError(f"{path}:{line}: epoch {row.epoch} has no final_source")
        if rows and row.epoch != rows[-1].epoch + 1:
            raise SleepEdgeError(f"{path}:{line}: epoch {row.epoch} follows epoch {rows[-1].epoch}")
        rows.append(row)
    return rows


def previous_night(out: Path, *, resume: bool, force: bool) -> list[EpochRow]:
    """The rows of the night in ``out`` to continue (``--resume``), or none (a new night).
    An existing results.csv is never overwritten without ``--force``."""
    path = out / RESULTS_CSV
    if not path.exists():
        return []
    if resume:
        return read_results(path)
    if not force:
        raise SleepEdgeError(f"{path} exists: add --resume to continue that night, or --force to overwrite it")
    return []


def write_outputs(out: str | Path, rows: list[EpochRow], summary: dict[str, Any], *, name: str = "monitor",
                  start: dt.datetime | None = None, report_md: str | None = None) -> dict[str, Path]:
    """Replace results.csv, summary.json, ``<name>-Hypnogram.edf``, ``hypnogram.png`` and (when
    given) report.md in ``out``, each atomically. The hypnograms need at least one row."""
    out = Path(out)
    make_out_dir(out)
    paths = {"csv": out / RESULTS_CSV, "summary": out / "summary.json"}
    if report_md is not None:
        paths["report"] = out / "report.md"
    if rows:
        paths["edf"] = out / f"{name}-Hypnogram.edf"
        paths["png"] = out / "hypnogram.png"
    atomic_write_text(paths["csv"], csv_text(rows))
    atomic_write_text(paths["summary"], json.dumps(summary, indent=2) + "\n")
    if report_md is not None:
        atomic_write_text(paths["report"], report_md)
    if rows:
        atomic_write(paths["edf"], lambda tmp: write_hypnogram_edf(tmp, rows, start or DEFAULT_START))
        atomic_write(paths["png"], lambda tmp: plot_hypnogram(tmp, rows))
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

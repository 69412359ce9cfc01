"""The night's report: the usual sleep statistics of the device's final hypnogram.

Definitions are YASA's ``sleep_statistics`` (yasa 0.8.1, ``yasa/sleepstats.py``; AASM terms),
computed here with numpy on the hypnogram as streamed (time in bed = the streamed epochs):

- TIB, time in bed: every epoch. SPT, sleep period time: first to last sleep epoch.
- TST, total sleep time: N1 + N2 + N3 + REM epochs (within SPT). WASO: W epochs within SPT.
- SE = TST / TIB, SME = TST / SPT (%). SOL, sleep onset latency: start to the first sleep epoch.
- Lat_N1 .. Lat_REM: start to the first epoch of that stage (YASA counts REM latency from the
  start of the record; the AASM's, from sleep onset, is ``Lat_REM - SOL``).
- N1 .. REM, NREM minutes; %N1 .. %NREM of TST.

Added here: ``W`` minutes, ``awakenings`` (sleep epochs directly followed by a W epoch: the
numerator of YASA's ``Hypnogram`` sleep fragmentation index) and ``excluded_epochs``. Epochs
without a usable label (gap, lost, incomplete, artefact) count as YASA's artefact/unscored
epochs: time passes (TIB, SPT, latencies) but they are neither sleep nor wake.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from host_tools import constants as C

UNUSABLE = -1  #: YASA's code for artefact / movement epochs
#: Final sources whose epoch has no usable label whatever its stage field says.
UNUSABLE_SOURCES = frozenset({"gap", "lost", "incomplete", "artefact"})
SLEEP_STAGES = {"N1": 1, "N2": 2, "N3": 3, "REM": 4}


def sleep_statistics(hypno: np.ndarray, epoch_s: float = C.EPOCH_S) -> dict[str, float]:
    """Sleep statistics of one hypnogram, in minutes (SE, SME and %: percent).

    Parameters
    ----------
    hypno
        Per-epoch class index (0 W, 1 N1, 2 N2, 3 N3, 4 REM; any negative value = no usable label),
        cropped to time in bed.
    epoch_s
        Epoch length in seconds.

    Returns
    -------
    dict
        The keys of ``yasa.sleep_statistics`` (NaN where undefined, e.g. latencies without
        sleep), plus ``W`` (minutes) and ``awakenings`` (a count).
    """
    h = np.asarray(hypno, dtype=np.int64)
    if h.ndim != 1 or h.size < 2:
        raise ValueError("hypno must be 1-D with at least two epochs")
    per_min = 60.0 / epoch_s
    sleep_idx = np.flatnonzero(h > 0)
    has_sleep = sleep_idx.size > 0
    spt = h[sleep_idx[0]:sleep_idx[-1] + 1] if has_sleep else h[:0]
    epochs: dict[str, float] = {
        "TIB": h.size, "SPT": spt.size,
        "WASO": np.count_nonzero(spt == 0) if has_sleep else math.nan,
        "TST": np.count_nonzero(spt > 0),
    }
    for name, code in SLEEP_STAGES.items():
        epochs[name] = np.count_nonzero(h == code)
    epochs["NREM"] = epochs["N1"] + epochs["N2"] + epochs["N3"]
    epochs["SOL"] = sleep_idx[0] if has_sleep else math.nan
    for name, code in SLEEP_STAGES.items():
        first = np.flatnonzero(h == code)
        epochs[f"Lat_{name}"] = first[0] if first.size else math.nan
    stats = {k: float(v) / per_min for k, v in epochs.items()}
    for name in [*SLEEP_STAGES, "NREM"]:
        stats[f"%{name}"] = 100.0 * stats[name] / stats["TST"] if has_sleep else math.nan
    stats["SE"] = 100.0 * stats["TST"] / stats["TIB"]
    stats["SME"] = 100.0 * stats["TST"] / stats["SPT"] if has_sleep else math.nan
    stats["W"] = float(np.count_nonzero(h == 0)) / per_min
    stats["awakenings"] = float(np.count_nonzero((h[:-1] > 0) & (h[1:] == 0)))
    return stats


def night_statistics(final_stages: Iterable[int | None], final_sources: Iterable[str | None]) -> dict[str, Any]:
    """The statistics of the device's final hypnogram, with the unusable epochs counted.

    Parameters
    ----------
    final_stages, final_sources
        Per streamed epoch, in order: the final class index (None: no usable label) and its
        source (``edge``, ``cloud``, ``timeout``, ``incomplete``, ``gap``, ``lost``, ``artefact``).

    Returns
    -------
    dict
        ``epochs``, ``excluded_epochs`` ({source: count} of the epochs without a usable label)
        and ``statistics`` (see :func:`sleep_statistics`; None for fewer than two epochs), rounded
        to 0.01, NaN written as None (JSON null).
    """
    stages, sources = list(final_stages), list(final_sources)
    usable = [s is not None and 0 <= s < C.N_CLASSES and src not in UNUSABLE_SOURCES
              for s, src in zip(stages, sources)]
    h = np.array([s if ok else UNUSABLE for s, ok in zip(stages, usable)], dtype=np.int64)
    excluded: dict[str, int] = {}
    for src, ok in zip(sources, usable):
        if not ok:
            excluded[src or "lost"] = excluded.get(src or "lost", 0) + 1
    stats = sleep_statistics(h) if h.size >= 2 else None
    return {
        "epochs": int(h.size), "excluded_epochs": excluded,
        "statistics": None if stats is None else {
            k: None if math.isnan(v) else (int(v) if k == "awakenings" else round(v, 2)) for k, v in stats.items()},
    }


def _fmt(key: str, s: dict[str, Any] | None) -> str:
    if s is None:
        return ""
    v = s.get(key)
    if key == "awakenings":
        return "n/a" if v is None else str(int(v))
    if key == "Lat_REM_sleep_onset":
        rem, sol = s.get("Lat_REM"), s.get("SOL")
        v = None if rem is None or sol is None else rem - sol
    unit = " %" if key in ("SE", "SME") or key.startswith("%") else " min"
    return "n/a" if v is None else f"{v:.1f}{unit}"


#: The report's rows of single statistics: (label, key of :func:`sleep_statistics`).
ROWS = [("time in bed (TIB)", "TIB"), ("sleep period time (SPT)", "SPT"), ("total sleep time (TST)", "TST"),
        ("sleep efficiency (TST/TIB)", "SE"), ("sleep maintenance efficiency (TST/SPT)", "SME"),
        ("sleep onset latency (SOL)", "SOL"), ("wake after sleep onset (WASO)", "WASO"),
        ("REM latency from sleep onset", "Lat_REM_sleep_onset"),
        ("REM latency from the start (YASA Lat_REM)", "Lat_REM"), ("awakenings (sleep -> W)", "awakenings"),
        ("W", "W")]


def format_report(report: dict[str, Any], *, title: str = "Night report", origin: str | None = None,
                  expert: dict[str, Any] | None = None) -> str:
    """The report as Markdown (printed as is at the end of a night, and written as report.md),
    with the expert's hypnogram beside the device's when given (same epochs)."""
    s = report.get("statistics")
    lines = [f"# {title}", ""]
    if origin:
        lines += [f"Recording: {origin}", ""]
    excluded = report.get("excluded_epochs") or {}
    n_excl = sum(excluded.values())
    lines.append(f"Epochs: {report['epochs']} of {C.EPOCH_S} s; without a usable label (excluded): {n_excl}"
                 + (f" ({', '.join(f'{k} {v}' for k, v in sorted(excluded.items()))})" if excluded else ""))
    if not report.get("complete", True):
        lines.append(f"Incomplete night: {report.get('reason', 'stopped early')}")
    lines.append("")
    if s is None:
        lines.append("Too few epochs for sleep statistics.")
        return "\n".join(lines) + "\n"
    e = (expert or {}).get("statistics")
    lines += ["| statistic | device |" + (" expert |" if e else ""), "|---|---|" + ("---|" if e else "")]
    for label, key in ROWS:
        lines.append(f"| {label} | {_fmt(key, s)} |" + (f" {_fmt(key, e)} |" if e else ""))
    for name in [*SLEEP_STAGES, "NREM"]:
        pair = f"{_fmt(name, s)} ({_fmt('%' + name, s)} of TST)"
        epair = f"{_fmt(name, e)} ({_fmt('%' + name, e)} of TST)" if e else ""
        lines.append(f"| {name} | {pair} |" + (f" {epair} |" if e else ""))
    if e:
        n_unscored = sum((expert or {}).get("excluded_epochs", {}).values())
        lines += ["", f"Expert: the same epochs scored by the hypnogram's scorer ({n_unscored} unscored)."]
    return "\n".join(lines) + "\n"

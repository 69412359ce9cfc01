"""The summary of one monitored night (summary.json) and its few printed lines."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterable

import numpy as np

from host_tools.device import protocol as P
from host_tools.device.connection import ResetEvent
from host_tools.device.epoch_table import SOURCE_GAP, SOURCE_LOST, EpochRow
from host_tools.device.night_report import format_report, night_statistics


def _score(pairs: list[tuple[int, int]]) -> dict[str, Any] | None:
    """Accuracy, kappa and macro F1 of (expert, predicted) pairs; None when there are none."""
    from host_tools.evaluation import scores

    if not pairs:
        return None
    s = scores(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    return {"n": s["n"], "accuracy": s["acc"], "kappa": s["kappa"], "macro_f1": s["mf1"]}


def summarize(rows: Iterable[EpochRow], *, first_epoch: int, elapsed_s: float, hello: P.Hello | None,
              escalation: dict[str, Any] | None, link_host: Any, link_device: P.Status | None,
              device_errors: dict[str, int], resets: list[ResetEvent], flow_stalls: int) -> dict[str, Any]:
    """The night's summary: agreement with the expert, sources of the final labels, the link.

    Parameters
    ----------
    rows
        The epoch table's rows, in epoch order.
    escalation
        The escalation bridge's statistics (None without ``--cloud``).
    link_host, link_device
        The host's link counters (a dataclass) and the device's last STATUS.
    """
    rows = list(rows)
    classified = [r for r in rows if r.edge_stage is not None]
    sources: dict[str, int] = {}
    for r in rows:
        sources[r.final_source or SOURCE_LOST] = sources.get(r.final_source or SOURCE_LOST, 0) + 1
    return {
        "epochs_streamed": len(rows),
        "first_epoch": rows[0].epoch if rows else first_epoch,
        "elapsed_s": round(elapsed_s, 2),
        "device": None if hello is None else {
            "fw_version": hello.fw_version, "model_hash": f"{hello.model_hash:08x}",
            "threshold": round(float(hello.threshold), 4), "timeout_ms": hello.timeout_ms},
        "edge_only": _score([(r.expert_stage, r.edge_stage) for r in classified if r.expert_stage is not None]),
        "final": _score([(r.expert_stage, r.final_stage) for r in rows
                         if r.expert_stage is not None and r.final_stage is not None]),
        "escalation_rate": (sum(r.escalated for r in classified) / len(classified)) if classified else None,
        "final_sources": sources,
        "gap_epochs": [r.epoch for r in rows if r.final_source == SOURCE_GAP],
        "resets": [asdict(e) for e in resets],
        "escalation": escalation,
        "link_host": None if link_host is None else asdict(link_host),
        "link_device": None if link_device is None else asdict(link_device),
        "device_errors": device_errors,
        "flow_stalls": flow_stalls,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A few human lines for the end of a run."""
    def acc(key: str) -> str:
        s = summary.get(key)
        return "n/a (no expert labels)" if not s else f"accuracy {s['accuracy']:.3f}, kappa {s['kappa']:.3f} (n={s['n']})"

    esc = summary.get("escalation") or {}
    rate = summary.get("escalation_rate")
    lines = [
        f"epochs streamed: {summary['epochs_streamed']} in {summary['elapsed_s']:.0f} s; "
        f"final sources: {summary['final_sources']}",
        f"edge only vs expert: {acc('edge_only')}",
        f"final     vs expert: {acc('final')}",
        f"escalation rate: {'n/a' if rate is None else f'{100 * rate:.1f} %'}"
        + (f"; answered {esc.get('answered')}/{esc.get('escalations')} "
           f"({esc.get('with_context', 0)} with the night's context)" + _round_trip(esc) if esc else ""),
    ]
    if summary.get("gap_epochs"):
        lines.append(f"gap (device reset): {len(summary['gap_epochs'])} epochs")
    return "\n".join(lines)


def add_night_report(summary: dict[str, Any], rows: list[EpochRow], *, complete: bool = True,
                     reason: str | None = None) -> str:
    """Add ``complete``, ``reason`` and ``sleep_statistics`` (of the final hypnogram, see
    :mod:`host_tools.device.night_report`) to ``summary``; return the report as Markdown."""
    summary["complete"] = complete
    summary["reason"] = reason
    report = night_statistics([r.final_stage for r in rows], [r.final_source for r in rows])
    expert = None
    if any(r.expert_stage is not None for r in rows):
        expert = night_statistics([r.expert_stage for r in rows],
                                  ["expert" if r.expert_stage is not None else "unscored" for r in rows])
    summary["sleep_statistics"] = report
    summary["sleep_statistics_expert"] = expert
    origin = (summary.get("recording") or {}).get("origin")
    title = (f"Night report: epochs {rows[0].epoch}..{rows[-1].epoch} (device final labels)" if rows
             else "Night report: no completed epochs")
    return format_report({**report, "complete": complete, "reason": reason}, title=title, origin=origin,
                         expert=expert)


def _round_trip(esc: dict) -> str:
    """", round trip median X ms, p95 Y ms" when answers were timed, nothing when none were."""
    med, p95 = esc.get("latency_ms_median"), esc.get("latency_ms_p95")
    if med is None:
        return ""
    return f", round trip median {med:.0f} ms, p95 {p95:.0f} ms"

"""The monitor's printed summary (host_tools/device/monitor_summary.format_summary)."""

from __future__ import annotations

from host_tools.device.monitor_summary import format_summary

BASE = {"epochs_streamed": 3, "elapsed_s": 1.0, "final_sources": {"edge": 3}, "escalation_rate": 0.0}


def test_no_answered_escalation_prints_no_round_trip():
    """A night with nothing escalated (the shipped threshold never escalates) says so, without
    a 'nan ms' round trip."""
    text = format_summary(BASE | {"escalation": {"answered": 0, "escalations": 0, "with_context": 0,
                                                 "latency_ms_median": None, "latency_ms_p95": None}})
    assert "answered 0/0" in text and "nan" not in text and "round trip" not in text


def test_answered_escalations_print_the_round_trip():
    text = format_summary(BASE | {"escalation_rate": 0.5, "escalation": {
        "answered": 2, "escalations": 2, "with_context": 1, "latency_ms_median": 10.4, "latency_ms_p95": 19.6}})
    assert "escalation rate: 50.0 %; answered 2/2 (1 with the night's context), round trip median 10 ms, p95 20 ms" in text

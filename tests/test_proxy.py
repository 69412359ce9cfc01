"""Escalation proxy against the fake device and a real cloud service (stand-in model)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from host_tools import constants as C
from host_tools.device import protocol as P
from host_tools.device.monitor import MonitorOptions, run_monitor
from host_tools.device.proxy import CloudClient, CloudError, DeviceLink, EscalationBridge
from tests.fake_device import FakeDevice, FakeDeviceFaults, StandInCloudModel, edge_reference, stream_signal
from tests.test_cloud import TOKEN, free_port, serve

N_EPOCHS = 16
THRESHOLD = 0.9  # the fake edge model is unsure often enough at this threshold


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return stream_signal(N_EPOCHS, seed=3)


@pytest.fixture(scope="module")
def reference(signal: np.ndarray) -> list:
    return edge_reference(signal, 0, N_EPOCHS, threshold=THRESHOLD)


def test_escalations_answered_by_cloud(signal: np.ndarray, reference: list) -> None:
    cloud_model = StandInCloudModel()
    with serve(cloud_model) as url, FakeDevice(timeout_ms=3000) as dev:
        rows, summary = run_monitor(MonitorOptions(port=dev.url, signal=signal, cloud=url, token=TOKEN,
                                                   threshold=THRESHOLD, timeout_ms=3000))
    escalated = [r for r in reference if r[3]]
    assert 0 < len(escalated) < N_EPOCHS, "test signal must mix confident and unsure epochs"
    for row, (epoch, stage, conf, esc, filt) in zip(rows, reference):
        assert row.epoch == epoch and row.edge_stage == stage and row.escalated == esc
        assert row.edge_confidence == pytest.approx(conf)
        if esc:
            expected = StandInCloudModel().stage_of(filt)  # the cloud model on the filtered epoch
            assert (row.final_source, row.cloud_stage, row.final_stage) == ("cloud", expected, expected)
        else:
            assert (row.final_source, row.final_stage) == ("edge", stage)
    esc = summary["escalation"]
    assert esc["escalations"] == esc["answered"] == len(escalated) and esc["failed"] == 0
    assert 0 < esc["latency_ms_median"] <= esc["latency_ms_p95"] < 3000
    assert summary["escalation_rate"] == pytest.approx(len(escalated) / N_EPOCHS)
    assert summary["link_device"]["cloud_answers"] == len(escalated)
    assert cloud_model.calls >= 1


class _HistoryRecorder(StandInCloudModel):
    """The stand-in model, recording the edge history each escalation arrives with."""

    def __init__(self) -> None:
        super().__init__()
        self.histories: list = []

    def predict_with_history(self, x_uv: np.ndarray, histories: list) -> tuple[np.ndarray, np.ndarray]:
        self.histories.extend(histories)
        return self.predict_proba(x_uv), np.array([h is not None for h in histories])


def test_escalations_carry_the_devices_recent_outputs(signal: np.ndarray, reference: list) -> None:
    """Each escalation carries the RESULT outputs of the last CLOUD_HISTORY_EPOCHS epochs (itself
    last, absent before the stream began) and the device's model hash from HELLO."""
    recorder = _HistoryRecorder()
    with serve(recorder) as url, FakeDevice(timeout_ms=3000) as dev:
        _rows, summary = run_monitor(MonitorOptions(port=dev.url, signal=signal, cloud=url, token=TOKEN,
                                                    threshold=THRESHOLD, timeout_ms=3000))
    results = {m.epoch: m.probs for m in dev.sent_frames if isinstance(m, P.Result)}
    escalated = [r[0] for r in reference if r[3]]
    assert summary["escalation"]["with_context"] == len(escalated) == len(recorder.histories)

    def key(present: list[bool], probs: list[tuple[int, ...]]) -> tuple:
        return tuple(present), tuple(probs)

    expected = []
    for epoch in escalated:
        window = range(epoch - C.CLOUD_HISTORY_EPOCHS + 1, epoch + 1)
        expected.append(key([e >= 0 for e in window], [tuple(results[e]) if e >= 0 else (0,) * 5 for e in window]))
    got = []
    for h in recorder.histories:
        assert h.model_hash_u32 == dev.model_hash and len(h.probs) == C.CLOUD_HISTORY_EPOCHS
        got.append(key(h.present.tolist(), [tuple(int(v) for v in row) for row in h.probs]))
    assert sorted(got) == sorted(expected)


def test_bridge_history_is_bounded_and_skips_incomplete_epochs() -> None:
    bridge = EscalationBridge(CloudClient("http://127.0.0.1:9", "t"), lambda m: None, history_epochs=3)
    assert bridge.history_for(5) is None  # no HELLO yet: no model hash, no history
    bridge.on_hello(P.Hello(C.PROTOCOL_VERSION, C.FIRMWARE_VERSION, 0xABCD0123, C.FS_HZ, C.EPOCH_SAMPLES, 0.5, 1234))
    assert bridge.timeout_ms == 1234
    for e in range(500):
        bridge.on_result(P.Result(e, e % 5, False, 0, (e % 100, 1, 2, 3, 4), 0.5))
    bridge.on_result(P.Result(500, C.STAGE_UNKNOWN, False, P.FLAG_INCOMPLETE, (0,) * 5, 0.0))
    bridge.on_result(P.Result(501, 2, True, 0, (9, 9, 9, 9, 9), 0.3))
    h, entries = bridge.history_for(501)
    assert h == 0xABCD0123
    assert entries == [[99, 1, 2, 3, 4], None, [9, 9, 9, 9, 9]]
    assert len(bridge._results) <= 4 * 3 + 64
    bridge.close()


def test_cloud_down_device_keeps_its_labels(signal: np.ndarray, reference: list) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with FakeDevice() as dev:
        rows, summary = run_monitor(MonitorOptions(port=dev.url, signal=signal, cloud=dead, token=TOKEN,
                                                   threshold=THRESHOLD, timeout_ms=400))
    for row, (epoch, stage, _c, esc, _f) in zip(rows, reference):
        assert row.final_stage == stage  # the device's own label, whatever happened to the cloud
        assert row.final_source == ("timeout" if esc else "edge")
        assert row.cloud_stage is None
    esc = summary["escalation"]
    assert esc["failed"] == esc["escalations"] == sum(r[3] for r in reference) and esc["answered"] == 0
    assert any("gave up" in e for e in esc["errors"])


def test_cloud_slower_than_device_timeout(signal: np.ndarray, reference: list) -> None:
    """The proxy gives up within its deadline and never sends a label the device no longer wants."""
    slow = StandInCloudModel(delay_s=1.0)
    with serve(slow) as url, FakeDevice() as dev:
        rows, summary = run_monitor(MonitorOptions(port=dev.url, signal=signal, cloud=url, token=TOKEN,
                                                   threshold=THRESHOLD, timeout_ms=500))
    n_esc = sum(r[3] for r in reference)
    assert [r.final_source for r in rows] == ["timeout" if r[3] else "edge" for r in reference]
    assert summary["escalation"]["failed"] == n_esc
    assert "cloud label for an epoch that is not pending" not in summary["device_errors"]


class _Flaky:
    """httpx MockTransport handler: fails ``n_fail`` times with ``status``, then answers."""

    def __init__(self, n_fail: int, status: int = 503) -> None:
        self.n_fail, self.status, self.calls = n_fail, status, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.n_fail:
            if self.status == 0:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(self.status, json={"detail": "busy"})
        return httpx.Response(200, json={"epoch": 1, "stage": "N3", "stage_index": 3, "probs": [0, 0, 0, 1, 0],
                                         "model": "m"})


def test_client_retries_with_backoff_then_succeeds() -> None:
    flaky = _Flaky(2)
    client = CloudClient("http://cloud", TOKEN, backoff_s=0.02, transport=httpx.MockTransport(flaky))
    t0 = time.monotonic()
    ans = client.classify("d", 1, np.zeros(C.EPOCH_SAMPLES, np.int16), time.monotonic() + 5)
    assert (ans.stage, ans.attempts, flaky.calls) == (3, 3, 3)
    assert time.monotonic() - t0 >= 0.02 + 0.04  # two backoffs, the second twice the first


def test_client_does_not_retry_client_errors() -> None:
    flaky = _Flaky(5, status=401)
    client = CloudClient("http://cloud", TOKEN, transport=httpx.MockTransport(flaky))
    with pytest.raises(CloudError, match="HTTP 401") as exc:
        client.classify("d", 1, np.zeros(C.EPOCH_SAMPLES, np.int16), time.monotonic() + 5)
    assert exc.value.permanent and flaky.calls == 1


def test_client_respects_deadline() -> None:
    flaky = _Flaky(10**6, status=0)
    client = CloudClient("http://cloud", TOKEN, backoff_s=0.05, max_attempts=100,
                         transport=httpx.MockTransport(flaky))
    t0 = time.monotonic()
    with pytest.raises(CloudError, match="gave up"):
        client.classify("d", 1, np.zeros(C.EPOCH_SAMPLES, np.int16), t0 + 0.3)
    assert 0.25 < time.monotonic() - t0 < 0.6 and flaky.calls >= 3


def test_client_rejects_bad_arguments() -> None:
    from host_tools.errors import SleepEdgeError

    with pytest.raises(SleepEdgeError, match="http"):
        CloudClient("127.0.0.1:8000", TOKEN)
    with pytest.raises(SleepEdgeError, match="token"):
        CloudClient("http://x", "")


def test_bridge_refuses_short_escalation() -> None:
    sent: list = []
    flaky = _Flaky(0)
    bridge = EscalationBridge(CloudClient("http://cloud", TOKEN, transport=httpx.MockTransport(flaky)), sent.append)
    rec = bridge.on_escalate(P.Escalate(7, np.zeros(100, np.int16)))
    assert bridge.wait_idle(5)
    bridge.close()
    assert sent == [] and flaky.calls == 0 and "100 samples" in (rec.error or "")


def test_standalone_proxy_cli(repo_root) -> None:
    """`sleepedge proxy` bridges a device that samples its own signal (no host streaming)."""
    sig = stream_signal(6, seed=3)
    ref = edge_reference(sig, 0, 6, threshold=0.99)
    with serve(StandInCloudModel()) as url, FakeDevice(threshold=0.99, timeout_ms=3000, local_signal=sig) as dev:
        r = subprocess.run([sys.executable, "-m", "host_tools.cli", "proxy", "--port", dev.url, "--cloud", url,
                            "--token", TOKEN, "--duration", "3"], cwd=repo_root, capture_output=True, text=True,
                           timeout=60)
    assert r.returncode == 0, r.stderr
    n_esc = sum(x[3] for x in ref)
    assert n_esc > 0
    assert f"{n_esc} escalations, {n_esc} answered, 0 late, 0 failed" in r.stdout
    for epoch, _s, _c, esc, filt in ref:
        if esc:
            assert f"epoch {epoch}: {C.STAGES[StandInCloudModel().stage_of(filt)]} (cloud)" in r.stdout


def test_device_link_reports_bad_port() -> None:
    from host_tools.errors import SleepEdgeError

    with pytest.raises(SleepEdgeError, match="cannot open"):
        DeviceLink(f"socket://127.0.0.1:{free_port()}", lambda m: None).open(timeout_s=0.3)


# --- what "answered" means: the device used the label (its FINAL says "cloud") ------------------

def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"epoch": 1, "stage": "N3", "stage_index": 3, "probs": [0, 0, 0, 1, 0],
                                     "model": "m"})


def test_answered_counts_only_labels_the_device_used() -> None:
    """A label the device refused as late (its FINAL says timeout) is counted late, not answered;
    one whose FINAL never came is unconfirmed."""
    sent: list = []
    bridge = EscalationBridge(CloudClient("http://cloud", TOKEN, transport=httpx.MockTransport(_ok)), sent.append)
    for epoch in (1, 2, 3):
        bridge.on_escalate(P.Escalate(epoch, np.zeros(C.EPOCH_SAMPLES, np.int16)))
    assert bridge.wait_idle(5)
    assert sorted(m.epoch for m in sent) == [1, 2, 3]  # the bridge sent all three in time
    bridge.on_final(P.Final(1, 3, C.FINAL_SOURCES.index("cloud")))
    bridge.on_final(P.Final(2, 0, C.FINAL_SOURCES.index("timeout")))  # the device had given up
    bridge.on_final(P.Final(9, 0, C.FINAL_SOURCES.index("edge")))  # not escalated: ignored
    s = bridge.stats()
    bridge.close()
    assert (s["escalations"], s["answered"], s["late"], s["unconfirmed"], s["failed"]) == (3, 1, 1, 1, 0)
    assert [r.outcome for r in bridge.records] == ["answered", "late", "unconfirmed"]
    assert s["latency_ms_median"] == pytest.approx(bridge.records[0].latency_s * 1000)


def test_answer_after_the_deadline_is_late_and_not_sent() -> None:
    """The cloud answers, but after the bridge's deadline: nothing goes to the device, and the
    escalation counts as late (the cloud did answer), not as failed."""
    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.3)  # MockTransport ignores the client's timeout, so the answer does come
        return _ok(request)

    sent: list = []
    bridge = EscalationBridge(CloudClient("http://cloud", TOKEN, transport=httpx.MockTransport(slow)), sent.append,
                              timeout_ms=200, deadline_fraction=0.5)
    bridge.on_escalate(P.Escalate(4, np.zeros(C.EPOCH_SAMPLES, np.int16)))
    assert bridge.wait_idle(5)
    bridge.on_final(P.Final(4, 1, C.FINAL_SOURCES.index("timeout")))
    s = bridge.stats()
    bridge.close()
    assert sent == []
    assert (s["answered"], s["late"], s["failed"]) == (0, 1, 0)
    assert bridge.records[0].cloud_stage == 3 and "after the deadline" in (bridge.records[0].error or "")


def test_no_label_after_the_device_finalised_the_epoch() -> None:
    """A FINAL that arrives while the cloud is still working (the device timed out early, or its
    pending table was full) stops the bridge from sending a label the device would refuse."""
    release = threading.Event()
    entered = threading.Event()

    def gated(request: httpx.Request) -> httpx.Response:
        entered.set()
        assert release.wait(5)
        return _ok(request)

    sent: list = []
    bridge = EscalationBridge(CloudClient("http://cloud", TOKEN, transport=httpx.MockTransport(gated)), sent.append)
    bridge.on_escalate(P.Escalate(6, np.zeros(C.EPOCH_SAMPLES, np.int16)))
    assert entered.wait(5)
    bridge.on_final(P.Final(6, 2, C.FINAL_SOURCES.index("timeout")))
    release.set()
    assert bridge.wait_idle(5)
    bridge.close()
    assert sent == [] and bridge.records[0].outcome == "late"


def test_answered_matches_the_devices_cloud_finals_when_its_table_overflows(signal: np.ndarray) -> None:
    """Nearly every epoch escalates and the cloud is slow: the device's table of pending
    escalations overflows and it finalises the oldest on its own. "answered" then equals the
    FINAL frames the device sent with source cloud; the answers it no longer wanted are late."""
    # An escalation every ~0.2 s (inference delay), one answer per 0.6 s (no batching): after
    # about a second 4 are pending, and each new escalation makes the device finalise the oldest
    # on its own, long before its 10-s timeout; the cloud's answer for it comes later still.
    slow = StandInCloudModel(delay_s=0.6)
    with serve(slow, max_batch=1, max_wait_ms=0) as url, \
            FakeDevice(timeout_ms=10_000, faults=FakeDeviceFaults(infer_delay_s=0.2)) as dev:
        rows, summary = run_monitor(MonitorOptions(port=dev.url, signal=signal, cloud=url, token=TOKEN,
                                                   threshold=0.999, timeout_ms=10_000))
    esc = summary["escalation"]
    device_cloud = sum(1 for m in dev.sent_frames if isinstance(m, P.Final) and m.source == 1)
    assert esc["answered"] == device_cloud == sum(r.final_source == "cloud" for r in rows)
    assert esc["late"] >= 1 and esc["answered"] >= 1, esc
    assert esc["answered"] + esc["late"] + esc["failed"] + esc["unconfirmed"] == esc["escalations"]
    assert esc["unconfirmed"] == 0 and esc["pending"] == 0
    # A label can still cross the device's FINAL on the wire; the device refuses it, and it is late.
    assert summary["device_errors"].get("cloud label for an epoch that is not pending", 0) <= esc["late"]

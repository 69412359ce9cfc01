"""End to end: the real firmware in QEMU + the monitor with its in-process proxy + the cloud
service, and the fault cases with the real firmware.

The edge model is the project's edge CNN with untrained random weights (full int8, exported to
C) so the test does not depend on a trained model; the cloud model is the deterministic
stand-in from tests/fake_device.py, served by the real FastAPI app. The signal is synthetic EEG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from tests.conftest import export_random_edge_model, have_arm_toolchain
from tests.fake_device import StandInCloudModel, TcpRelay
from tests.test_cloud import TOKEN, free_port, serve

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(not have_arm_toolchain(), reason="arm-none-eabi-gcc or qemu-system-arm is not installed"),
]

N_EPOCHS = 40
TIMEOUT_MS = 3000  # QEMU runs on wall-clock time; long enough for a cloud round trip under load


@pytest.fixture(scope="module")
def signal_raw() -> np.ndarray:
    from host_tools.bench.device import synthetic_eeg
    from host_tools.data.filters import to_device_samples

    return to_device_samples(synthetic_eeg(N_EPOCHS, seed=11))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, signal_raw) -> Path:
    return export_random_edge_model(tmp_path_factory.mktemp("e2e_edge_model"), signal_raw, seed=2,
                                    threshold=0.6, name="e2e_random")


@pytest.fixture(scope="module")
def firmware_elf(model_dir, tmp_path_factory) -> Path:
    from host_tools.device.emulator import build_firmware

    return build_firmware(model_dir, tmp_path_factory.mktemp("e2e_fw"))


@pytest.fixture(scope="module")
def host_edge(model_dir, signal_raw) -> tuple[np.ndarray, np.ndarray, float]:
    """The host's int8 predictions (TFLM) for the whole stream, and a threshold that escalates
    roughly a third of the epochs of this random model."""
    from host_tools.data.filters import filter_device
    from host_tools.deploy.predict import predict_epochs_int8

    y = filter_device(signal_raw * C.SAMPLE_UV_PER_LSB).reshape(N_EPOCHS, C.EPOCH_SAMPLES)
    _raw, stages, conf = predict_epochs_int8(model_dir, y)
    threshold = float(np.quantile(conf, 0.35)) + 1e-6
    return stages, conf, threshold


def _filtered_int16(signal_raw: np.ndarray, first_epoch: int, n: int) -> np.ndarray:
    from host_tools.data.filters import filter_causal, from_device_samples

    seg = signal_raw[first_epoch * C.EPOCH_SAMPLES:(first_epoch + n) * C.EPOCH_SAMPLES]
    y, _ = filter_causal(from_device_samples(seg))
    q = np.clip(np.floor(y * np.float32(4.0) + np.float32(0.5)), -32768, 32767).astype(np.int16)
    return q.reshape(n, C.EPOCH_SAMPLES)


def test_qemu_proxy_cloud_every_epoch(firmware_elf, signal_raw, host_edge) -> None:
    from host_tools.device.emulator import QemuDevice
    from host_tools.device.monitor import MonitorOptions, run_monitor

    stages, conf, threshold = host_edge
    cloud = StandInCloudModel()
    with serve(cloud) as url, QemuDevice(firmware_elf, timeout_s=300) as dev:
        rows, summary = run_monitor(MonitorOptions(port=dev.url, signal=signal_raw, cloud=url, token=TOKEN,
                                                   threshold=threshold, timeout_ms=TIMEOUT_MS))
    filt = _filtered_int16(signal_raw, 0, N_EPOCHS)
    assert [r.epoch for r in rows] == list(range(N_EPOCHS))
    escalated = [r for r in rows if r.escalated]
    assert 0 < len(escalated) < N_EPOCHS
    for r in rows:
        assert r.edge_stage == stages[r.epoch]
        assert r.escalated == (np.float32(conf[r.epoch]) < np.float32(threshold))
        if r.escalated:
            expected = cloud.stage_of(filt[r.epoch])  # what the cloud says on the host's filtered epoch
            assert (r.final_source, r.cloud_stage, r.final_stage) == ("cloud", expected, expected), r
        else:
            assert (r.final_source, r.final_stage) == ("edge", stages[r.epoch])
    esc = summary["escalation"]
    assert esc["answered"] == esc["escalations"] == len(escalated) and esc["failed"] == 0
    dev_link = summary["link_device"]
    assert dev_link["cloud_answers"] == len(escalated) and dev_link["timeouts"] == 0
    assert dev_link["bad_crc"] == 0 and summary["link_host"]["bad_crc"] == 0
    assert dev_link["epochs"] == N_EPOCHS


def test_qemu_cloud_down_and_corrupted_link(firmware_elf, signal_raw, host_edge) -> None:
    """Cloud unreachable and bytes flipped on the way to the device: the device times out to its
    own labels, drops and counts bad frames, and NACKs the lost SAMPLES, which the monitor sends
    again: every epoch is labelled exactly as the host labels the clean stream."""
    from host_tools.device.emulator import QemuDevice
    from host_tools.device.monitor import MonitorOptions, run_monitor

    stages, _conf, threshold = host_edge
    n = 16
    with QemuDevice(firmware_elf, timeout_s=300) as dev, TcpRelay(dev.port, corrupt_every=20011) as relay:
        rows, summary = run_monitor(MonitorOptions(port=relay.url, signal=signal_raw, n_epochs=n,
                                                   cloud=f"http://127.0.0.1:{free_port()}", token=TOKEN,
                                                   threshold=threshold, timeout_ms=500))
    assert relay.corrupted >= 3
    assert [r.epoch for r in rows] == list(range(n))
    dev_link = summary["link_device"]
    assert dev_link["bad_crc"] + dev_link["garbage_bytes"] + dev_link["rx_overflows"] >= 1
    # lost blocks were recovered (NACK, resend; the dropped ones count as stale), none zero-filled
    assert dev_link["missing_blocks"] == 0 and dev_link["stale_blocks"] >= 1
    assert summary["link_recovery"]["nacks"] >= 1 and summary["link_recovery"]["resent_blocks"] >= 1
    assert dev_link["cloud_answers"] == 0
    assert {r.final_source for r in rows} <= {"edge", "timeout"}
    for r in rows:  # exactly the host's labels, as on a clean link
        assert r.final_stage == stages[r.epoch]
        assert r.final_source == ("timeout" if r.escalated else "edge")
    assert summary["escalation"]["answered"] == 0


def test_qemu_board_reset_mid_stream(firmware_elf, model_dir, signal_raw, host_edge) -> None:
    """The board reboots behind its USB-serial bridge (a second QEMU on the same host port):
    HELLO mid-stream, the monitor resumes at the next epoch boundary and reports the gap."""
    import threading

    from host_tools.device.emulator import QemuDevice
    from host_tools.data.filters import filter_causal, from_device_samples
    from host_tools.device.monitor import Monitor, MonitorOptions
    from host_tools.deploy.predict import predict_epochs_int8

    stages, _conf, _threshold = host_edge
    n = 12
    with QemuDevice(firmware_elf, timeout_s=300) as dev1, QemuDevice(firmware_elf, timeout_s=300) as dev2, \
            TcpRelay(dev1.port) as relay:
        m = Monitor(MonitorOptions(port=relay.url, signal=signal_raw, n_epochs=n, threshold=0.0,
                                   timeout_ms=500, speed=60.0))

        def reset_after_epoch_4() -> None:
            with m.cond:
                m.cond.wait_for(lambda: m.rows[4].final_source is not None, 120)
            relay.swap_target(dev2.port)  # the "rebooted" board boots and says HELLO

        t = threading.Thread(target=reset_after_epoch_4, daemon=True)
        t.start()
        summary = m.run()
        t.join(5)
    rows = [m.rows[e] for e in sorted(m.rows)]
    assert [r.epoch for r in rows] == list(range(n))
    (reset,) = summary["resets"]
    k = reset["resumed_epoch"]
    gap = summary["gap_epochs"]
    assert 5 in gap and set(gap) <= set(range(5, k)) and k <= 8
    # Between the reset and the resume point an epoch is either a gap or (if the new board
    # caught an epoch boundary in flight) reported incomplete by the board itself.
    assert all(rows[e].final_source in ("gap", "incomplete") for e in range(5, k))
    assert [r.final_stage for r in rows[:5]] == list(stages[:5])
    assert all(r.final_source == "edge" for r in rows[k:])
    if all(rows[e].final_source == "gap" for e in range(5, k)):
        # The new board filtered from rest at the resume epoch: TFLM on the same stream agrees.
        y, _ = filter_causal(from_device_samples(signal_raw[k * C.EPOCH_SAMPLES:n * C.EPOCH_SAMPLES]))
        _raw, after, _c = predict_epochs_int8(model_dir, y.reshape(n - k, C.EPOCH_SAMPLES))
        assert [r.final_stage for r in rows[k:]] == list(after)

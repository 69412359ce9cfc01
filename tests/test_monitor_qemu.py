"""The real firmware in QEMU, killed mid-night: `sleepedge monitor --out` exits 2 naming the port,
keeps every completed epoch, and `--resume` on a new emulator completes the night."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from tests.conftest import export_random_edge_model, have_arm_toolchain
from tests.monitor_helpers import check_device_lost, monitor_losing_device, results_rows
from tests.test_monitor import START

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.slow,  # ~35 s with the firmware build
    pytest.mark.skipif(not have_arm_toolchain(), reason="arm-none-eabi-gcc or qemu-system-arm is not installed"),
]

N = 12


@pytest.fixture(scope="module")
def psg_and_signal(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A synthetic-EEG PSG of N epochs, and its channel as the monitor sends it."""
    from host_tools.bench.device import synthetic_eeg
    from host_tools.data import edf_io
    from host_tools.data.filters import to_device_samples

    psg = tmp_path_factory.mktemp("qemu_night") / "SC4971E0-PSG.edf"
    edf_io.write_psg(psg, {"EEG Fpz-Cz": np.asarray(synthetic_eeg(N, seed=4), np.float64)}, C.FS_HZ, START)
    x_uv, _fs, _start = edf_io.read_psg_channel(psg, "Fpz-Cz")
    return psg, to_device_samples(x_uv)


@pytest.fixture(scope="module")
def firmware(tmp_path_factory, psg_and_signal) -> tuple[Path, Path]:
    from host_tools.device.emulator import build_firmware

    _psg, sig = psg_and_signal
    model = export_random_edge_model(tmp_path_factory.mktemp("qemu_night_model"), sig, seed=3, threshold=0.5,
                                     name="night_random")
    return model, build_firmware(model, tmp_path_factory.mktemp("qemu_night_fw"))


def _host_stages(model: Path, sig: np.ndarray, first: int, n: int) -> list[str]:
    """TFLM int8 on the host, on a stream the device started filtering at epoch ``first``."""
    from host_tools.data.filters import filter_causal, from_device_samples
    from host_tools.deploy.predict import predict_epochs_int8

    y, _ = filter_causal(from_device_samples(sig[first * C.EPOCH_SAMPLES:(first + n) * C.EPOCH_SAMPLES]))
    _raw, stages, _conf = predict_epochs_int8(model, y.reshape(n, C.EPOCH_SAMPLES))
    return [C.STAGES[s] for s in stages]


def test_qemu_killed_mid_night_then_resumed(psg_and_signal, firmware, tmp_path: Path, capsys) -> None:
    from host_tools.cli import main
    from host_tools.device.emulator import QemuDevice

    psg, sig = psg_and_signal
    model, elf = firmware
    out = tmp_path / "out"
    common = ["--edf", str(psg), "--threshold", "0.0", "--out", str(out), "--plain", "--reconnect-s", "1"]
    with QemuDevice(elf, timeout_s=300) as dev:
        # The emulator dies after 4 epochs: no FIN handshake from the firmware side.
        rc = monitor_losing_device(["monitor", "--port", dev.url, "--speed", "30", *common], out, 4,
                                   dev._proc.kill)
        err = capsys.readouterr().err
    rows = check_device_lost(rc, err, dev.url, out, at_least=4, n=N)
    k = len(rows)
    assert [r["final_stage"] for r in rows] == _host_stages(model, sig, 0, k)
    with QemuDevice(elf, timeout_s=300) as dev2:
        assert main(["monitor", "--port", dev2.url, "--resume", *common]) == 0
    rows2 = results_rows(out)
    assert [int(r["epoch"]) for r in rows2] == list(range(N)) and rows2[:k] == rows
    # The new board filters from rest at the resume epoch; TFLM on the same stream agrees.
    assert [r["final_stage"] for r in rows2[k:]] == _host_stages(model, sig, k, N - k)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["resumed_at_epoch"] == k

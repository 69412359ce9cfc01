"""``sleepedge adapt`` on the real DREAMS recordings (4 people, ``sleepedge data convert`` into a
temporary folder, never into the repository), with a small budget: the output folder is a models folder
that ``predict`` takes, the firmware builds with its edge model, and the device in QEMU gives the
host's labels on a real recording. Figures here are DREAMS real-EEG figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from tests.conftest import SHARED_DATA, have_arm_toolchain

REPO = Path(__file__).resolve().parent.parent
DREAMS = SHARED_DATA / "dreams-spindles"
PEOPLE = ["excerpt1", "excerpt2", "excerpt3", "excerpt4"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapted(tmp_path_factory) -> tuple[Path, Path, dict]:
    """``sleepedge adapt`` from the CLI on the four people, small budget, two edge candidates."""
    from host_tools.cli import main

    if not DREAMS.is_dir():
        pytest.fail(f"{DREAMS} is missing: CI and developers keep ../shared beside the checkout")
    rec_dir = tmp_path_factory.mktemp("dreams")
    assert main(["data", "convert", "--dreams", str(DREAMS), "--out", str(rec_dir)]) == 0
    out = tmp_path_factory.mktemp("adapted") / "models"
    rc = main(["adapt", "--base", str(REPO / "models"), "--in", str(rec_dir), "--out", str(out),
               "--channel", "C3-A1,CZ-A1", "--budget", "0.1", "--no-prune", "--strategies", "head,top1",
               "--source-strategies", "none,probs", "--quiet"])
    assert rc == 0
    return rec_dir, out, json.loads((out / "metrics.json").read_text())


def test_adapt_writes_a_models_folder_with_lopo_figures(adapted) -> None:
    _rec, out, m = adapted
    for f in ("edge/model.tflite", "edge/model_data.c", "edge/model_data.h", "edge/model_plan.c",
              "edge/model_plan.h", "edge/export.json", "edge/float.keras", "source/model.keras",
              "source/model.json", "cloud/head.keras", "cloud/model.json", "MODEL_CARD.md"):
        assert (out / f).is_file(), f
    assert m["people"] == PEOPLE
    assert m["stage_counts"] == {"W": 34, "N1": 31, "N2": 131, "N3": 44, "REM": 0}
    for when in ("before", "after"):
        s = m[when]["int8"]
        assert sum(p["n"] for p in s["per_person"].values()) == 240
        assert 0.0 <= s["acc"] <= 1.0 and set(s["per_class_f1"]) == set(C.STAGES)
    # The choice is the candidate with the best LOPO objective, and it is what was delivered.
    cands = m["candidates"]["edge_float"]
    assert m["choice"]["edge"]["name"] == max(cands, key=lambda k: cands[k]["objective"])
    assert m["after"]["float"]["acc"] == pytest.approx(cands[m["choice"]["edge"]["name"]]["acc"], abs=0.08)
    exp = json.loads((out / "edge" / "export.json").read_text())
    assert exp["threshold"] == pytest.approx(m["after"]["hybrid"]["threshold"], abs=1e-6) or \
        m["after"]["hybrid"]["threshold"] < 0.05
    cloud = json.loads((out / "cloud" / "model.json").read_text())
    assert cloud["edge_model"]["sha256"] == exp["sha256"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "leave-one-person-out" in card and "excerpt4" in card


def test_predict_takes_the_folder_and_the_cloud_model_loads(adapted) -> None:
    from host_tools.cli import main
    from host_tools.cloud.model import ContextCloudModel, load_cloud
    from host_tools.deploy.predict import CSV_FIELDS

    rec, out, _m = adapted
    csv = out.parent / "pred.csv"
    assert main(["predict", "--model", str(out), "--in", str(rec / "excerpt4-PSG.edf"), "--out", str(csv),
                 "--channel", "C3-A1,CZ-A1"]) == 0
    lines = csv.read_text().splitlines()
    assert lines[0] == ",".join(CSV_FIELDS) and len(lines) == 61
    assert isinstance(load_cloud(out / "cloud"), ContextCloudModel)


@pytest.mark.qemu
@pytest.mark.skipif(not have_arm_toolchain(), reason="arm-none-eabi-gcc or qemu-system-arm is not installed")
def test_firmware_with_the_adapted_model_gives_the_hosts_labels(adapted, tmp_path) -> None:
    from host_tools.data.filters import to_device_samples
    from host_tools.data.recordings import read_eeg
    from host_tools.deploy.predict import predict_recordings
    from host_tools.device.emulator import QemuDevice, build_firmware
    from host_tools.device.monitor import MonitorOptions, run_monitor

    rec, out, _m = adapted
    psg = rec / "excerpt4-PSG.edf"  # CZ-A1 at 200 Hz: streamed as the host resamples it to 100 Hz
    n = 8
    elf = build_firmware(out / "edge", tmp_path / "fw")
    host = [C.STAGES.index(r["stage"]) for r in predict_recordings(out, [psg], "C3-A1,CZ-A1", progress=False)][:n]
    x_uv, _fs, _start, _name = read_eeg(psg, "C3-A1,CZ-A1")
    with QemuDevice(elf, timeout_s=300) as dev:
        rows, _summary = run_monitor(MonitorOptions(port=dev.url, signal=to_device_samples(x_uv), n_epochs=n,
                                                    threshold=0.0, timeout_ms=500))
    assert [r.epoch for r in rows] == list(range(n))
    assert [int(r.edge_stage) for r in rows] == host
    assert len(set(host)) >= 1 and np.all(np.array(host) >= 0)

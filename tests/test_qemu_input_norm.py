"""The firmware with the running input normalization switched on (SE_MODEL_INPUT_NORM 1) on the
emulated STM32F405: every RESULT equals ``sleepedge predict``'s path for a model folder that says
``"input_norm"`` (TflmModel.quantize_stream + TFLM), artefact epochs left out of the ring.

Model: the edge CNN with random weights (tests.conftest.export_random_edge_model), exported with
the switch on. Signal: synthetic EEG (host_tools.data.synth) with a x3 gain step and a flat epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from tests.qemu_helpers import stream_results
from tests.conftest import export_random_edge_model, have_arm_toolchain

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.slow,  # ~35 s: builds the firmware and streams 14 epochs through QEMU
    pytest.mark.skipif(not have_arm_toolchain(), reason="arm-none-eabi-gcc or qemu-system-arm is not installed"),
]

N_EPOCHS = 14
FLAT_EPOCH = 5


@pytest.fixture(scope="module")
def signal_raw() -> np.ndarray:
    from host_tools.bench.device import synthetic_eeg
    from host_tools.data.filters import to_device_samples

    uv = synthetic_eeg(N_EPOCHS, seed=4)
    uv[8 * C.EPOCH_SAMPLES:] *= 3.0  # another amplifier gain from epoch 8 on
    q = to_device_samples(uv)
    q[FLAT_EPOCH * C.EPOCH_SAMPLES:(FLAT_EPOCH + 1) * C.EPOCH_SAMPLES] = 200  # lost electrode
    return q


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, signal_raw) -> Path:
    from host_tools.data.normalize import default_input_norm
    from host_tools.deploy.c_export import export_model

    out = export_random_edge_model(tmp_path_factory.mktemp("edge_norm"), signal_raw, seed=2,
                                   threshold=0.6, name="test_norm")
    export_model(out / "model.tflite", out, threshold=0.6, name="test_norm", input_norm=True)
    (out / "export.json").write_text(json.dumps({"input_norm": default_input_norm()}))
    return out


def test_device_with_input_norm_equals_predict(model_dir, signal_raw, tmp_path):
    from host_tools.data import filters, quality
    from host_tools.deploy.predict import TflmModel
    from host_tools.device.emulator import build_firmware

    assert "#define SE_MODEL_INPUT_NORM 1" in (model_dir / "model_data.h").read_text()
    elf = build_firmware(model_dir, tmp_path / "build")
    results = stream_results(elf, signal_raw, N_EPOCHS)

    tflm = TflmModel.load(model_dir)
    assert tflm.input_norm is not None
    y = filters.filter_device(signal_raw.astype(np.float64) * C.SAMPLE_UV_PER_LSB).reshape(N_EPOCHS, -1)
    ok = quality.recording_verdicts(signal_raw) == quality.OK
    assert not ok[FLAT_EPOCH] and ok.sum() == N_EPOCHS - 1
    raw = tflm.run_int8(tflm.quantize_stream(y, classified=ok))
    plain = tflm.run_int8(tflm.quantize_plain(y))
    assert not np.array_equal(raw[ok], plain[ok]), "the normalization changed nothing"
    assert sorted(results) == list(range(N_EPOCHS))
    assert results[FLAT_EPOCH].artefact
    device = np.array([results[k].probs for k in np.flatnonzero(ok)], dtype=np.int8)
    np.testing.assert_array_equal(device, raw[ok])

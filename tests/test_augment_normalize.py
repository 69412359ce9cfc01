"""Causal running input normalization: the host reference (host_tools.data.normalize) against
the C unit (firmware/core/se_norm.c through firmware/tests/norm_tool) bit for bit, the app with
the switch on (firmware/tests/app_tool --norm) against ``sleepedge predict``'s input path, and the
model-folder switch.

Signals: synthetic (random and crafted epochs), plus the prepared cache's filtered epochs
(/work/main/data/cache/sc, read-only: a synthetic Sleep-EDF-shaped corpus) when it exists. These
tests check arithmetic, not staging accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.data import filters, normalize as NZ, quality
from host_tools.errors import SleepEdgeError
from tests.test_firmware_core import (MOCK_IN_SCALE, MOCK_OUT_ZP, Script, T, eeg_like_night,  # noqa: F401
                                      host_build, mock_derive)
from host_tools.device import protocol as P

N = C.EPOCH_SAMPLES
CACHE_NIGHT = Path("/work/main/data/cache/sc/nights/SC4001E0.npz")


def run_c(build: Path, q: np.ndarray, classified: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """norm_tool over epochs in stream order: amplitude, scale (0 if not classified), gain."""
    rec = np.zeros((len(q), 1 + 2 * N), np.uint8)
    rec[:, 0] = classified.astype(np.uint8)
    rec[:, 1:] = np.ascontiguousarray(q.astype("<i2")).view(np.uint8).reshape(len(q), 2 * N)
    r = subprocess.run([str(build / "norm_tool")], input=rec.tobytes(), capture_output=True,
                       check=True, timeout=120)
    out = np.frombuffer(r.stdout, dtype=np.dtype([("a", "<u2"), ("s", "<u2"), ("g", "<f4")]))
    assert len(out) == len(q)
    return out["a"].astype(np.int64), out["s"].astype(np.int64), out["g"]


def adversarial(rng: np.random.Generator) -> np.ndarray:
    """Flat, rail-clipped, tiny, huge, offset and half-saturated epochs (int16)."""
    rows = [np.zeros(N), np.full(N, 1234), np.full(N, -32768), np.full(N, 32767),
            np.where(np.arange(N) % 2 == 0, -32768, 32767),            # full-scale square wave
            np.where(np.arange(N) < N // 2, -32768, 32767),            # median on the upper rail
            np.where(np.arange(N) <= N // 2, -32768, 32767),
            rng.integers(-1, 2, N), rng.integers(-2, 3, N) + 30000,   # tiny, with an offset
            np.clip(rng.normal(0, 20000, N), -32768, 32767),          # huge, clipped
            np.clip(rng.normal(0, 60, N), -32768, 32767) - 25000]
    return np.stack([np.asarray(r).astype(np.int16) for r in rows])


def random_epochs(rng: np.random.Generator, n: int) -> np.ndarray:
    amp = np.exp(rng.uniform(np.log(0.5), np.log(5000.0), n))
    off = rng.integers(-5000, 5000, n)
    x = rng.standard_normal((n, N)) * amp[:, None] + off[:, None]
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def host_reference(q: np.ndarray, classified: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = NZ.epoch_amplitude_lsb(q)
    s = NZ.running_scales(a, classified)
    return a, np.where(classified, s, 0), np.where(classified, NZ.norm_gain(s), np.float32(0.0))


def test_c_norm_is_bit_exact_with_host(host_build):  # noqa: F811
    rng = np.random.default_rng(5)
    parts = [random_epochs(rng, 150), adversarial(rng), random_epochs(rng, 20)]
    if CACHE_NIGHT.is_file():  # real-shaped filtered epochs of a (synthetic) prepared night
        x = np.load(CACHE_NIGHT)["x_filt"][:200]
        parts.insert(1, NZ.transport_samples(x))
    q = np.concatenate([np.zeros((3, N), np.int16)] + parts)  # a flat start: the floor
    classified = rng.random(len(q)) < 0.85  # artefact epochs skipped; ring wraps (> 60)
    classified[:3] = [True, False, True]     # short ring at the start
    ref = host_reference(q, classified)
    got = run_c(host_build, q, classified)
    assert np.array_equal(got[0], ref[0]), "epoch amplitudes differ"
    assert np.array_equal(got[1], ref[1]), "running scales differ"
    assert np.array_equal(got[2].view(np.uint32), ref[2].astype(np.float32).view(np.uint32)), "gains differ"
    assert classified.sum() > 2 * C.NORM_WINDOW_EPOCHS and (ref[1][classified] == C.NORM_FLOOR_LSB).any()


def test_amplitude_definition_and_extremes():
    q = np.array([[0, 10, 20, 30, 100, -5]], np.int16)  # sorted: -5 0 10 20 30 100 -> med 20
    assert NZ.epoch_amplitude_lsb(q)[0] == 20                # |d| sorted: 0 10 10 20 25 80 -> 20
    rails = np.where(np.arange(N) % 2 == 0, -32768, 32767).astype(np.int16)
    assert NZ.epoch_amplitude_lsb(rails) == 65535
    with pytest.raises(SleepEdgeError, match="int16"):
        NZ.epoch_amplitude_lsb(np.zeros((1, N)))


def test_running_scale_is_causal_windowed_and_skips_unclassified():
    rng = np.random.default_rng(1)
    a = rng.integers(20, 200, 150)
    s = NZ.running_scales(a)
    later = a.copy()
    later[100:] *= 50  # the future must not change the past
    assert np.array_equal(NZ.running_scales(later)[:100], s[:100])
    w = C.NORM_WINDOW_EPOCHS
    assert s[0] == a[0] and s[w + 9] == np.sort(a[10:w + 10])[w // 2]
    mask = np.ones(a.size, bool)
    mask[5] = False
    a_big = a.copy()
    a_big[5] = 60000  # an artefact-sized amplitude that is not classified: it never enters
    s_m = NZ.running_scales(a_big, mask)
    assert np.array_equal(s_m[6:7], NZ.running_scales(np.delete(a, 5))[5:6])
    assert NZ.running_scales(np.zeros(3, np.int64))[0] == C.NORM_FLOOR_LSB


def test_normalized_input_removes_a_gain_keeps_stage_contrast():
    rng = np.random.default_rng(0)
    amp = np.exp(rng.normal(np.log(15.0), 0.3, 80))
    y = (rng.standard_normal((80, N)) * amp[:, None]).astype(np.float32)
    a, b = NZ.normalized_model_input(y), NZ.normalized_model_input(3.0 * y)
    assert a.dtype == np.float32
    assert np.allclose(a, b, rtol=0.02, atol=0.5)
    ratio_in, ratio_out = y[70].std() / y[69].std(), a[70].std() / a[69].std()
    assert ratio_out == pytest.approx(ratio_in, rel=0.05)  # not per-epoch z-scoring
    # A steady 7-uV (or 70-uV) recording comes out at the 15-uV target (robust std).
    for std in (7.0, 70.0):
        z = NZ.normalized_model_input((rng.standard_normal((20, N)) * std).astype(np.float32))
        mad = np.median(np.abs(z - np.median(z, axis=1, keepdims=True)), axis=1)
        assert np.median(mad[10:]) * C.NORM_MAD_TO_STD == pytest.approx(C.NORM_TARGET_STD_UV, rel=0.03)
    with pytest.raises(SleepEdgeError, match="shape"):
        NZ.normalized_model_input(np.zeros((2, 100)))


def test_raw_samples_keep_artefacts_out_of_the_ring():
    rng = np.random.default_rng(3)
    y = (rng.standard_normal((6, N)) * 15.0).astype(np.float32)
    raw = filters.to_device_samples(y)
    y[2] *= 40.0  # a huge epoch ...
    raw[2] = 32767  # ... whose raw samples are clipped: the gate rejects it
    with_gate = NZ.normalized_model_input(y, raw=raw)
    without = NZ.normalized_model_input(y)
    assert np.array_equal(with_gate[:2], without[:2])
    assert not np.array_equal(with_gate[3:], without[3:])  # it entered the ring only without the gate
    keep = np.ones(6, bool)
    keep[2] = False
    assert np.array_equal(with_gate[3:], NZ.normalized_model_input(y, classified=keep)[3:])
    with pytest.raises(SleepEdgeError, match="raw"):
        NZ.normalized_model_input(y, raw=raw[:3])


def test_model_folder_switch(tmp_path):
    assert NZ.model_input_norm(tmp_path) is None
    (tmp_path / "compress.json").write_text(json.dumps({"input_norm": {"window": 60}}))
    assert NZ.model_input_norm(tmp_path) == NZ.default_input_norm()
    (tmp_path / "export.json").write_text(json.dumps({"input_norm": None}))  # export.json decides
    assert NZ.model_input_norm(tmp_path) is None
    (tmp_path / "export.json").write_text(json.dumps({"input_norm": {"window": 10}}))
    with pytest.raises(SleepEdgeError, match="window"):
        NZ.model_input_norm(tmp_path)
    (tmp_path / "export.json").write_text(json.dumps({"input_norm": {"windw": 60}}))
    with pytest.raises(SleepEdgeError, match="unknown"):
        NZ.model_input_norm(tmp_path)


def test_app_with_norm_gives_predict_inputs(host_build, tmp_path):  # noqa: F811
    """se_app with SE_MODEL_INPUT_NORM on (mock model) vs predict's TflmModel.quantize_stream."""
    from host_tools.deploy.predict import TflmModel

    n_epochs = 14
    q = eeg_like_night(n_epochs * 30 / 3600, seed=21, artefacts=3)
    q = np.concatenate([q[: 7 * N], np.clip(q[7 * N:].astype(np.int64) * 4, -32768, 32767).astype(np.int16)])
    blocks = q.reshape(-1, C.SAMPLES_PER_BLOCK)
    missing = {130}  # epoch 4 incomplete: not classified, not in the ring
    s = Script()
    s.time(1000)
    s.rx(b"\x00")
    for b in range(len(blocks)):
        if b not in missing:
            s.frame(T["SAMPLES"], P.samples_payload(b, blocks[b]))
        if b % 30 == 29:
            s.poll()
    inputs = tmp_path / "inputs.bin"
    r = subprocess.run([str(host_build / "app_tool"), str(inputs), "--norm"], input=bytes(s.buf),
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()

    q_dev = blocks.copy()
    for b in missing:
        q_dev[b] = 0
    y, _ = filters.filter_causal(filters.from_device_samples(q_dev.ravel()))
    y_ep = y.reshape(n_epochs, N)
    classified = quality.recording_verdicts(q) == quality.OK
    classified[4] = False
    assert 0 < (~classified).sum() < 6, classified
    mock = TflmModel(Path("mock"), None, (1, N, 1), float(MOCK_IN_SCALE), 0, 1 / 256, MOCK_OUT_ZP,
                     input_norm=NZ.default_input_norm())
    want = mock.quantize_stream(y_ep, classified)
    seen = np.fromfile(inputs, dtype=np.int8).reshape(-1, N)
    assert seen.shape[0] == classified.sum()
    for row, k in zip(seen, np.flatnonzero(classified)):
        assert np.array_equal(row, want[k]), f"model input of epoch {k}"
    with pytest.raises(SleepEdgeError, match="quantize_stream"):
        mock.quantize(y_ep)  # a normalized model's input needs the recording's history
    plain = dataclasses.replace(mock, input_norm=None).quantize(y_ep)
    assert not np.array_equal(want[classified], plain[classified])  # the switch does something
    # RESULT stages follow the mock on those inputs; the escalated samples stay un-normalized.
    msgs = [P.decode_message(f) for f in P.FrameDecoder().feed(r.stdout)]
    results = {m.epoch: m for m in msgs if isinstance(m, P.Result)}
    for k in np.flatnonzero(classified):
        assert results[k].probs == tuple(int(v) for v in mock_derive(want[k]))
    for m in msgs:
        if isinstance(m, P.Escalate):
            assert np.array_equal(m.samples, NZ.transport_samples(y_ep[m.epoch]))


def test_predict_reads_the_switch_from_the_model_folder(repo_root, tmp_path):
    from host_tools.deploy.predict import TflmModel

    src = repo_root / "models" / "edge" / "model.tflite"
    if not src.is_file():
        pytest.skip("models/edge/model.tflite is not built")
    shutil.copyfile(src, tmp_path / "model.tflite")
    assert TflmModel.load(tmp_path).input_norm is None  # today's models: plain input
    (tmp_path / "export.json").write_text(json.dumps({"input_norm": NZ.default_input_norm()}))
    m = TflmModel.load(tmp_path)
    assert m.input_norm == NZ.default_input_norm()
    y = (np.random.default_rng(2).standard_normal((3, N)) * 60.0).astype(np.float32)
    want = filters.quantize_model_input(NZ.normalized_model_input(y), m.input_scale, m.input_zero_point)
    assert np.array_equal(m.quantize_stream(y), want)

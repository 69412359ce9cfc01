"""The device's context head (host_tools/learn/context.py, firmware/core/se_context.c): windows and
features, int8 conversion, export, and bit-exactness of the device's path (ring + native engine on
the exported plan) against TFLite Micro on the host (deploy.predict.ContextHead).

The head is trained here in seconds on histories of a random stage sequence (tests never touch
models/); the edge model is the shipped one, read only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.learn import context as ctx
from tests.qemu_helpers import stream_results

REPO = Path(__file__).resolve().parents[1]
SHIPPED_EDGE = REPO / "models" / "edge" / "model.tflite"
FW = REPO / "firmware"


def _stage_stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A sticky random stage sequence and noisy int8 'edge outputs' that mostly point at it."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, np.int64)
    for k in range(1, n):
        y[k] = y[k - 1] if rng.random() < 0.85 else rng.integers(0, C.N_CLASSES)
    logits = rng.normal(0, 1.0, (n, C.N_CLASSES))
    logits[np.arange(n), y] += 1.2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    raw = np.clip(np.floor(p * 256 + 0.5) - 128, -128, 127).astype(np.int8)
    return raw, y


@pytest.fixture(scope="module")
def head_dir(tmp_path_factory) -> Path:
    """The shipped edge model + a quickly trained int8 head, exported to C (SE_CONTEXT_ENABLED 1)."""
    from host_tools.deploy.c_export import export_model

    out = tmp_path_factory.mktemp("edge_with_head")
    shutil.copyfile(SHIPPED_EDGE, out / "model.tflite")
    raw, y = _stage_stream(3000, seed=1)
    hp, hm = ctx.history_windows(raw, np.arange(len(raw)), C.CONTEXT_EPOCHS)
    feats = ctx.history_features(hp, ctx.truncate_some(hm, 0.2, 0), 1 / 256, -128)
    head, _ = ctx.train_head(feats, y, (feats[:500], y[:500]), passes=3)
    (out / "context.tflite").write_bytes(ctx.convert_head_int8(head, feats))
    export_model(out / "model.tflite", out, threshold=0.6, name="edge_ctx_test", context=out / "context.tflite")
    return out


def test_history_windows_oldest_first_with_gaps() -> None:
    raw = np.arange(4 * C.N_CLASSES, dtype=np.int8).reshape(4, C.N_CLASSES)
    probs, present = ctx.history_windows(raw, np.array([0, 1, 3, 4]), 3)
    assert present.tolist() == [[False, False, True], [False, True, True], [True, False, True], [False, True, True]]
    np.testing.assert_array_equal(probs[2, 0], raw[1])  # epoch 1 is two before epoch 3
    np.testing.assert_array_equal(probs[3, 2], raw[3])  # the current epoch is last
    f = ctx.history_features(probs, present, 1 / 256, -128)
    assert f.shape == (4, 3, ctx.HISTORY_FEATURES) and f.dtype == np.float32
    assert (f[~present] == 0).all() and (f[present][:, -1] == 1).all()


def test_head_is_int8_and_in_the_engine_budget(head_dir: Path) -> None:
    from host_tools.deploy.c_export import context_plan
    from host_tools.learn.compress import check_ops, io_quantization

    data = (head_dir / "context.tflite").read_bytes()
    io = io_quantization(data)
    assert io["input_dtype"] == io["output_dtype"] == "int8"
    assert io["input_shape"] == [1, C.CONTEXT_EPOCHS, ctx.HISTORY_FEATURES]
    check_ops(data)
    _, plan = context_plan(head_dir / "context.tflite")
    assert plan.macs < 10_000 and plan.arena_bytes < 2048
    header = (head_dir / "model_data.h").read_text()
    assert "#define SE_CONTEXT_ENABLED 1" in header
    assert "g_se_context_plan" in (head_dir / "context_plan.c").read_text()


def test_export_without_head_removes_stale_context_files(head_dir: Path, tmp_path: Path) -> None:
    from host_tools.deploy.c_export import export_model

    for f in head_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    export_model(tmp_path / "model.tflite", tmp_path, threshold=0.6, name="no_head")
    assert "#define SE_CONTEXT_ENABLED 0" in (tmp_path / "model_data.h").read_text()
    assert not (tmp_path / "context_plan.c").exists()


def _context_tool(model_dir: Path, out: Path) -> Path:
    exe = out / "context_tool"
    cmd = ["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
           f"-I{FW / 'core'}", f"-I{FW / 'core' / 'engine'}", f"-I{FW / 'generated'}", f"-I{model_dir}",
           str(FW / "tests" / "context_tool.c"), str(FW / "core" / "se_context.c"),
           str(FW / "core" / "engine" / "se_engine.c"), str(model_dir / "context_plan.c"), "-lm", "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def _device_outputs(exe: Path, raw: np.ndarray, have: np.ndarray, scale: float, zp: int, work: Path) -> np.ndarray:
    rec = np.zeros(len(raw), dtype=[("epoch", "<u4"), ("present", "u1"), ("probs", "i1", (C.N_CLASSES,))])
    rec["epoch"], rec["present"], rec["probs"] = np.arange(len(raw)), have, raw
    rec.tofile(work / "in.bin")
    subprocess.run([str(exe), repr(float(np.float32(scale))), str(zp), str(work / "in.bin"), str(work / "out.bin")],
                   check=True, capture_output=True, text=True, timeout=60)
    return np.fromfile(work / "out.bin", np.int8).reshape(-1, C.N_CLASSES)


def test_device_context_path_equals_tflm(head_dir: Path, tmp_path: Path) -> None:
    """se_context ring + quantizer + native engine == learn.context features + TFLite Micro, on
    random outputs with absent epochs and on the shipped edge model's outputs for synthetic EEG."""
    from host_tools.bench.device import synthetic_eeg
    from host_tools.data.filters import filter_device, to_device_samples
    from host_tools.deploy.predict import ContextHead, TflmModel

    exe = _context_tool(head_dir, tmp_path)
    head = ContextHead.find(head_dir)
    assert head is not None and head.length == C.CONTEXT_EPOCHS
    tflm = TflmModel.load(head_dir)
    rng = np.random.default_rng(5)
    random_raw = rng.integers(-128, 128, (400, C.N_CLASSES)).astype(np.int8)
    random_have = rng.random(400) > 0.15
    x = filter_device(to_device_samples(synthetic_eeg(16, seed=4)) * C.SAMPLE_UV_PER_LSB).reshape(-1, C.EPOCH_SAMPLES)
    real_raw = tflm.run_int8(tflm.quantize(x))
    real_have = np.ones(len(real_raw), bool)
    real_have[[3, 4]] = False
    for raw, have in ((random_raw, random_have), (real_raw, real_have)):
        host = head.run_stream(raw, have, tflm.output_scale, tflm.output_zero_point)[have]
        device = _device_outputs(exe, raw, have, tflm.output_scale, tflm.output_zero_point, tmp_path)
        assert len(np.unique(host, axis=0)) > 1
        np.testing.assert_array_equal(device, host)


def test_reported_outputs_switch_on_the_head(head_dir: Path, tmp_path: Path) -> None:
    """predict's reported outputs are the head's when the folder has one, the edge model's otherwise."""
    from host_tools.deploy.predict import ContextHead, TflmModel, reported_outputs

    rng = np.random.default_rng(2)
    x = rng.normal(0, 30, (12, C.EPOCH_SAMPLES)).astype(np.float32)
    have = np.ones(12, bool)
    tflm = TflmModel.load(head_dir)
    edge, _, _ = reported_outputs(tflm, None, x, have)
    with_head, scale, zp = reported_outputs(tflm, ContextHead.find(head_dir), x, have)
    np.testing.assert_array_equal(edge, tflm.run_int8(tflm.quantize(x)))
    assert not np.array_equal(edge, with_head) and (scale, zp) == (1 / 256, -128)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copyfile(head_dir / "model.tflite", bare / "model.tflite")
    assert ContextHead.find(bare) is None


@pytest.mark.slow
def test_train_context_writes_head_and_scores(tiny_cache: Path, tmp_path: Path) -> None:
    """`sleepedge train context` on the tiny synthetic cache: head + context.json next to the model."""
    from host_tools.cli import main
    from host_tools.data import prepare

    subjects = sorted({n["subject"] for n in prepare.load_index(tiny_cache)["nights"]})
    split_dir = tmp_path / "split"
    split_dir.mkdir()
    (split_dir / "model.json").write_text(json.dumps({"split": {"train": subjects[:2], "val": [], "test": subjects[2:]}}))
    edge = tmp_path / "edge"
    edge.mkdir()
    shutil.copyfile(SHIPPED_EDGE, edge / "model.tflite")
    assert main(["train", "context", "--edge", str(edge), "--cache", str(tiny_cache), "--split-from",
                 str(split_dir), "--passes", "2"]) == 0
    meta = json.loads((edge / "context.json").read_text())
    assert meta["length"] == C.CONTEXT_EPOCHS and (edge / "context.tflite").is_file()
    assert meta["test"]["n"] > 0 and 0.0 <= meta["test"]["with_head_int8"]["acc"] <= 1.0


def test_train_context_bad_inputs_are_one_line_errors(tiny_cache: Path, tmp_path: Path, capsys) -> None:
    """A --split-from folder without model.json, and a --randomized-cache that is not a prepared
    cache, are named in one line (exit 2) before any edge output is computed; nothing is written."""
    from host_tools.cli import main
    from host_tools.data import prepare

    subjects = sorted({n["subject"] for n in prepare.load_index(tiny_cache)["nights"]})
    edge = tmp_path / "edge"
    edge.mkdir()
    shutil.copyfile(SHIPPED_EDGE, edge / "model.tflite")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "context", "--edge", str(edge), "--cache", str(tiny_cache), "--split-from", str(empty)]) == 2
    err = capsys.readouterr().err
    assert f"{empty / 'model.json'}: missing" in err and "Traceback" not in err
    split_dir = tmp_path / "split"
    split_dir.mkdir()
    (split_dir / "model.json").write_text(json.dumps({"split": {"train": subjects[:2], "val": [], "test": subjects[2:]}}))
    assert main(["train", "context", "--edge", str(edge), "--cache", str(tiny_cache), "--split-from", str(split_dir),
                 "--randomized-cache", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nope'}: not a prepare" in err and err.count("\n") == 1
    assert sorted(p.name for p in edge.iterdir()) == ["model.tflite"]


N_QEMU_EPOCHS = 14


@pytest.mark.qemu
@pytest.mark.slow
def test_qemu_device_gives_sleepedge_predicts_labels_with_a_head(head_dir: Path, tmp_path: Path) -> None:
    """The firmware built from a model folder WITH a head, in QEMU, streaming a recording: every
    epoch's stage and confidence equal `sleepedge predict`'s (predict_recordings) on the same EDF,
    an artefact epoch included (absent in the ring), and the RESULT probs equal the head's TFLM
    output; the head changes what the device would have reported without it."""
    import datetime as dt

    from tests.conftest import have_arm_toolchain

    if not have_arm_toolchain():
        pytest.skip("arm-none-eabi-gcc or qemu-system-arm is not installed")
    from host_tools.bench.device import synthetic_eeg
    from host_tools.data import edf_io
    from host_tools.data.filters import filter_device, to_device_samples
    from host_tools.data.recordings import read_eeg
    from host_tools.deploy.predict import (ARTEFACT_STAGE, ContextHead, TflmModel, predict_recordings,
                                           reported_outputs)
    from host_tools.device.emulator import build_firmware

    x = synthetic_eeg(N_QEMU_EPOCHS, seed=9)
    x[6 * C.EPOCH_SAMPLES:7 * C.EPOCH_SAMPLES] = 0.0  # a flat epoch: artefact, absent in the ring
    psg = tmp_path / "CTX01-PSG.edf"
    edf_io.write_psg(psg, {"EEG Fpz-Cz": x}, C.FS_HZ, dt.datetime(2020, 1, 1))
    rows = predict_recordings(head_dir, [psg], "Fpz-Cz", progress=False)
    assert [r["stage"] for r in rows].count(ARTEFACT_STAGE) == 1 and rows[6]["stage"] == ARTEFACT_STAGE
    uv, _fs, _start, _name = read_eeg(psg, "Fpz-Cz")
    signal = to_device_samples(uv)
    elf = build_firmware(head_dir, tmp_path / "fw")
    hello: list = []
    results = stream_results(elf, signal, N_QEMU_EPOCHS, result_timeout_s=180, hello=hello)
    assert sorted(results) == list(range(N_QEMU_EPOCHS))
    # HELLO names the edge model and the head whose outputs the device reports.
    from host_tools.learn.models import model_hash_u32, reported_hash_u32, sha256_file

    edge_sha, head_sha = sha256_file(head_dir / "model.tflite"), sha256_file(head_dir / "context.tflite")
    assert hello[0].model_hash == reported_hash_u32(edge_sha, head_sha) != model_hash_u32(edge_sha)
    for k, row in enumerate(rows):
        r = results[k]
        if row["stage"] == ARTEFACT_STAGE:
            assert r.flags != 0 and r.stage == C.STAGE_UNKNOWN
            continue
        assert r.flags == 0 and C.STAGES[r.stage] == row["stage"]
        assert r.confidence == pytest.approx(float(row["confidence"]), abs=1e-6)
        assert r.escalated == bool(np.float32(r.confidence) < np.float32(0.6))
    y = filter_device(signal * C.SAMPLE_UV_PER_LSB).reshape(N_QEMU_EPOCHS, C.EPOCH_SAMPLES)
    have = np.array([row["stage"] != ARTEFACT_STAGE for row in rows])
    tflm = TflmModel.load(head_dir)
    raw, _scale, _zp = reported_outputs(tflm, ContextHead.find(head_dir), y, have)
    device = np.array([results[k].probs for k in range(N_QEMU_EPOCHS)], np.int8)
    np.testing.assert_array_equal(device[have], raw[have])
    assert not np.array_equal(raw[have], tflm.run_int8(tflm.quantize(y))[have]), \
        "the head must change what the device reports"


def test_export_refuses_a_head_trained_on_another_edge_model(head_dir: Path, tmp_path: Path) -> None:
    from host_tools.deploy.export import export
    from host_tools.errors import SleepEdgeError

    src = tmp_path / "src"
    src.mkdir()
    for f in ("model.tflite", "context.tflite"):
        shutil.copyfile(head_dir / f, src / f)
    (src / "context.json").write_text(json.dumps({"edge_model": {"sha256": "0" * 64}}))
    with pytest.raises(SleepEdgeError, match="trained on edge model 000000000000"):
        export(src / "model.tflite", tmp_path / "out", n_check=4, header=tmp_path / "h.h")

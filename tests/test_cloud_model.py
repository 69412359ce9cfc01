"""The cloud model: edge histories, the context head, loading, and the service answering with it."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from host_tools import constants as C
from host_tools.cloud import model as CM
from host_tools.errors import SleepEdgeError
from tests.test_cloud import AUTH, body, epoch_samples, serve

OUT_SCALE, OUT_ZP = 1.0 / 256.0, -128
EDGE_SHA = "0123abcd" + "e" * 56


def test_history_windows_follow_epoch_numbers_across_gaps() -> None:
    raw = np.arange(5 * C.N_CLASSES, dtype=np.int8).reshape(5, C.N_CLASSES)  # row r holds 5r..5r+4
    ei = np.array([5, 6, 7, 9, 10])  # epoch 8 was dropped by the cache
    probs, present = CM.history_windows(raw, ei, 3)
    assert probs.shape == (5, 3, C.N_CLASSES) and present.shape == (5, 3)
    # epoch 5: nothing before it
    assert present[0].tolist() == [False, False, True] and (probs[0, 2] == raw[0]).all()
    # epoch 9: epochs 7, 8 (missing), 9
    assert present[3].tolist() == [True, False, True]
    assert (probs[3, 0] == raw[2]).all() and (probs[3, 1] == 0).all() and (probs[3, 2] == raw[3]).all()
    # epoch 10: 8 (missing), 9, 10
    assert present[4].tolist() == [False, True, True] and (probs[4, 1] == raw[3]).all()
    with pytest.raises(ValueError):
        CM.history_windows(raw, ei[:4], 3)


def test_fit_history_pads_old_side_and_keeps_newest() -> None:
    probs = np.arange(4 * C.N_CLASSES, dtype=np.int8).reshape(4, C.N_CLASSES)
    present = np.array([True, False, True, True])
    p, m = CM.fit_history(probs, present, 6)
    assert m.tolist() == [False, False, True, False, True, True] and (p[2:] == probs).all() and (p[:2] == 0).all()
    p, m = CM.fit_history(probs, present, 2)
    assert m.tolist() == [True, True] and (p == probs[2:]).all()


def test_history_features_dequantize_and_zero_absent_entries() -> None:
    probs = np.array([[[-128, 127, 0, -1, 64], [10, 10, 10, 10, 10]]], np.int8)
    f = CM.history_features(probs, np.array([[True, False]]), OUT_SCALE, OUT_ZP)
    assert f.shape == (1, 2, C.N_CLASSES + 1) and f.dtype == np.float32
    np.testing.assert_allclose(f[0, 0, :5], (probs[0, 0].astype(np.int32) + 128) / 256.0)
    assert f[0, 0, 5] == 1.0 and (f[0, 1] == 0).all()


@pytest.fixture(scope="module")
def context_model():
    """An untrained source CNN + an untrained head: real computations, known edge identity."""
    from host_tools.learn import models

    src = models.build_source_cnn(seed=3)
    head = CM.build_head(64, 4, seed=5)
    return CM.ContextCloudModel(encoder=CM.encoder_with_embedding(src), head=head, history_length=4,
                                edge=CM.EdgeModelId(EDGE_SHA, OUT_SCALE, OUT_ZP), name="ctx-test",
                                sha256="f" * 64)


def _x(n: int) -> np.ndarray:
    return np.stack([np.asarray(epoch_samples(i), np.float32) * np.float32(0.25) for i in range(n)])


def test_context_model_uses_only_histories_from_its_edge_model(context_model) -> None:
    rng = np.random.default_rng(0)
    x = _x(3)
    hist = rng.integers(-128, 128, size=(2, C.N_CLASSES)).astype(np.int8)
    mine = CM.EdgeHistory(0x0123ABCD, hist, np.array([True, True]))
    other = CM.EdgeHistory(0x0BADF00D, hist, np.array([True, True]))
    probs, used = context_model.predict_with_history(x, [mine, other, None])
    assert used.tolist() == [True, False, False]
    source = context_model.predict_proba(x)
    np.testing.assert_allclose(probs[1:], source[1:], rtol=1e-6)
    # The used row is the head on (embedding, history padded to 4 entries on the old side).
    emb, _ = CM.encode(context_model.encoder, x[:1])
    p, m = CM.fit_history(hist, mine.present, 4)
    want = context_model.head_proba(emb, CM.history_features(p[None], m[None], OUT_SCALE, OUT_ZP))
    np.testing.assert_allclose(probs[0], want[0], rtol=1e-5)
    assert not np.allclose(probs[0], source[0])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_a_head_trained_on_context_outputs_takes_only_histories_of_that_edge_and_head(context_model) -> None:
    """With a device context head, HELLO's hash is the edge model's XOR the head's: a device
    reporting plain edge outputs (same edge model, no head, e.g. the TFLM backend) or another
    head is not read as the history the cloud head learnt."""
    from dataclasses import replace

    from host_tools.learn.models import reported_hash_u32

    head_sha = "89abcdef" + "1" * 56
    with_head = replace(context_model, edge=CM.EdgeModelId(EDGE_SHA, OUT_SCALE, OUT_ZP, head_sha))
    assert with_head.edge.hash_u32 == 0x0123ABCD ^ 0x89ABCDEF == reported_hash_u32(EDGE_SHA, head_sha)
    assert reported_hash_u32(EDGE_SHA) == reported_hash_u32(EDGE_SHA, None) == 0x0123ABCD
    hist = np.zeros((2, C.N_CLASSES), np.int8)
    ok = np.array([True, True])
    rows = [CM.EdgeHistory(0x0123ABCD ^ 0x89ABCDEF, hist, ok), CM.EdgeHistory(0x0123ABCD, hist, ok),
            CM.EdgeHistory(0x0123ABCD ^ 0x0BADF00D, hist, ok)]
    _, used = with_head.predict_with_history(_x(3), rows)
    assert used.tolist() == [True, False, False]


def test_night_cloud_probs_equals_escalating_every_epoch(context_model) -> None:
    """The benchmark's shortcut (one pass per night) equals what the service answers epoch by epoch."""
    x = _x(6)
    raw = np.random.default_rng(1).integers(-128, 128, size=(6, C.N_CLASSES)).astype(np.int8)
    nights = np.array(["A"] * 4 + ["B"] * 2)
    ei = np.array([10, 11, 13, 14, 0, 1])
    fast = CM.night_cloud_probs(context_model, x, raw, nights, ei)
    for i in range(6):
        same = (nights == nights[i]) & (ei <= ei[i]) & (ei > ei[i] - 4)
        epochs = range(ei[i] - 3, ei[i] + 1)
        by_epoch = {int(e): raw[j] for j, e in enumerate(ei) if same[j]}
        h = CM.EdgeHistory(0x0123ABCD, np.stack([by_epoch.get(e, np.zeros(5, np.int8)) for e in epochs]),
                           np.array([e in by_epoch for e in epochs]))
        slow, used = context_model.predict_with_history(x[i:i + 1], [h])
        assert used[0]
        np.testing.assert_allclose(fast[i], slow[0], rtol=1e-5, atol=1e-7)


def test_service_answers_with_context(context_model) -> None:
    hist = [[-100, 50, 0, -128, -128], None, [127, -128, -128, -128, -128]]
    with serve(context_model, max_batch=8, max_wait_ms=5) as url, httpx.Client(base_url=url, timeout=30) as c:
        plain = c.post("/v1/classify", json=body(1), headers=AUTH).json()
        ctx = c.post("/v1/classify", json=body(1, edge_model="0123abcd", edge_history=hist), headers=AUTH).json()
        foreign = c.post("/v1/classify", json=body(1, edge_model="deadbeef", edge_history=hist), headers=AUTH).json()
    assert (plain["context_used"], ctx["context_used"], foreign["context_used"]) == (False, True, False)
    assert plain["probs"] == foreign["probs"] and ctx["probs"] != plain["probs"]
    x = np.asarray(epoch_samples(1), np.float32)[None] * np.float32(0.25)
    h = CM.EdgeHistory(0x0123ABCD, np.array([v or [0] * 5 for v in hist], np.int8),
                       np.array([v is not None for v in hist]))
    want, _ = context_model.predict_with_history(x, [h])
    np.testing.assert_allclose(ctx["probs"], want[0], rtol=1e-5)


@pytest.mark.parametrize(
    "override,fragment",
    [
        ({"edge_model": "0123abcd"}, "go together"),
        ({"edge_history": [[0] * 5]}, "go together"),
        ({"edge_model": "0123abc", "edge_history": [[0] * 5]}, "8 hex digits"),
        ({"edge_model": 1234, "edge_history": [[0] * 5]}, "8 hex digits"),
        ({"edge_model": "0123abcd", "edge_history": []}, "1..64 entries"),
        ({"edge_model": "0123abcd", "edge_history": [[0] * 5] * 65}, "1..64 entries"),
        ({"edge_model": "0123abcd", "edge_history": [[0] * 4]}, "edge_history[0] must be null or a list"),
        ({"edge_model": "0123abcd", "edge_history": [None, [0, 0, 200, 0, 0]]}, "edge_history[1] holds 200"),
        ({"edge_model": "0123abcd", "edge_history": [[0, 0, 0.5, 0, 0]]}, "edge_history[0] holds 0.5"),
    ],
)
def test_history_validation(override: dict, fragment: str) -> None:
    from host_tools.cloud.service import RequestError, parse_classify_request

    with pytest.raises(RequestError) as err:
        parse_classify_request(json.dumps(body(**override)).encode())
    assert err.value.status == 422 and fragment in err.value.message


def _save_cloud_dir(tmp_path, context_model):
    from host_tools.learn import models

    src_dir = tmp_path / "source"
    src = models.build_source_cnn(seed=3)
    src.set_weights(context_model.encoder.get_weights())  # the same layers, the same order
    models.save_model(src, src_dir, {"split": {}})
    out = tmp_path / "cloud"
    out.mkdir()
    context_model.head.save(out / CM.HEAD_FILE)
    meta = {"name": "cloud_context", "encoder": "../source",
            "encoder_sha256": models.sha256_file(src_dir / models.MODEL_FILE), "history_length": 4,
            "edge_model": {"sha256": EDGE_SHA, "output_scale": OUT_SCALE, "output_zero_point": OUT_ZP}}
    (out / CM.META_FILE).write_text(json.dumps(meta))
    return src_dir, out


def test_load_round_trip_and_errors(tmp_path, context_model) -> None:
    src_dir, out = _save_cloud_dir(tmp_path, context_model)
    loaded = CM.load_cloud(out)
    assert isinstance(loaded, CM.ContextCloudModel) and loaded.history_length == 4
    assert loaded.edge.hash_u32 == 0x0123ABCD and loaded.name.startswith("cloud_context@")
    # Trained on a device head's outputs: the metadata names the head, the hash follows.
    meta = json.loads((out / CM.META_FILE).read_text())
    meta["edge_model"]["context_head_sha256"] = "89abcdef" + "1" * 56
    (out / CM.META_FILE).write_text(json.dumps(meta))
    assert CM.load_cloud(out).edge.hash_u32 == 0x0123ABCD ^ 0x89ABCDEF
    del meta["edge_model"]["context_head_sha256"]
    (out / CM.META_FILE).write_text(json.dumps(meta))
    x = _x(2)
    np.testing.assert_allclose(loaded.predict_proba(x), context_model.predict_proba(x), rtol=1e-5)
    # A plain source folder loads as the one-epoch model.
    assert not isinstance(CM.load_cloud(src_dir), CM.ContextCloudModel)
    # The encoder changed under the head: refused with the reason.
    meta = json.loads((out / CM.META_FILE).read_text())
    (out / CM.META_FILE).write_text(json.dumps({**meta, "encoder_sha256": "1" * 64}))
    with pytest.raises(SleepEdgeError, match="retrain it"):
        CM.load_context_model(out)
    (out / CM.META_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k != "edge_model"}))
    with pytest.raises(SleepEdgeError, match="incomplete cloud model metadata"):
        CM.load_context_model(out)
    with pytest.raises(SleepEdgeError, match="no cloud model here"):
        CM.load_context_model(tmp_path)


def test_cli_train_cloud_bad_inputs(tmp_path, capsys, tiny_cache) -> None:
    from host_tools.cli import main

    rc = main(["train", "cloud", "--cache", str(tiny_cache), "--source", str(tmp_path / "nope"),
               "--edge", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "nope" in err and "Traceback" not in err

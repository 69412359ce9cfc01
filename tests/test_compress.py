"""sleepedge compress: pruning, int8 conversion, operator set, Keras 3 inputs, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from host_tools.learn import compress as cp
from host_tools import constants as C
from host_tools.cli import main
from host_tools.errors import SleepEdgeError


@pytest.fixture(scope="module")
def edge_model_dir(tmp_path_factory):
    """The project's edge CNN (untrained weights, fixed seed) saved like distil saves it."""
    from host_tools.learn import models

    out = tmp_path_factory.mktemp("edge_float")
    models.save_model(models.build_edge_cnn(seed=1), out, {"note": "test"})
    return out


def _kernel_zero_fraction(model) -> float:
    zeros = total = 0
    for w in model.weights:
        if "kernel" in w.name:
            v = w.numpy()
            zeros += int((v == 0).sum())
            total += v.size
    return zeros / total


def test_compress_cli_end_to_end(tiny_cache, edge_model_dir, tmp_path, capsys):
    from host_tools.learn import models
    from host_tools.data import prepare
    from host_tools.deploy.predict import predict_epochs_int8

    out = tmp_path / "c"
    rc = main(["compress", "--model", str(edge_model_dir), "--cache", str(tiny_cache), "--out", str(out),
               "--sparsity", "0.5", "--epochs", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "float" in printed and "pruned" in printed and "int8" in printed
    report = json.loads((out / "compress.json").read_text())

    # Sparsity, measured here on the saved pruned model rather than trusted from the report.
    pruned = models.load_keras_model(out / "edge_pruned.keras")
    assert _kernel_zero_fraction(pruned) >= 0.5
    assert report["sparsity"]["overall_kernel_sparsity"] == pytest.approx(_kernel_zero_fraction(pruned))

    tflite = (out / "model.tflite").read_bytes()
    assert set(cp.tflite_ops(tflite)) <= cp.ALLOWED_OPS
    assert "CONV_2D" in report["ops"] and "FULLY_CONNECTED" in report["ops"]
    io = cp.io_quantization(tflite)
    assert io["input_dtype"] == io["output_dtype"] == "int8"
    # The representative set is clipped to +-EDGE_INPUT_CLIP_UV, so that clip fixes the input scale.
    assert io["input_scale"] == pytest.approx(2 * C.EDGE_INPUT_CLIP_UV / 255, rel=1e-3)

    # The int8 score in the report is the device's: recompute it through TFLite Micro.
    index = prepare.load_index(tiny_cache)
    test = set(prepare.subject_folds(index)[0][1])
    assert report["test_subjects"] == sorted(test)
    ids = [n["id"] for n in index["nights"] if n["subject"] in test]
    x, y, _, _ = prepare.load_epochs(tiny_cache, ids)
    _, stages, _ = predict_epochs_int8(out / "model.tflite", x)
    assert report["int8"]["acc"] == pytest.approx(float((stages == y).mean()))
    for name in ("float", "pruned", "int8"):
        assert 0.0 <= report[name]["acc"] <= 1.0


def test_keras3_model_is_rebuilt_with_supported_ops(tmp_path):
    import keras

    inp = keras.Input((C.EPOCH_SAMPLES, 1))
    x = keras.layers.Conv1D(8, 9, strides=3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling1D(4)(x)
    x = keras.layers.Conv1D(16, 5, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)  # becomes MEAN unless rebuilt
    out = keras.layers.Dense(C.N_CLASSES, activation="softmax")(x)
    k3 = keras.Model(inp, out)
    path = tmp_path / "k3.keras"
    k3.save(path)

    rebuilt = cp.load_tf_keras(path)
    assert "GlobalAveragePooling1D" not in [type(l).__name__ for l in rebuilt.layers]
    rng = np.random.default_rng(0)
    xs = rng.normal(0, 40, (4, C.EPOCH_SAMPLES, 1)).astype(np.float32)
    np.testing.assert_allclose(rebuilt.predict(xs, verbose=0), k3.predict(xs, verbose=0), atol=1e-5)
    tflite = cp.convert_int8(rebuilt, cp.representative_epochs(xs[..., 0], n=4))
    assert set(cp.check_ops(tflite)) <= cp.ALLOWED_OPS


def test_unsupported_op_is_rejected():
    import tf_keras

    inp = tf_keras.Input((C.EPOCH_SAMPLES, 1))
    x = tf_keras.layers.Conv1D(4, 5, strides=5)(inp)
    x = tf_keras.layers.GlobalAveragePooling1D()(x)
    model = tf_keras.Model(inp, tf_keras.layers.Dense(C.N_CLASSES, activation="softmax")(x))
    rng = np.random.default_rng(1)
    tflite = cp.convert_int8(model, cp.representative_epochs(rng.normal(0, 40, (8, C.EPOCH_SAMPLES)), n=8))
    assert "MEAN" in cp.tflite_ops(tflite)
    with pytest.raises(SleepEdgeError, match="MEAN"):
        cp.check_ops(tflite, "m.tflite")


def test_prune_then_qat_keeps_zeros_and_converts():
    from host_tools.learn import models

    rng = np.random.default_rng(2)
    x = rng.normal(0, 50, (256, C.EPOCH_SAMPLES)).astype(np.float32)
    y = rng.integers(0, C.N_CLASSES, 256)
    pruned = cp.prune(models.build_edge_cnn(seed=0), x, y, sparsity=0.6, epochs=1, batch_size=64)
    zero_masks = [w.numpy() == 0 for w in pruned.weights if "kernel" in w.name]
    assert _kernel_zero_fraction(pruned) >= 0.6
    qat = cp.quantization_aware(pruned, x, y, epochs=1, batch_size=64)
    after = [w.numpy() for w in qat.weights if "kernel" in w.name]
    assert all(np.all(a[m] == 0) for a, m in zip(after, zero_masks))
    tflite = cp.convert_int8(qat, cp.representative_epochs(x, n=32))
    assert set(cp.check_ops(tflite)) <= cp.ALLOWED_OPS


def test_clip_and_representative_epochs():
    x = np.full((3, C.EPOCH_SAMPLES), 500.0, dtype=np.float32)
    x[1] = -500.0
    clipped = cp.clip_input(x)
    assert clipped.shape == (3, C.EPOCH_SAMPLES, 1)
    assert clipped.max() == C.EDGE_INPUT_CLIP_UV and clipped.min() == -C.EDGE_INPUT_CLIP_UV
    rep = cp.representative_epochs(x, n=2)
    assert rep.shape == (3, C.EPOCH_SAMPLES, 1)
    assert np.abs(rep).max() == C.EDGE_INPUT_CLIP_UV


def test_bad_inputs(tmp_path, tiny_cache, edge_model_dir, capsys):
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    with pytest.raises(SleepEdgeError, match="not found"):
        cp.load_tf_keras(tmp_path / "missing.keras")
    with pytest.raises(SleepEdgeError, match="junk.keras"):
        cp.load_tf_keras(junk)
    with pytest.raises(SleepEdgeError, match="index.json"):
        cp.split_cache(tmp_path)
    with pytest.raises(SleepEdgeError, match="unknown test subjects"):
        cp.split_cache(tiny_cache, ["SC499"])
    from host_tools.data import prepare

    subjects = sorted({n["subject"] for n in prepare.load_index(tiny_cache)["nights"]})
    with pytest.raises(SleepEdgeError, match="disjoint"):
        cp.split_cache(tiny_cache, subjects[:1], subjects[:2])
    only = cp.split_cache(tiny_cache, subjects[:1], subjects[1:2])
    assert {n[:5] for n in only["train_nights"]} == {subjects[1]}
    rc = main(["compress", "--model", str(edge_model_dir), "--cache", str(tiny_cache),
               "--out", str(tmp_path / "o"), "--sparsity", "1.5", "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "sparsity" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

    import tf_keras

    inp = tf_keras.Input((100, 1))
    wrong = tf_keras.Model(inp, tf_keras.layers.Dense(C.N_CLASSES)(tf_keras.layers.Flatten()(inp)))
    wrong.save(tmp_path / "wrong.keras")
    rc = main(["compress", "--model", str(tmp_path / "wrong.keras"), "--cache", str(tiny_cache),
               "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert rc == 2 and "wrong.keras" in err and "3000" in err

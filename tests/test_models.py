"""Architectures, cost figures, int8 conversion of the edge model, saving and the cloud model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.learn import models as M
from host_tools.errors import SleepEdgeError

ALLOWED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
               "ADD", "SOFTMAX", "EXPAND_DIMS", "RESHAPE", "SQUEEZE"}


@pytest.fixture(scope="module")
def edge_model():
    return M.build_edge_cnn(seed=1)


def test_model_modules_do_not_import_tensorflow():
    # `sleepedge --help` imports every command module: they must not pull in TensorFlow.
    code = ("import sys, host_tools.learn.models, host_tools.data.datasets, host_tools.learn.train, host_tools.learn.transfer, "
            "host_tools.learn.distil; print('tensorflow' in sys.modules, 'tf_keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_source_cnn_shape_and_parameter_count():
    model = M.build_source_cnn()
    n = M.count_params(model)
    print(f"source CNN parameters: {n}")
    assert n == model.count_params()
    assert 0.95e6 <= n <= 1.1e6  # "about 1.0 M" (Yildirim et al. 2019)
    convs = [layer for layer in model.layers if isinstance(layer, M.keras().layers.Conv1D)]
    assert [c.filters for c in convs] == [64, 128, 128, 256, 256, 64, 32, 64, 8, 8]
    assert [c.kernel_size[0] for c in convs] == [5, 5, 13, 7, 7, 4, 3, 6, 5, 2]
    x = np.random.default_rng(0).normal(0, 30, (4, C.EPOCH_SAMPLES, 1)).astype(np.float32)
    p = model(x, training=False).numpy()
    assert p.shape == (4, C.N_CLASSES)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)


def test_count_macs_on_hand_computed_model():
    k = M.keras()
    inp = k.Input((10, 2))
    x = k.layers.Conv1D(4, 3, padding="same")(inp)          # 10 positions x 4 filters x 3 taps x 2 ch
    x = k.layers.DepthwiseConv1D(3, padding="valid")(x)     # 8 positions x 4 ch x 3 taps
    x = k.layers.MaxPooling1D(2)(x)                         # no MACs
    x = k.layers.Conv1D(6, 2, strides=2)(x)                 # 2 positions x 6 x 2 taps x 4 ch
    x = k.layers.Flatten()(x)
    out = k.layers.Dense(5)(x)                              # 12 inputs x 5 units
    model = k.Model(inp, out)
    assert M.count_macs(model) == 10 * 4 * 3 * 2 + 8 * 4 * 3 + 2 * 6 * 2 * 4 + 12 * 5


def test_edge_model_within_budget(edge_model):
    b = M.edge_budget(edge_model)
    print(f"edge CNN: {b}")
    assert b["macs"] <= M.EDGE_MAX_MACS
    assert b["weight_bytes_int8"] <= M.EDGE_MAX_WEIGHT_BYTES
    assert b["arena_bytes_est"] <= M.EDGE_MAX_ARENA_BYTES
    assert b["within_budget"]
    # The first conv alone: 1000 output positions x 16 filters x 9 taps.
    assert b["macs"] > 1000 * 16 * 9


def _int8_tflite(model, rng):
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def rep():
        for _ in range(8):
            x = rng.normal(0, 40, (1, C.EPOCH_SAMPLES, 1)).astype(np.float32)
            yield [np.clip(x, -C.EDGE_INPUT_CLIP_UV, C.EDGE_INPUT_CLIP_UV)]

    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def test_edge_int8_conversion_uses_only_firmware_ops(edge_model):
    import tensorflow as tf

    blob = _int8_tflite(edge_model, np.random.default_rng(2))
    # Without the default XNNPACK delegate, which would show up as one DELEGATE op.
    it = tf.lite.Interpreter(
        model_content=blob,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    ops = it._get_ops_details()
    names = {op["op_name"] for op in ops}
    assert names <= ALLOWED_OPS, names - ALLOWED_OPS
    assert "CONV_2D" in names and "MUL" not in names
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    assert tensors[it.get_input_details()[0]["index"]]["dtype"] == np.int8
    # Largest live pair of int8 activations per op (inputs that are not constants + output):
    # the measured figure from the converted graph, against the 48 KB arena budget.
    weights = set()
    for op in ops:
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
            weights.update(int(i) for i in op["inputs"][1:] if i >= 0)
    worst = 0
    for op in ops:
        ins = [int(i) for i in op["inputs"] if i >= 0 and int(i) not in weights
               and tensors[int(i)]["dtype"] == np.int8]
        need = sum(int(np.prod(tensors[i]["shape"])) for i in ins)
        need += sum(int(np.prod(tensors[int(o)]["shape"])) for o in op["outputs"])
        worst = max(worst, need)
    assert worst <= M.EDGE_MAX_ARENA_BYTES
    assert worst <= M.estimate_arena_bytes(edge_model)


def test_edge_model_learns_separable_rhythms():
    """Five classes of clipped sinusoids at distinct frequencies, raw uV in: the architecture,
    the BN-absorbed input scale and the clipping must let it separate them in a few passes."""
    from host_tools.data.datasets import make_dataset, prepare_inputs

    rng = np.random.default_rng(3)
    t = np.arange(C.EPOCH_SAMPLES) / C.FS_HZ
    freqs = np.array([1.0, 3.0, 6.0, 10.0, 14.0])

    def make(n):
        y = rng.integers(0, C.N_CLASSES, n)
        phase = rng.uniform(0, 2 * np.pi, (n, 1))
        amp = rng.uniform(30, 300, (n, 1))  # some beyond the clip
        x = amp * np.sin(2 * np.pi * freqs[y][:, None] * t + phase) + rng.normal(0, 20, (n, C.EPOCH_SAMPLES))
        return prepare_inputs(x.astype(np.float32), clip_uv=C.EDGE_INPUT_CLIP_UV), y

    x_tr, y_tr = make(600)
    x_te, y_te = make(200)
    M.keras().utils.set_random_seed(0)
    model = M.build_edge_cnn(seed=0)
    model.compile(optimizer=M.keras().optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(make_dataset(x_tr, y_tr, batch=32), epochs=4, steps_per_epoch=19, verbose=0)
    acc = float((M.predict_proba(model, x_te).argmax(1) == y_te).mean())
    assert acc >= 0.9, acc


def test_save_load_and_cloud_model(tmp_path):
    model = M.build_source_cnn(seed=4)
    path = M.save_model(model, tmp_path / "src", {"filtered": True, "split": {"train": ["a"], "test": ["b"]}})
    cloud = M.load_cloud_model(tmp_path / "src")
    assert cloud.sha256 == M.sha256_file(path)
    assert cloud.sha256 in (tmp_path / "src" / "model.json").read_text()
    assert cloud.name.startswith("source_cnn@")
    assert cloud.metadata["split"]["test"] == ["b"]
    x = np.random.default_rng(5).normal(0, 25, (7, C.EPOCH_SAMPLES)).astype(np.float32)
    np.testing.assert_allclose(cloud.predict_proba(x), model(x[..., None], training=False).numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(SleepEdgeError, match="expected"):
        cloud.predict_proba(x[:, :100])


def test_bad_model_paths(tmp_path):
    with pytest.raises(SleepEdgeError, match="no such model file"):
        M.load_cloud_model(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.keras").write_bytes(b"not a zip archive")
    with pytest.raises(SleepEdgeError, match="cannot load"):
        M.load_cloud_model(bad)
    (bad / "model.json").write_text("{broken")
    with pytest.raises(SleepEdgeError, match="not valid JSON"):
        M.load_metadata(bad)

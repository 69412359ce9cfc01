"""The night's context on the device: a tiny causal head over the edge model's last L outputs.

The edge model stages one 30-s epoch alone. Sleep stages follow each other in patterns, so the
device's own recent int8 outputs say something about the current epoch. The context head is

    last L int8 edge outputs (oldest first, current epoch last) -> dequantize + present flag
      -> (L, 6) -> Flatten -> Dense(32, relu) -> Dense(5, softmax)

int8 like the edge model, so the device could run it with the same engine. It is causal: it
sees only epochs up to and including the current one. An epoch the device has no output for
(stream start, artefact, gap) is "absent": zeros and flag 0.

This module holds the head (build, train, int8 conversion, int8 inference as the device would
quantize its input) and the history windows; ``host_tools.cloud.model`` builds its own edge
history the same way. Measured result: docs/training.md, "Context head on the device".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from host_tools import constants as C

#: Feature per history entry: 5 dequantized probabilities + 1 "present" flag.
HISTORY_FEATURES = C.N_CLASSES + 1


def history_windows(raw: np.ndarray, epoch_index: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Causal windows of the last ``length`` edge outputs of every epoch of one night.

    Parameters
    ----------
    raw
        int8 (n, 5) edge outputs of the night's epochs.
    epoch_index
        (n,) epoch numbers from the recording start (gaps where epochs are missing).
    length
        Entries per window, the epoch itself included (last).

    Returns
    -------
    probs : int8 (n, length, 5)
    present : bool (n, length)
    """
    raw = np.asarray(raw, dtype=np.int8).reshape(-1, C.N_CLASSES)
    ei = np.asarray(epoch_index, dtype=np.int64)
    if len(ei) != len(raw):
        raise ValueError(f"raw has {len(raw)} epochs, epoch_index {len(ei)}")
    if len(raw) == 0:
        return np.zeros((0, length, C.N_CLASSES), np.int8), np.zeros((0, length), bool)
    # A dense timeline from the first epoch - (length - 1), so every window is a plain slice.
    base = int(ei.min()) - (length - 1)
    span = int(ei.max()) - base + 1
    line = np.zeros((span, C.N_CLASSES), np.int8)
    have = np.zeros(span, bool)
    line[ei - base] = raw
    have[ei - base] = True
    offsets = (ei - base)[:, None] - np.arange(length - 1, -1, -1)[None, :]
    return line[offsets], have[offsets]


def history_features(probs: np.ndarray, present: np.ndarray, output_scale: float,
                     output_zero_point: int) -> np.ndarray:
    """Head input: float32 (n, L, 6) = dequantized probs ``(q - zp) * s`` (0 where absent) + flag."""
    p = (np.asarray(probs, np.int32) - np.int32(output_zero_point)).astype(np.float32) * np.float32(output_scale)
    m = np.asarray(present, bool)
    p = np.where(m[..., None], p, np.float32(0))
    return np.concatenate([p, m[..., None].astype(np.float32)], axis=-1)


def truncate_some(present: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Mark the oldest entries absent in a random ``fraction`` of the windows, as at the start
    of a stream or after a gap (the cache rarely shows such short histories)."""
    rng = np.random.default_rng(seed)
    present = present.copy()
    n, length = present.shape
    rows = np.flatnonzero(rng.random(n) < fraction)
    keep = rng.integers(1, length + 1, size=len(rows))  # newest entries kept, the epoch itself always
    for r, k in zip(rows, keep):
        present[r, : length - k] = False
    return present


def build_head(length: int, seed: int = 0, hidden: int = 32) -> Any:
    """(L, 6) -> Flatten -> Dense(hidden, relu) -> Dense(5, softmax)."""
    from host_tools.learn.models import keras

    k = keras()
    init = k.initializers.HeUniform(seed=seed)
    x = k.Input((length, HISTORY_FEATURES), name="edge_history")
    h = k.layers.Flatten(name="history_flat")(x)
    h = k.layers.Dense(hidden, activation="relu", kernel_initializer=init, name="context_fc")(h)
    out = k.layers.Dense(C.N_CLASSES, activation="softmax", kernel_initializer=init, name="probs")(h)
    return k.Model(x, out, name="edge_context_head")


def train_head(feats: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray], *, passes: int = 30,
               batch: int = 256, patience: int = 4, lr: float = 1e-3, seed: int = 0,
               class_weighted: bool = False) -> tuple[Any, int]:
    """Adam on cross-entropy, early stopping on validation accuracy.

    Unweighted by default: the head's job is the device's accuracy, and class weights (as the
    edge and cloud models use) pushed its answers towards N1 and cost 6-9 points of accuracy on
    the DREAMS people (docs/training.md, "Context head on the device").
    Returns the head (best validation weights) and the passes run.
    """
    from host_tools.data import datasets
    from host_tools.learn import models

    k = models.keras()
    k.utils.set_random_seed(seed)
    head = build_head(feats.shape[1], seed=seed)
    head.compile(optimizer=k.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                 weighted_metrics=["accuracy"])
    cw = datasets.class_weights(y) if class_weighted else np.ones(C.N_CLASSES)
    stop = k.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, restore_best_weights=True)
    hist = head.fit(feats, y, sample_weight=datasets.sample_weights(y, cw), validation_data=val,
                    epochs=passes, batch_size=batch, shuffle=True, callbacks=[stop], verbose=0)
    return head, len(hist.history.get("loss", []))


def convert_head_int8(head: Any, representative: np.ndarray, n_rep: int = 500, seed: int = 0) -> bytes:
    """Full-integer TFLite flatbuffer of the head: int8 (1, L, 6) in, int8 (1, 5) out."""
    import tensorflow as tf

    from host_tools.learn.compress import to_tf_keras

    length = int(representative.shape[1])
    model = to_tf_keras(head)
    spec = tf.TensorSpec([1, length, HISTORY_FEATURES], tf.float32, name="edge_history")
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(representative), size=min(n_rep, len(representative)), replace=False)

    def rep():
        for r in rows:
            yield [representative[r: r + 1].astype(np.float32)]

    converter.representative_dataset = rep
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def quantize_features(feats: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float32 head input -> int8, ``clamp(floor(p * (1/s) + 0.5) + zp)`` as the firmware's
    ``quantize_input`` (float32 arithmetic, same op order)."""
    from host_tools.data.filters import quantize_model_input

    return quantize_model_input(feats, scale, zero_point)


def head_predict_int8(tflite: bytes, feats: np.ndarray) -> np.ndarray:
    """Raw int8 head outputs (n, 5) in TFLite Micro for float32 features (n, L, 6)."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(tflite, arena_size=64 * 1024)
    i, o = it.get_input_details(0), it.get_output_details(0)
    iq = i["quantization_parameters"]
    q = quantize_features(feats, float(iq["scales"][0]), int(iq["zero_points"][0]))
    out = np.empty((len(q), C.N_CLASSES), np.int8)
    shape = tuple(int(v) for v in i["shape"])
    for k, row in enumerate(q):
        it.set_input(row.reshape(shape), 0)
        it.invoke()
        out[k] = np.asarray(it.get_output(0)).reshape(-1)
    return out


def output_quantization(tflite: bytes) -> tuple[float, int]:
    """(scale, zero point) of the head's int8 output."""
    from host_tools.learn.compress import io_quantization

    oq = io_quantization(tflite)
    return float(oq["output_scale"]), int(oq["output_zero_point"])

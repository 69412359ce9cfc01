"""Model architectures (source/cloud CNN, edge CNN), their cost figures, saving and loading.

All models are tf_keras (Keras 2) models: tensorflow-model-optimization needs tf_keras, and the
TFLite converter takes them as they are. TensorFlow is imported inside functions so that importing
this module (``sleepedge --help``) stays instant.

Both models map ``(3000, 1)`` float32 filtered microvolts to 5 softmax probabilities in
``constants.STAGES`` order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

#: Fixed input scaling of the source CNN: typical scalp EEG is tens of uV, so x/100 is O(1).
SOURCE_INPUT_SCALE: float = 1.0 / 100.0
MODEL_FILE = "model.keras"
META_FILE = "model.json"

#: Edge budget (docs/architecture.md, issue "Models" item 3).
EDGE_MAX_WEIGHT_BYTES = 128 * 1024
EDGE_MAX_ARENA_BYTES = 48 * 1024
EDGE_MAX_MACS = 10_000_000

#: Yildirim et al. 2019, 1-D CNN for single-channel sleep staging: (filters, kernel, stride)
#: per conv; "pool" = max-pool 2, "drop" = dropout 0.2.
_SOURCE_LAYOUT: tuple[Any, ...] = (
    (64, 5, 3), (128, 5, 1), "pool", "drop",
    (128, 13, 1), (256, 7, 1), "pool",
    (256, 7, 1), (64, 4, 1), "pool",
    (32, 3, 1), (64, 6, 1), "pool",
    (8, 5, 1), (8, 2, 1), "pool",
)

#: Edge CNN blocks (filters, kernel, stride), each Conv1D+BN+ReLU followed by max-pool 2 except
#: the last. Sized so that every int8 activation is <= 16 KB (arena pairs <= 32 KB) and the total
#: stays under ~7 M MACs; see tests/test_models.py for the measured figures.
_EDGE_LAYOUT: tuple[tuple[int, int, int], ...] = (
    (16, 9, 3), (32, 7, 1), (32, 7, 1), (64, 5, 1), (64, 5, 1), (64, 3, 1),
)


def keras() -> Any:
    """The Keras flavour every model here uses (tf_keras, Keras 2)."""
    import tf_keras

    return tf_keras


def build_source_cnn(seed: int = 0, dropout: float = 0.2, input_scale: float = SOURCE_INPUT_SCALE) -> Any:
    """The source (cloud) model: the 1-D CNN of Yildirim et al. (2019), ~1.05 M parameters.

    Parameters
    ----------
    seed : int
        Seed for the weight initialisers (reproducible builds).
    dropout : float
        Dropout rate after the first block and before the classifier.
    input_scale : float
        Fixed factor applied to the uV input (a Rescaling layer; the cloud runs float32, so the
        extra multiply costs nothing there).

    Returns
    -------
    tf_keras.Model
        ``(None, 3000, 1)`` float32 uV -> ``(None, 5)`` softmax.
    """
    k = keras()
    init = k.initializers.HeUniform(seed=seed)
    inp = k.Input((C.EPOCH_SAMPLES, 1), name="epoch_uv")
    x = k.layers.Rescaling(input_scale, name="scale_uv")(inp)
    n_conv = n_pool = 0
    for item in _SOURCE_LAYOUT:
        if item == "pool":
            n_pool += 1
            x = k.layers.MaxPooling1D(2, name=f"pool{n_pool}")(x)
        elif item == "drop":
            x = k.layers.Dropout(dropout, seed=seed)(x)
        else:
            filters, kernel, stride = item
            n_conv += 1
            x = k.layers.Conv1D(filters, kernel, strides=stride, padding="same", activation="relu",
                                kernel_initializer=init, name=f"conv{n_conv}")(x)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(64, activation="relu", kernel_initializer=init, name="fc")(x)
    x = k.layers.Dropout(dropout, seed=seed + 1)(x)
    out = k.layers.Dense(C.N_CLASSES, activation="softmax", name="probs")(x)
    return k.Model(inp, out, name="source_cnn")


def build_edge_cnn(seed: int = 0, dropout: float = 0.2) -> Any:
    """The edge model for the microcontroller (int8 after ``sleepedge compress``).

    Only layers whose int8 conversion stays inside the firmware's operator set: Conv1D (+ BN,
    folded, + ReLU, fused), MaxPooling1D, AveragePooling1D over the whole remaining length,
    Flatten (a RESHAPE with a constant shape), Dense and Softmax. Inputs are filtered uV clipped
    to +-``EDGE_INPUT_CLIP_UV`` outside the model; the BatchNorm after the first conv absorbs the
    input scale, so no Rescaling (which would become a MUL) is needed.

    Parameters
    ----------
    seed : int
        Seed for the weight initialisers.
    dropout : float
        Dropout before the classifier (training only).

    Returns
    -------
    tf_keras.Model
        ``(None, 3000, 1)`` float32 uV -> ``(None, 5)`` softmax.
    """
    k = keras()
    init = k.initializers.HeUniform(seed=seed)
    inp = k.Input((C.EPOCH_SAMPLES, 1), name="epoch_uv")
    x = inp
    for i, (filters, kernel, stride) in enumerate(_EDGE_LAYOUT, start=1):
        x = k.layers.Conv1D(filters, kernel, strides=stride, padding="same", use_bias=False,
                            kernel_initializer=init, name=f"conv{i}")(x)
        x = k.layers.BatchNormalization(name=f"bn{i}")(x)
        x = k.layers.ReLU(name=f"relu{i}")(x)
        if i < len(_EDGE_LAYOUT):
            x = k.layers.MaxPooling1D(2, name=f"pool{i}")(x)
    x = k.layers.AveragePooling1D(int(x.shape[1]), name="avgpool")(x)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dropout(dropout, seed=seed)(x)
    x = k.layers.Dense(C.N_CLASSES, kernel_initializer=init, name="logits")(x)
    out = k.layers.Softmax(name="probs")(x)
    return k.Model(inp, out, name="edge_cnn")


# --- cost figures --------------------------------------------------------------------------

def count_params(model: Any) -> int:
    """Total number of parameters (trainable and not, e.g. BN statistics)."""
    return int(sum(int(np.prod(w.shape)) for w in model.weights))


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape[1:])


def count_macs(model: Any) -> int:
    """Multiply-accumulates for one epoch (batch 1) in the Conv/Dense layers.

    Conv1D/Conv2D: output positions x filters x kernel size x input channels / groups;
    DepthwiseConv1D/2D: output positions x channels x multiplier x kernel size;
    Dense: inputs x units (for each leading position). Pooling, BN (folded by the converter),
    activations and additions are not multiply-accumulates and are not counted.
    """
    k = keras()
    total = 0
    for layer in model.layers:
        if isinstance(layer, (k.layers.DepthwiseConv1D, k.layers.DepthwiseConv2D)):
            out = _shape(layer.output)
            kernel = int(np.prod(layer.kernel_size))
            total += int(np.prod(out)) * kernel  # out already holds channels x multiplier
        elif isinstance(layer, (k.layers.Conv1D, k.layers.Conv2D)):
            out = _shape(layer.output)
            in_ch = _shape(layer.input)[-1]
            kernel = int(np.prod(layer.kernel_size))
            total += int(np.prod(out)) * kernel * in_ch // int(layer.groups)
        elif isinstance(layer, k.layers.Dense):
            out = _shape(layer.output)
            in_dim = _shape(layer.input)[-1]
            total += int(np.prod(out)) * in_dim
    return int(total)


def estimate_arena_bytes(model: Any) -> int:
    """Largest sum of simultaneously live int8 activations, one layer at a time.

    For a 1-D conv or pool the converter emits EXPAND_DIMS -> op -> RESHAPE, each a copy in TFLM,
    so the live pairs are (in, in), (in, out) and (out, out). For other layers it is the inputs
    plus the output. An estimate for design; the exact arena comes from the deploy tools.
    """
    k = keras()
    one_d = (k.layers.Conv1D, k.layers.MaxPooling1D, k.layers.AveragePooling1D,
             k.layers.DepthwiseConv1D)
    best = 0
    for layer in model.layers:
        if isinstance(layer, k.layers.InputLayer):
            continue
        ins = layer.input if isinstance(layer.input, list) else [layer.input]
        in_bytes = sum(int(np.prod(_shape(t))) for t in ins)
        out_bytes = int(np.prod(_shape(layer.output)))
        if isinstance(layer, one_d):
            need = max(2 * in_bytes, in_bytes + out_bytes, 2 * out_bytes)
        else:
            need = in_bytes + out_bytes
        best = max(best, need)
    return best


def weight_bytes_int8(model: Any) -> int:
    """int8 weight bytes after conversion: kernels 1 byte each, biases int32 (BN folds into them)."""
    k = keras()
    total = 0
    for layer in model.layers:
        if isinstance(layer, (k.layers.Conv1D, k.layers.Conv2D, k.layers.Dense,
                              k.layers.DepthwiseConv1D, k.layers.DepthwiseConv2D)):
            kernel = layer.weights[0]
            n_out = int(kernel.shape[-1]) if not isinstance(
                layer, (k.layers.DepthwiseConv1D, k.layers.DepthwiseConv2D)) else int(np.prod(kernel.shape[-2:]))
            total += int(np.prod(kernel.shape)) + 4 * n_out
    return total


def edge_budget(model: Any) -> dict[str, Any]:
    """Cost figures of an edge model against the microcontroller budget."""
    figures = {
        "params": count_params(model),
        "macs": count_macs(model),
        "arena_bytes_est": estimate_arena_bytes(model),
        "weight_bytes_int8": weight_bytes_int8(model),
    }
    figures["within_budget"] = bool(
        figures["macs"] <= EDGE_MAX_MACS
        and figures["arena_bytes_est"] <= EDGE_MAX_ARENA_BYTES
        and figures["weight_bytes_int8"] <= EDGE_MAX_WEIGHT_BYTES
    )
    return figures


# --- saving and loading ----------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_hash_u32(sha256_hex: str) -> int:
    """``SE_MODEL_HASH_U32`` that identifies a model on the wire: the first 4 bytes of its
    SHA-256, big-endian. The exporter writes it; :func:`reported_hash_u32` builds HELLO's from it."""
    return int(sha256_hex[:8], 16)


def reported_hash_u32(edge_sha256: str, context_sha256: str | None = None) -> int:
    """HELLO's model hash: what the device's RESULT outputs come from. The edge model's
    ``SE_MODEL_HASH_U32``, XORed with the context head's ``SE_CONTEXT_HASH_U32`` when the
    firmware runs one (its outputs are then the head's), so a cloud head trained on one kind of
    history does not read the other."""
    h = model_hash_u32(edge_sha256)
    return h ^ model_hash_u32(context_sha256) if context_sha256 else h


def save_model(model: Any, out_dir: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``out_dir/model.keras`` and ``out_dir/model.json`` (metadata + sha256, params, MACs).

    Returns the path of the .keras file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILE
    model.save(path)
    meta = {
        "name": model.name,
        "stages": list(C.STAGES),
        "input": {"shape": [C.EPOCH_SAMPLES, 1], "units": "uV"},
        "params": count_params(model),
        "macs": count_macs(model),
        **metadata,
        "sha256": sha256_file(path),
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def _model_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise SleepEdgeError(f"{path}: no such model file (expected a .keras file or a folder with {MODEL_FILE})")
    return path


def load_keras_model(path: str | Path, compile: bool = False) -> Any:
    """Load a tf_keras model from a ``.keras`` file or a folder holding ``model.keras``."""
    path = _model_path(path)
    try:
        return keras().models.load_model(path, compile=compile)
    except Exception as exc:  # corrupt archive, wrong Keras flavour, ...
        raise SleepEdgeError(f"{path}: cannot load as a tf_keras model ({type(exc).__name__}: {exc})") from exc


def load_metadata(model_dir: str | Path) -> dict[str, Any]:
    """``model.json`` next to a model, or {} when there is none."""
    meta = Path(model_dir) / META_FILE
    if not meta.is_file():
        return {}
    try:
        return json.loads(meta.read_text())
    except json.JSONDecodeError as exc:
        raise SleepEdgeError(f"{meta}: not valid JSON ({exc})") from exc


def forward(model: Any, x_uv: np.ndarray, batch: int = 512) -> list[np.ndarray]:
    """Every output of a Keras model for ``(N, 3000)`` or ``(N, 3000, 1)`` epochs, in batches
    (float32, one array per output).

    Uses a plain compiled forward pass instead of ``model.predict`` so that it behaves the same
    inside and outside a distribution strategy.
    """
    import tensorflow as tf

    x = np.asarray(x_uv, dtype=np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[1:] != (C.EPOCH_SAMPLES, 1):
        raise SleepEdgeError(f"model input: expected (N, {C.EPOCH_SAMPLES}) epochs, got shape {x.shape}")
    fn = getattr(model, "_se_forward", None)
    if fn is None:
        # One trace for every batch size (the last batch is usually smaller).
        fn = tf.function(lambda t: model(t, training=False),
                         input_signature=[tf.TensorSpec([None, C.EPOCH_SAMPLES, 1], tf.float32)])
        model._se_forward = fn
    parts: list[list[np.ndarray]] = [[] for _ in model.outputs]
    for i in range(0, len(x), batch):
        out = fn(tf.constant(x[i:i + batch]))
        for part, o in zip(parts, out if isinstance(out, (list, tuple)) else [out]):
            part.append(o.numpy())
    return [np.concatenate(p).astype(np.float32) if p else np.zeros((0, *_shape(t)), np.float32)
            for p, t in zip(parts, model.outputs)]


def predict_proba(model: Any, x_uv: np.ndarray, batch: int = 512) -> np.ndarray:
    """Softmax outputs of a one-output Keras model for ``(N, 3000)`` or ``(N, 3000, 1)`` epochs."""
    return forward(model, x_uv, batch)[0]


@dataclass
class CloudModel:
    """The cloud model behind ``POST /v1/classify``: the source CNN on filtered uV epochs."""

    model: Any
    name: str
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, x_uv: np.ndarray) -> np.ndarray:
        """``(N, 3000)`` float32 filtered uV -> ``(N, 5)`` probabilities in STAGES order."""
        return predict_proba(self.model, x_uv)


def load_cloud_model(model_dir: str | Path) -> CloudModel:
    """Load ``model_dir/model.keras`` (+ ``model.json``) as the cloud model."""
    model_dir = Path(model_dir)
    path = _model_path(model_dir)
    meta = load_metadata(path.parent)
    model = load_keras_model(path)
    if tuple(model.output_shape[1:]) != (C.N_CLASSES,):
        raise SleepEdgeError(f"{path}: output shape {model.output_shape} is not (None, {C.N_CLASSES})")
    sha = sha256_file(path)
    return CloudModel(model=model, name=str(meta.get("name", model.name)) + f"@{sha[:12]}",
                      sha256=sha, metadata=meta)

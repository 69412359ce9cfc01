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

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C

#: Feature per history entry: 5 dequantized probabilities + 1 "present" flag.
HISTORY_FEATURES = C.N_CLASSES + 1
#: The head and its metadata, next to the int8 edge model they were trained on.
CONTEXT_TFLITE = "context.tflite"
CONTEXT_META = "context.json"


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
    from host_tools.learn import tflm

    it = tflm.open_interpreter(tflite, 64 * 1024)
    iq = it.get_input_details(0)["quantization_parameters"]
    return tflm.run_rows(it, quantize_features(feats, float(iq["scales"][0]), int(iq["zero_points"][0])))


# --- training from an edge model and a cache (`sleepedge train context`) ---------------------


def edge_outputs_int8(tflite: bytes, cache: Path, night_ids: list[str]) -> dict[str, np.ndarray]:
    """Raw int8 edge outputs per night: TFLite Micro (the device's reference; ~4 ms per epoch,
    16x faster than the host TFLite interpreter's reference kernels) on the device's quantizer."""
    from host_tools.data import prepare
    from host_tools.data.filters import quantize_model_input
    from host_tools.learn import tflm

    it = tflm.open_interpreter(tflite, max(10 * len(tflite), 256 * 1024))
    iq = it.get_input_details(0)["quantization_parameters"]
    return {nid: tflm.run_rows(it, quantize_model_input(prepare.load_night(cache, nid)["x_filt"],
                                                        float(iq["scales"][0]), int(iq["zero_points"][0])))
            for nid in night_ids}


def _windows(raw: dict[str, np.ndarray], cache: Path, nids: list[str], length: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from host_tools.data import prepare

    parts = []
    for nid in nids:
        d = prepare.load_night(cache, nid)
        hp, hm = history_windows(raw[nid], d["epoch_index"], length)
        parts.append((hp, hm, d["y"].astype(np.int64)))
    if not parts:
        return (np.zeros((0, length, C.N_CLASSES), np.int8), np.zeros((0, length), bool), np.zeros(0, np.int64))
    hp, hm, y = (np.concatenate(a) for a in zip(*parts))
    return hp, hm, y


def _join(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([x, y]) for x, y in zip(a, b))


def _acc(y: np.ndarray, q: np.ndarray) -> dict[str, float]:
    from host_tools.evaluation import scores

    s = scores(y, np.asarray(q, np.int32).argmax(1))
    return {k: round(float(s[k]), 4) for k in ("acc", "mf1", "kappa")}


def train_context(edge: str | Path, cache: str | Path, split_from: str | Path, out: str | Path | None = None, *,
                  length: int = C.CONTEXT_EPOCHS, passes: int = 30, seed: int = 0,
                  raw: dict[str, np.ndarray] | None = None,
                  randomized_cache: str | Path | None = None) -> dict[str, Any]:
    """Train the context head on an int8 edge model's outputs and save it next to the model.

    Parameters
    ----------
    edge
        The int8 edge model: a ``.tflite`` or a folder holding ``model.tflite``.
    cache
        Prepare cache (per-night epochs).
    split_from
        A model folder whose ``model.json`` holds the subject split (train / val / test), e.g. the
        source model: the head trains on the same training subjects and is scored on the same
        held-out ones.
    out
        Folder for ``context.tflite`` + ``context.json`` (default: the edge model's folder).
    length
        Epochs per window; the firmware reads :data:`~host_tools.constants.CONTEXT_EPOCHS`.
    raw
        Precomputed int8 edge outputs per night id (else computed here).
    randomized_cache
        A ``synth --randomize`` cache of the same subjects: the edge outputs of its training and
        validation nights join the head's windows (the head learns the night's context also where
        the edge model is less sure), and its test nights are scored too (``test_randomized``).

    Returns
    -------
    dict
        ``context.json``: L, quantization, edge model SHA-256, test accuracy without / with the head.
    """
    import hashlib
    import json
    import time

    from host_tools.data import datasets
    from host_tools.errors import SleepEdgeError
    from host_tools.learn import models
    from host_tools.learn.compress import io_quantization

    edge, cache = Path(edge), Path(cache)
    tfl_path = edge / "model.tflite" if edge.is_dir() else edge
    if not tfl_path.is_file():
        raise SleepEdgeError(f"{tfl_path}: no int8 edge model here")
    out = Path(out) if out is not None else tfl_path.parent
    if not (Path(split_from) / models.META_FILE).is_file():
        raise SleepEdgeError(f"{Path(split_from) / models.META_FILE}: missing (--split-from names a model folder "
                             "whose model.json holds the subject split)")
    split = models.load_metadata(Path(split_from)).get("split") or {}
    if not split.get("train") or not split.get("test"):
        raise SleepEdgeError(f"{Path(split_from) / models.META_FILE}: no recorded train/test split to reuse")
    edge_bytes = tfl_path.read_bytes()
    eq = io_quantization(edge_bytes)
    s_o, zp_o = eq["output_scale"], eq["output_zero_point"]
    index = datasets.load_index_checked(cache)
    ids = {side: datasets.night_ids_for(index, list(split.get(side) or [])) for side in ("train", "val", "test")}
    # Both caches are checked before any edge output is computed (minutes on 2 cores).
    rcache = Path(randomized_cache) if randomized_cache is not None else None
    rindex = datasets.load_index_checked(rcache) if rcache is not None else None
    t0 = time.time()
    if raw is None:
        raw = edge_outputs_int8(edge_bytes, cache, [n for v in ids.values() for n in v])
    t_edge = time.time() - t0
    tr, te = _windows(raw, cache, ids["train"], length), _windows(raw, cache, ids["test"], length)
    va = _windows(raw, cache, ids["val"], length) if ids["val"] else tr
    te_rand = None
    if rcache is not None:
        rids = {side: datasets.night_ids_for(rindex, list(split.get(side) or [])) for side in ("train", "val", "test")}
        rraw = edge_outputs_int8(edge_bytes, rcache, [n for v in rids.values() for n in v])
        tr = _join(tr, _windows(rraw, rcache, rids["train"], length))
        va = _join(va, _windows(rraw, rcache, rids["val"], length)) if rids["val"] else tr
        te_rand = _windows(rraw, rcache, rids["test"], length)
    if len(tr[2]) == 0 or len(te[2]) == 0:
        raise SleepEdgeError(f"{cache}: the split's train or test subjects have no nights in this cache")
    feats = lambda w, present=None: history_features(w[0], w[1] if present is None else present, s_o, zp_o)  # noqa: E731
    t1 = time.time()
    head, n_passes = train_head(feats(tr, truncate_some(tr[1], 0.1, seed)), tr[2], (feats(va), va[2]),
                                passes=passes, seed=seed)
    t_fit = time.time() - t1
    tfl = convert_head_int8(head, feats(tr), seed=seed)
    q_head = head_predict_int8(tfl, feats(te))
    hq = io_quantization(tfl)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONTEXT_TFLITE).write_bytes(tfl)
    meta: dict[str, Any] = {
        "name": "edge_context",
        "what": f"causal head over the int8 edge model's last {length} outputs (current epoch last)",
        "length": length, "features": HISTORY_FEATURES, "params": models.count_params(head),
        "input_scale": hq["input_scale"], "input_zero_point": hq["input_zero_point"],
        "output_scale": hq["output_scale"], "output_zero_point": hq["output_zero_point"],
        "edge_model": {"sha256": hashlib.sha256(edge_bytes).hexdigest(), "output_scale": s_o,
                       "output_zero_point": zp_o},
        "sha256": hashlib.sha256(tfl).hexdigest(), "bytes": len(tfl), "split": split,
        "corpus": str(cache),
        "train": {"passes_run": n_passes, "seed": seed, "class_weighted": False,
                  "edge_outputs_seconds": round(t_edge, 1), "fit_seconds": round(t_fit, 1)},
        "test": {"n": int(len(te[2])), "edge_int8": _acc(te[2], te[0][:, -1, :]), "with_head_int8": _acc(te[2], q_head)},
    }
    if te_rand is not None and len(te_rand[2]):
        meta["randomized_corpus"] = str(randomized_cache)
        meta["test_randomized"] = {"n": int(len(te_rand[2])), "edge_int8": _acc(te_rand[2], te_rand[0][:, -1, :]),
                                   "with_head_int8": _acc(te_rand[2], head_predict_int8(tfl, feats(te_rand)))}
    (out / CONTEXT_META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--edge", type=Path, default=Path("models/edge"),
                        help="int8 edge model (.tflite or folder); the head is written next to it (default: %(default)s)")
    parser.add_argument("--cache", type=Path, required=True, help="prepare cache with the split's subjects")
    parser.add_argument("--split-from", type=Path, default=Path("models/source"),
                        help="model folder whose model.json holds the subject split (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the edge model's folder)")
    parser.add_argument("--passes", type=int, default=30, help="most passes over the training windows (default: 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--randomized-cache", type=Path, default=None, metavar="DIR",
                        help="a `synth --randomize` cache of the same subjects whose nights join the training windows")


def run(args: argparse.Namespace) -> int:
    meta = train_context(args.edge, args.cache, args.split_from, args.out, passes=args.passes, seed=args.seed,
                         randomized_cache=args.randomized_cache)
    t = meta["test"]
    print(f"held-out subjects ({t['n']} epochs): edge int8 acc {t['edge_int8']['acc']:.3f} -> with the context head "
          f"{t['with_head_int8']['acc']:.3f} (L = {meta['length']}, {meta['params']} parameters, {meta['bytes']} bytes)")
    return 0

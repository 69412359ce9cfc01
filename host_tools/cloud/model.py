"""``sleepedge train cloud``: the cloud model = the source CNN + a head over the night so far.

On one 30-s epoch the source CNN is not much better than the distilled edge model; what no
single-epoch model sees is the night around the epoch (stages follow each other in patterns).
The host already receives every epoch's RESULT, with the edge model's int8 probabilities, so
the proxy sends the last :data:`~host_tools.constants.CLOUD_HISTORY_EPOCHS` of them with each
escalation ("edge history", oldest first, the escalated epoch last). The cloud model combines
them with the source CNN's embedding of the escalated epoch's samples:

    samples (3000) -> source CNN -> embedding ("fc", 64) --+
                                                           +-> head (MLPs) -> 5 probabilities
    edge history (L x 5 int8) -> dequantize + present flag -+

The head is tiny (~17 K parameters) and trains in seconds on frozen encoder features. It is
tied to one edge model (its int8 outputs are its input): ``model.json`` records that model's
SHA-256, and a request from a device running another model (HELLO's model hash) gets the
source CNN's own answer instead (``context_used: false``). ``make train`` retrains the head
whenever the edge model changes.

``models/cloud/`` holds ``head.keras`` and ``model.json``; the encoder is the source model in
the folder named by ``model.json["encoder"]`` (``../source``), checked by SHA-256 at load.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools.learn import context as _context
from host_tools.errors import SleepEdgeError

HEAD_FILE = "head.keras"
META_FILE = "model.json"
#: The source CNN layer whose output is the epoch embedding (64 units, after ReLU).
EMBEDDING_LAYER = "fc"
#: Feature per history entry: 5 dequantized probabilities + 1 "present" flag.
HISTORY_FEATURES = _context.HISTORY_FEATURES


# --- edge history ----------------------------------------------------------------------------

@dataclass(frozen=True)
class EdgeHistory:
    """The device's raw int8 outputs for the epochs up to and including the escalated one.

    ``probs[j]`` belongs to epoch ``epoch - (len - 1 - j)``; ``present[j]`` is False where the
    host has no RESULT for that epoch (stream start, lost frame, incomplete epoch).
    """

    model_hash_u32: int
    probs: np.ndarray  #: int8 (L, 5)
    present: np.ndarray  #: bool (L,)


# The windows and features are the device context head's (host_tools.learn.context): one
# definition of "the last L outputs, oldest first, absent = zeros + flag 0" for both heads.
history_windows = _context.history_windows
history_features = _context.history_features


def fit_history(probs: np.ndarray, present: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut or left-pad (as absent) one history to ``length`` entries, keeping the newest."""
    probs = np.asarray(probs, np.int8).reshape(-1, C.N_CLASSES)
    present = np.asarray(present, bool).reshape(-1)
    if len(probs) >= length:
        return probs[-length:], present[-length:]
    pad = length - len(probs)
    return (np.concatenate([np.zeros((pad, C.N_CLASSES), np.int8), probs]),
            np.concatenate([np.zeros(pad, bool), present]))


# --- the head --------------------------------------------------------------------------------

def build_head(emb_dim: int, length: int, seed: int = 0, dropout: float = 0.3) -> Any:
    """The context head: [epoch embedding (emb_dim,), edge history (length, 6)] -> 5 softmax."""
    from host_tools.learn.models import keras

    k = keras()
    init = k.initializers.HeUniform(seed=seed)
    emb = k.Input((emb_dim,), name="embedding")
    hist = k.Input((length, HISTORY_FEATURES), name="edge_history")
    e = k.layers.Dense(64, activation="relu", kernel_initializer=init, name="emb_fc")(emb)
    h = k.layers.Flatten(name="history_flat")(hist)
    h = k.layers.Dense(64, activation="relu", kernel_initializer=init, name="history_fc")(h)
    z = k.layers.Concatenate(name="joint")([e, h])
    z = k.layers.Dropout(dropout, seed=seed)(z)
    z = k.layers.Dense(64, activation="relu", kernel_initializer=init, name="joint_fc")(z)
    out = k.layers.Dense(C.N_CLASSES, activation="softmax", kernel_initializer=init, name="probs")(z)
    return k.Model([emb, hist], out, name="cloud_context_head")


def encoder_with_embedding(source: Any) -> Any:
    """The source CNN with two outputs: the embedding and its own softmax."""
    from host_tools.learn.models import keras

    try:
        emb = source.get_layer(EMBEDDING_LAYER).output
    except ValueError:
        raise SleepEdgeError(f"source model {source.name!r} has no layer {EMBEDDING_LAYER!r}; "
                             "is it a source CNN (build_source_cnn)?") from None
    return keras().Model(source.input, [emb, source.output], name="source_encoder")


def encode(encoder: Any, x_uv: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(embedding (n, 64), source probs (n, 5)) of filtered uV epochs (n, 3000)."""
    from host_tools.learn.models import forward

    emb, probs = forward(encoder, x_uv, batch)
    return emb, probs


# --- the model the service runs --------------------------------------------------------------

@dataclass
class EdgeModelId:
    """The edge model a head was trained on: what its history inputs mean."""

    sha256: str
    output_scale: float
    output_zero_point: int
    #: The device's context head whose outputs the history holds (None: the edge model's own).
    context_sha256: str | None = None

    @property
    def hash_u32(self) -> int:
        """As the device reports it in HELLO (edge model, and context head if any)."""
        from host_tools.learn.models import reported_hash_u32

        return reported_hash_u32(self.sha256, self.context_sha256)


@dataclass
class ContextCloudModel:
    """Source CNN + context head. Without a usable history it answers as the source CNN."""

    encoder: Any
    head: Any
    history_length: int
    edge: EdgeModelId
    name: str
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict_with_history(
        self, x_uv: np.ndarray, histories: list[EdgeHistory | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (n, 5) and whether each row used its history (n,) bool.

        A history is used when it comes from the edge model the head was trained on.
        """
        emb, p_src = encode(self.encoder, x_uv)
        if len(histories) != len(emb):
            raise ValueError(f"{len(emb)} epochs but {len(histories)} histories")
        used = np.array([h is not None and h.model_hash_u32 == self.edge.hash_u32 for h in histories], bool)
        out = p_src.copy()
        if used.any():
            rows = np.flatnonzero(used)
            hp, hm = zip(*(fit_history(histories[i].probs, histories[i].present, self.history_length)
                           for i in rows))
            feats = history_features(np.stack(hp), np.stack(hm), self.edge.output_scale, self.edge.output_zero_point)
            out[rows] = self.head_proba(emb[rows], feats)
        return out, used

    def head_proba(self, emb: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """The head on precomputed embeddings and history features."""
        return np.asarray(self.head([emb, feats], training=False), dtype=np.float32)

    def predict_proba(self, x_uv: np.ndarray) -> np.ndarray:
        """No history: the source CNN's own probabilities (the fallback answer)."""
        return encode(self.encoder, x_uv)[1]


def night_cloud_probs(cloud: Any, x_uv: np.ndarray, raw: np.ndarray, nights: np.ndarray,
                      epoch_index: np.ndarray) -> np.ndarray:
    """The cloud's answer for every epoch, as if each were escalated by a device streaming the
    night from its first cached epoch: with the edge history the proxy would send (a context
    model), or from the epoch alone (a plain source CNN, ``predict_proba``).

    Parameters
    ----------
    cloud
        :class:`ContextCloudModel` or any model with ``predict_proba``.
    x_uv, raw, nights, epoch_index
        Filtered epochs (n, 3000), the device's int8 outputs (n, 5), the night id of each row
        and its epoch number in the recording.
    """
    if not isinstance(cloud, ContextCloudModel):
        return np.asarray(cloud.predict_proba(x_uv), np.float32)
    nights = np.asarray(nights)
    out = np.zeros((len(x_uv), C.N_CLASSES), np.float32)
    for nid in dict.fromkeys(nights.tolist()):
        rows = np.flatnonzero(nights == nid)
        emb, _ = encode(cloud.encoder, x_uv[rows])
        hp, hm = history_windows(raw[rows], epoch_index[rows], cloud.history_length)
        out[rows] = cloud.head_proba(emb, history_features(hp, hm, cloud.edge.output_scale,
                                                           cloud.edge.output_zero_point))
    return out


def load_context_model(model_dir: str | Path) -> ContextCloudModel:
    """Load ``model_dir/head.keras`` + ``model.json`` and the encoder it names."""
    from host_tools.learn import models

    model_dir = Path(model_dir)
    meta_path = model_dir / META_FILE
    if not (model_dir / HEAD_FILE).is_file() or not meta_path.is_file():
        raise SleepEdgeError(f"{model_dir}: no cloud model here (needs {HEAD_FILE} and {META_FILE}; "
                             "`sleepedge train cloud` writes them)")
    meta = models.load_metadata(model_dir)
    try:
        enc_dir = (model_dir / meta["encoder"]).resolve()
        edge = EdgeModelId(str(meta["edge_model"]["sha256"]), float(meta["edge_model"]["output_scale"]),
                           int(meta["edge_model"]["output_zero_point"]),
                           meta["edge_model"].get("context_head_sha256") or None)
        length = int(meta["history_length"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SleepEdgeError(f"{meta_path}: incomplete cloud model metadata ({exc!r})") from None
    enc_file = enc_dir / models.MODEL_FILE
    if not enc_file.is_file():
        raise SleepEdgeError(f"{meta_path}: its encoder {enc_file} does not exist")
    enc_sha = models.sha256_file(enc_file)
    if meta.get("encoder_sha256") and enc_sha != meta["encoder_sha256"]:
        raise SleepEdgeError(f"{model_dir}: the head was trained on encoder {meta['encoder_sha256'][:12]} but "
                             f"{enc_file} is {enc_sha[:12]}; retrain it (`sleepedge train cloud`)")
    encoder = encoder_with_embedding(models.load_keras_model(enc_file))
    head = models.load_keras_model(model_dir / HEAD_FILE)
    head_sha = models.sha256_file(model_dir / HEAD_FILE)
    return ContextCloudModel(encoder=encoder, head=head, history_length=length, edge=edge,
                             name=f"{meta.get('name', 'cloud_context')}@{head_sha[:12]}",
                             sha256=head_sha, metadata=meta)


def load_cloud(model_dir: str | Path) -> Any:
    """The cloud model in a folder: a context model (``head.keras``) or a plain source CNN."""
    model_dir = Path(model_dir)
    if (model_dir / HEAD_FILE).is_file():
        return load_context_model(model_dir)
    from host_tools.learn.models import load_cloud_model

    return load_cloud_model(model_dir)


# --- training --------------------------------------------------------------------------------

def edge_outputs(tflite: str | Path, cache: str | Path, night_ids: list[str], progress: bool = True
                 ) -> dict[str, np.ndarray]:
    """The int8 edge model's raw outputs (TFLite Micro, the device's arithmetic) per night."""
    from rich.progress import Progress

    from host_tools.data import prepare
    from host_tools.deploy.predict import TflmModel

    tflm = TflmModel.load(tflite)
    out: dict[str, np.ndarray] = {}
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("edge int8 outputs (TFLM)", total=len(night_ids))
        for nid in night_ids:
            x = prepare.load_night(cache, nid)["x_filt"].astype(np.float32, copy=False)
            out[nid] = tflm.run_int8(tflm.quantize_stream(x))  # one night, in stream order
            bar.advance(task)
    return out


def _reported(raw: dict[str, np.ndarray], tflite: Path, cache: Path, edge: EdgeModelId
              ) -> tuple[EdgeModelId, str | None]:
    """The history is what the device reports: with a context head next to the edge model
    (``context.tflite``) its outputs replace the edge model's in ``raw`` (in place), and the
    output quantization is the head's. Returns the history's model id and the head's SHA-256."""
    from host_tools.data import prepare
    from host_tools.deploy.predict import ContextHead

    head = ContextHead.find(tflite)
    if head is None:
        return edge, None
    from host_tools.learn import models

    for nid in raw:
        ei = prepare.load_night(cache, nid)["epoch_index"]
        raw[nid] = head.run(raw[nid], ei, edge.output_scale, edge.output_zero_point)
    head_sha = models.sha256_file(head.path)
    return EdgeModelId(edge.sha256, head.output_scale, head.output_zero_point, head_sha), head_sha


@dataclass
class _NightFeatures:
    emb: np.ndarray
    src: np.ndarray
    hist: np.ndarray
    present: np.ndarray
    y: np.ndarray
    raw: np.ndarray


def _features(encoder: Any, cache: Path, nids: list[str], raw: dict[str, np.ndarray], length: int) -> _NightFeatures:
    from host_tools.data import prepare

    parts: list[tuple[np.ndarray, ...]] = []
    for nid in nids:
        d = prepare.load_night(cache, nid)
        emb, src = encode(encoder, d["x_filt"].astype(np.float32, copy=False))
        hp, hm = history_windows(raw[nid], d["epoch_index"], length)
        parts.append((emb, src, hp, hm, d["y"].astype(np.int64), raw[nid]))
    return _NightFeatures(*(np.concatenate(a) for a in zip(*parts)))


def train_cloud(
    source: str | Path, edge_tflite: str | Path, cache: str | Path, out: str | Path, *,
    history: int = C.CLOUD_HISTORY_EPOCHS, passes: int = 30, batch: int = 256, patience: int = 4,
    lr: float = 1e-3, seed: int = 0, progress: bool = True,
) -> dict[str, Any]:
    """Train the context head on the source model's split and write ``out/head.keras`` + ``model.json``.

    Parameters
    ----------
    source
        Source model folder (its ``model.json`` split is reused: the head trains on the same
        training subjects, stops early on the same validation subjects, and is scored on the
        same held-out test subjects).
    edge_tflite
        The int8 edge model (``.tflite`` or folder) whose outputs form the history.
    cache
        Prepare cache the source model was trained on.
    out
        Output folder; ``model.json["encoder"]`` is written relative to it.
    history
        Entries per history, the escalated epoch included.
    passes, batch, patience, lr, seed
        Adam on class-weighted cross-entropy; early stopping on validation accuracy.

    Returns
    -------
    dict
        ``model.json``'s content (scores of the source CNN alone, the edge model alone and the
        cloud model on validation and test subjects).
    """
    import os

    from host_tools.data import datasets
    from host_tools.learn import models
    from host_tools.deploy.predict import TflmModel, resolve_tflite
    from host_tools.learn.train import score

    if history < 1:
        raise SleepEdgeError(f"--history must be >= 1, got {history}")
    source, cache, out = Path(source), Path(cache), Path(out)
    split = (models.load_metadata(source).get("split") or {})
    if not split.get("train") or not split.get("test"):
        raise SleepEdgeError(f"{source / models.META_FILE}: no recorded train/test split to reuse")
    index = datasets.load_index_checked(cache)
    tflite = resolve_tflite(edge_tflite)
    tflm = TflmModel.load(tflite)
    edge = EdgeModelId(models.sha256_file(tflite), tflm.output_scale, tflm.output_zero_point)
    t0 = time.time()
    ids = {side: datasets.night_ids_for(index, list(split.get(side) or [])) for side in ("train", "val", "test")}
    raw = edge_outputs(tflite, cache, [n for side in ids.values() for n in side], progress=progress)
    edge, context_sha = _reported(raw, tflite, cache, edge)
    t_edge = time.time() - t0
    encoder = encoder_with_embedding(models.load_keras_model(source))
    feats = {side: _features(encoder, cache, nids, raw, history) for side, nids in ids.items() if nids}
    tr = feats["train"]
    va = feats.get("val", tr)

    def inputs(f: _NightFeatures, present: np.ndarray | None = None) -> list[np.ndarray]:
        return [f.emb, history_features(f.hist, f.present if present is None else present,
                                        edge.output_scale, edge.output_zero_point)]

    k = models.keras()
    k.utils.set_random_seed(seed)
    head = build_head(tr.emb.shape[1], history, seed=seed)
    head.compile(optimizer=k.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                 weighted_metrics=["accuracy"])
    cw = datasets.class_weights(tr.y)
    stop = k.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, restore_best_weights=True)
    t1 = time.time()
    hist = head.fit(inputs(tr, _context.truncate_some(tr.present, 0.1, seed)), tr.y,
                    sample_weight=datasets.sample_weights(tr.y, cw), validation_data=(inputs(va), va.y),
                    epochs=passes, batch_size=batch, shuffle=True, callbacks=[stop], verbose=0)
    t_fit = time.time() - t1

    def scores(f: _NightFeatures) -> dict[str, Any]:
        p = np.asarray(head.predict(inputs(f), batch_size=1024, verbose=0))
        edge_stage = f.raw.astype(np.int32).argmax(1)
        return {name: {m: s[m] for m in ("acc", "mf1", "kappa")}
                for name, s in (("cloud", score(f.y, p.argmax(1))), ("source", score(f.y, f.src.argmax(1))),
                                ("edge_int8", score(f.y, edge_stage)))} | {"n": int(len(f.y))}

    out.mkdir(parents=True, exist_ok=True)
    head.save(out / HEAD_FILE)
    meta: dict[str, Any] = {
        "name": "cloud_context",
        "what": "source CNN embedding of the escalated epoch + the device's int8 outputs for the last "
                f"{history} epochs (the escalated one included)",
        "encoder": os.path.relpath(source.resolve(), out.resolve()),
        "encoder_sha256": models.sha256_file(source / models.MODEL_FILE),
        "embedding_layer": EMBEDDING_LAYER,
        "history_length": history,
        "edge_model": {"sha256": edge.sha256, "hash_u32": f"{edge.hash_u32:08x}",
                       "output_scale": edge.output_scale, "output_zero_point": edge.output_zero_point,
                       "context_head_sha256": context_sha},
        "params": models.count_params(head),
        "split": split,
        "train": {"passes_run": len(hist.history.get("loss", [])), "batch": batch, "lr": lr, "seed": seed,
                  "class_weights": cw.tolist(), "edge_outputs_seconds": round(t_edge, 1),
                  "fit_seconds": round(t_fit, 1)},
        "val": scores(va) if "val" in feats else None,
        "test": scores(feats["test"]),
        "sha256": models.sha256_file(out / HEAD_FILE),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# --- CLI -------------------------------------------------------------------------------------

def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", type=Path, default=Path("models/source"),
                        help="source model folder, the encoder (default: %(default)s)")
    parser.add_argument("--edge", type=Path, default=Path("models/edge"),
                        help="int8 edge model (.tflite or folder) whose outputs form the history (default: %(default)s)")
    parser.add_argument("--cache", type=Path, required=True, help="prepare cache the source model was trained on")
    parser.add_argument("--out", type=Path, default=Path("models/cloud"), help="output folder (default: %(default)s)")
    parser.add_argument("--history", type=int, default=C.CLOUD_HISTORY_EPOCHS,
                        help="edge outputs per escalation, the escalated epoch included (default: %(default)s)")
    parser.add_argument("--passes", type=int, default=30, help="most passes over the training epochs (default: 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    meta = train_cloud(args.source, args.edge, args.cache, args.out, history=args.history, passes=args.passes,
                       seed=args.seed, progress=not args.quiet)
    t = meta["test"]
    print(f"held-out subjects ({t['n']} epochs): cloud acc {t['cloud']['acc']:.3f} kappa {t['cloud']['kappa']:.3f}; "
          f"source CNN alone {t['source']['acc']:.3f}; edge int8 alone {t['edge_int8']['acc']:.3f}")
    print(f"wrote {args.out / HEAD_FILE} and {args.out / META_FILE}")
    return 0

"""The learning half of ``sleepedge adapt``: a few labelled recordings of a target device or
cohort -> adapted edge and source models, with every choice made by leave-one-person-out CV.

Nothing is chosen by hand. For the edge CNN each :class:`Strategy` says which layers move (the
classifier only, the top conv blocks, or every conv), the learning rate, the passes, whether the
loss is class-weighted and whether the targets are distilled from the source model adapted on
the same fold, and how many seeds are averaged into one tail (a "model soup": the runs start
from the same pretrained weights, so their weight mean is one model of the same shape, with less
seed-to-seed variance). For the source (cloud) CNN the candidates are: unchanged, its last
dense layer, or both dense layers. Each candidate is trained once per held-out person on the other people and
scored on the held-out one; the best pooled ``(accuracy + kappa) / 2`` wins.

Frozen layers never change, so their outputs ("trunk features") are computed once for all
epochs and only the moving top ("tail") is trained: a classifier-only candidate costs a fraction
of a second per fold. BatchNorm layers keep the statistics learnt on the source corpus (their
scale and shift stay frozen), or, in the ``adabn`` candidates, statistics re-estimated on the
user's training people before the tail trains.

The device's input path is unchanged: filtered microvolts clipped to +-``EDGE_INPUT_CLIP_UV``,
no per-recording scaling (a whole-recording statistic is not available to a causal device).

This module trains float models only; int8 conversion and scoring on the device's arithmetic
(TFLite Micro) is done by the driver :mod:`host_tools.adapt`, which passes a scorer in.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

#: A stage with fewer scored epochs than this in the user's data gets a warning.
MIN_STAGE_EPOCHS: int = 10
#: Edge layers that move, per ``Strategy.train`` value: the first layer of the tail.
EDGE_TAILS: dict[str, str | None] = {"head": "logits", "top1": "conv6", "top3": "conv4", "all": None}
#: Amplitude gains of the augmented copies (another montage or amplifier changes the amplitude;
#: the device cannot rescale a recording, so the model learns to tolerate it).
AUG_GAINS: tuple[float, ...] = (0.7, 1.0, 1.4)
#: Time shifts (seconds) of the shifted copies. The expert's 30-s grid is arbitrary for the
#: signal: a window a few seconds off it, cut from the same filtered stream, is a new view of the
#: same stage (shifts under 15 s keep most of the window in the labelled epoch).
AUG_SHIFTS_S: tuple[int, ...] = (-10, -5, 5, 10)
#: Source CNN tails: ``probs`` = last dense layer only, ``fc`` = both dense layers.
SOURCE_TAILS: dict[str, str | None] = {"none": None, "probs": "probs", "fc": "fc"}


class AdaptWarning(UserWarning):
    """Something in the user's data that limits what adaptation can learn (shown, not fatal)."""


# --- data --------------------------------------------------------------------------------------

@dataclass
class Recordings:
    """Scored epochs of the user's recordings, as the device forms them.

    ``x`` float32 (n, 3000) filtered uV (unclipped: the cloud's input), ``y`` int64 stage index,
    ``person`` and ``recording`` names per epoch, ``epoch_index`` epoch number in its recording.
    """

    x: np.ndarray
    y: np.ndarray
    person: np.ndarray
    recording: np.ndarray
    epoch_index: np.ndarray
    channels: dict[str, str] = field(default_factory=dict)

    @property
    def people(self) -> list[str]:
        return sorted(set(self.person.tolist()))

    def stage_counts(self) -> dict[str, int]:
        return {s: int((self.y == i).sum()) for i, s in enumerate(C.STAGES)}

    def subset(self, rows: np.ndarray) -> "Recordings":
        """The epochs ``rows`` (e.g. one fold's training people)."""
        return Recordings(self.x[rows], self.y[rows], self.person[rows], self.recording[rows],
                          self.epoch_index[rows], self.channels)


def parse_channels(channel: str | Iterable[str]) -> list[str]:
    """``"C3-A1,CZ-A1"`` -> ``["C3-A1", "CZ-A1"]``: alternatives tried in order per recording."""
    names = [c.strip() for c in (channel.split(",") if isinstance(channel, str) else channel) if c.strip()]
    if not names:
        raise SleepEdgeError("--channel: give at least one channel name")
    return names


def read_subject_map(path: str | Path | None) -> dict[str, str]:
    """``--subject-map``: a JSON object ``{"recording id": "person"}`` or a CSV/TSV of
    ``recording,person`` lines. Without one every recording is its own person."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise SleepEdgeError(f"{path}: subject map not found")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SleepEdgeError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise SleepEdgeError(f"{path}: expected a JSON object {{recording: person}}")
        return {str(k): str(v) for k, v in data.items()}
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        parts = [p.strip() for p in line.replace("\t", ",").split(",")]
        if not line.strip() or line.lstrip().startswith("#") or parts[:2] == ["recording", "person"]:
            continue
        if len(parts) != 2 or not all(parts):
            raise SleepEdgeError(f"{path}:{n}: expected 'recording,person', got {line!r}")
        out[parts[0]] = parts[1]
    return out


def _prepare_one(psg: Path, hyp: Path, channels: list[str]) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    """``prepare.prepare_night`` on the whole recording (no wake trimming) with the first channel
    alternative the recording has; returns the channel as the file spells it."""
    from host_tools.data import prepare

    arrays, entry = prepare.prepare_night(psg, hyp, ",".join(channels), wake_margin_min=1e6)
    return arrays, entry, str(entry.get("channel", arrays.get("channel")))


def load_recordings(
    folder: str | Path, channel: str | Iterable[str] = "Fpz-Cz", subject_map: dict[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Recordings:
    """Every PSG/hypnogram pair in ``folder`` (any format ``data.recordings`` reads, resampled to
    100 Hz), whole recordings (no wake trimming), scored epochs only.

    Raises
    ------
    SleepEdgeError
        A recording without a single scored epoch, a subject map naming unknown recordings,
        fewer than two people (leave-one-person-out needs two).
    """
    from host_tools.data import recordings

    channels = parse_channels(channel)
    subject_map = subject_map or {}
    pairs = recordings.find_pairs(folder)
    parts, used = [], {}
    for psg, hyp in pairs:
        arrays, entry, ch = _prepare_one(psg, hyp, channels)
        if entry["n_epochs"] == 0:
            raise SleepEdgeError(f"{hyp}: no scored epoch (every 30-s epoch is unscored, M or ?)")
        rec = str(entry["id"])
        used[rec] = ch
        parts.append((arrays, rec, subject_map.get(rec, rec)))
    unknown = sorted(set(subject_map) - set(used))
    if unknown:
        raise SleepEdgeError(f"--subject-map names recordings not in {folder}: {unknown}")
    rec = Recordings(
        x=np.concatenate([a["x_filt"] for a, _, _ in parts]).astype(np.float32, copy=False),
        y=np.concatenate([a["y"] for a, _, _ in parts]).astype(np.int64),
        person=np.concatenate([np.full(len(a["y"]), p, dtype=object) for a, _, p in parts]).astype(str),
        recording=np.concatenate([np.full(len(a["y"]), r, dtype=object) for a, r, _ in parts]).astype(str),
        epoch_index=np.concatenate([a["epoch_index"] for a, _, _ in parts]).astype(np.int64),
        channels=used,
    )
    check_recordings(rec, str(folder), warn)
    return rec


def check_recordings(rec: Recordings, where: str, warn: Callable[[str], None] | None = None) -> list[str]:
    """Errors that make leave-one-person-out impossible; warnings (returned and shown) for
    stages too rare to learn from."""
    if len(rec.people) < 2:
        raise SleepEdgeError(f"{where}: leave-one-person-out needs at least 2 people, found {len(rec.people)} "
                             "(give more recordings, or fix --subject-map)")
    notes = []
    for stage, n in rec.stage_counts().items():
        if 0 < n < MIN_STAGE_EPOCHS:
            notes.append(f"{where}: stage {stage} has only {n} scored epochs (< {MIN_STAGE_EPOCHS}); "
                         "adaptation can learn little about it")
        elif n == 0:
            notes.append(f"{where}: stage {stage} has no scored epoch; the adapted models keep what the "
                         "shipped ones know about it, untested here")
    for note in notes:
        (warn or (lambda m: warnings.warn(m, AdaptWarning, stacklevel=3)))(note)
    return notes


# --- strategies --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Strategy:
    """One way to adapt the edge CNN (see module docstring)."""

    name: str
    train: str  #: key of EDGE_TAILS
    lr: float
    passes: int
    class_weights: bool = True
    distil: bool = False
    temperature: float = 2.0
    alpha: float = 0.5
    adabn: bool = False  #: re-estimate BatchNorm statistics on the user's data first (AdaBN)
    augment: bool = False  #: train on copies of each epoch at the gains :data:`AUG_GAINS`
    shift: bool = False  #: ... and on windows shifted by :data:`AUG_SHIFTS_S` along the recording
    soup: int = 1  #: the tail trained with this many seeds from the same start, weights averaged

    def __post_init__(self) -> None:
        if self.train not in EDGE_TAILS:
            raise SleepEdgeError(f"strategy {self.name}: unknown layer group {self.train!r} "
                                 f"(one of {sorted(EDGE_TAILS)})")
        if self.soup < 1:
            raise SleepEdgeError(f"strategy {self.name}: soup must be >= 1, got {self.soup}")


def default_strategies(budget: float = 1.0) -> list[Strategy]:
    """The edge candidates compared by leave-one-person-out; ``budget`` scales every pass count
    (0.2 for a quick check)."""
    def p(n: int) -> int:
        return max(1, int(round(n * budget)))

    return [
        Strategy("head", "head", 3e-3, p(40)),
        Strategy("head-unweighted", "head", 3e-3, p(40), class_weights=False),
        Strategy("top1", "top1", 1e-3, p(30)),
        Strategy("top3", "top3", 5e-4, p(25)),
        Strategy("top3-distil", "top3", 5e-4, p(25), distil=True),
        Strategy("top3-aug", "top3", 5e-4, p(15), augment=True),
        Strategy("top3-aug-soup", "top3", 1e-3, p(15), augment=True, soup=3),
        # 15 copies of each epoch (5 windows x 3 gains): 4 passes see each epoch 60 times.
        Strategy("top3-shift-aug-soup", "top3", 1e-3, p(4), augment=True, shift=True, soup=3),
        Strategy("all", "all", 3e-4, p(15)),
        Strategy("adabn-top3", "top3", 5e-4, p(25), adabn=True),
    ]


@dataclass(frozen=True)
class SourceStrategy:
    """One way to adapt the source CNN (the cloud encoder)."""

    name: str
    train: str  #: key of SOURCE_TAILS
    lr: float = 1e-3
    passes: int = 30


def default_source_strategies(budget: float = 1.0) -> list[SourceStrategy]:
    p = max(1, int(round(30 * budget)))
    return [SourceStrategy("none", "none", 0.0, 0), SourceStrategy("probs", "probs", 2e-3, p),
            SourceStrategy("fc", "fc", 5e-4, p)]


# --- models split into a frozen trunk and a trained tail ---------------------------------------

def _layer_index(model: Any, name: str) -> int:
    for i, layer in enumerate(model.layers):
        if layer.name == name:
            return i
    raise SleepEdgeError(f"model {model.name}: no layer {name!r} (is it a SleepEdge model?)")


def split_model(model: Any, first_tail_layer: str | None) -> tuple[Any | None, Any]:
    """(trunk, tail) sharing ``model``'s layer objects, so training the tail trains ``model``.

    The model must be a chain (each layer feeds the next), which the SleepEdge CNNs are.
    ``first_tail_layer`` None: no trunk, the tail is the model itself.
    """
    k = _keras()
    if first_tail_layer is None:
        return None, model
    i = _layer_index(model, first_tail_layer)
    trunk = k.Model(model.inputs[0], model.layers[i - 1].output, name=f"{model.name}_trunk")
    inp = k.Input(tuple(model.layers[i - 1].output.shape[1:]), name="trunk_features")
    y = inp
    for layer in model.layers[i:]:
        y = layer(y)
    return trunk, k.Model(inp, y, name=f"{model.name}_tail")


def _keras() -> Any:
    from host_tools.learn.models import keras

    return keras()


def _set_trainable(model: Any, tail: Any, train: str) -> None:
    """Everything outside the tail frozen; BatchNorm always frozen (inference mode): with a few
    hundred epochs, batch statistics are too noisy to train through (measured: much worse)."""
    tail_names = {l.name for l in tail.layers}
    for layer in model.layers:
        layer.trainable = layer.name in tail_names and type(layer).__name__ != "BatchNormalization"


def trunk_features(trunk: Any | None, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Frozen-trunk outputs (or the clipped input itself when there is no trunk)."""
    if trunk is None:
        return np.asarray(x, np.float32)[..., None]
    out = [np.asarray(trunk(x[i:i + batch, :, None], training=False)) for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float32)


def _fit(tail: Any, feats: np.ndarray, targets: np.ndarray, weights: np.ndarray | None, *, loss: Any,
         lr: float, passes: int, batch: int, seed: int) -> None:
    k = _keras()
    k.utils.set_random_seed(seed)
    tail.compile(optimizer=k.optimizers.Adam(lr), loss=loss)
    tail.fit(feats, targets, sample_weight=weights, batch_size=batch, epochs=passes, shuffle=True, verbose=0)


def _predict(tail: Any, feats: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([np.asarray(tail(feats[i:i + batch], training=False))
                           for i in range(0, len(feats), batch)]).astype(np.float32)


def predict_edge(model: Any, x: np.ndarray) -> np.ndarray:
    """A whole (adapted) float edge CNN's probabilities for filtered uV epochs (clipped here)."""
    return _predict(model, edge_input(x)[..., None])


def edge_input(x: np.ndarray) -> np.ndarray:
    """The edge CNN's float input: filtered uV clipped as the device's int8 input saturates."""
    return np.clip(np.asarray(x, np.float32), -C.EDGE_INPUT_CLIP_UV, C.EDGE_INPUT_CLIP_UV)


def neighbours(recording: np.ndarray, epoch_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of the previous and of the next epoch of the same recording, per row (-1: none)."""
    keys = list(zip(np.asarray(recording).tolist(), np.asarray(epoch_index, np.int64).tolist()))
    row = {k: i for i, k in enumerate(keys)}
    prev = np.array([row.get((r, e - 1), -1) for r, e in keys], dtype=np.int64)
    nxt = np.array([row.get((r, e + 1), -1) for r, e in keys], dtype=np.int64)
    return prev, nxt


def shifted(x: np.ndarray, near: tuple[np.ndarray, np.ndarray], shift_s: float) -> np.ndarray:
    """Each epoch's window moved by ``shift_s`` seconds along its recording (the part beyond the
    epoch taken from the neighbour); an epoch without that neighbour is kept as it is."""
    x = np.asarray(x, np.float32)
    k = int(round(abs(shift_s) * C.FS_HZ))
    prev, nxt = near
    out = x.copy()
    if k == 0:
        return out
    if shift_s > 0:
        ok = np.flatnonzero(nxt >= 0)
        out[ok] = np.concatenate([x[ok, k:], x[nxt[ok], :k]], axis=1)
    else:
        ok = np.flatnonzero(prev >= 0)
        out[ok] = np.concatenate([x[prev[ok], -k:], x[ok, :-k]], axis=1)
    return out


def n_copies(s: "Strategy") -> int:
    """Training copies per epoch of a strategy (1: the epochs as they are)."""
    return (len(AUG_GAINS) if s.augment else 1) * (1 + len(AUG_SHIFTS_S) if s.shift else 1)


def augment(x: np.ndarray, s: "Strategy", near: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Every training copy of the filtered epochs for ``s``: the shifted views (``s.shift``; ``near``
    from :func:`neighbours`) at every gain of :data:`AUG_GAINS` (``s.augment``), copy-major (copy
    c is rows c*n..)."""
    x = np.asarray(x, np.float32)
    if s.shift and near is None:
        raise SleepEdgeError(f"strategy {s.name}: shifted copies need each epoch's neighbours")
    views = [x] + ([shifted(x, near, t) for t in AUG_SHIFTS_S] if s.shift else [])
    gains = AUG_GAINS if s.augment else (1.0,)
    return np.concatenate([v * np.float32(g) for g in gains for v in views])


def aug_rows(idx: np.ndarray, n: int, copies: int) -> np.ndarray:
    """Rows of :func:`augment`'s output that are copies of rows ``idx`` of an n-row input."""
    return np.concatenate([np.asarray(idx) + c * n for c in range(copies)])


def _weights(y: np.ndarray, on: bool) -> np.ndarray | None:
    from host_tools.data import datasets as D

    return D.sample_weights(y, D.class_weights(y)) if on else None


def recompute_bn(model: Any, x: np.ndarray, batch: int = 256) -> None:
    """AdaBN (Li et al. 2018): every BatchNorm's moving mean and variance set to the statistics of
    its input over ``x``, layer by layer from the input up. One global statistic of the user's
    data, frozen into the weights: the device's input path does not change."""
    k = _keras()
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        below = k.Model(model.inputs[0], layer.input)
        h = np.concatenate([np.asarray(below(x[i:i + batch, :, None], training=False))
                            for i in range(0, len(x), batch)]).astype(np.float64)
        h = h.reshape(-1, h.shape[-1])
        gamma, beta, _, _ = layer.get_weights()
        layer.set_weights([gamma, beta, h.mean(0).astype(np.float32), h.var(0).astype(np.float32)])


def fit_source(base_source: str | Path, s: SourceStrategy, x: np.ndarray, y: np.ndarray, *, seed: int = 0,
               batch: int = 32, cache: dict | None = None) -> Any:
    """A fresh copy of the base source CNN with ``s``'s tail trained on (x, y)."""
    from host_tools.learn import models as M

    model = M.load_keras_model(base_source)
    if s.train == "none":
        return model
    trunk, tail = split_model(model, SOURCE_TAILS[s.train])
    _set_trainable(model, tail, s.train)
    feats = trunk_features(trunk, x) if cache is None else cache[("source", s.train)]
    _fit(tail, feats, y, _weights(y, True), loss="sparse_categorical_crossentropy", lr=s.lr,
         passes=s.passes, batch=batch, seed=seed)
    return model


def fit_edge(base_edge: str | Path, s: Strategy, x: np.ndarray, y: np.ndarray, *, teacher_probs: np.ndarray | None = None,
             seed: int = 0, batch: int = 32, feats: np.ndarray | None = None,
             near: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
    """A fresh copy of the base float edge CNN adapted with ``s`` on (x, y); ``x`` is filtered uV
    (clipped here). ``feats``: precomputed trunk features of ``x``'s training copies for this
    strategy's cut; ``near``: :func:`neighbours` of ``x``'s rows (for shifted copies)."""
    from host_tools.learn import models as M
    from host_tools.learn.distil import distillation_loss, soften

    model = M.load_keras_model(base_edge)
    if s.adabn:
        recompute_bn(model, edge_input(x))
        feats = None  # the trunk changed: features of the base model do not apply
    trunk, tail = split_model(model, EDGE_TAILS[s.train])
    _set_trainable(model, tail, s.train)
    copies = n_copies(s)
    if copies > 1:
        y = np.tile(y, copies)
        teacher_probs = None if teacher_probs is None else np.tile(teacher_probs, (copies, 1))
    if feats is None:
        feats = trunk_features(trunk, edge_input(augment(x, s, near) if copies > 1 else x))
    w = _weights(y, s.class_weights)
    if s.distil:
        if teacher_probs is None:
            raise SleepEdgeError(f"strategy {s.name}: distillation needs the teacher's probabilities")
        targets = np.concatenate([np.eye(C.N_CLASSES, dtype=np.float32)[y], soften(teacher_probs, s.temperature)], 1)
        loss = distillation_loss(s.temperature, s.alpha)
    else:
        targets, loss = y, "sparse_categorical_crossentropy"
    start = tail.get_weights()
    runs = []
    for k in range(s.soup):
        tail.set_weights(start)
        _fit(tail, feats, targets, w, loss=loss, lr=s.lr, passes=s.passes, batch=batch, seed=seed + k)
        runs.append(tail.get_weights())
    # A "model soup": every run starts from the same pretrained weights and moves only the
    # tail, so the runs stay in one basin and their mean is one model of the same shape.
    tail.set_weights([np.mean(ws, axis=0) for ws in zip(*runs)])
    return model


# --- leave-one-person-out -------------------------------------------------------------------------

def score(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, kappa, macro-F1 (classes present), per-stage F1 (``learn.train.score``)."""
    from host_tools.learn.train import score as _score

    s = _score(y, pred)
    return {k: s[k] for k in ("n", "acc", "kappa", "mf1", "per_class_f1", "confusion")}


def objective(s: dict[str, Any]) -> float:
    """What the choice maximises: the mean of accuracy and Cohen's kappa (accuracy alone
    rewards calling everything N2 on N2-heavy data)."""
    return 0.5 * (s["acc"] + s["kappa"])


def lopo_report(rec: Recordings, pred: np.ndarray) -> dict[str, Any]:
    """Pooled scores over every held-out epoch plus one entry per person."""
    pooled = score(rec.y, pred)
    per = {}
    for p in rec.people:
        m = rec.person == p
        s = score(rec.y[m], pred[m])
        per[p] = {k: s[k] for k in ("n", "acc", "kappa", "mf1")}
    accs = [v["acc"] for v in per.values()]
    return {**pooled, "objective": objective(pooled), "per_person": per,
            "acc_person_mean": float(np.mean(accs)), "acc_person_sd": float(np.std(accs))}


@dataclass
class LopoResult:
    """Everything the choice saw: per-candidate pooled LOPO scores and the held-out
    probabilities of the winners (for the int8 and hybrid evaluation)."""

    source: dict[str, dict[str, Any]]
    edge: dict[str, dict[str, Any]]
    source_choice: SourceStrategy
    edge_choice: Strategy
    source_probs: np.ndarray  #: held-out probabilities of the chosen source strategy
    edge_probs: dict[str, np.ndarray]  #: held-out float probabilities per edge candidate
    base_source: dict[str, Any]
    base_edge_float: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "edge": self.edge, "source_choice": asdict(self.source_choice),
                "edge_choice": asdict(self.edge_choice), "base_source": self.base_source,
                "base_edge_float": self.base_edge_float}


def person_folds(rec: Recordings) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Leave-one-person-out folds: (held-out person, training rows, held-out rows)."""
    return [(p, np.flatnonzero(rec.person != p), np.flatnonzero(rec.person == p)) for p in rec.people]


def choose(
    base: str | Path, rec: Recordings, *, strategies: list[Strategy] | None = None,
    source_strategies: list[SourceStrategy] | None = None, seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> LopoResult:
    """Leave-one-person-out over every candidate; returns the scores and the winners.

    Parameters
    ----------
    base : path
        Shipped models folder (``edge/float.keras``, ``source/model.keras``).
    rec : Recordings
        The user's labelled epochs.
    strategies, source_strategies : list
        Candidates (default :func:`default_strategies`, :func:`default_source_strategies`).
    seed : int
    progress : callable
        Called with a short label after each fold fit (drives the progress bar).
    """
    from host_tools.learn import models as M

    base = Path(base)
    strategies = strategies or default_strategies()
    source_strategies = source_strategies or default_source_strategies()
    tick = progress or (lambda _label: None)
    src_path, edge_path = base / "source" / M.MODEL_FILE, base / "edge" / "float.keras"
    for p in (src_path, edge_path):
        if not p.is_file():
            raise SleepEdgeError(f"{p}: missing: --base must be a models folder (edge/float.keras, source/)")
    folds = person_folds(rec)

    # Source: frozen-trunk features once, then each candidate's tail per fold.
    src = M.load_keras_model(src_path)
    base_src_p = M.predict_proba(src, rec.x)
    src_cache = {}
    for s in source_strategies:
        if s.train != "none" and ("source", s.train) not in src_cache:
            trunk, _ = split_model(src, SOURCE_TAILS[s.train])
            src_cache[("source", s.train)] = trunk_features(trunk, rec.x)
    src_scores, src_probs = {}, {}
    for s in source_strategies:
        held = base_src_p.copy()
        if s.train != "none":
            for person, tr, te in folds:
                model = fit_source(src_path, s, rec.x[tr], rec.y[tr], seed=seed,
                                   cache={k: v[tr] for k, v in src_cache.items()})
                _, tail = split_model(model, SOURCE_TAILS[s.train])
                held[te] = _predict(tail, src_cache[("source", s.train)][te])
                tick(f"source {s.name} without {person}")
        src_probs[s.name] = held
        src_scores[s.name] = lopo_report(rec, held.argmax(1))
    src_choice = max(source_strategies, key=lambda s: src_scores[s.name]["objective"])

    # Teacher probabilities on each fold's training epochs (for distillation): the chosen
    # source strategy refitted without the held-out person.
    teacher: dict[str, np.ndarray] = {}
    if any(s.distil for s in strategies):
        for person, tr, _ in folds:
            if src_choice.train == "none":
                teacher[person] = base_src_p[tr]
            else:
                model = fit_source(src_path, src_choice, rec.x[tr], rec.y[tr], seed=seed,
                                   cache={k: v[tr] for k, v in src_cache.items()})
                teacher[person] = M.predict_proba(model, rec.x[tr])

    # Edge: trunk features per cut once (the trunk is frozen, identical in every fold).
    edge0 = M.load_keras_model(edge_path)
    xe = edge_input(rec.x)
    base_edge_p = M.predict_proba(edge0, xe)
    near = neighbours(rec.recording, rec.epoch_index)
    feats = {}
    for s in strategies:
        key = (EDGE_TAILS[s.train], s.augment, s.shift)
        if key not in feats and not s.adabn:
            feats[key] = trunk_features(split_model(edge0, key[0])[0],
                                        edge_input(augment(rec.x, s, near)) if n_copies(s) > 1 else xe)
    n = len(rec.y)
    edge_scores, edge_probs = {}, {}
    for s in strategies:
        held = np.zeros((len(rec.y), C.N_CLASSES), np.float32)
        f = feats.get((EDGE_TAILS[s.train], s.augment, s.shift))
        for person, tr, te in folds:
            # Shifted copies of a training epoch borrow only from its own recording, never
            # from the held-out person's.
            f_tr = None if f is None else f[aug_rows(tr, n, n_copies(s))]
            model = fit_edge(edge_path, s, rec.x[tr], rec.y[tr], teacher_probs=teacher.get(person),
                             seed=seed, feats=f_tr,
                             near=neighbours(rec.recording[tr], rec.epoch_index[tr]) if s.shift else None)
            if s.adabn or n_copies(s) > 1:
                held[te] = _predict(model, xe[te][..., None])
            else:
                _, tail = split_model(model, EDGE_TAILS[s.train])
                held[te] = _predict(tail, f[te])
            tick(f"edge {s.name} without {person}")
        edge_probs[s.name] = held
        edge_scores[s.name] = {**lopo_report(rec, held.argmax(1)), "strategy": asdict(s)}
    edge_choice = max(strategies, key=lambda s: edge_scores[s.name]["objective"])
    return LopoResult(source=src_scores, edge=edge_scores, source_choice=src_choice, edge_choice=edge_choice,
                      source_probs=src_probs[src_choice.name], edge_probs=edge_probs,
                      base_source=lopo_report(rec, base_src_p.argmax(1)),
                      base_edge_float=lopo_report(rec, base_edge_p.argmax(1)))


def fit_final(base: str | Path, rec: Recordings, choice: LopoResult, *, seed: int = 0,
              idx: np.ndarray | None = None) -> tuple[Any, Any]:
    """(edge float, source) models adapted with the chosen strategies on ``idx`` (default: all
    epochs): the deliverable, or one fold of the int8 evaluation."""
    from host_tools.learn import models as M

    base = Path(base)
    idx = np.arange(len(rec.y)) if idx is None else idx
    x, y = rec.x[idx], rec.y[idx]
    src = fit_source(base / "source" / M.MODEL_FILE, choice.source_choice, x, y, seed=seed)
    teacher = M.predict_proba(src, x) if choice.edge_choice.distil else None
    edge = fit_edge(base / "edge" / "float.keras", choice.edge_choice, x, y, teacher_probs=teacher, seed=seed,
                    near=neighbours(rec.recording[idx], rec.epoch_index[idx]))
    for m in (edge, src):
        for layer in m.layers:
            layer.trainable = True
    return edge, src

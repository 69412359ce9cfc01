"""Input pipelines: subject splits, arrays from the prepare cache, class weights, tf.data.

The prepare cache (docs/architecture.md) holds one ``.npz`` per night; everything here works on
in-memory numpy arrays and turns them into ``tf.data`` pipelines that any ``tf.distribute``
strategy can shard (auto-shard policy DATA: in-memory data has no files to shard by).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError


def split_subjects(index: dict[str, Any], test_fold: int = 0, val: bool = True) -> dict[str, list[str]]:
    """Subject-wise split from the cache's folds: test = fold ``test_fold``, validation = the next
    fold (when ``val``), train = the rest. Both nights of a subject are always on the same side.

    Raises
    ------
    SleepEdgeError
        If the fold index is out of range or a side would be empty.
    """
    folds = [sorted(map(str, f)) for f in index.get("folds", [])]
    n = len(folds)
    if n < (3 if val else 2):
        raise SleepEdgeError(f"cache index has {n} subject folds; need at least {3 if val else 2}")
    if not 0 <= test_fold < n:
        raise SleepEdgeError(f"--val-fold {test_fold} is out of range: the cache has folds 0..{n - 1}")
    val_fold = (test_fold + 1) % n if val else None
    train = sorted(s for i, f in enumerate(folds) if i not in (test_fold, val_fold) for s in f)
    out = {"train": train, "val": folds[val_fold] if val_fold is not None else [], "test": folds[test_fold]}
    if not train or not out["test"]:
        raise SleepEdgeError(f"fold {test_fold}: empty train or test side ({out})")
    return out


def night_ids_for(index: dict[str, Any], subjects: list[str]) -> list[str]:
    """Night ids of the given subjects, in (subject, night) order."""
    wanted = set(subjects)
    nights = [n for n in index["nights"] if str(n["subject"]) in wanted]
    return [str(n["id"]) for n in sorted(nights, key=lambda n: (str(n["subject"]), int(n["night"])))]


def load_index_checked(cache: str | Path) -> dict[str, Any]:
    """``prepare.load_index`` with a clear error when the folder is not a prepare cache."""
    from host_tools.data import prepare

    cache = Path(cache)
    if not (cache / "index.json").is_file():
        raise SleepEdgeError(f"{cache}: not a prepare cache (no index.json); run `sleepedge data prepare` first")
    return prepare.load_index(cache)


def load_subjects(
    cache: str | Path, index: dict[str, Any], subjects: list[str], *, filtered: bool = True,
    clip_uv: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epochs of the given subjects: ``(X float32 (N, 3000), y int64, subjects, night_ids)``.

    ``filtered=False`` gives the raw device samples in uV (filter ablation); ``clip_uv`` clips to
    +-clip_uv as the edge model's int8 input saturates.
    """
    from host_tools.data import prepare

    ids = night_ids_for(index, subjects)
    if not ids:
        raise SleepEdgeError(f"{cache}: no nights for subjects {subjects}")
    x, y, subj, nights = prepare.load_epochs(cache, ids, filtered=filtered)
    return prepare_inputs(x, clip_uv=clip_uv), np.asarray(y, dtype=np.int64), np.asarray(subj), np.asarray(nights)


def prepare_inputs(x: np.ndarray, clip_uv: float | None = None) -> np.ndarray:
    """float32 ``(N, 3000)`` epochs, clipped to +-clip_uv when given (edge model input)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != C.EPOCH_SAMPLES:
        raise SleepEdgeError(f"epochs must have shape (N, {C.EPOCH_SAMPLES}), got {x.shape}")
    if clip_uv is not None:
        x = np.clip(x, -clip_uv, clip_uv)
    return x


def subsample_wake(y: np.ndarray, keep: float, seed: int = 0) -> np.ndarray:
    """Indices that keep a random fraction ``keep`` of W epochs and all other epochs (sorted)."""
    if not 0.0 < keep <= 1.0:
        raise SleepEdgeError(f"--wake-keep must be in (0, 1], got {keep}")
    idx = np.arange(len(y))
    if keep >= 1.0:
        return idx
    rng = np.random.default_rng(seed)
    wake = idx[y == 0]
    kept = rng.choice(wake, size=int(round(keep * len(wake))), replace=False)
    return np.sort(np.concatenate([idx[y != 0], kept]))


def class_weights(y: np.ndarray, n_classes: int = C.N_CLASSES, max_weight: float = 10.0) -> np.ndarray:
    """Balanced class weights ``n / (n_present * count_c)``, capped; absent classes get 0.

    The cap keeps a handful of epochs of a rare class (e.g. N1 in one night) from dominating.
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes, dtype=np.float64)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return np.minimum(w, max_weight).astype(np.float32)


def sample_weights(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-epoch weights from per-class weights."""
    return np.asarray(weights, dtype=np.float32)[np.asarray(y, dtype=np.int64)]


def make_dataset(
    x: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None, *, batch: int,
    shuffle: bool = True, repeat: bool = True, seed: int = 0, augment: Any = None,
) -> Any:
    """tf.data pipeline over in-memory arrays: ``(x (B, 3000, 1), targets[, weights])`` batches.

    Shuffles *indices* (one full permutation per pass, no copy of the epochs into a shuffle
    buffer) and gathers each batch, then prefetches. Auto-shard policy DATA, because an in-memory
    dataset has no files for the FILE policy: every worker builds the same pipeline (same seed)
    and keeps its own share of each global batch.

    Parameters
    ----------
    x : ndarray (N, 3000) float32
    targets : ndarray (N,) int labels or (N, C) float targets
    weights : ndarray (N,) float32 or None
    batch : int
        Global batch size (per-replica batch x replicas in sync).
    shuffle, repeat : bool
        Training pipelines shuffle and repeat forever (passes are counted in steps).
    seed : int
        Shuffle seed, identical on every worker.
    augment : host_tools.data.augment.AugmentConfig or None
        Training-time augmentation of every batch (:func:`host_tools.data.augment.augment_batch`,
        its own generator seeded by ``seed``); ``None`` (default) = off.
    """
    import tensorflow as tf

    n = len(x)
    if n == 0:
        raise SleepEdgeError("no epochs to train on")
    xt = tf.constant(np.asarray(x, dtype=np.float32)[..., None])
    tt = tf.constant(targets)
    wt = None if weights is None else tf.constant(np.asarray(weights, dtype=np.float32))
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch, drop_remainder=repeat)

    def gather(i: Any) -> Any:
        if wt is None:
            return tf.gather(xt, i), tf.gather(tt, i)
        return tf.gather(xt, i), tf.gather(tt, i), tf.gather(wt, i)

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(_augmenter(augment, seed))  # sequential: one generator, reproducible order
    ds = ds.prefetch(tf.data.AUTOTUNE)
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)


def _augmenter(config: Any, seed: int) -> Any:
    """A tf.data map function that runs :func:`augment_batch` (numpy) on each batch."""
    import tensorflow as tf

    from host_tools.data.augment import augment_batch

    rng = np.random.default_rng([int(seed), 0xA06])

    def np_aug(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xa, ta = augment_batch(x, t, rng=rng, config=config)
        return xa, ta

    def fn(x: Any, t: Any, *w: Any) -> Any:
        xa, ta = tf.numpy_function(np_aug, [x, t], [x.dtype, t.dtype], stateful=True)
        xa.set_shape(x.shape)
        ta.set_shape(t.shape)
        return (xa, ta, *w)

    return fn

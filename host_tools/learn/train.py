"""``sleepedge train source``: train the source (cloud) CNN on the prepare cache.

Subject-held-out split (test fold never seen, next fold for early stopping), balanced class
weights as per-epoch sample weights, tf.data input, any ``tf.distribute`` strategy
(default, mirrored, multi-worker from TF_CONFIG). A "pass" is ``steps_per_pass`` batches, so the
time budget is fixed whatever the corpus size (docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

STRATEGIES = ("default", "mirrored", "multiworker")


# --- metrics -------------------------------------------------------------------------------

def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1 (over the classes present in truth or prediction), Cohen's kappa,
    per-class F1 and the confusion matrix (rows = truth, columns = prediction, STAGES order)."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if len(y_true) == 0:
        raise SleepEdgeError("cannot score an empty set of epochs")
    labels = list(range(C.N_CLASSES))
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    kappa = cohen_kappa_score(y_true, y_pred) if len(present) > 1 else 0.0
    return {
        "n": int(len(y_true)),
        "acc": float(accuracy_score(y_true, y_pred)),
        "mf1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "kappa": float(0.0 if np.isnan(kappa) else kappa),
        "per_class_f1": {s: float(f) for s, f in zip(C.STAGES, per_class)},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


# --- distribution ----------------------------------------------------------------------------

def make_strategy(name: str) -> Any:
    """``default`` (no distribution), ``mirrored`` (all local devices; CPU:0 here) or
    ``multiworker`` (MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG).

    Must be called before any other TensorFlow op in the process for ``multiworker``.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy(None if gpus else ["/cpu:0"])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise SleepEdgeError("--strategy multiworker needs the TF_CONFIG environment variable (docs/training.md)")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise SleepEdgeError(f"TF_CONFIG is not valid JSON ({exc})") from exc
        opts = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=opts)
    raise SleepEdgeError(f"--strategy {name!r}: choose one of {', '.join(STRATEGIES)}")


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a non-chief task (worker 0 is chief when the
    cluster has no explicit chief)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    cfg = json.loads(raw)
    task = cfg.get("task", {})
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in cfg.get("cluster", {})


def save_from_worker(save: Callable[[Path], Any], out: Path) -> None:
    """Chief writes to ``out``; other workers write to a throw-away folder (the same calls on every
    worker, as multi-worker saving expects) which is then removed."""
    if is_chief():
        save(out)
        return
    tmp = Path(tempfile.mkdtemp(prefix="sleepedge_worker_"))
    try:
        save(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- early stopping on a subject-held-out set ----------------------------------------------

def best_on_validation(x_val: np.ndarray, y_val: np.ndarray, patience: int, verbose: int = 1) -> Any:
    """A Keras callback: after every pass score macro-F1 on the validation epochs, keep the best
    weights, stop after ``patience`` passes without improvement and restore the best at the end.

    Macro-F1 rather than validation loss: it weighs N1 as much as N2, as the class weights do.
    Every worker computes the same score from the same weights, so they stop together.
    """
    from host_tools.learn.models import keras, predict_proba

    class BestOnValidation(keras().callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = -np.inf
            self.best_pass = -1
            self.best_weights: list[np.ndarray] | None = None
            self.scores: list[float] = []
            self.wait = 0

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            pred = predict_proba(self.model, x_val).argmax(1)
            s = score(y_val, pred)
            self.scores.append(s["mf1"])
            if logs is not None:
                logs["val_mf1"] = s["mf1"]
                logs["val_kappa"] = s["kappa"]
            if verbose:
                print(f"  pass {epoch + 1}: val macro-F1 {s['mf1']:.3f} kappa {s['kappa']:.3f}")
            if s["mf1"] > self.best:
                self.best, self.best_pass, self.wait = s["mf1"], epoch, 0
                self.best_weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.model.stop_training = True

        def on_train_end(self, logs: dict | None = None) -> None:
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return BestOnValidation()


def cap_validation(x: np.ndarray, y: np.ndarray, max_n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of at most ``max_n`` validation epochs (keeps each pass cheap)."""
    if max_n <= 0 or len(y) <= max_n:
        return x, y
    idx = np.sort(np.random.default_rng(seed).choice(len(y), size=max_n, replace=False))
    return x[idx], y[idx]


def fit_model(
    model: Any, strategy: Any, x: np.ndarray, targets: np.ndarray, weights: np.ndarray, *,
    loss: Any, lr: float, batch: int, passes: int, steps_per_pass: int, seed: int,
    callbacks: list[Any], verbose: int, augment: Any = None,
) -> dict[str, list[float]]:
    """Compile (inside the strategy scope) and fit on a repeated, shuffled tf.data pipeline.

    ``batch`` is per replica; the global batch is ``batch * strategy.num_replicas_in_sync``.
    """
    from host_tools.data.datasets import make_dataset
    from host_tools.learn.models import keras

    global_batch = batch * strategy.num_replicas_in_sync
    ds = make_dataset(x, targets, weights, batch=global_batch, seed=seed, augment=augment)
    with strategy.scope():
        model.compile(optimizer=keras().optimizers.Adam(lr), loss=loss, weighted_metrics=["accuracy"])
    hist = model.fit(ds, epochs=passes, steps_per_epoch=steps_per_pass, callbacks=callbacks,
                     verbose=verbose)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def corpus_name(cache: Path, index: dict[str, Any]) -> str:
    """Which corpus a figure comes from: the cache folder, its domain(s) and night count.

    The cache does not record whether its PSGs were generated; the pipeline, which knows, says
    "synthetic" in the model card. Nothing here is a Sleep-EDF figure unless the cache was
    prepared from the real Sleep-EDF PSG files.
    """
    domains = sorted({str(n.get("domain", "?")) for n in index["nights"]})
    from host_tools import shown_path

    return f"{shown_path(cache)} ({len(index['nights'])} nights, domain {'+'.join(domains)})"


def augment_config(on: bool, clip_uv: float | None = None) -> Any:
    """The default augmentation (``host_tools.data.augment``) when ``on``, else None."""
    if not on:
        return None
    from host_tools.data.augment import AugmentConfig

    return AugmentConfig(clip_uv=clip_uv)


# --- the command -----------------------------------------------------------------------------

def train_source(
    cache: str | Path, out: str | Path, *, passes: int = 10, steps_per_pass: int = 40,
    batch: int = 256, strategy: str = "default", filtered: bool = True, val_fold: int = 0,
    patience: int = 3, wake_keep: float = 1.0, lr: float = 1e-3, val_max: int = 3000,
    seed: int = 0, verbose: int = 1, init: str | Path | None = None, augment: bool = False,
) -> dict[str, Any]:
    """Train the source CNN and write ``out/model.keras``, ``model.json``, ``metrics.json``,
    ``history.json``.

    Parameters
    ----------
    cache : path
        Prepare cache (SC domain).
    out : path
        Output folder (created).
    passes, steps_per_pass, batch : int
        At most ``passes`` passes of ``steps_per_pass`` batches of ``batch`` epochs per replica.
    strategy : {"default", "mirrored", "multiworker"}
    filtered : bool
        Train on the Butterworth-filtered epochs (True) or the raw device samples (ablation).
    val_fold : int
        Subject fold held out for the test; fold ``val_fold + 1`` drives early stopping.
    patience : int
        Passes without a better validation macro-F1 before stopping.
    wake_keep : float
        Fraction of W epochs kept for training.
    lr : float
        Adam learning rate.
    val_max : int
        At most this many validation epochs scored per pass.
    seed : int
    verbose : int
        Keras progress bars (1) or silence (0).
    init : path, optional
        A saved source model to continue training from (same architecture) instead of random
        weights: more passes without starting over.
    augment : bool
        Training-time augmentation (:mod:`host_tools.data.augment`, default ranges); off by
        default until a retrain decides.

    Returns
    -------
    dict
        The metrics also written to ``out/metrics.json``.
    """
    for name, val in (("passes", passes), ("steps_per_pass", steps_per_pass), ("batch", batch)):
        if int(val) < 1:
            raise SleepEdgeError(f"--{name.replace('_', '-')} must be >= 1, got {val}")
    # The strategy first: multi-worker collectives must be configured before other TF ops.
    strat = make_strategy(strategy)
    from host_tools.data import datasets as D
    from host_tools.learn.models import build_source_cnn, keras, predict_proba, save_model

    cache, out = Path(cache), Path(out)
    index = D.load_index_checked(cache)
    split = D.split_subjects(index, val_fold, val=True)
    t0 = time.time()
    x_tr, y_tr, _, _ = D.load_subjects(cache, index, split["train"], filtered=filtered)
    keep = D.subsample_wake(y_tr, wake_keep, seed)
    x_tr, y_tr = x_tr[keep], y_tr[keep]
    x_va, y_va, _, _ = D.load_subjects(cache, index, split["val"], filtered=filtered)
    x_va, y_va = cap_validation(x_va, y_va, val_max, seed)
    cw = D.class_weights(y_tr)
    if verbose:
        print(f"source CNN: {len(y_tr)} training epochs ({len(split['train'])} subjects), "
              f"{len(y_va)} validation epochs, strategy {strategy} x{strat.num_replicas_in_sync}, "
              f"class weights {np.round(cw, 2).tolist()}")
    keras().utils.set_random_seed(seed)
    with strat.scope():
        model = build_source_cnn(seed=seed)
        if init is not None:
            from host_tools.learn.models import load_keras_model

            start = load_keras_model(init)  # a folder or a .keras file
            if [w.shape for w in start.get_weights()] != [w.shape for w in model.get_weights()]:
                raise SleepEdgeError(f"{init}: not a source CNN of this architecture (--init)")
            model.set_weights(start.get_weights())
    if verbose:
        print(f"source CNN: {model.count_params():,} parameters")
    stopper = best_on_validation(x_va, y_va, patience, verbose)
    t1 = time.time()
    history = fit_model(model, strat, x_tr, y_tr, D.sample_weights(y_tr, cw),
                        loss="sparse_categorical_crossentropy", lr=lr, batch=batch, passes=passes,
                        steps_per_pass=steps_per_pass, seed=seed, callbacks=[stopper], verbose=verbose,
                        augment=augment_config(augment))
    train_s = time.time() - t1
    history["val_mf1"] = stopper.scores

    x_te, y_te, _, _ = D.load_subjects(cache, index, split["test"], filtered=filtered)
    metrics = {
        "model": "source_cnn",
        "corpus": corpus_name(cache, index),
        "cache": str(cache),
        "filtered": filtered,
        "split": split,
        "strategy": strategy,
        "replicas": int(strat.num_replicas_in_sync),
        "passes_run": len(stopper.scores),
        "best_pass": int(stopper.best_pass) + 1,
        "steps_per_pass": steps_per_pass,
        "batch": batch,
        "lr": lr,
        "wake_keep": wake_keep,
        "augment": bool(augment),
        "class_weights": cw.tolist(),
        "n_train": int(len(y_tr)),
        "train_seconds": round(train_s, 1),
        "train_epochs_per_s": round(len(stopper.scores) * steps_per_pass * batch
                                    * strat.num_replicas_in_sync / max(train_s, 1e-9), 1),
        "val": score(y_va, predict_proba(model, x_va).argmax(1)),
        "test": score(y_te, predict_proba(model, x_te).argmax(1)),
        "total_seconds": round(time.time() - t0, 1),
    }

    def save(folder: Path) -> None:
        save_model(model, folder, {"filtered": filtered, "split": split, "corpus": metrics["corpus"],
                                   "input_scale": "Rescaling(1/100) inside the model",
                                   "test": {k: metrics["test"][k] for k in ("acc", "mf1", "kappa")}})
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (folder / "history.json").write_text(json.dumps(history, indent=2) + "\n")

    save_from_worker(save, out)
    if verbose:
        t = metrics["test"]
        print(f"source CNN on held-out subjects {split['test']}: acc {t['acc']:.3f} macro-F1 "
              f"{t['mf1']:.3f} kappa {t['kappa']:.3f} ({metrics['corpus']})")
    return metrics


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", required=True, type=Path, help="prepare cache (sleepedge data prepare)")
    parser.add_argument("--out", required=True, type=Path, help="output folder, e.g. models/source")
    parser.add_argument("--passes", "--epochs", dest="passes", type=int, default=10,
                        help="maximum passes (each --steps-per-pass batches; default 10)")
    parser.add_argument("--steps-per-pass", type=int, default=40, help="batches per pass (default 40)")
    parser.add_argument("--batch", type=int, default=256, help="batch size per replica (default 256)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy; multiworker reads TF_CONFIG")
    parser.add_argument("--no-filter", action="store_true", help="train on raw samples (filter ablation)")
    parser.add_argument("--val-fold", type=int, default=0,
                        help="subject fold held out for test; the next fold is validation (default 0)")
    parser.add_argument("--patience", type=int, default=3, help="early-stopping patience in passes")
    parser.add_argument("--wake-keep", type=float, default=1.0, help="fraction of W epochs kept (default 1)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--val-max", type=int, default=3000,
                        help="validation epochs scored per pass, a fixed random subset (default 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=Path, default=None,
                        help="continue from this saved source model instead of random weights")
    parser.add_argument("--augment", action="store_true",
                        help="training-time augmentation: scale, jitter, shift, spectral tilt, "
                             "mixing (docs/training.md); off by default")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    train_source(args.cache, args.out, passes=args.passes, steps_per_pass=args.steps_per_pass,
                 batch=args.batch, strategy=args.strategy, filtered=not args.no_filter,
                 val_fold=args.val_fold, patience=args.patience, wake_keep=args.wake_keep,
                 lr=args.lr, val_max=args.val_max, seed=args.seed, verbose=0 if args.quiet else 1,
                 init=args.init, augment=args.augment)
    return 0

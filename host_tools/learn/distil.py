"""``sleepedge transfer distil``: train the edge CNN from the source model's soft labels.

Loss per epoch (Hinton et al. 2015): ``alpha * CE(hard, student) + (1 - alpha) * T^2 *
KL(teacher_T || student_T)``, where ``p_T = softmax(log p / T)``. The same edge architecture is
also trained alone (``alpha = 1``: hard labels only) on the same data, passes and seed, and both
are scored on the teacher's held-out test subjects.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

_EPS = 1e-7


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row-wise: the teacher's distribution at temperature ``T``."""
    if temperature <= 0:
        raise SleepEdgeError(f"--temperature must be > 0, got {temperature}")
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def distillation_loss(temperature: float, alpha: float) -> Callable[[Any, Any], Any]:
    """Keras loss on targets ``[one-hot hard (5) | teacher soft at T (5)]`` and softmax outputs.

    The student's logits are recovered as ``log p`` (softmax is shift-invariant, so
    ``softmax(log p / T)`` is the student's distribution at temperature T). The ``T^2`` factor
    keeps the soft term's gradients on the same scale as the hard term's.
    """
    if not 0.0 <= alpha <= 1.0:
        raise SleepEdgeError(f"--alpha must be in [0, 1], got {alpha}")
    import tensorflow as tf

    t = float(temperature)

    def loss(y_true: Any, y_pred: Any) -> Any:
        hard, soft = y_true[:, :C.N_CLASSES], y_true[:, C.N_CLASSES:]
        logp = tf.math.log(tf.clip_by_value(y_pred, _EPS, 1.0))
        ce = -tf.reduce_sum(hard * logp, axis=-1)
        if alpha >= 1.0:
            return ce
        log_student_t = tf.nn.log_softmax(logp / t, axis=-1)
        kl = tf.reduce_sum(soft * (tf.math.log(tf.clip_by_value(soft, _EPS, 1.0)) - log_student_t), axis=-1)
        return alpha * ce + (1.0 - alpha) * (t * t) * kl

    return loss


def distil(
    teacher: str | Path, cache: str | Path, out: str | Path, *, temperature: float = 4.0,
    alpha: float = 0.3, passes: int = 20, steps_per_pass: int | None = None, batch: int = 256,
    patience: int = 4, lr: float = 2e-3, val_max: int = 3000, strategy: str = "default",
    seed: int = 0, verbose: int = 1, augment: bool = False, randomized_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Distil the teacher into the edge CNN and compare with the edge CNN trained alone.

    Parameters
    ----------
    teacher : path
        Source model folder (``model.keras`` + ``model.json``); its recorded split is reused, so
        its test subjects stay unseen here too.
    cache : path
        The prepare cache the teacher was trained on.
    out : path
        Writes ``model.keras``/``model.json`` (distilled edge model, input to compress),
        ``alone/`` (edge model trained alone) and ``distil.json``.
    temperature, alpha : float
        Softening temperature and the weight of the hard-label term.
    passes, steps_per_pass, batch : int
        Training budget, identical for both arms; ``steps_per_pass`` defaults to one sweep.
    patience : int
        Early stopping on validation macro-F1 (restores the best pass).
    lr : float
        Adam learning rate.
    val_max : int
        At most this many validation epochs scored per pass.
    strategy : str
        tf.distribute strategy name (see ``train.make_strategy``).
    seed : int
    verbose : int
    augment : bool
        Training-time augmentation of the student's batches (:mod:`host_tools.data.augment`,
        re-clipped to the int8 input range; hard and teacher targets mixed with the epochs); off
        by default until a retrain decides.
    randomized_cache : path or None
        A second cache of the same subjects recorded through randomized montages, gains and
        acquisition paths (``synth --randomize``). Its training-subject epochs join the student's
        training set with their hard labels as targets (the teacher, trained on clean recordings,
        is not asked about them); its validation epochs join the validation set, so early stopping
        weighs both worlds.

    Returns
    -------
    dict
        The comparison written to ``out/distil.json``.
    """
    from host_tools.learn.train import make_strategy

    strat = make_strategy(strategy)
    from host_tools.data import datasets as D
    from host_tools.learn import models as M
    from host_tools.learn.train import (augment_config, best_on_validation, cap_validation, corpus_name, fit_model,
                                        save_from_worker, score)

    if passes < 1 or batch < 1 or (steps_per_pass is not None and steps_per_pass < 1):
        raise SleepEdgeError("--passes, --batch and --steps-per-pass must be >= 1")
    teacher, cache, out = Path(teacher), Path(cache), Path(out)
    meta = M.load_metadata(teacher)
    teacher_model = M.load_keras_model(teacher)
    index = D.load_index_checked(cache)
    split = meta.get("split") or D.split_subjects(index, 0, val=True)
    known = {str(n["subject"]) for n in index["nights"]}
    missing = sorted((set(split["train"]) | set(split["test"])) - known)
    if missing:
        raise SleepEdgeError(f"{cache}: subjects {missing} of the teacher's split ({teacher / M.META_FILE}) "
                             "are not in this cache; distil on the cache the teacher was trained on")
    filtered = bool(meta.get("filtered", True))
    clip = C.EDGE_INPUT_CLIP_UV
    t0 = time.time()
    x_tr, y_tr, _, _ = D.load_subjects(cache, index, split["train"], filtered=filtered)
    # The teacher sees what the cloud sees (unclipped); the student sees the device's clipped input.
    teacher_p = M.predict_proba(teacher_model, x_tr)
    x_tr = D.prepare_inputs(x_tr, clip_uv=clip)
    val_subj = split.get("val") or split["test"]
    x_va, y_va, _, _ = D.load_subjects(cache, index, val_subj, filtered=filtered, clip_uv=clip)
    x_va, y_va = cap_validation(x_va, y_va, val_max, seed)
    x_te_raw, y_te, _, _ = D.load_subjects(cache, index, split["test"], filtered=filtered)
    x_te = D.prepare_inputs(x_te_raw, clip_uv=clip)

    soft = soften(teacher_p, temperature)
    if randomized_cache is not None:
        x_tr, y_tr, soft, x_va, y_va = _add_randomized(Path(randomized_cache), split, filtered, clip, val_max, seed,
                                                       (x_tr, y_tr, soft, x_va, y_va))
    cw = D.class_weights(y_tr)
    w = D.sample_weights(y_tr, cw)
    hard = np.eye(C.N_CLASSES, dtype=np.float32)[y_tr]
    targets = np.concatenate([hard, soft], axis=1)
    steps = steps_per_pass or max(1, math.ceil(len(y_tr) / batch))
    results: dict[str, Any] = {}
    trained: dict[str, Any] = {}
    for arm, a in (("distilled", alpha), ("alone", 1.0)):
        if verbose:
            print(f"edge CNN, {arm} (alpha {a}, T {temperature}): {len(y_tr)} epochs, "
                  f"{passes} passes x {steps} steps x {batch}")
        M.keras().utils.set_random_seed(seed)
        with strat.scope():
            model = M.build_edge_cnn(seed=seed)
        stopper = best_on_validation(x_va, y_va, patience, verbose)
        t1 = time.time()
        fit_model(model, strat, x_tr, targets, w, loss=distillation_loss(temperature, a), lr=lr,
                  batch=batch, passes=passes, steps_per_pass=steps, seed=seed, callbacks=[stopper],
                  verbose=verbose, augment=augment_config(augment, clip))
        results[arm] = {**score(y_te, M.predict_proba(model, x_te).argmax(1)),
                        "passes_run": len(stopper.scores), "best_pass": stopper.best_pass + 1,
                        "val_mf1": stopper.scores, "train_seconds": round(time.time() - t1, 1)}
        trained[arm] = model

    teacher_score = score(y_te, M.predict_proba(teacher_model, x_te_raw).argmax(1))
    report = {
        "corpus": corpus_name(cache, index),
        "split": split,
        "teacher": {"path": str(teacher), "sha256": M.sha256_file(teacher / M.MODEL_FILE),
                    **{k: teacher_score[k] for k in ("acc", "mf1", "kappa")}},
        "temperature": temperature,
        "alpha": alpha,
        "passes": passes,
        "steps_per_pass": steps,
        "batch": batch,
        "input_clip_uv": clip,
        "filtered": filtered,
        "augment": bool(augment),
        "randomized_corpus": None if randomized_cache is None else str(randomized_cache),
        "edge": M.edge_budget(trained["distilled"]),
        "distilled": results["distilled"],
        "alone": results["alone"],
        "distillation_gain_mf1": results["distilled"]["mf1"] - results["alone"]["mf1"],
        "total_seconds": round(time.time() - t0, 1),
    }
    edge_meta = {"filtered": filtered, "split": split, "corpus": report["corpus"],
                 "input_clip_uv": clip, "edge": report["edge"]}

    def save(folder: Path) -> None:
        M.save_model(trained["distilled"], folder,
                     {**edge_meta, "trained": "distilled", "test": _short(results["distilled"])})
        M.save_model(trained["alone"], folder / "alone",
                     {**edge_meta, "trained": "alone", "test": _short(results["alone"])})
        (folder / "distil.json").write_text(json.dumps(report, indent=2) + "\n")

    save_from_worker(save, out)
    if verbose:
        d, a = results["distilled"], results["alone"]
        print(f"edge CNN on held-out subjects: distilled macro-F1 {d['mf1']:.3f} kappa {d['kappa']:.3f} | "
              f"alone macro-F1 {a['mf1']:.3f} kappa {a['kappa']:.3f} | teacher macro-F1 "
              f"{teacher_score['mf1']:.3f} ({report['corpus']})")
    return report


def _add_randomized(
    cache: Path, split: dict[str, list[str]], filtered: bool, clip: float, val_max: int, seed: int,
    sets: tuple[np.ndarray, ...],
) -> tuple[np.ndarray, ...]:
    """Training and validation sets extended with the randomized corpus's epochs of the same
    subjects; their soft targets are their one-hot labels."""
    from host_tools.data import datasets as D
    from host_tools.learn.train import cap_validation

    x_tr, y_tr, soft, x_va, y_va = sets
    index = D.load_index_checked(cache)
    xr, yr, _, _ = D.load_subjects(cache, index, split["train"], filtered=filtered, clip_uv=clip)
    xv, yv, _, _ = D.load_subjects(cache, index, split.get("val") or split["test"], filtered=filtered, clip_uv=clip)
    xv, yv = cap_validation(xv, yv, val_max, seed + 1)
    onehot = np.eye(C.N_CLASSES, dtype=np.float32)[yr]
    return (np.concatenate([x_tr, xr]), np.concatenate([y_tr, yr]), np.concatenate([soft, onehot]),
            np.concatenate([x_va, xv]), np.concatenate([y_va, yv]))


def _short(s: dict[str, Any]) -> dict[str, float]:
    return {k: s[k] for k in ("acc", "mf1", "kappa")}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, type=Path, help="source model folder (models/source)")
    parser.add_argument("--cache", required=True, type=Path, help="the prepare cache the teacher was trained on")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the edge model")
    parser.add_argument("--temperature", type=float, default=4.0, help="softening temperature T (default 4)")
    parser.add_argument("--alpha", type=float, default=0.3, help="weight of the hard-label loss (default 0.3)")
    parser.add_argument("--passes", type=int, default=20, help="maximum passes (default 20)")
    parser.add_argument("--steps-per-pass", type=int, default=None, help="batches per pass (default: one sweep)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--val-max", type=int, default=3000, help="validation epochs scored per pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true", help="training-time augmentation (off by default)")
    parser.add_argument("--randomized-cache", type=Path, default=None, metavar="DIR",
                        help="a prepare cache of the same subjects from `synth --randomize`: its epochs join "
                             "the training and validation sets with their hard labels")
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    distil(args.teacher, args.cache, args.out, temperature=args.temperature, alpha=args.alpha,
           passes=args.passes, steps_per_pass=args.steps_per_pass, batch=args.batch,
           patience=args.patience, lr=args.lr, val_max=args.val_max, seed=args.seed, verbose=0 if args.quiet else 1,
           augment=args.augment, randomized_cache=args.randomized_cache)
    return 0

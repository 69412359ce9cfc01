"""``sleepedge transfer finetune``: adapt the source model to the target (ST) domain with k nights.

For each k: fine-tune (lower convs frozen) on k nights of target training subjects, train the
same architecture from scratch on the same nights with the same budget, and compare both with the
source model without adaptation, all scored on held-out target subjects. Writes the
data-efficiency curve as JSON and PNG.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from host_tools.errors import SleepEdgeError


def order_nights(index: dict[str, Any], subjects: list[str], seed: int) -> list[str]:
    """Target training nights in the order k takes them: subjects shuffled by ``seed``, then the
    first night of every subject before any second night (k = 2 spans two people)."""
    rng = np.random.default_rng(seed)
    subj = list(subjects)
    rng.shuffle(subj)
    by_subject = {s: sorted((n for n in index["nights"] if str(n["subject"]) == s),
                            key=lambda n: int(n["night"])) for s in subj}
    order: list[str] = []
    depth = max((len(v) for v in by_subject.values()), default=0)
    for i in range(depth):
        order += [str(by_subject[s][i]["id"]) for s in subj if i < len(by_subject[s])]
    return order


def freeze_lower(model: Any, n_frozen_conv: int) -> list[str]:
    """Freeze the first ``n_frozen_conv`` Conv1D layers; returns the names frozen."""
    from host_tools.learn.models import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras().layers.Conv1D)]
    if not 0 <= n_frozen_conv <= len(convs):
        raise SleepEdgeError(f"--frozen {n_frozen_conv}: the model has {len(convs)} conv layers")
    for layer in convs[:n_frozen_conv]:
        layer.trainable = False
    return [layer.name for layer in convs[:n_frozen_conv]]


def parse_ks(text: str) -> tuple[int, ...]:
    """``"1,2,4,8"`` -> (1, 2, 4, 8), with a clear error for anything else."""
    try:
        ks = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise SleepEdgeError(f"--k {text!r}: expected comma-separated night counts like 1,2,4,8") from exc
    if not ks or min(ks) < 1:
        raise SleepEdgeError(f"--k {text!r}: night counts must be >= 1")
    return ks


def finetune_curve(
    source: str | Path, cache: str | Path, out: str | Path, *, ks: tuple[int, ...] = (1, 2, 4, 8),
    steps: int = 60, batch: int = 64, lr: float = 3e-4, scratch_lr: float = 1e-3,
    n_frozen_conv: int = 6, test_fold: int = 0, seed: int = 0, verbose: int = 1,
) -> dict[str, Any]:
    """The data-efficiency curve: no adaptation vs fine-tuning vs from scratch, for each k.

    Parameters
    ----------
    source : path
        Source model folder (``model.keras``).
    cache : path
        Target-domain prepare cache (ST).
    out : path
        Writes ``transfer.json`` and ``transfer.png``.
    ks : tuple of int
        Numbers of target training nights. A k above the nights available is skipped (recorded).
    steps, batch : int
        Training budget per arm and k (``steps`` batches of ``batch``), the same for both arms.
    lr, scratch_lr : float
        Adam learning rates for fine-tuning and for training from scratch.
    n_frozen_conv : int
        Lower conv layers kept frozen when fine-tuning.
    test_fold : int
        Target subject fold held out for scoring.
    seed : int
    verbose : int

    Returns
    -------
    dict
        The curve written to ``out/transfer.json``.
    """
    import tensorflow as tf

    from host_tools.data import datasets as D
    from host_tools.learn import models as M
    from host_tools.learn.train import corpus_name, fit_model, score

    if steps < 1 or batch < 1:
        raise SleepEdgeError("--steps and --batch must be >= 1")
    source, cache, out = Path(source), Path(cache), Path(out)
    meta = M.load_metadata(source)
    filtered = bool(meta.get("filtered", True))
    index = D.load_index_checked(cache)
    split = D.split_subjects(index, test_fold, val=False)
    pool = order_nights(index, split["train"], seed)
    x_te, y_te, _, _ = D.load_subjects(cache, index, split["test"], filtered=filtered)
    strat = tf.distribute.get_strategy()
    t0 = time.time()
    base = M.load_keras_model(source)
    none = score(y_te, M.predict_proba(base, x_te).argmax(1))
    report: dict[str, Any] = {
        "corpus": corpus_name(cache, index), "source": str(source),
        "test_subjects": split["test"], "train_pool_nights": pool, "ks": list(ks),
        "steps": steps, "batch": batch, "lr": lr, "scratch_lr": scratch_lr,
        "n_frozen_conv": n_frozen_conv, "filtered": filtered,
        "none": _short(none), "finetune": [], "scratch": [], "skipped": [],
    }
    if verbose:
        print(f"no adaptation on target subjects {split['test']}: macro-F1 {none['mf1']:.3f} "
              f"kappa {none['kappa']:.3f}")
    for k in ks:
        if k > len(pool):
            report["skipped"].append({"k": k, "reason": f"only {len(pool)} target training nights"})
            continue
        nights = pool[:k]
        from host_tools.data import prepare

        x, y, _, _ = prepare.load_epochs(cache, nights, filtered=filtered)
        x, y = D.prepare_inputs(x), np.asarray(y, dtype=np.int64)
        w = D.sample_weights(y, D.class_weights(y))
        for arm in ("finetune", "scratch"):
            M.keras().utils.set_random_seed(seed + k)
            if arm == "finetune":
                model = M.load_keras_model(source)
                frozen = freeze_lower(model, n_frozen_conv)
                arm_lr = lr
            else:
                model = M.build_source_cnn(seed=seed + k)
                frozen, arm_lr = [], scratch_lr
            t1 = time.time()
            fit_model(model, strat, x, y, w, loss="sparse_categorical_crossentropy", lr=arm_lr,
                      batch=batch, passes=1, steps_per_pass=steps, seed=seed + k, callbacks=[],
                      verbose=verbose)
            s = score(y_te, M.predict_proba(model, x_te).argmax(1))
            report[arm].append({"k": k, "nights": nights, "n_train": int(len(y)),
                                "frozen": frozen, "seconds": round(time.time() - t1, 1), **_short(s)})
            if verbose:
                print(f"k={k} {arm}: macro-F1 {s['mf1']:.3f} kappa {s['kappa']:.3f}")
    report["total_seconds"] = round(time.time() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "transfer.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_curve(report, out / "transfer.png")
    return report


def _short(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s[k] for k in ("acc", "mf1", "kappa", "per_class_f1", "n")}


def plot_curve(report: dict[str, Any], path: Path) -> None:
    """Macro-F1 and kappa against k for the three arms (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric, label in ((axes[0], "mf1", "macro-F1"), (axes[1], "kappa", "Cohen's kappa")):
        for arm, style in (("finetune", "o-"), ("scratch", "s--")):
            pts = report[arm]
            ax.plot([p["k"] for p in pts], [p[metric] for p in pts], style, label=arm)
        ax.axhline(report["none"][metric], color="grey", ls=":", label="no adaptation")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("target training nights k")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Transfer to the target domain — {report['corpus']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, type=Path, help="source model folder (models/source)")
    parser.add_argument("--cache", required=True, type=Path, help="target-domain (ST) prepare cache")
    parser.add_argument("--k", default="1,2,4,8", help="target training night counts (default 1,2,4,8)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (transfer.json, transfer.png)")
    parser.add_argument("--steps", type=int, default=60, help="training batches per arm and k (default 60)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4, help="fine-tuning learning rate")
    parser.add_argument("--frozen", type=int, default=6, help="lower conv layers frozen (default 6 of 10)")
    parser.add_argument("--test-fold", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    finetune_curve(args.source, args.cache, args.out, ks=parse_ks(args.k), steps=args.steps,
                   batch=args.batch, lr=args.lr, n_frozen_conv=args.frozen, test_fold=args.test_fold,
                   seed=args.seed, verbose=0 if args.quiet else 1)
    return 0

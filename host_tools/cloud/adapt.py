"""The models half of ``sleepedge adapt``: the shipped models -> models for a target device or
cohort, from a few labelled recordings of it.

``learn.adapt`` chooses how to adapt by leave-one-person-out CV and trains the float models;
this module scores the chosen edge strategy int8 on the device's path (TFLite Micro) in the same
folds, decides whether pruning hurts, fits the escalation threshold and the cloud model's context
head, and writes a folder with the layout of ``models/`` that every tool takes::

    OUT/edge/   model.tflite, model_data.{c,h}, model_plan.{c,h}, export.json (threshold),
                float.keras, reference_vectors.npz
    OUT/source/ model.keras + model.json (the adapted source CNN, the cloud encoder)
    OUT/cloud/  head.keras + model.json (context head over the adapted edge model's outputs)
    OUT/MODEL_CARD.md, OUT/metrics.json

It sits in the cloud stage because its last step, the context head, is a cloud model (and it
uses learn/ and deploy/, which come before). ``sleepedge adapt`` (``host_tools/adapt.py``) is
its command line; the benchmark (``bench real``) calls :func:`adapt` for the held-out labels.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

#: Pruning is kept when the pooled LOPO int8 objective ((acc + kappa) / 2) loses at most this much.
PRUNE_TOLERANCE: float = 0.005
PRUNE_SPARSITY: float = 0.5
#: Escalation budget for the threshold, less 10 % headroom (as ``make train`` does).
ESCALATION_BUDGET: float = 0.18


# --- int8 on the device's path -------------------------------------------------------------------

def _fresh(model: Any) -> Any:
    """A clean copy of a tf_keras model (the trunk/tail views used in training leave extra graph
    nodes that the pruning and conversion tools do not expect)."""
    from host_tools.learn import models as M

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.keras"
        model.save(path)
        return M.load_keras_model(path)


def to_int8(model: Any, x_train: np.ndarray, seed: int = 0) -> bytes:
    """Full-int8 flatbuffer of a float edge model, calibrated on clipped training epochs."""
    from host_tools.learn import compress

    tflite = compress.convert_int8(model, compress.representative_epochs(x_train, seed=seed))
    compress.check_ops(tflite, "adapted edge model")
    return tflite


def tflm_raw(tflite: bytes, x_filt: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Raw int8 outputs (n, 5) in TFLite Micro, with the output (scale, zero point)."""
    from host_tools.deploy.predict import TflmModel

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite)
        m = TflmModel.load(path)
        return m.run_int8(m.quantize(np.asarray(x_filt, np.float32))), m.output_scale, m.output_zero_point


def prune_edge(model: Any, x: np.ndarray, y: np.ndarray, *, passes: int, seed: int) -> Any:
    """Magnitude pruning to :data:`PRUNE_SPARSITY` while fine-tuning, BatchNorm statistics kept."""
    from host_tools.learn import compress

    m = _fresh(model)
    for layer in m.layers:
        layer.trainable = type(layer).__name__ != "BatchNormalization"
    return compress.prune(m, x, y, sparsity=PRUNE_SPARSITY, epochs=passes, batch_size=32, seed=seed)


# --- cloud head ----------------------------------------------------------------------------------

def _histories(raw: np.ndarray, recs: np.ndarray, epoch_index: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    from host_tools.cloud.model import history_windows

    hp = np.zeros((len(raw), length, C.N_CLASSES), np.int8)
    hm = np.zeros((len(raw), length), bool)
    for r in dict.fromkeys(recs.tolist()):
        rows = np.flatnonzero(recs == r)
        hp[rows], hm[rows] = history_windows(raw[rows], epoch_index[rows], length)
    return hp, hm


def fit_head(base_cloud: Path, source: Any, x: np.ndarray, y: np.ndarray, raw: np.ndarray, recs: np.ndarray,
             epoch_index: np.ndarray, out_q: tuple[float, int], *, passes: int, seed: int) -> tuple[Any, int]:
    """The shipped context head fine-tuned on the adapted source's embeddings and the adapted
    edge model's int8 outputs; returns (head, history length)."""
    from host_tools.cloud import model as CM
    from host_tools.data import datasets as D
    from host_tools.learn import models as M

    meta = M.load_metadata(base_cloud)
    length = int(meta.get("history_length", C.CLOUD_HISTORY_EPOCHS))
    emb, _ = CM.encode(CM.encoder_with_embedding(source), x)
    hp, hm = _histories(raw, recs, epoch_index, length)
    feats = CM.history_features(hp, hm, *out_q)
    k = M.keras()
    k.utils.set_random_seed(seed)
    head = M.load_keras_model(base_cloud / CM.HEAD_FILE) if (base_cloud / CM.HEAD_FILE).is_file() \
        else CM.build_head(emb.shape[1], length, seed=seed)
    head.compile(optimizer=k.optimizers.Adam(5e-4), loss="sparse_categorical_crossentropy")
    head.fit([emb, feats], y, sample_weight=D.sample_weights(y, D.class_weights(y)), epochs=passes,
             batch_size=32, shuffle=True, verbose=0)
    return head, length


def head_probs(head: Any, length: int, source: Any, x: np.ndarray, raw: np.ndarray, recs: np.ndarray,
               epoch_index: np.ndarray, out_q: tuple[float, int]) -> np.ndarray:
    """The cloud's answer for every epoch, with the history the proxy would send."""
    from host_tools.cloud import model as CM

    emb, _ = CM.encode(CM.encoder_with_embedding(source), x)
    hp, hm = _histories(raw, recs, epoch_index, length)
    return np.asarray(head.predict([emb, CM.history_features(hp, hm, *out_q)], batch_size=256, verbose=0), np.float32)


# --- the int8 / hybrid leave-one-person-out ------------------------------------------------------

def lopo_int8(base: Path, rec: Any, choice: Any, *, budget: float, seed: int, prune: bool,
              tick: Callable[[str], None]) -> dict[str, Any]:
    """For the chosen strategies, per held-out person: the float and int8 (TFLM) edge model,
    the pruned int8 one, and the cloud head; pooled and per-person scores, hybrid curve."""
    from host_tools.deploy.predict import decide
    from host_tools.learn import adapt as A
    from host_tools.learn.compress import dequantize

    n = len(rec.y)
    arms = ["int8"] + (["int8_pruned"] if prune else [])
    raw = {a: np.zeros((n, C.N_CLASSES), np.int8) for a in arms}
    flt = np.zeros((n, C.N_CLASSES), np.float32)
    cloud = np.zeros((n, C.N_CLASSES), np.float32)
    q_out: tuple[float, int] = (1.0 / 256, -128)
    for person, tr, te in A.person_folds(rec):
        edge, src = A.fit_final(base, rec, choice, seed=seed, idx=tr)
        edge = _fresh(edge)
        flt[te] = A.predict_edge(edge, rec.x[te])
        tfl = to_int8(edge, rec.x[tr], seed)
        raw_tr, *q = tflm_raw(tfl, rec.x[tr])
        raw["int8"][te], *_ = tflm_raw(tfl, rec.x[te])
        q_out = (float(q[0]), int(q[1]))
        if prune:
            pruned = prune_edge(edge, A.edge_input(rec.x[tr]), rec.y[tr], passes=max(1, int(round(8 * budget))), seed=seed)
            raw["int8_pruned"][te], *_ = tflm_raw(to_int8(pruned, rec.x[tr], seed), rec.x[te])
        head, length = fit_head(base / "cloud", src, rec.x[tr], rec.y[tr], raw_tr, rec.recording[tr],
                                rec.epoch_index[tr], q_out, passes=max(1, int(round(20 * budget))), seed=seed)
        cloud[te] = head_probs(head, length, src, rec.x[te], raw["int8"][te], rec.recording[te],
                               rec.epoch_index[te], q_out)
        tick(f"int8 + cloud without {person}")
    out: dict[str, Any] = {"float": A.lopo_report(rec, flt.argmax(1))}
    labels = {a: decide(raw[a], *q_out)[0] for a in arms}
    for a in arms:
        out[a] = A.lopo_report(rec, labels[a])
    out["cloud"] = A.lopo_report(rec, cloud.argmax(1))
    out["_raw"], out["_labels"], out["_cloud"], out["_q"] = raw, labels, cloud, q_out
    out["_probs"] = {a: dequantize(raw[a], *q_out) for a in arms}
    return out


def hybrid_figures(y: np.ndarray, edge_probs: np.ndarray, cloud_probs: np.ndarray, threshold: float | None
                   ) -> dict[str, Any]:
    """Hybrid scores at ``threshold`` (None: the recommended point within the budget)."""
    from host_tools import evaluation as E

    curve = E.escalation_curve(y, edge_probs, cloud_probs)
    point = E.recommend_threshold(curve, ESCALATION_BUDGET) if threshold is None else None
    t = point.threshold if point else float(threshold)
    labels, esc = E.hybrid(edge_probs, cloud_probs, t)
    s = E.scores(y, labels)
    return {"threshold": t, "escalated": float(esc.mean()), "acc": s["acc"], "kappa": s["kappa"],
            "mf1": s.get("mf1", s.get("macro_f1")),
            "curve": [{"threshold": p.threshold, "escalated": p.escalated_fraction, "acc": p.acc,
                       "kappa": p.kappa} for p in curve]}


def baseline(base: Path, rec: Any) -> dict[str, Any]:
    """The shipped models on the user's data (nothing trained: every epoch is 'held out')."""
    from host_tools.cloud.model import load_cloud, night_cloud_probs
    from host_tools.deploy.predict import TflmModel, decide
    from host_tools.learn import adapt as A

    tflm = TflmModel.load(base / "edge" / "model.tflite")
    raw = tflm.run_int8(tflm.quantize(rec.x))
    probs = tflm.dequantize(raw)
    cloud = load_cloud(base / "cloud") if (base / "cloud").is_dir() else None
    export = json.loads((base / "edge" / "export.json").read_text()) if (base / "edge" / "export.json").is_file() else {}
    out = {"int8": A.lopo_report(rec, decide(raw, tflm.output_scale, tflm.output_zero_point)[0])}
    if cloud is not None:
        cp = night_cloud_probs(cloud, rec.x, raw, rec.recording, rec.epoch_index)
        out["cloud"] = A.lopo_report(rec, cp.argmax(1))
        hy = hybrid_figures(rec.y, probs, cp, float(export.get("threshold", C.DEFAULT_CONFIDENCE_THRESHOLD)))
        out["hybrid"] = {k: v for k, v in hy.items() if k != "curve"}
    return out


# --- writing OUT ---------------------------------------------------------------------------------

def _short(s: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "acc", "kappa", "mf1", "per_class_f1", "per_person", "acc_person_mean", "acc_person_sd",
            "confusion", "objective")
    return {k: s[k] for k in keep if k in s}


def write_models(base: Path, out: Path, rec: Any, choice: Any, *, pruned: bool, threshold: float, budget: float,
                 seed: int, header: Path) -> dict[str, Any]:
    """Train the chosen strategies on every epoch and write edge/, source/, cloud/."""
    from host_tools.cloud import model as CM
    from host_tools.deploy.export import export
    from host_tools.learn import adapt as A
    from host_tools.learn import models as M

    edge, src = A.fit_final(base, rec, choice, seed=seed)
    edge = _fresh(edge)
    deliver = prune_edge(edge, A.edge_input(rec.x), rec.y, passes=max(1, int(round(8 * budget))), seed=seed) \
        if pruned else edge
    tflite = to_int8(deliver, rec.x, seed)
    for sub in ("edge", "source", "cloud"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    deliver.save(out / "edge" / "float.keras")
    tmp = out / "edge" / "model.tflite"
    tmp.write_bytes(tflite)
    exp = export(tmp, out / "edge", threshold=threshold, name="edge", header=header, seed=seed)

    src_meta = {**M.load_metadata(base / "source"),
                "adapted": {"from": str(base / "source"), "strategy": choice.source_choice.name,
                            "recordings": sorted(set(rec.recording.tolist())), "people": rec.people}}
    M.save_model(_fresh(src), out / "source", src_meta)

    raw, scale, zp = tflm_raw(tflite, rec.x)
    head, length = fit_head(base / "cloud", src, rec.x, rec.y, raw, rec.recording, rec.epoch_index, (scale, zp),
                            passes=max(1, int(round(20 * budget))), seed=seed)
    head.save(out / "cloud" / CM.HEAD_FILE)
    sha = M.sha256_file(out / "edge" / "model.tflite")
    cloud_meta = {
        "name": "cloud_context", "what": f"adapted source CNN embedding + the adapted edge model's last {length} outputs",
        "encoder": "../source", "encoder_sha256": M.sha256_file(out / "source" / M.MODEL_FILE),
        "embedding_layer": CM.EMBEDDING_LAYER, "history_length": length,
        "edge_model": {"sha256": sha, "hash_u32": f"{M.model_hash_u32(sha):08x}", "output_scale": scale,
                       "output_zero_point": zp},
        "params": M.count_params(head), "adapted_from": str(base / "cloud"),
        "sha256": M.sha256_file(out / "cloud" / CM.HEAD_FILE),
    }
    (out / "cloud" / CM.META_FILE).write_text(json.dumps(cloud_meta, indent=2) + "\n")
    return {"export": {k: exp[k] for k in ("sha256", "bytes", "threshold", "ops", "c_export")},
            "sparsity": _sparsity(deliver), "edge_budget": M.edge_budget(deliver)}


def _sparsity(model: Any) -> float:
    from host_tools.learn.compress import sparsity_report

    return round(float(sparsity_report(model)["overall_kernel_sparsity"]), 4)


# --- the API -------------------------------------------------------------------------------------

@dataclass
class HeldOut:
    """Every scored epoch's leave-one-person-out stage from the delivered int8 edge model (TFLite
    Micro; the model adapted on the other people): the labels ``metrics["after"]["int8"]`` scores."""

    person: np.ndarray  #: person of each epoch
    recording: np.ndarray  #: recording id of each epoch
    epoch_index: np.ndarray  #: epoch number in its recording
    stage: np.ndarray  #: int64 index into ``constants.STAGES``

    def of_recording(self, recording: str) -> tuple[np.ndarray, np.ndarray]:
        """``(epoch_index, stage)`` of one recording's scored epochs, in epoch order."""
        rows = np.flatnonzero(self.recording == recording)
        rows = rows[np.argsort(self.epoch_index[rows], kind="stable")]
        return self.epoch_index[rows], self.stage[rows]


@dataclass
class Adapted:
    """What :func:`adapt` returns: ``out/metrics.json``'s content and the held-out labels."""

    metrics: dict[str, Any]
    held_out: HeldOut


def adapt(
    base: str | Path, recordings: str | Path, out: str | Path, *, channel: str = "Fpz-Cz",
    subject_map: str | Path | None = None, budget: float = 1.0, prune: bool = True, seed: int = 0,
    progress: bool = True, strategies: list[Any] | None = None, source_strategies: list[Any] | None = None,
) -> Adapted:
    """Adapt the shipped models to a few labelled recordings; write ``out`` like ``models/``.

    Parameters
    ----------
    base : path
        Shipped models folder (``edge/float.keras``, ``edge/model.tflite``, ``source/``, ``cloud/``).
    recordings : path
        Folder of PSG/hypnogram pairs (``*-PSG.edf`` + ``*-Hypnogram.edf``).
    out : path
        Output models folder (created; existing files are replaced).
    channel : str
        EEG channel, or comma-separated alternatives tried in order per recording.
    subject_map : path, optional
        Recording id -> person (JSON object or ``recording,person`` CSV); default: one person per recording.
    budget : float
        Scales every training pass count (1.0: the full search; 0.1-0.2: a quick check).
    prune : bool
        Consider pruning (kept only when the leave-one-person-out int8 accuracy does not drop).
    seed : int
    progress : bool
        Rich progress bar and messages on the console.
    strategies, source_strategies : list, optional
        Candidate lists (default ``learn.adapt.default_strategies(budget)`` and ``..._source_strategies``).

    Returns
    -------
    Adapted
        ``metrics``: the content of ``out/metrics.json`` (the choices, leave-one-person-out scores
        of every candidate, before/after (int8 in TFLite Micro, cloud, hybrid), per person,
        timings); ``held_out``: the delivered int8 edge model's held-out stage of every epoch.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from host_tools.learn import adapt as A

    if budget <= 0:
        raise SleepEdgeError(f"--budget must be > 0, got {budget}")
    base, out = Path(base), Path(out)
    for need in (base / "edge" / "float.keras", base / "edge" / "model.tflite", base / "source" / "model.keras"):
        if not need.is_file():
            raise SleepEdgeError(f"{need}: missing: --base must be a models folder like models/")
    console = Console(stderr=True, quiet=not progress)
    t0, c0 = time.time(), time.process_time()
    rec = A.load_recordings(recordings, channel, A.read_subject_map(subject_map),
                            warn=lambda m: console.print(f"[yellow]warning:[/] {m}", highlight=False))
    strategies = strategies or A.default_strategies(budget)
    source_strategies = source_strategies or A.default_source_strategies(budget)
    folds = len(rec.people)
    total = folds * (len(strategies) + sum(s.train != "none" for s in source_strategies) + 1) + 1
    console.print(f"{len(rec.y)} scored epochs, {folds} people, stages {rec.stage_counts()}", highlight=False)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("adapt", total=total)

        def tick(label: str) -> None:
            bar.update(task, advance=1, description=label)

        before = baseline(base, rec)
        choice = A.choose(base, rec, strategies=strategies, source_strategies=source_strategies, seed=seed,
                          progress=tick)
        t_choose = time.time() - t0
        ev = lopo_int8(base, rec, choice, budget=budget, seed=seed, prune=prune, tick=tick)
        keep_pruned = prune and ev["int8_pruned"]["objective"] >= ev["int8"]["objective"] - PRUNE_TOLERANCE
        arm = "int8_pruned" if keep_pruned else "int8"
        hybrid = hybrid_figures(rec.y, ev["_probs"][arm], ev["_cloud"], None)
        bar.update(task, description="final models on every person")
        with tempfile.TemporaryDirectory() as tmp:
            written = write_models(base, out, rec, choice, pruned=keep_pruned, threshold=max(hybrid["threshold"], 0.05),
                                   budget=budget, seed=seed, header=Path(tmp) / "sleepedge_constants.h")
        bar.update(task, advance=1)
    metrics = _metrics(base, recordings, out, rec, choice, before, ev, arm, keep_pruned, hybrid, written,
                       budget=budget, seed=seed, t_choose=t_choose, wall=time.time() - t0, cpu=time.process_time() - c0)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(model_card(metrics))
    console.print(summary_line(metrics), highlight=False)
    held_out = HeldOut(rec.person, rec.recording, rec.epoch_index, np.asarray(ev["_labels"][arm], np.int64))
    return Adapted(metrics, held_out)


def _metrics(base: Path, recordings: Any, out: Path, rec: Any, choice: Any, before: dict, ev: dict, arm: str,
             keep_pruned: bool, hybrid: dict, written: dict, **extra: Any) -> dict[str, Any]:
    base_metrics = json.loads((base / "metrics.json").read_text()) if (base / "metrics.json").is_file() else {}
    after = {"float": _short(ev["float"]), "int8": _short(ev[arm]), "cloud": _short(ev["cloud"]),
             "hybrid": {k: v for k, v in hybrid.items() if k != "curve"}}
    return {
        "what": "sleepedge adapt: leave-one-person-out figures on the user's recordings",
        "corpus": f"{recordings} ({len(rec.people)} people, {len(rec.y)} scored epochs; channels "
                  f"{sorted(set(rec.channels.values()))})",
        "base": str(base), "out": str(out), "people": rec.people, "recordings": rec.channels,
        "stage_counts": rec.stage_counts(),
        "choice": {"edge": choice.summary()["edge_choice"], "source": choice.summary()["source_choice"],
                   "pruned": keep_pruned, "prune_tolerance": PRUNE_TOLERANCE, "objective": "(acc + kappa) / 2, pooled LOPO",
                   "threshold_rule": f"best LOPO hybrid accuracy with <= {ESCALATION_BUDGET:.0%} escalated"},
        "candidates": {"edge_float": {k: _short(v) for k, v in choice.edge.items()},
                       "source": {k: _short(v) for k, v in choice.source.items()}},
        "before": {k: _short(v) if "per_person" in v else v for k, v in before.items()},
        "after": after,
        "int8_unpruned": _short(ev["int8"]),
        "int8_pruned": _short(ev["int8_pruned"]) if "int8_pruned" in ev else None,
        "hybrid_curve": hybrid["curve"],
        "models": written,
        # The demo regenerates its default night from these (a night of the base corpus).
        "test_subjects": base_metrics.get("test_subjects"), "synth": base_metrics.get("synth"),
        "timing": {"choose_wall_s": round(extra.pop("t_choose"), 1), "wall_s": round(extra.pop("wall"), 1),
                   "cpu_s": round(extra.pop("cpu"), 1), "cpus": os.cpu_count()},
        **extra,
    }


def summary_line(m: dict[str, Any]) -> str:
    b, a = m["before"]["int8"], m["after"]["int8"]
    h = m["after"]["hybrid"]
    return (f"edge int8 (TFLM), leave-one-person-out: acc {b['acc']:.3f} -> {a['acc']:.3f}, kappa "
            f"{b['kappa']:.3f} -> {a['kappa']:.3f} ({m['choice']['edge']['name']}"
            f"{', pruned' if m['choice']['pruned'] else ''}); hybrid acc {h['acc']:.3f} kappa {h['kappa']:.3f} "
            f"at threshold {h['threshold']:.3f} ({h['escalated']:.0%} escalated); {m['timing']['wall_s']:.0f} s")


def model_card(m: dict[str, Any]) -> str:
    """MODEL_CARD.md of an adapted models folder."""
    def row(name: str, s: dict[str, Any]) -> str:
        f1 = s.get("per_class_f1", {})
        return (f"| {name} | {s['acc']:.3f} | {s['kappa']:.3f} | {s['mf1']:.3f} | "
                + " | ".join(f"{f1.get(st, float('nan')):.2f}" for st in C.STAGES) + " |")

    b, a = m["before"], m["after"]
    lines = [
        "# Adapted SleepEdge models", "",
        f"Made by `sleepedge adapt` from `{m['base']}` on **{m['corpus']}**. Every figure below is "
        "leave-one-person-out on these recordings: each person's epochs are scored by models adapted "
        "on the other people only. \"Before\" is the shipped models, unchanged. Int8 figures run the "
        "device's arithmetic (TFLite Micro, the reference the firmware matches bit for bit).", "",
        f"Stage counts: {m['stage_counts']}.", "",
        "## Choices (made by leave-one-person-out, objective (accuracy + kappa) / 2)", "",
        f"- edge CNN: **{m['choice']['edge']['name']}** ({m['choice']['edge']}); "
        f"pruned to {PRUNE_SPARSITY:.0%}: **{m['choice']['pruned']}** "
        f"(kept when the LOPO int8 (accuracy + κ) / 2 drops by at most {PRUNE_TOLERANCE:.3f})",
        f"- source / cloud encoder: **{m['choice']['source']['name']}**",
        f"- escalation threshold: **{a['hybrid']['threshold']:.3f}** ({m['choice']['threshold_rule']})", "",
        "## Before / after", "",
        "| model | acc | κ | macro-F1 | " + " | ".join(f"F1 {s}" for s in C.STAGES) + " |",
        "|---|---|---|---|" + "---|" * len(C.STAGES),
        row("before: edge int8", b["int8"]),
    ]
    if "cloud" in b:
        lines.append(row("before: cloud (context head)", b["cloud"]))
    lines.append(row("after: edge float", a["float"]))
    if m.get("int8_pruned"):
        lines += [row("after: edge int8, not pruned", m["int8_unpruned"]),
                  row(f"after: edge int8, pruned {PRUNE_SPARSITY:.0%}", m["int8_pruned"])]
    lines += [row("after: edge int8 (delivered)", a["int8"]), row("after: cloud (context head)", a["cloud"])]
    if "hybrid" in b:
        hb = b["hybrid"]
        lines.append(f"| before: hybrid @ {hb['threshold']:.2f} ({hb['escalated']:.0%} escalated) | "
                     f"{hb['acc']:.3f} | {hb['kappa']:.3f} | {hb['mf1']:.3f} |" + " |" * len(C.STAGES))
    h = a["hybrid"]
    lines.append(f"| after: hybrid @ {h['threshold']:.2f} ({h['escalated']:.0%} escalated) | {h['acc']:.3f} | "
                 f"{h['kappa']:.3f} | {h['mf1']:.3f} |" + " |" * len(C.STAGES))
    lines += ["", "## Per person (accuracy / κ, held out)", "", "| person | epochs | before int8 | after float | after int8 |",
              "|---|---|---|---|---|"]
    for p in m["people"]:
        bp, fp, ap = b["int8"]["per_person"][p], a["float"]["per_person"][p], a["int8"]["per_person"][p]
        lines.append(f"| {p} | {ap['n']} | {bp['acc']:.3f} / {bp['kappa']:.2f} | {fp['acc']:.3f} / {fp['kappa']:.2f} | "
                     f"{ap['acc']:.3f} / {ap['kappa']:.2f} |")
    lines += ["", f"Per-person accuracy after (int8): mean {a['int8']['acc_person_mean']:.3f}, "
              f"SD {a['int8']['acc_person_sd']:.3f}.", "",
              "## Candidates (edge float, pooled LOPO)", "", "| strategy | acc | κ | macro-F1 |", "|---|---|---|---|"]
    for name, s in m["candidates"]["edge_float"].items():
        lines.append(f"| {name} | {s['acc']:.3f} | {s['kappa']:.3f} | {s['mf1']:.3f} |")
    lines += ["", "| source strategy | acc | κ | macro-F1 |", "|---|---|---|---|"]
    for name, s in m["candidates"]["source"].items():
        lines.append(f"| {name} | {s['acc']:.3f} | {s['kappa']:.3f} | {s['mf1']:.3f} |")
    e = m["models"]
    lines += ["", "## Delivered edge model", "",
              f"{e['export']['bytes']} bytes .tflite (sha256 {e['export']['sha256'][:12]}), kernel sparsity "
              f"{e['sparsity']:.0%}, {e['edge_budget'].get('macs', '?')} MACs; ops {e['export']['ops']}.", "",
              f"Time: {m['timing']['wall_s']:.0f} s wall, {m['timing']['cpu_s']:.0f} s CPU on "
              f"{m['timing']['cpus']} cores (budget {m['budget']}).", "",
              "With this few people the figures have wide error bars; read the per-person spread.", ""]
    return "\n".join(lines)

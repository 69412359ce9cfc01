"""``sleepedge bench accuracy``: how well each model stages the held-out subjects of a corpus.

For the source CNN in float, the cloud model (source CNN + the device's recent outputs, when
``models/cloud`` exists), the edge model in float and in int8 (TFLite Micro, the device's
arithmetic), and the edge+cloud hybrid: accuracy, macro-F1, Cohen's kappa, per-class F1
and confusion matrices; the escalation curve and the recommended threshold
(:func:`host_tools.evaluation.recommend_threshold`); YASA's pretrained staging on the same
recordings as an outside reference; and the effect of the Butterworth filter (the edge
architecture trained briefly with and without it). Every output names its corpus: a cache built
from generated PSGs gives figures for the generator, not for Sleep-EDF.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import REPO_ROOT
from host_tools import constants as C
from host_tools.errors import SleepEdgeError

SHA256SUMS = REPO_ROOT.parent / "shared" / "data" / "sleep-edfx" / "SHA256SUMS.txt"
#: The float edge model kept next to the int8 one (``models/edge/float.keras``).
EDGE_FLOAT_FILE = "float.keras"
#: YASA's stage names (0.8 returns a Hypnogram with WAKE/N1/N2/N3/REM; older ones W/R) -> index.
YASA_TO_INDEX = {"W": 0, "WAKE": 0, "N1": 1, "N2": 2, "N3": 3, "R": 4, "REM": 4}


# --------------------------------------------------------------------------------------------
# corpus and split
# --------------------------------------------------------------------------------------------

def corpus_label(cache: Path, index: dict[str, Any], night_ids: list[str], sums: Path = SHA256SUMS) -> str:
    """Say which corpus figures come from, checked rather than assumed.

    The PSG files behind ``night_ids`` are hashed and looked up in PhysioNet's Sleep-EDF
    SHA256SUMS: only if every one is there is the corpus called Sleep-EDF.
    """
    known: set[str] = set()
    if sums.is_file():
        known = {line.split()[0] for line in sums.read_text().splitlines() if line.strip()}
    by_id = {n["id"]: n for n in index["nights"]}
    psgs = [Path(by_id[i]["psg"]) for i in night_ids if by_id.get(i, {}).get("psg")]
    from host_tools import shown_path

    where = f"cache {shown_path(cache)} ({len(night_ids)} held-out nights)"
    if not psgs or not all(p.is_file() for p in psgs):
        return f"UNVERIFIED corpus, PSG files not found: {where}; treat as synthetic"
    from host_tools.learn.models import sha256_file

    if known and all(sha256_file(p) in known for p in psgs):
        return f"Sleep-EDF Expanded (PSG SHA-256 verified against PhysioNet's list), {where}"
    return f"SYNTHETIC corpus (PSGs not in the Sleep-EDF SHA-256 list; generator figures, not Sleep-EDF), {where}"


def test_subjects_for(models_dir: Path, index: dict[str, Any], override: list[str] | None) -> list[str]:
    """Held-out subjects: explicit, else the source model's recorded test split, else fold 0."""
    from host_tools.data import prepare

    if override:
        return sorted(override)
    meta = models_dir / "source" / "model.json"
    if meta.is_file():
        split = json.loads(meta.read_text()).get("split") or {}
        if split.get("test"):
            return sorted(map(str, split["test"]))
    return sorted(prepare.subject_folds(index)[0][1])


# --------------------------------------------------------------------------------------------
# references: YASA and the filter ablation
# --------------------------------------------------------------------------------------------

def deployed_threshold(edge_dir: Path) -> float | None:
    """The threshold ``sleepedge export`` baked into the firmware header, if recorded."""
    meta = Path(edge_dir) / "export.json"
    if not meta.is_file():
        return None
    try:
        return float(json.loads(meta.read_text())["threshold"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SleepEdgeError(f"{meta}: no readable 'threshold' ({exc})") from exc


def yasa_predict(psg: Path, epoch_index: np.ndarray) -> np.ndarray:
    """YASA's pretrained staging (EEG Fpz-Cz + horizontal EOG) at the cache's epochs."""
    import mne
    import yasa

    raw = mne.io.read_raw_edf(psg, include=["EEG Fpz-Cz", "EOG horizontal"], preload=True, verbose="error")
    if "EEG Fpz-Cz" not in raw.ch_names:
        raise SleepEdgeError(f"{psg}: no 'EEG Fpz-Cz' channel for YASA")
    eog = "EOG horizontal" if "EOG horizontal" in raw.ch_names else None
    import warnings

    with warnings.catch_warnings():
        # YASA's bundled classifier was pickled by an older scikit-learn; it still loads.
        warnings.simplefilter("ignore")
        pred = yasa.SleepStaging(raw, eeg_name="EEG Fpz-Cz", eog_name=eog).predict()
    labels = np.asarray(getattr(pred, "hypno", pred)).astype(str)
    # Artefact / unscored epochs (never produced by the pretrained staging) count as wake.
    idx = np.array([YASA_TO_INDEX.get(s, 0) for s in labels], dtype=np.int64)
    if epoch_index.max(initial=-1) >= len(idx):
        raise SleepEdgeError(f"{psg}: YASA staged {len(idx)} epochs, cache needs epoch {int(epoch_index.max())}")
    return idx[epoch_index]


def quick_train_edge(
    x: np.ndarray, y: np.ndarray, *, passes: int = 4, batch: int = 256, seed: int = 0
) -> Any:
    """The edge architecture trained briefly (class-balanced, clipped input) for the ablation."""
    import tensorflow as tf

    from host_tools.data import datasets
    from host_tools.learn import models

    tf.keras.utils.set_random_seed(seed)
    model = models.build_edge_cnn(seed=seed)
    k = models.keras()
    model.compile(optimizer=k.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    w = datasets.sample_weights(y, datasets.class_weights(y))
    model.fit(datasets.prepare_inputs(x, clip_uv=C.EDGE_INPUT_CLIP_UV), y, sample_weight=w,
              batch_size=batch, epochs=passes, shuffle=True, verbose=0)
    return model


def filter_ablation(cache: Path, train_ids: list[str], test_ids: list[str], *, passes: int, seed: int = 0) -> dict:
    """Same edge CNN, same budget, trained and scored on filtered vs raw (unfiltered) epochs."""
    from host_tools.data import datasets, prepare
    from host_tools import evaluation
    from host_tools.learn import models

    out: dict[str, Any] = {"passes": passes}
    for name, filtered in (("filtered", True), ("unfiltered", False)):
        x_tr, y_tr, _, _ = prepare.load_epochs(cache, train_ids, filtered=filtered)
        x_te, y_te, _, _ = prepare.load_epochs(cache, test_ids, filtered=filtered)
        t0 = time.time()
        m = quick_train_edge(x_tr, y_tr, passes=passes, seed=seed)
        p = models.predict_proba(m, datasets.prepare_inputs(x_te, clip_uv=C.EDGE_INPUT_CLIP_UV))
        s = evaluation.scores(y_te, p.argmax(1))
        out[name] = {k: s[k] for k in ("acc", "mf1", "kappa", "f1")} | {"train_seconds": round(time.time() - t0, 1)}
    return out


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------

def _summary(s: dict) -> dict:
    return {k: s[k] for k in ("n", "acc", "mf1", "kappa", "f1", "confusion")}


@dataclass
class HeldOut:
    """The held-out epochs of a cache and where they come from."""

    cache: Path
    index: dict[str, Any]
    subjects: list[str]
    night_ids: list[str]
    train_ids: list[str]
    x: np.ndarray  #: filtered epochs, float32 (N, 3000) microvolts
    y: np.ndarray  #: expert class index (N,)
    nights: np.ndarray  #: night id of each epoch (N,)
    corpus: str


@dataclass
class EdgeOutputs:
    """The int8 edge model on the held-out epochs, as the device computes it."""

    raw: np.ndarray  #: int8 outputs (N, 5)
    stages: np.ndarray  #: argmax as the device decides it
    probs: np.ndarray  #: dequantized outputs
    edge_only_stages: np.ndarray  #: the edge model's own argmax (``stages`` unless a context head answers)


def load_held_out(cache: Path, models_dir: Path, test_subjects: list[str] | None) -> HeldOut:
    """The held-out subjects' epochs; errors name the cache when they are missing or empty."""
    from host_tools.data import datasets, prepare

    index = datasets.load_index_checked(cache)
    tests = test_subjects_for(models_dir, index, test_subjects)
    known = {str(n["subject"]) for n in index["nights"]}
    if not set(tests) <= known:
        raise SleepEdgeError(f"{cache}: held-out subjects {sorted(set(tests) - known)} are not in this cache")
    test_ids = datasets.night_ids_for(index, tests)
    train_ids = [str(n["id"]) for n in index["nights"] if str(n["subject"]) not in set(tests)]
    x, y, _subj, nights = prepare.load_epochs(cache, test_ids, filtered=True)
    if len(y) == 0:
        raise SleepEdgeError(f"{cache}: held-out nights hold no epochs")
    return HeldOut(cache, index, tests, test_ids, train_ids, x, y, nights, corpus_label(cache, index, test_ids))


def matching_cloud_model(models_dir: Path) -> Any:
    """``models/cloud`` when its head reads this edge model's outputs, else None: for another
    edge model the service answers from the epoch alone, and so does the benchmark."""
    cloud_dir = models_dir / "cloud"
    if not (cloud_dir / "head.keras").is_file():
        return None
    from host_tools.cloud.model import load_context_model
    from host_tools.learn.models import sha256_file

    cloud = load_context_model(cloud_dir)
    return cloud if cloud.edge.sha256 == sha256_file(models_dir / "edge" / "model.tflite") else None


def score_edge_float(edge_dir: Path, x: np.ndarray) -> np.ndarray | None:
    """Class probabilities of ``edge/float.keras`` on clipped input, or None without it."""
    from host_tools.learn import models

    float_path = edge_dir / EDGE_FLOAT_FILE
    if not float_path.is_file():
        return None
    edge_float = models.load_keras_model(float_path)
    return models.predict_proba(edge_float, np.clip(x, -C.EDGE_INPUT_CLIP_UV, C.EDGE_INPUT_CLIP_UV))


def run_edge_int8(edge_dir: Path, x: np.ndarray, nights: np.ndarray | None = None,
                  epoch_index: np.ndarray | None = None) -> EdgeOutputs:
    """The int8 model in TFLM, decided as the device decides: with a context head in
    ``edge_dir`` (and the epochs' nights and epoch numbers given) what the device reports is the
    head's output over each night's last epochs."""
    from host_tools.deploy.predict import ContextHead, TflmModel, decide, reported_night_outputs
    from host_tools.learn.compress import dequantize

    tflm = TflmModel.load(edge_dir)
    edge_raw = tflm.run_int8(tflm.quantize(x))
    head = ContextHead.find(edge_dir) if nights is not None and epoch_index is not None else None
    raw, scale, zp = reported_night_outputs(tflm, head, edge_raw, nights, epoch_index)
    stages, _conf = decide(raw, scale, zp)
    probs = dequantize(raw, scale, zp)
    edge_only = stages if head is None else decide(edge_raw, tflm.output_scale, tflm.output_zero_point)[0]
    return EdgeOutputs(raw, stages, probs, edge_only)


def score_hybrid(report: dict[str, Any], held: HeldOut, edge: EdgeOutputs, p_cloud: np.ndarray, *,
                 threshold: float | None, max_escalated: float, edge_dir: Path) -> tuple[Any, Any, float, np.ndarray]:
    """Escalation curve, recommended threshold, and the hybrid at the threshold the device uses
    (chosen on validation subjects by the pipeline and baked in at export); the test-set optimum
    is reported beside it. Returns (curve, recommendation, threshold used, hybrid labels)."""
    from host_tools import evaluation

    curve = evaluation.escalation_curve(held.y, edge.probs, p_cloud)
    rec = evaluation.recommend_threshold(curve, max_escalated)
    used = threshold if threshold is not None else deployed_threshold(edge_dir)
    if used is None:
        used = rec.threshold
    labels, esc = evaluation.hybrid(edge.probs, p_cloud, used)
    report["scores"]["hybrid"] = _summary(evaluation.scores(held.y, labels)) | {
        "threshold": float(used), "escalated_fraction": float(esc.mean())}
    report["recommended"] = vars(rec) | {"rule": f"highest hybrid accuracy with <= {max_escalated:.0%} "
                                                  "escalated; ties -> lower threshold"}
    report["escalation_curve"] = [vars(p) for p in curve]
    return curve, rec, float(used), labels


def yasa_labels(held: HeldOut) -> np.ndarray:
    """YASA's pretrained staging of each held-out night, on the same epochs."""
    from host_tools.data import prepare

    by_id = {n["id"]: n for n in held.index["nights"]}
    y_yasa = np.empty_like(held.y)
    for nid in held.night_ids:
        night = prepare.load_night(held.cache, nid)
        y_yasa[held.nights == nid] = yasa_predict(Path(by_id[nid]["psg"]), night["epoch_index"].astype(np.int64))
    return y_yasa


def write_reports(out: Path, report: dict[str, Any], held: HeldOut, edge: EdgeOutputs, p_cloud: np.ndarray,
                  curve: Any, rec: Any, used: float, hybrid_labels: np.ndarray, max_escalated: float) -> None:
    """Confusion matrices, the escalation curve, one night's hypnogram, JSON and Markdown."""
    from host_tools import evaluation, plotting

    note = f"corpus: {held.corpus}"
    for name, s in report["scores"].items():
        plotting.confusion_matrix(out / f"confusion_{name}.png", s["confusion"], title=f"{name} (held-out)", note=note)
    refs = {"edge int8 alone": report["scores"]["edge_int8"]["acc"],
            "cloud alone": report["scores"][report["hybrid_cloud"]]["acc"]}
    plotting.escalation_curve(out / "escalation.png", curve, recommended=rec, references=refs,
                              max_escalated=max_escalated, note=note)
    first = held.night_ids[0]
    sel = held.nights == first
    _, esc_first = evaluation.hybrid(edge.probs[sel], p_cloud[sel], used)
    plotting.hypnogram(out / f"hypnogram_{first}.png",
                       {"truth": held.y[sel], "edge int8": edge.stages[sel], "hybrid": hybrid_labels[sel]},
                       escalated=esc_first, title=f"{first} (held-out)", note=note)
    (out / "escalation.json").write_text(json.dumps(
        {"corpus": held.corpus, "recommended": report["recommended"], "curve": report["escalation_curve"]},
        indent=2) + "\n")
    (out / "bench-accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "README.md").write_text(format_markdown(report))


def bench_accuracy(
    cache: Path, models_dir: Path, out: Path, *, test_subjects: list[str] | None = None,
    max_escalated: float = 0.20, threshold: float | None = None, with_yasa: bool = True,
    ablation_passes: int = 4, seed: int = 0, progress: bool = True,
) -> dict[str, Any]:
    """Score every model on the held-out subjects of ``cache`` and write reports into ``out``.

    Parameters
    ----------
    cache
        Prepared cache (``sleepedge data prepare``).
    models_dir
        Folder with ``source/`` (cloud model) and ``edge/`` (``model.tflite``, optionally
        ``float.keras``).
    threshold
        Escalation threshold the hybrid is scored at; default: the one ``sleepedge export`` baked
        into ``edge/export.json``, else the recommended one on this test set.
    ablation_passes
        Passes of the filter ablation's quick trainings; 0 skips the ablation.

    Returns
    -------
    dict
        What ``out/bench-accuracy.json`` holds.
    """
    from rich.progress import Progress

    from host_tools import evaluation
    from host_tools.data import prepare
    from host_tools.learn import models

    cache, models_dir, out = Path(cache), Path(models_dir), Path(out)
    edge_dir = models_dir / "edge"
    held = load_held_out(cache, models_dir, test_subjects)
    if not (models_dir / "source").is_dir() or not (edge_dir / "model.tflite").is_file():
        raise SleepEdgeError(f"{models_dir}: needs source/ (source CNN) and edge/model.tflite; run `make train`")
    out.mkdir(parents=True, exist_ok=True)
    cloud = matching_cloud_model(models_dir)
    steps = ["source", "edge float", "edge int8"] + (["cloud"] if cloud is not None else []) + ["hybrid"] + \
        (["yasa"] if with_yasa else []) + (["filter ablation"] if ablation_passes > 0 else [])
    report: dict[str, Any] = {"corpus": held.corpus, "cache": str(cache), "models": str(models_dir),
                              "test_subjects": held.subjects, "test_nights": held.night_ids,
                              "n_epochs": int(len(held.y)), "scores": {}}

    def record(name: str, predicted: np.ndarray) -> None:
        report["scores"][name] = _summary(evaluation.scores(held.y, predicted))

    t0 = time.time()
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("bench accuracy", total=len(steps))
        for name in steps:
            bar.update(task, description=f"bench accuracy: {name}")
            if name == "source":
                p_cloud = models.load_cloud_model(models_dir / "source").predict_proba(held.x)
                record("source_float", p_cloud.argmax(1))
            elif name == "edge float":
                p_float = score_edge_float(edge_dir, held.x)
                if p_float is not None:
                    record("edge_float", p_float.argmax(1))
            elif name == "edge int8":
                edge = run_edge_int8(edge_dir, held.x, held.nights, prepare.load_epoch_numbers(cache, held.night_ids))
                record("edge_int8", edge.stages)
                if edge.edge_only_stages is not edge.stages:  # the device's own answer without the head
                    record("edge_int8_no_context", edge.edge_only_stages)
            elif name == "cloud":
                # What the cloud answers an escalation with the night's edge history.
                from host_tools.cloud.model import night_cloud_probs

                p_cloud = night_cloud_probs(cloud, held.x, edge.raw, held.nights,
                                            prepare.load_epoch_numbers(cache, held.night_ids))
                record("cloud", p_cloud.argmax(1))
            elif name == "hybrid":
                report["hybrid_cloud"] = "cloud" if cloud is not None else "source_float"
                curve, rec, used, labels = score_hybrid(report, held, edge, p_cloud, threshold=threshold,
                                                        max_escalated=max_escalated, edge_dir=edge_dir)
            elif name == "yasa":
                record("yasa", yasa_labels(held))
            elif name == "filter ablation":
                report["filter_ablation"] = filter_ablation(cache, held.train_ids, held.night_ids,
                                                            passes=ablation_passes, seed=seed)
            bar.advance(task)
    report["seconds"] = round(time.time() - t0, 1)
    write_reports(out, report, held, edge, p_cloud, curve, rec, used, labels, max_escalated)
    return report


def format_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page: corpus first, then the table."""
    lines = ["# Accuracy benchmark", "", f"**Corpus: {report['corpus']}**", "",
             f"Held-out subjects: {', '.join(report['test_subjects'])} ({report['n_epochs']} epochs).", "",
             "| model | acc | macro-F1 | kappa | " + " | ".join(f"F1 {s}" for s in C.STAGES) + " |",
             "|---|---|---|---|" + "---|" * C.N_CLASSES]
    for name, s in report["scores"].items():
        f1 = " | ".join("-" if s["f1"][k] is None else f"{s['f1'][k]:.3f}" for k in C.STAGES)
        lines.append(f"| {name} | {s['acc']:.3f} | {s['mf1']:.3f} | {s['kappa']:.3f} | {f1} |")
    h, r = report["scores"]["hybrid"], report["recommended"]
    lines += ["", f"Hybrid at threshold {h['threshold']:.3f}: {h['escalated_fraction']:.1%} of epochs escalated "
              f"to the {report.get('hybrid_cloud', 'source_float')} model.",
              f"Recommended on this test set ({r['rule']}): threshold {r['threshold']:.3f}, "
              f"{r['escalated_fraction']:.1%} escalated, hybrid accuracy {r['acc']:.3f}.", ""]
    if "filter_ablation" in report:
        a = report["filter_ablation"]
        lines += [f"Filter ablation (edge CNN, {a['passes']} passes each): filtered acc {a['filtered']['acc']:.3f} / "
                  f"kappa {a['filtered']['kappa']:.3f}; unfiltered acc {a['unfiltered']['acc']:.3f} / "
                  f"kappa {a['unfiltered']['kappa']:.3f}.", ""]
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", type=Path, default=Path("data/cache/sc"),
                        help="prepared cache (default: %(default)s, the one `make train` writes)")
    parser.add_argument("--models", type=Path, default=Path("models"), help="models folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench-accuracy"), help="report folder")
    parser.add_argument("--test-subjects", nargs="+", default=None,
                        help="held-out subjects (default: the source model's test split)")
    parser.add_argument("--max-escalated", type=float, default=0.20,
                        help="escalation cap for the recommended threshold (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="score the hybrid at this threshold (default: the exported one)")
    parser.add_argument("--no-yasa", action="store_true", help="skip the YASA reference")
    parser.add_argument("--ablation-passes", type=int, default=4,
                        help="passes per filter-ablation training; 0 skips it (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.max_escalated <= 1.0:
        raise SleepEdgeError(f"--max-escalated must be within [0, 1], got {args.max_escalated}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise SleepEdgeError(f"--threshold must be within [0, 1], got {args.threshold}")
    r = bench_accuracy(args.cache, args.models, args.out, test_subjects=args.test_subjects,
                       max_escalated=args.max_escalated, threshold=args.threshold, with_yasa=not args.no_yasa,
                       ablation_passes=args.ablation_passes)
    print(format_markdown(r))
    print(f"wrote {args.out}")
    return 0

"""``make train``: reproduce ``models/`` from nothing on the default synthetic corpus, or on a
real Sleep-EDF download (``make train SLEEP_EDF=DIR``).

Stages (each skipped when its output exists, unless ``--force``):

    synth-sc, synth-st   synthetic Sleep-EDF-style corpora (SC: 20 subjects x 2 nights, ST: 12 x 2)
    verify               (``--sleep-edf DIR`` instead of synth) the download's layout and every
                         file's SHA-256 against PhysioNet's list -> work/corpus.json
    prepare-sc, -st      epoch caches (5 subject folds; fold 0 = held-out test subjects)
    source               source (cloud) CNN on SC, fold 0 held out, fold 1 for early stopping
    transfer             fine-tune curve of the source model on k ST nights
    distil               edge CNN distilled from the source model (same split)
    compress             pruning + int8
    cloud                cloud model: source CNN + a head over the int8 edge model's recent outputs
    threshold            recommended escalation threshold on the *validation* subjects
    export               models/edge (C arrays, plan, reference vectors) with that threshold
    bench                accuracy benchmark on the held-out subjects
    card                 models/MODEL_CARD.md and models/metrics.json

``python -m host_tools.pipeline --quick --out DIR`` runs the same chain on a tiny corpus in
minutes, writing everything under DIR (used by the tests).

``--sleep-edf DIR`` (what ``sleepedge data fetch --out DIR`` writes: ``DIR/sleep-cassette/``,
optionally ``DIR/sleep-telemetry/``) runs the same chain on those files with the literature's
protocol: Fpz-Cz, wake kept to +-30 min around sleep, subject-wise folds; the source, edge and
cloud models learn from the sleep-cassette (SC) nights, the transfer curve uses the telemetry
(ST) nights when present. The model card calls the corpus Sleep-EDF only when every file's
SHA-256 is in PhysioNet's list (``../shared/data/sleep-edfx/SHA256SUMS.txt``); otherwise it says
in bold that the corpus is NOT verified Sleep-EDF.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


from host_tools import REPO_ROOT
from host_tools.errors import SleepEdgeError
from host_tools.learn.context import CONTEXT_META

#: Sub-folders of a Sleep-EDF download (``host_tools.data.fetch.STUDY_FOLDERS``).
SC_FOLDER, ST_FOLDER = "sleep-cassette", "sleep-telemetry"


@dataclass
class Settings:
    """Corpus sizes and training budgets of one pipeline run."""

    sc_subjects: int = 20
    st_subjects: int = 12
    nights: int = 2
    night_minutes: int | None = None  # None: full-length nights
    folds: int = 5
    seed: int = 0
    # Training budgets: the training engineer's defaults (docs/training.md). The source CNN
    # trains at ~30-100 epochs/s on 2 shared cores, so 10 x 40 batches of 256 is ~20-55 min.
    source_passes: int = 10
    source_steps: int = 40
    source_batch: int = 256
    # Second phase: continue from the first at half the learning rate. After 10 passes the
    # source CNN was still improving and scored below the distilled edge model, which left the
    # cloud nothing to add; 20 more passes (~20 min) make it the stronger model.
    source_continue_passes: int = 20
    source_continue_lr: float = 5e-4
    transfer_ks: tuple[int, ...] = (1, 2, 4, 8)
    # With one or two target nights, updating conv layers overfits (k=1 fell below no
    # adaptation); freezing every conv and nudging the dense head at a low rate wins.
    transfer_steps: int = 30
    transfer_lr: float = 1e-4
    transfer_frozen_conv: int = 10
    distil_passes: int = 20
    distil_steps: int | None = None
    distil_batch: int = 256
    sparsity: float = 0.5
    compress_epochs: int = 3
    qat: bool = False
    cloud_history: int = 11  # constants.CLOUD_HISTORY_EPOCHS, what the proxy sends
    cloud_passes: int = 30
    context_passes: int = 30
    yasa: bool = True
    # Domain randomization (issue 10): a second SC corpus of the same subjects and hypnogram
    # draws, recorded through randomized montages, gains and acquisition paths
    # (data/randomize.py), joins the edge model's training set; augmentation perturbs its batches.
    # Off by default: with both on, the distilled edge model scored lower on the plain synthetic
    # test subjects (0.753 vs 0.779) AND on real EEG zero-shot (DREAMS 0.41 vs 0.53, float)
    # (docs/training.md "Domain randomization in make train").
    randomize: bool = False
    augment: bool = False
    ablation_passes: int = 4
    max_escalated: float = 0.20  # the escalation budget (share of epochs sent to the cloud)
    # The threshold is chosen on the validation subjects within the budget less this share of it:
    # other subjects escalate a little more or less (the first full run chose 19.0 % on
    # validation, which escalated 20.04 % of the test subjects).
    escalation_headroom: float = 0.10
    extra: dict[str, Any] = field(default_factory=dict)


def quick_settings() -> Settings:
    """A tiny corpus and token budgets: the whole chain in a few minutes (tests, smoke runs)."""
    return Settings(sc_subjects=5, st_subjects=3, night_minutes=60, source_passes=1, source_steps=3,
                    source_continue_passes=1,
                    source_batch=32, transfer_ks=(1,), transfer_steps=3, distil_passes=1, distil_steps=4,
                    distil_batch=64, compress_epochs=1, cloud_passes=2, context_passes=2, yasa=False, ablation_passes=1)


@dataclass
class Paths:
    """Where a run reads and writes."""

    work: Path
    models: Path
    reports: Path
    #: A Sleep-EDF download (``sleepedge data fetch`` layout); None: the synthetic corpora.
    sleep_edf: Path | None = None

    @property
    def sc_source(self) -> Path:
        """The PSG/hypnogram folder the SC cache is prepared from."""
        return self.sleep_edf / SC_FOLDER if self.sleep_edf is not None else self.synth_sc
    @property
    def st_source(self) -> Path:
        return self.sleep_edf / ST_FOLDER if self.sleep_edf is not None else self.synth_st
    @property
    def corpus_check(self) -> Path: return self.work / "corpus.json"
    @property
    def synth_sc(self) -> Path: return self.work / "synth" / "sc"
    @property
    def synth_st(self) -> Path: return self.work / "synth" / "st"
    @property
    def synth_sc_rand(self) -> Path: return self.work / "synth" / "sc-rand"
    @property
    def cache_sc_rand(self) -> Path: return self.work / "cache" / "sc-rand"
    @property
    def cache_sc(self) -> Path: return self.work / "cache" / "sc"
    @property
    def cache_st(self) -> Path: return self.work / "cache" / "st"
    @property
    def train(self) -> Path: return self.work / "train"


# --------------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------------

def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise SleepEdgeError(f"{module} is not available in this build; the pipeline needs it") from exc
        raise


def stage_synth(p: Paths, s: Settings, domain: str, randomized: bool = False) -> None:
    synth = _need("host_tools.data.synth")
    out = (p.synth_sc_rand if randomized else p.synth_sc) if domain == "sc" else p.synth_st
    n = s.sc_subjects if domain == "sc" else s.st_subjects
    if out.exists():
        shutil.rmtree(out)  # a half-written corpus from an interrupted run
    synth.generate_corpus(out, n_subjects=n, nights=s.nights, domain=domain,
                          seed=s.seed + (0 if domain == "sc" else 1), night_minutes=s.night_minutes, progress=True,
                          randomize=True if randomized else None)


def stage_prepare(p: Paths, s: Settings, domain: str, randomized: bool = False) -> None:
    prepare = _need("host_tools.data.prepare")
    src, out = (p.sc_source, p.cache_sc) if domain == "sc" else (p.st_source, p.cache_st)
    if randomized:
        src, out = p.synth_sc_rand, p.cache_sc_rand
    # The literature's protocol: Fpz-Cz, wake kept to 30 min either side of sleep.
    prepare.prepare_corpus(src, out, channel="Fpz-Cz", wake_margin_min=30, folds=s.folds, seed=s.seed)


def _psg_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*-PSG.edf")) if folder.is_dir() else []


def has_telemetry(p: Paths) -> bool:
    """Whether the ST (transfer) corpus exists: always for synthetic runs, for a download when
    its ``sleep-telemetry/`` folder holds PSG files."""
    return p.sleep_edf is None or bool(_psg_files(p.st_source))


def verify_download(root: Path, sums_path: Path | None = None) -> dict[str, Any]:
    """Check a Sleep-EDF download's layout and every EDF's SHA-256 against PhysioNet's list.

    Parameters
    ----------
    root
        What ``sleepedge data fetch --out`` wrote: ``sleep-cassette/`` (required) and optionally
        ``sleep-telemetry/``.
    sums_path
        PhysioNet's ``SHA256SUMS.txt``; default the copy in ``../shared/data/sleep-edfx/`` (never a
        list shipped inside ``root``, which proves nothing about the files beside it).

    Returns
    -------
    dict
        ``{"dir", "sums", "verified" (bool: every file listed with its exact path and hash),
        "studies": {"sc"|"st": {"psg": n, "hypnograms": n, "verified": n, "unverified": [names]}}}``.
    """
    from host_tools.bench.accuracy import SHA256SUMS
    from host_tools.data.fetch import parse_sums, sha256_file

    root = Path(root)
    sc_dir = root / SC_FOLDER
    if not _psg_files(sc_dir):
        raise SleepEdgeError(f"{sc_dir}: no Sleep-EDF PSG files (*-PSG.edf); SLEEP_EDF must be the folder "
                             "`sleepedge data fetch --out DIR` wrote (DIR/sleep-cassette/SC4ssN?0-PSG.edf)")
    sums_path = Path(sums_path) if sums_path is not None else SHA256SUMS
    sums = parse_sums(sums_path.read_text(), str(sums_path)) if sums_path.is_file() else {}
    from host_tools import shown_path

    report: dict[str, Any] = {"dir": shown_path(root), "sums": str(sums_path) if sums else None, "studies": {}}
    ok = bool(sums)
    for study, folder in (("sc", SC_FOLDER), ("st", ST_FOLDER)):
        files = sorted((root / folder).glob("*.edf")) if (root / folder).is_dir() else []
        if not files:
            continue
        bad = [f.name for f in files if sums.get(f"{folder}/{f.name}") != sha256_file(f)]
        report["studies"][study] = {
            "psg": sum(f.name.endswith("-PSG.edf") for f in files),
            "hypnograms": sum(f.name.endswith("-Hypnogram.edf") for f in files),
            "verified": len(files) - len(bad), "unverified": bad}
        ok = ok and not bad
    report["verified"] = ok
    return report


def stage_verify(p: Paths, s: Settings) -> None:
    assert p.sleep_edf is not None
    from host_tools import shown_path

    report = verify_download(p.sleep_edf) | {"written_to": shown_path(p.corpus_check)}
    p.work.mkdir(parents=True, exist_ok=True)
    p.corpus_check.write_text(json.dumps(report, indent=2) + "\n")


def stage_source(p: Paths, s: Settings) -> None:
    train = _need("host_tools.learn.train")
    first = p.train / "source-phase1"
    train.train_source(p.cache_sc, first, passes=s.source_passes, steps_per_pass=s.source_steps,
                       batch=s.source_batch, val_fold=0, seed=s.seed, verbose=0)
    train.train_source(p.cache_sc, p.train / "source", passes=s.source_continue_passes,
                       steps_per_pass=s.source_steps, batch=s.source_batch, val_fold=0, seed=s.seed + 1,
                       lr=s.source_continue_lr, patience=4, init=first, verbose=0)


def stage_transfer(p: Paths, s: Settings) -> None:
    transfer = _need("host_tools.learn.transfer")
    transfer.finetune_curve(p.train / "source", p.cache_st, p.train / "transfer", ks=s.transfer_ks,
                            steps=s.transfer_steps, lr=s.transfer_lr, n_frozen_conv=s.transfer_frozen_conv,
                            seed=s.seed, verbose=0)


def stage_distil(p: Paths, s: Settings) -> None:
    distil = _need("host_tools.learn.distil")
    distil.distil(p.train / "source", p.cache_sc, p.train / "edge", passes=s.distil_passes,
                  steps_per_pass=s.distil_steps, batch=s.distil_batch, seed=s.seed, verbose=0,
                  augment=s.augment, randomized_cache=p.cache_sc_rand if randomized_corpus(p, s) else None)


def _split(p: Paths) -> dict[str, list[str]]:
    meta = json.loads((p.train / "source" / "model.json").read_text())
    split = meta.get("split") or {}
    if not split.get("test"):
        raise SleepEdgeError(f"{p.train / 'source' / 'model.json'}: no recorded test split")
    return {k: sorted(map(str, v)) for k, v in split.items()}


def stage_compress(p: Paths, s: Settings) -> None:
    from host_tools.learn.compress import compress

    split = _split(p)
    # Fine-tune on the training side only: validation subjects pick the threshold next.
    compress(p.train / "edge" / "model.keras", p.cache_sc, p.train / "compress", sparsity=s.sparsity, qat=s.qat,
             epochs=s.compress_epochs, test_subjects=split["test"], train_subjects=split["train"],
             seed=s.seed, progress=False, randomized_cache=p.cache_sc_rand if randomized_corpus(p, s) else None)


def stage_context(p: Paths, s: Settings) -> None:
    """The device's context head over the int8 edge model's last outputs, next to it in
    train/compress/ (export carries it into models/edge/)."""
    from host_tools.learn.context import train_context

    train_context(p.train / "compress" / "model.tflite", p.cache_sc, p.train / "source", p.train / "compress",
                  passes=s.context_passes, seed=s.seed,
                  randomized_cache=p.cache_sc_rand if randomized_corpus(p, s) else None)


def stage_cloud(p: Paths, s: Settings) -> None:
    from host_tools.cloud.model import train_cloud

    train_cloud(p.train / "source", p.train / "compress" / "model.tflite", p.cache_sc, p.train / "cloud",
                history=s.cloud_history, passes=s.cloud_passes, seed=s.seed, progress=False)


def stage_threshold(p: Paths, s: Settings) -> None:
    """Recommended threshold from the validation subjects (never the test ones)."""
    from host_tools.data import datasets, prepare
    from host_tools import evaluation
    from host_tools.cloud.model import load_context_model, night_cloud_probs
    from host_tools.deploy.predict import ContextHead, TflmModel, reported_night_outputs
    from host_tools.learn.compress import dequantize

    split = _split(p)
    subjects = split.get("val") or split["train"]
    index = prepare.load_index(p.cache_sc)
    ids = datasets.night_ids_for(index, subjects)
    x, y, _, nights = prepare.load_epochs(p.cache_sc, ids)
    tflm = TflmModel.load(p.train / "compress" / "model.tflite")
    epoch_numbers = prepare.load_epoch_numbers(p.cache_sc, ids)
    # What the device reports (the context head's outputs when train/compress/ has one).
    raw, scale, zp = reported_night_outputs(tflm, ContextHead.find(p.train / "compress"),
                                            tflm.run_int8(tflm.quantize(x)), nights, epoch_numbers)
    p_edge = dequantize(raw, scale, zp)
    p_cloud = night_cloud_probs(load_context_model(p.train / "cloud"), x, raw, nights, epoch_numbers)
    curve = evaluation.escalation_curve(y, p_edge, p_cloud)
    cap = s.max_escalated * (1.0 - s.escalation_headroom)
    rec = evaluation.recommend_threshold(curve, cap)
    (p.train / "threshold.json").write_text(json.dumps(
        {"chosen_on": "validation subjects", "subjects": subjects, "n_epochs": int(len(y)),
         "max_escalated": s.max_escalated, "headroom": s.escalation_headroom, "cap_used": cap,
         "recommended": vars(rec), "curve": [vars(c) for c in curve]},
        indent=2) + "\n")


def stage_export(p: Paths, s: Settings) -> None:
    from host_tools.learn import models
    from host_tools.deploy.export import export

    from host_tools.deploy.export import NEVER_ESCALATE

    # A recommended 0 means "never escalate"; the header wants a positive value with that effect.
    threshold = max(json.loads((p.train / "threshold.json").read_text())["recommended"]["threshold"],
                    NEVER_ESCALATE)
    edge = p.models / "edge"
    if edge.exists():
        shutil.rmtree(edge)
    header = None if p.models.resolve() == (REPO_ROOT / "models").resolve() else p.work / "sleepedge_constants.h"
    export(p.train / "compress" / "model.tflite", edge, threshold=threshold, name="edge", cache=p.cache_sc,
           header=header)
    shutil.copyfile(p.train / "compress" / "compress.json", edge / "compress.json")
    # The float (distilled, unpruned) edge model, re-saved without optimizer state to stay small.
    models.load_keras_model(p.train / "edge" / "model.keras").save(edge / "float.keras")
    _copy_source(p.train / "source", p.models / "source")
    _copy_cloud(p.train / "cloud", p.models / "cloud", p.models / "source")


def _copy_source(src: Path, dst: Path) -> None:
    """The cloud model without optimizer state (a third of the size), metadata sha256 updated."""
    from host_tools.learn import models

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    models.load_keras_model(src / "model.keras").save(dst / "model.keras")
    meta = json.loads((src / "model.json").read_text())
    meta["sha256"] = models.sha256_file(dst / "model.keras")
    (dst / "model.json").write_text(json.dumps(meta, indent=2) + "\n")


def _copy_cloud(src: Path, dst: Path, encoder: Path) -> None:
    """The context head, pointing at the copied encoder (same weights, new file hash)."""
    from host_tools.learn import models
    from host_tools.cloud.model import HEAD_FILE, META_FILE

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    shutil.copyfile(src / HEAD_FILE, dst / HEAD_FILE)
    meta = json.loads((src / META_FILE).read_text())
    meta["encoder"] = os.path.relpath(encoder.resolve(), dst.resolve())
    meta["encoder_sha256"] = models.sha256_file(encoder / models.MODEL_FILE)
    edge_sha = models.sha256_file(dst.parent / "edge" / "model.tflite")
    if meta["edge_model"]["sha256"] != edge_sha:
        raise SleepEdgeError(f"{src}: trained on edge model {meta['edge_model']['sha256'][:12]}, "
                             f"exported edge model is {edge_sha[:12]}")
    (dst / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def stage_bench(p: Paths, s: Settings) -> None:
    from host_tools.bench.accuracy import bench_accuracy

    bench_accuracy(p.cache_sc, p.models, p.reports, test_subjects=_split(p)["test"],
                   max_escalated=s.max_escalated, with_yasa=s.yasa, ablation_passes=s.ablation_passes,
                   seed=s.seed, progress=False)


def stage_real(p: Paths, s: Settings) -> None:
    """The exported int8 edge model zero-shot on real EEG (the DREAMS people in ../shared), scored
    as ``make bench-real`` scores it; a note instead when those files are absent."""
    from host_tools.bench import real

    out = p.reports / "real-zero-shot.json"
    if not real.DREAMS_DIR.is_dir():
        out.write_text(json.dumps({"skipped": f"no DREAMS recordings in {real.DREAMS_DIR}"}, indent=2) + "\n")
        return
    people = real.load_dreams()
    scores = real.score_model(people, real.edge_zero_shot(p.models / "edge", people))
    out.write_text(json.dumps({"corpus": real.corpus_summary(people)["name"], "edge_int8": scores},
                              indent=2) + "\n")


def stage_card(p: Paths, s: Settings, command: str) -> None:
    metrics = collect_metrics(p, s)
    (p.models / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (p.models / "MODEL_CARD.md").write_text(model_card(metrics, command))


# --------------------------------------------------------------------------------------------
# metrics and card
# --------------------------------------------------------------------------------------------

def _abc(d: dict) -> dict:
    return {k: round(float(d[k]), 4) for k in ("acc", "mf1", "kappa")}


def collect_metrics(p: Paths, s: Settings) -> dict[str, Any]:
    """models/metrics.json from the stage outputs."""
    bench = json.loads((p.reports / "bench-accuracy.json").read_text())
    sc = bench["scores"]
    comp = json.loads((p.models / "edge" / "compress.json").read_text())
    exp = json.loads((p.models / "edge" / "export.json").read_text())
    distil = _read(p.train / "edge" / "distil.json")
    transfer = _read(p.train / "transfer" / "transfer.json")
    src_meta = json.loads((p.models / "source" / "model.json").read_text())
    cloud_meta = _read(p.models / "cloud" / "model.json")
    thr = json.loads((p.train / "threshold.json").read_text())
    m: dict[str, Any] = {
        "corpus": bench["corpus"],
        "synthetic": bench["corpus"].startswith(("SYNTHETIC", "UNVERIFIED")),
        "test_subjects": bench["test_subjects"],
        # How to regenerate any night of the training corpus (the demo streams a held-out one).
        "synth": {"domain": "sc", "seed": s.seed, "subjects": s.sc_subjects, "nights": s.nights,
                  "night_minutes": s.night_minutes},
        "split": _split(p),
        "n_test_epochs": bench["n_epochs"],
        "source": _abc(sc["source_float"]) | {"params": src_meta.get("params"), "macs": src_meta.get("macs")},
        "cloud": (_abc(sc["cloud"]) | {"head_params": cloud_meta.get("params"),
                                        "history_epochs": cloud_meta.get("history_length")}) if "cloud" in sc else None,
        "edge_float": _abc(sc["edge_float"]) if "edge_float" in sc else None,
        "edge_int8": _abc(sc["edge_int8"]) | {
            "tflite_bytes": exp["bytes"], "sha256": exp["sha256"], "params": comp["n_params"],
            "kernel_sparsity": round(comp["sparsity"]["overall_kernel_sparsity"], 4), "ops": comp["ops"],
            "tflm_vs_tflite_bit_exact": exp["tflm_vs_tflite"]["bit_exact_fraction"],
            "arena_bytes": exp.get("c_export", {}).get("arena_bytes"),
            "macs": exp.get("c_export", {}).get("macs"),
            "context_head": exp.get("context_head") is not None},
        "edge_int8_no_context": _abc(sc["edge_int8_no_context"]) if "edge_int8_no_context" in sc else None,
        "hybrid": _abc(sc["hybrid"]) | {"escalated_fraction": round(sc["hybrid"]["escalated_fraction"], 4),
                                        "threshold": sc["hybrid"]["threshold"],
                                        "threshold_chosen_on": thr["chosen_on"],
                                        "cap_used": thr.get("cap_used", s.max_escalated),
                                        "cloud_model": bench.get("hybrid_cloud", "source_float")},
        "recommended_on_test": {k: bench["recommended"][k] for k in ("threshold", "escalated_fraction", "acc")},
        "transfer": _transfer_summary(transfer),
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(s).items() if k != "extra"},
    }
    if p.sleep_edf is not None:
        _label_download(m, json.loads(p.corpus_check.read_text()))
    float_edge = p.models / "edge" / "float.keras"
    if distil.get("edge"):
        m["edge_budget"] = distil["edge"]
    elif float_edge.is_file():
        from host_tools.learn import models

        m["edge_budget"] = models.edge_budget(models.load_keras_model(float_edge))
    for key in ("alone", "distilled"):
        found = _find_scores(distil.get(key))
        if found:
            m[f"edge_{key}_distil_stage"] = found
    if "yasa" in sc:
        m["yasa"] = _abc(sc["yasa"])
    if comp.get("int8_randomized"):
        m["edge_int8_randomized"] = _abc(comp["int8_randomized"]) | {"corpus": "synthetic, randomized recordings "
                                                                              "of the same test subjects"}
    real = _read(p.reports / "real-zero-shot.json")
    if real.get("edge_int8"):
        m["real_zero_shot"] = real_summary(real["edge_int8"]) | {"corpus": real["corpus"]}
    if "filter_ablation" in bench:
        fa = bench["filter_ablation"]
        m["filter_ablation"] = {"passes": fa["passes"], "filtered": _abc(fa["filtered"]),
                                "unfiltered": _abc(fa["unfiltered"])}
    # `make bench-randomization`: shown once run from the start model it documents.
    from host_tools.bench.randomization import DEFAULT_INIT, card_summary

    ablation = card_summary(_read(p.reports.parent / "bench-randomization" / "randomization.json"),
                            REPO_ROOT / DEFAULT_INIT)
    if ablation:
        m["randomization_ablation"] = ablation
    return m


def _robustness_lines(m: dict[str, Any]) -> list[str]:
    """The card's "other recordings" section: randomized synthetic recordings and real EEG."""
    rs, real = m.get("edge_int8_randomized"), m.get("real_zero_shot")
    if not rs and not real:
        return []
    st = m["settings"]
    lines = ["", "## Other recordings: the same int8 edge model, no adaptation", "",
             f"Trained with the domain-randomized corpus: {'yes' if st.get('randomize') else 'no'}; "
             f"training-time augmentation: {'yes' if st.get('augment') else 'no'} (docs/training.md).", "",
             "| recordings | corpus | acc | macro-F1 | kappa |", "|---|---|---|---|---|",
             f"| held-out subjects, as generated | SYNTHETIC | {_fmt(m['edge_int8'])} |"]
    if rs:
        lines.append(f"| held-out subjects, randomized montage / gain / acquisition / artefacts | SYNTHETIC | {_fmt(rs)} |")
    if real:
        rec = ", ".join(f"{k} {v:.2f}" for k, v in real["recall"].items())
        lines.append(f"| 4 people, central montage, zero-shot ({real['n']} epochs) | REAL EEG (DREAMS) | {_fmt(real)} |")
        lines += ["", f"Real EEG, recall per stage: {rec} (the excerpts have no REM). Scored as `make "
                  f"bench-real` scores it; corpus: {real['corpus']}."]
    return lines


def real_summary(scores: dict[str, Any]) -> dict[str, Any]:
    """acc / macro-F1 / kappa and the recall of each stage present, from a bench-real score."""
    from host_tools.evaluation import recall as stage_recall

    recall = {st: round(v, 4) for st, v in stage_recall(scores["confusion"]).items() if v is not None}
    return {k: round(float(scores[k]), 4) for k in ("acc", "mf1", "kappa")} | {"n": int(scores["n"]), "recall": recall}


def _label_download(m: dict[str, Any], check: dict[str, Any]) -> None:
    """Metrics of a run on a Sleep-EDF download: no synth recipe, the SHA-256 check recorded,
    and the corpus called Sleep-EDF only when every file passed it."""
    del m["synth"]
    m["sleep_edf"] = check
    m["protocol"] = "Fpz-Cz, wake kept to +-30 min around sleep, subject-wise folds; SC for the models, ST for transfer"
    m["synthetic"] = not check["verified"]
    if not check["verified"]:
        studies = check["studies"].values()
        bad = sum(len(st["unverified"]) for st in studies)
        total = bad + sum(st["verified"] for st in studies)
        why = (f"{bad} of {total} files under {check['dir']} are not in PhysioNet's SHA-256 list" if check.get("sums")
               else f"no PhysioNet SHA-256 list to check the files under {check['dir']} against")
        m["corpus"] = f"NOT verified Sleep-EDF: {why}; figures describe those files, not Sleep-EDF ({m['corpus']})"


def _corpus_note(m: dict[str, Any]) -> str:
    """The model card's bold line on where the figures come from."""
    check = m.get("sleep_edf")
    if check is None:
        return ("**All figures below come from a SYNTHETIC corpus generated by `host_tools.data.synth` (real "
                "Sleep-EDF hypnograms may drive the stage sequences, but every signal is generated). They "
                "describe the generator, not Sleep-EDF and not real patients.**") if m["synthetic"] else ""
    studies = ", ".join(f"{k.upper()}: {v['psg']} PSG files" for k, v in check["studies"].items())
    if check["verified"]:
        return (f"Sleep-EDF Expanded from `{check['dir']}` ({studies}); every file's SHA-256 matches PhysioNet's "
                f"list. Protocol: {m['protocol']}.")
    return (f"**The corpus is NOT verified Sleep-EDF: the files under `{check['dir']}` ({studies}) do not all "
            f"match PhysioNet's SHA-256 list (`{check.get('written_to', 'corpus.json')}` names them). They may "
            "be synthetic stand-ins or altered files: no figure below is a Sleep-EDF result.** "
            f"Protocol as for the real database: {m['protocol']}.")


def _find_scores(d: Any) -> dict[str, float] | None:
    """acc / mf1 / kappa of a result dict, whether at its top level or under "test"."""
    if not isinstance(d, dict):
        return None
    if all(k in d for k in ("acc", "mf1", "kappa")):
        return _abc(d)
    return _find_scores(d.get("test"))


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _transfer_summary(t: dict[str, Any]) -> dict[str, Any]:
    if not t:
        return {}
    keep = ("acc", "mf1", "kappa")
    out: dict[str, Any] = {"corpus": t.get("corpus"), "test_subjects": t.get("test_subjects"), "ks": t.get("ks")}
    if isinstance(t.get("none"), dict):
        out["none"] = {k: t["none"][k] for k in keep if k in t["none"]}
    for name in ("finetune", "scratch"):
        out[name] = [{k: r[k] for k in ("k", *keep) if k in r} for r in t.get(name, [])]
    return out


def _fmt(d: dict | None) -> str:
    if not d:
        return "- | - | -"
    return f"{d['acc']:.3f} | {d['mf1']:.3f} | {d['kappa']:.3f}"


def acceptance_checks(m: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """The model card's claims, each measured: (claim, holds (None: not measured), figures)."""
    checks: list[tuple[str, bool | None, str]] = []
    e, f, h = m["edge_int8"], m.get("edge_float"), m["hybrid"]
    if f:
        # The same network float vs int8: without the context head when the device has one.
        q = m.get("edge_int8_no_context") or e
        gap = 100 * (f["acc"] - q["acc"])
        checks.append(("int8 edge model within 1.5 points of its float version", abs(gap) <= 1.5,
                       f"float {f['acc']:.3f}, int8 {q['acc']:.3f} ({-gap:+.1f} points)"))
    t = m.get("transfer") or {}
    none = (t.get("none") or {}).get("acc")
    fine = {r["k"]: r["acc"] for r in t.get("finetune", [])}
    scratch = {r["k"]: r["acc"] for r in t.get("scratch", [])}
    for k in (1, 2):
        if k in fine and k in scratch and none is not None:
            checks.append((f"fine-tuning on k={k} target night(s) beats no adaptation and from-scratch",
                           fine[k] > none and fine[k] > scratch[k],
                           f"fine-tuned {fine[k]:.3f}, none {none:.3f}, scratch {scratch[k]:.3f}"))
    alone, dist = m.get("edge_alone_distil_stage"), m.get("edge_distilled_distil_stage")
    if alone and dist:
        checks.append(("distillation beats the edge model trained alone", dist["acc"] > alone["acc"],
                       f"distilled {dist['acc']:.3f}, alone {alone['acc']:.3f}"))
    cap = m["settings"]["max_escalated"]
    checks.append((f"hybrid beats the edge model alone at <= {cap:.0%} escalated",
                   h["acc"] > e["acc"] and h["escalated_fraction"] <= cap,
                   f"hybrid {h['acc']:.3f} at {h['escalated_fraction']:.1%} escalated, edge {e['acc']:.3f}"))
    c = m.get("cloud")
    if c:
        checks.append(("the cloud model beats the source CNN alone", c["acc"] > m["source"]["acc"],
                       f"cloud {c['acc']:.3f}, source CNN {m['source']['acc']:.3f}"))
    real = m.get("real_zero_shot")
    if real:
        n3 = real["recall"].get("N3")
        checks.append(("real EEG zero-shot (DREAMS): accuracy >= 0.72, kappa >= 0.55, N3 recall >= 0.8",
                       real["acc"] >= 0.72 and real["kappa"] >= 0.55 and (n3 or 0) >= 0.8,
                       f"acc {real['acc']:.3f}, kappa {real['kappa']:.3f}, N3 recall "
                       f"{'-' if n3 is None else format(n3, '.2f')}"))
    return checks


def model_card(m: dict[str, Any], command: str) -> str:
    """models/MODEL_CARD.md text."""
    e, h, c = m["edge_int8"], m["hybrid"], m.get("cloud")
    budget = m.get("edge_budget") or {}
    warn = _corpus_note(m)
    lines = [
        "# SleepEdge models", "",
        f"Corpus: {m['corpus']}", "", warn, "",
        "## Models",
        f"- `source/`: source CNN, 1-D CNN after Yildirim et al. 2019, {m['source'].get('params')} parameters, "
        f"{m['source'].get('macs')} MACs per epoch, float32; input: 30-s Fpz-Cz epoch, filtered uV.",
    ]
    if c:
        lines.append(
            f"- `cloud/`: the cloud model behind `sleepedge cloud serve`: the source CNN's embedding of the "
            f"escalated epoch plus the device's int8 outputs for the last {c.get('history_epochs')} epochs "
            f"(the escalated one included; the proxy collects them from RESULT frames), through a "
            f"{c.get('head_params')}-parameter head (`head.keras`). Tied to the edge model below; for a "
            "device running another model it answers from the epoch alone.")
    lines += [
        f"- `edge/`: distilled edge CNN, {e['params']} parameters, {e['kernel_sparsity']:.0%} of kernel weights "
        f"pruned to zero, full int8 (`model.tflite`, {e['tflite_bytes']} bytes, sha256 `{e['sha256'][:16]}`); "
        f"ops {', '.join(e['ops'])}.",
        f"  MACs per epoch {e.get('macs') or budget.get('macs', '?')}, tensor arena of the native engine "
        f"{e.get('arena_bytes') or '?'} bytes (Keras estimate {budget.get('arena_bytes_est', '?')}). "
        f"TFLite's reference kernels match TFLite Micro bit for bit on {e['tflm_vs_tflite_bit_exact']:.1%} "
        "of checked held-out epochs (rare 1-LSB rounding ties; `edge/export.json`). TFLM is the "
        "reference the firmware reproduces.",
        "- `edge/float.keras`: the edge model before pruning/quantization; `edge/reference_vectors.npz`: "
        "int8 inputs and TFLM outputs the firmware tests must reproduce.", "",
        "## Held-out results", "",
        f"Test subjects (never trained on, by any model): {', '.join(m['test_subjects'])} "
        f"({m['n_test_epochs']} epochs).", "",
        "| model | acc | macro-F1 | kappa |", "|---|---|---|---|",
        f"| source CNN (float, one epoch) | {_fmt(m['source'])} |",
    ]
    if c:
        lines.append(f"| cloud (source CNN + edge history) | {_fmt(c)} |")
    lines += [
        f"| edge float | {_fmt(m['edge_float'])} |",
        *([f"| edge int8 (TFLM), without the context head | {_fmt(m['edge_int8_no_context'])} |"]
          if m.get("edge_int8_no_context") else []),
        f"| edge int8 (TFLM){', with the context head (what the device reports)' if e.get('context_head') else ''} "
        f"| {_fmt(e)} |",
        f"| hybrid edge+cloud, {h['escalated_fraction']:.1%} escalated | {_fmt(h)} |",
    ]
    if "yasa" in m:
        lines.append(f"| YASA pretrained (EEG+EOG, outside reference) | {_fmt(m['yasa'])} |")
    lines += ["",
              f"Hybrid: epochs with edge confidence below {h['threshold']:.3f} go to the "
              f"{'cloud model' if h.get('cloud_model') == 'cloud' else 'source CNN'} "
              f"({h['escalated_fraction']:.1%} of test epochs). The threshold was chosen on the "
              f"{h['threshold_chosen_on']} as the most accurate with <= "
              f"{h.get('cap_used', m['settings']['max_escalated']):.0%} escalated (the "
              f"{m['settings']['max_escalated']:.0%} budget less "
              f"{m['settings'].get('escalation_headroom', 0):.0%} headroom for other subjects), and is baked "
              "into `edge/model_data.h`."]
    if h["escalated_fraction"] == 0:
        r = m.get("recommended_on_test") or {}
        lines += ["", "No threshold within the budget beat never escalating on the validation subjects (the "
                  "device's own answer, with its context head, was as good as the cloud's there), so the exported "
                  "threshold never escalates. For information only, not used to choose: on the test subjects "
                  f"a threshold of {r.get('threshold', 0):.3f} would have given {r.get('acc', 0):.3f} at "
                  f"{r.get('escalated_fraction', 0):.1%} escalated. A threshold can be set at run time "
                  "(`sleepedge monitor --threshold`, CONFIG frame)."]
    lines += _robustness_lines(m)
    alone, dist = m.get("edge_alone_distil_stage"), m.get("edge_distilled_distil_stage")
    if alone and dist:
        lines += ["", "Distillation (edge CNN, same architecture and budget, held-out subjects, float): "
                  f"distilled from the source CNN {_fmt(dist)}; trained alone on the labels {_fmt(alone)} "
                  "(acc | macro-F1 | kappa)."]
    if "filter_ablation" in m:
        fa = m["filter_ablation"]
        lines += ["", f"Butterworth filter ablation (edge CNN, {fa['passes']} passes each): with filter "
                  f"{_fmt(fa['filtered'])}; without {_fmt(fa['unfiltered'])} (acc | macro-F1 | kappa)."]
    t = m.get("transfer") or {}
    if t.get("finetune"):
        none = (t.get("none") or {}).get("acc")
        scratch = {r["k"]: r for r in t.get("scratch", [])}
        target = "the sleep-telemetry (ST) recordings" if "sleep_edf" in m else "the ST-like domain"
        lines += ["", f"Transfer of the source CNN to {target} ({t.get('corpus')}; held-out target "
                  f"subjects {', '.join(t.get('test_subjects') or [])}), accuracy:", "",
                  "| target nights k | no adaptation | fine-tuned | from scratch |", "|---|---|---|---|"]
        for r in t["finetune"]:
            sc = scratch.get(r["k"])
            lines.append(f"| {r['k']} | {'-' if none is None else f'{none:.3f}'} | {r['acc']:.3f} | "
                         f"{'-' if sc is None else format(sc['acc'], '.3f')} |")
    elif "sleep_edf" in m and "st" not in m["sleep_edf"]["studies"]:
        lines += ["", "No sleep-telemetry recordings in the download: no transfer curve."]
    if m.get("randomization_ablation"):
        from host_tools.bench.randomization import card_lines

        lines += [""] + card_lines(m["randomization_ablation"])
    lines += ["", "## Checks", "", "| claim | holds | measured |", "|---|---|---|"]
    for claim, ok, figures in acceptance_checks(m):
        lines.append(f"| {claim} | {'-' if ok is None else ('yes' if ok else '**no**')} | {figures} |")
    lines += ["", "## Reproduce", "", f"    {command}", "",
              "Reports: `reports/bench-accuracy/` (confusion matrices, escalation curve, hypnogram). "
              "Full numbers: `models/metrics.json`.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------

def plan(p: Paths, s: Settings, command: str) -> list[tuple[str, Path, Callable[[], None]]]:
    """(name, output whose existence means done, action) for every stage, in order.

    On a Sleep-EDF download, ``verify`` replaces the two synth stages, and ``prepare-st`` and
    ``transfer`` are left out when it has no sleep-telemetry recordings.
    """
    if p.sleep_edf is None:
        corpus = [("synth-sc", p.synth_sc / ".done", lambda: stage_synth(p, s, "sc")),
                  ("synth-st", p.synth_st / ".done", lambda: stage_synth(p, s, "st"))]
    else:
        corpus = [("verify", p.corpus_check, lambda: stage_verify(p, s))]
    st = has_telemetry(p)
    rand = randomized_corpus(p, s)
    return corpus + [
        *([("synth-sc-rand", p.synth_sc_rand / ".done", lambda: stage_synth(p, s, "sc", randomized=True))]
          if rand else []),
        ("prepare-sc", p.cache_sc / "index.json", lambda: stage_prepare(p, s, "sc")),
        *([("prepare-sc-rand", p.cache_sc_rand / "index.json", lambda: stage_prepare(p, s, "sc", randomized=True))]
          if rand else []),
        *([("prepare-st", p.cache_st / "index.json", lambda: stage_prepare(p, s, "st"))] if st else []),
        ("source", p.train / "source" / "model.json", lambda: stage_source(p, s)),
        *([("transfer", p.train / "transfer" / "transfer.json", lambda: stage_transfer(p, s))] if st else []),
        ("distil", p.train / "edge" / "model.json", lambda: stage_distil(p, s)),
        ("compress", p.train / "compress" / "compress.json", lambda: stage_compress(p, s)),
        ("context", p.train / "compress" / CONTEXT_META, lambda: stage_context(p, s)),
        ("cloud", p.train / "cloud" / "model.json", lambda: stage_cloud(p, s)),
        ("threshold", p.train / "threshold.json", lambda: stage_threshold(p, s)),
        ("export", p.models / "source" / "model.json", lambda: stage_export(p, s)),
        ("bench", p.reports / "bench-accuracy.json", lambda: stage_bench(p, s)),
        ("real", p.reports / "real-zero-shot.json", lambda: stage_real(p, s)),
        ("card", p.models / "MODEL_CARD.md", lambda: stage_card(p, s, command)),
    ]


def randomized_corpus(p: Paths, s: Settings) -> bool:
    """Whether the run adds the randomized SC corpus (synthetic runs only: a real download is
    already real)."""
    return s.randomize and p.sleep_edf is None


def run_pipeline(p: Paths, s: Settings, *, force: bool = False, command: str = "make train",
                 only: list[str] | None = None) -> dict[str, float]:
    """Run every stage whose output is missing (all with ``force``); returns seconds per stage.

    A stage that runs invalidates the ones after it, so a forced or missing early stage
    re-runs everything downstream.
    """
    from rich.console import Console

    console = Console(stderr=True)
    timings: dict[str, float] = {}
    stages = plan(p, s, command)
    names = [n for n, _, _ in stages]
    for o in only or []:
        if o not in names:
            raise SleepEdgeError(f"--only {o}: unknown stage (stages: {', '.join(names)})")
    dirty = False
    t_all = time.time()
    for i, (name, marker, action) in enumerate(stages, start=1):
        wanted = not only or name in only
        if wanted and not (force or dirty) and marker.exists():
            console.print(f"[{i:2d}/{len(stages)}] {name:<11} skipped (found {marker})")
            continue
        if not wanted:
            continue
        console.print(f"[{i:2d}/{len(stages)}] {name:<11} running ...")
        t0 = time.time()
        action()
        if name.startswith("synth"):
            marker.write_text("ok\n")
        timings[name] = round(time.time() - t0, 1)
        dirty = True
        console.print(f"[{i:2d}/{len(stages)}] {name:<11} done in {timings[name]:.1f} s")
    console.print(f"pipeline finished in {time.time() - t_all:.1f} s; models in {p.models}")
    p.work.mkdir(parents=True, exist_ok=True)
    (p.work / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host_tools.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny corpus and budgets (minutes)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write everything under this folder (default: data/ + models/ + reports/)")
    parser.add_argument("--force", action="store_true", help="re-run stages whose outputs exist")
    parser.add_argument("--only", nargs="+", default=None, help="run only these stages")
    parser.add_argument("--qat", action="store_true", help="quantization-aware training in compress")
    parser.add_argument("--randomize", action=argparse.BooleanOptionalAction, default=False,
                        help="add the domain-randomized SC corpus to the edge model's training "
                             "(synthetic runs; default off, see docs/training.md)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=False,
                        help="training-time augmentation of the edge model's batches (default off)")
    parser.add_argument("--sleep-edf", type=Path, default=None, metavar="DIR",
                        help="train on a Sleep-EDF download (`sleepedge data fetch --out DIR` layout) "
                             "instead of the synthetic corpus")
    args = parser.parse_args(argv)
    s = quick_settings() if args.quick else Settings()
    s.qat, s.randomize, s.augment = args.qat, args.randomize, args.augment
    if args.out is not None:
        p = Paths(work=args.out / "work", models=args.out / "models", reports=args.out / "reports" / "bench-accuracy")
    elif args.quick:
        parser.error("--quick needs --out DIR (it must not overwrite models/)")
    else:
        # A real run keeps its caches apart from the synthetic ones (data/cache/sc stays synthetic).
        p = Paths(work=REPO_ROOT / "data" / ("sleep-edf-run" if args.sleep_edf else ""), models=REPO_ROOT / "models",
                  reports=REPO_ROOT / "reports" / "bench-accuracy")
    p.sleep_edf = args.sleep_edf
    command = "python -m host_tools.pipeline" + (" --quick" if args.quick else "") + \
        (f" --out {args.out}" if args.out else "") + (" --qat" if args.qat else "") + \
        (f" --sleep-edf {args.sleep_edf}" if args.sleep_edf else "") + \
        (" --randomize" if args.randomize else "") + (" --augment" if args.augment else "")
    if args.out is None and not args.quick:
        make = "make train" + (f" SLEEP_EDF={args.sleep_edf}" if args.sleep_edf else "")
        command = f"{make}   (= {command})"
    try:
        run_pipeline(p, s, force=args.force, command=command, only=args.only)
    except SleepEdgeError as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

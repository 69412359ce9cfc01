"""``sleepedge bench real``: figures on real EEG, the four DREAMS people.

The corpus: DREAMS Sleep Spindles excerpts 1-4 (``../shared/data/dreams-spindles/``, read in
place; nothing derived from it is written outside ``--out`` and temporary folders): 4 people,
30 min each, 240 epochs of 30 s, central montage (C3-A1 or Cz-A1, not Fpz-Cz), 50-200 Hz
resampled to 100 Hz. On the same epochs:

- the shipped int8 edge model, zero-shot, exactly as the device computes it (int16 transport,
  causal Butterworth from the first sample, TFLite Micro);
- ``sleepedge adapt``, leave-one-person-out (adapted on three people, scored on the fourth, int8
  in TFLite Micro): the cloud stage's ``adapt`` called on EDF pairs written to a temporary folder,
  its held-out labels scored like every other stager's;
- YASA's pretrained staging (EEG only: DREAMS has no EOG here);
- GSSC's pretrained staging with the whole excerpt as context, run by ``gssc_infer.py`` in its
  own environment (``.venv-gssc``: GSSC needs PyTorch); skipped, and said so, when absent.

Every output names the corpus. With four people, pooled figures come with per-person spread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import REPO_ROOT, SHARED_DIR
from host_tools import constants as C
from host_tools.errors import SleepEdgeError

DREAMS_DIR = SHARED_DIR / "data" / "dreams-spindles"
#: The excerpts scored here: the four people in ../shared (1-4 of the database's 8).
DREAMS_EXCERPTS = (1, 2, 3, 4)
GSSC_PYTHON = REPO_ROOT / ".venv-gssc" / "bin" / "python"
GSSC_SCRIPT = Path(__file__).with_name("gssc_infer.py")
#: ``sleepedge adapt --budget`` for the benchmark: 1.0, what a user gets by default (the four-fold
#: search takes ~5-7 min on 2 cores; tests pass a smaller budget).
ADAPT_BUDGET = 1.0
CORPUS = "DREAMS Sleep Spindles excerpts 1-4 (real EEG, 4 people, 240 epochs, central montage C3-A1/Cz-A1)"
#: The figures measured by hand before this command existed (acc, kappa), kept for comparison.
REFERENCE_BY_HAND = {"edge_int8": (0.56, 0.36), "yasa": (0.69, 0.53), "gssc": (0.81, 0.70)}


# --------------------------------------------------------------------------------------------
# reading DREAMS
# --------------------------------------------------------------------------------------------

@dataclass
class Person:
    """One DREAMS excerpt at the device's rate, with its expert stage per 30-s epoch."""

    name: str  #: ``excerpt1`` ...
    channel: str  #: as the file names it, e.g. ``C3-A1``
    fs_orig: int
    signal_uv: np.ndarray  #: float64 microvolts at ``constants.FS_HZ``, whole 30-s epochs
    y: np.ndarray  #: int64 index into STAGES, one per scored epoch
    epochs: np.ndarray  #: epoch number (from the start) of each entry of ``y``

    @property
    def n_epochs(self) -> int:
        return len(self.y)


def read_person(folder: Path, k: int) -> Person:
    """DREAMS excerpt ``k``: its EEG resampled to 100 Hz and its expert stage per 30-s epoch.

    Read in memory with ``sleepedge data convert``'s readers (the excerpt's known rate, 5-s
    R&K-DREAMS codes reduced to 30-s epochs by majority). An epoch without a majority stage
    (none in excerpts 1-4) would be dropped, as prepare drops unscored epochs.
    """
    from host_tools.data import convert, recordings

    folder = Path(folder)
    sig_path, hyp_path = folder / f"excerpt{k}.txt", folder / f"Hypnogram_excerpt{k}.txt"
    for path in (sig_path, hyp_path):
        if not path.is_file():
            raise SleepEdgeError(f"{path}: not found (DREAMS excerpts are read in place from {DREAMS_DIR})")
    fs = convert.DREAMS_RATES[k]
    x_uv, channel = convert.read_text_signal(sig_path)
    keys = recordings.read_text_stages(hyp_path, codes=convert.DREAMS_CODES)
    texts = recordings.reduce_to_epochs(keys, convert.DREAMS_STAGE_SECONDS)
    x = recordings.resample_to_device(x_uv, fs, sig_path)
    n = min(len(texts), len(x) // C.EPOCH_SAMPLES)
    if n == 0:
        raise SleepEdgeError(f"{sig_path}: shorter than one {C.EPOCH_S}-s epoch")
    label = np.array([-1 if C.RK_TO_AASM.get(t) is None else C.RK_TO_AASM[t] for t in texts[:n]], dtype=np.int64)
    keep = np.flatnonzero(label >= 0)
    return Person(f"excerpt{k}", channel or "EEG", fs, x[: n * C.EPOCH_SAMPLES], label[keep], keep)


def load_dreams(folder: Path = DREAMS_DIR) -> list[Person]:
    """The four DREAMS people, read in place."""
    return [read_person(Path(folder), k) for k in DREAMS_EXCERPTS]


def stream_epochs(person: Person) -> np.ndarray:
    """Every filtered epoch (n, 3000) float32 of the excerpt as the device forms them: int16
    transport, causal Butterworth from the first sample, 30-s cuts from the start."""
    from host_tools.data import filters

    return filters.filter_device(person.signal_uv).reshape(-1, C.EPOCH_SAMPLES)


def device_epochs(person: Person) -> np.ndarray:
    """The scored epochs of :func:`stream_epochs`."""
    return stream_epochs(person)[person.epochs]


# --------------------------------------------------------------------------------------------
# the stagers
# --------------------------------------------------------------------------------------------

def edge_zero_shot(edge_dir: Path, people: list[Person], context: bool = True) -> dict[str, np.ndarray]:
    """The shipped int8 edge model in TFLite Micro, per person, as the device decides: with a
    context head in ``edge_dir`` (and ``context``), the head's answer over the last epochs."""
    from host_tools.deploy.predict import ContextHead, TflmModel, decide

    tflm = TflmModel.load(edge_dir)
    head = ContextHead.find(edge_dir) if context else None
    out = {}
    for p in people:
        # The device classifies every epoch of the stream (scored or not) and keeps them all in
        # its rings (context head, running normalization): run the whole excerpt, keep the scored.
        raw = tflm.run_int8(tflm.quantize_stream(stream_epochs(p)))
        if head is None:
            out[p.name] = decide(raw, tflm.output_scale, tflm.output_zero_point)[0][p.epochs]
            continue
        q = head.run_stream(raw, np.ones(len(raw), bool), tflm.output_scale, tflm.output_zero_point)
        out[p.name] = decide(q, head.output_scale, head.output_zero_point)[0][p.epochs]
    return out


def yasa_stages(person: Person) -> np.ndarray:
    """YASA's pretrained staging of one person from the EEG alone (no EOG in DREAMS)."""
    import warnings

    import mne
    import yasa

    from host_tools.bench.accuracy import YASA_TO_INDEX

    info = mne.create_info([person.channel], float(C.FS_HZ), ch_types=["eeg"])
    raw = mne.io.RawArray(person.signal_uv[None, :] * 1e-6, info, verbose="error")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # YASA's classifier was pickled by an older scikit-learn
        pred = yasa.SleepStaging(raw, eeg_name=person.channel).predict()
    labels = np.asarray(getattr(pred, "hypno", pred)).astype(str)
    if len(labels) <= person.epochs.max():
        raise SleepEdgeError(f"{person.name}: YASA staged {len(labels)} epochs, needs epoch {person.epochs.max()}")
    return np.array([YASA_TO_INDEX.get(s, 0) for s in labels[person.epochs]], dtype=np.int64)


def gssc_stages(people: list[Person], python: Path = GSSC_PYTHON, timeout_s: float = 1800) -> dict[str, np.ndarray]:
    """GSSC's staging of each person, in the GSSC environment (a subprocess: it needs PyTorch).

    Raises
    ------
    SleepEdgeError
        ``python`` is missing (``make bench-real`` creates it) or GSSC fails.
    """
    python = Path(python)
    if not python.is_file():
        raise SleepEdgeError(f"{python}: no GSSC environment (`make bench-real` creates .venv-gssc)")
    with tempfile.TemporaryDirectory(prefix="sleepedge-gssc-") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        arrays: dict[str, Any] = {"names": np.array([p.name for p in people])}
        for p in people:
            arrays |= {f"signal_{p.name}": p.signal_uv, f"fs_{p.name}": np.array(C.FS_HZ),
                       f"channel_{p.name}": np.array(p.channel)}
        np.savez(src, **arrays)
        proc = subprocess.run([str(python), str(GSSC_SCRIPT), str(src), str(dst)], capture_output=True,
                              text=True, timeout=timeout_s)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise SleepEdgeError(f"{GSSC_SCRIPT}: GSSC failed in {python} ({last})")
        res = {k: v for k, v in np.load(dst).items()}
    out = {}
    for p in people:
        staged = res[f"stages_{p.name}"].astype(np.int64)
        if len(staged) <= p.epochs.max():
            raise SleepEdgeError(f"{p.name}: GSSC staged {len(staged)} epochs, needs epoch {p.epochs.max()}")
        out[p.name] = staged[p.epochs]
    return out


def write_dreams_pairs(folder: Path, out: Path) -> dict[str, str]:
    """The DREAMS excerpts as EDF pairs in ``out`` (a temporary folder: the licence forbids
    distributing derived files), named like Sleep-EDF nights of subjects no real one has
    (``SC49k1E0``), which every reader pairs. Returns recording id -> person (``excerptk``)."""
    from host_tools.data import convert

    people = {}
    for k in DREAMS_EXCERPTS:
        rec = f"SC49{k}1E0"
        convert.convert_pair([Path(folder) / f"excerpt{k}.txt"], convert.DREAMS_RATES[k], out,
                             hypnogram=Path(folder) / f"Hypnogram_excerpt{k}.txt", name=rec,
                             stage_seconds=convert.DREAMS_STAGE_SECONDS, codes=convert.DREAMS_CODES)
        people[rec] = f"excerpt{k}"
    return people


#: ``--channel`` for the DREAMS excerpts (each has one of the two).
DREAMS_CHANNELS = "C3-A1,CZ-A1"


def adapt_input(dreams: Path, folder: Path) -> tuple[Path, Path, dict[str, str]]:
    """The DREAMS people as a user hands them to ``sleepedge adapt``: EDF pairs in
    ``folder/recordings`` and the subject map ``folder/people.json``. Returns both paths and
    recording id -> person."""
    person_of = write_dreams_pairs(dreams, folder / "recordings")
    (folder / "people.json").write_text(json.dumps(person_of))
    return folder / "recordings", folder / "people.json", person_of


def dreams_recordings(dreams: Path = DREAMS_DIR) -> Any:
    """The DREAMS people as adapt's ``Recordings`` (read through the same files adapt reads;
    quiet, as the adapt row's run is: their known gap, no REM, is in the docs)."""
    from host_tools.learn import adapt as A

    with tempfile.TemporaryDirectory(prefix="sleepedge-dreams-") as tmp:
        recs, subject_map, _ = adapt_input(Path(dreams), Path(tmp))
        return A.load_recordings(recs, DREAMS_CHANNELS, A.read_subject_map(subject_map), warn=lambda _msg: None)


def adapt_lopo(models_dir: Path, dreams: Path, people: list[Person], *, budget: float = ADAPT_BUDGET,
               seed: int = 0, **options: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``sleepedge adapt`` on the DREAMS people, leave one person out: each person's epochs as
    the delivered int8 edge model adapted on the other three stages them (TFLite Micro).

    The excerpts reach adapt as a user gives them, EDF pairs (in a temporary folder, one person
    each); ``options`` go to :func:`host_tools.cloud.adapt.adapt` (e.g. ``strategies``).

    Returns
    -------
    tuple
        ``{person: stages}`` for :func:`score_model`, and what adapt chose (budget, choice,
        pruned), its own int8 accuracy before and after (``metrics.json``), its wall time.
    """
    from host_tools.cloud.adapt import adapt

    with tempfile.TemporaryDirectory(prefix="sleepedge-adapt-") as tmp:
        recs, subject_map, person_of = adapt_input(Path(dreams), Path(tmp))
        done = adapt(Path(models_dir), recs, Path(tmp) / "adapted", channel=DREAMS_CHANNELS, subject_map=subject_map,
                     budget=budget, seed=seed, progress=False, **options)
    epochs = {p.name: p.epochs for p in people}
    preds = {}
    for rec, name in person_of.items():
        scored, stages = done.held_out.of_recording(rec)
        if not np.array_equal(scored, epochs[name]):
            raise SleepEdgeError(f"{name}: sleepedge adapt scored {len(scored)} epochs, not this benchmark's "
                                 f"{len(epochs[name])}")
        preds[name] = stages
    m = done.metrics
    return preds, {"budget": budget, "choice": m["choice"], "pruned": m["choice"]["pruned"],
                   "before_int8_acc": m["before"]["int8"]["acc"], "after_int8_acc": m["after"]["int8"]["acc"],
                   "wall_s": m["timing"]["wall_s"]}


def adapt_nested(dreams: Path, people: list[Person], models_dir: Path, *, budget: float = ADAPT_BUDGET,
                 seed: int = 0, strategies: list[Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The honest estimate of adapt's edge choice: nested leave-one-person-out, float.

    For each held-out person the whole choice among the edge candidates is made by
    leave-one-person-out on the other people only (source CNN unchanged: it only feeds the
    distillation candidate), the winner is trained on them and stages the held-out person.
    ``adapt_lopo`` scores the winner on the folds it won on, so it is optimistic; this is not.

    Returns
    -------
    tuple
        ``{person: stages}`` for :func:`score_model`, and ``{person: edge candidate chosen}``.
    """
    from host_tools.learn import adapt as A

    rec = dreams_recordings(dreams)
    strategies = strategies or A.default_strategies(budget)
    unchanged = [A.SourceStrategy("none", "none", 0.0, 0)]
    epochs_of = {p.name: p.epochs for p in people}
    preds, chosen = {}, {}
    for name, train, held in A.person_folds(rec):
        inner = rec.subset(train)
        choice = A.choose(models_dir, inner, strategies=strategies, source_strategies=unchanged, seed=seed)
        edge, _ = A.fit_final(models_dir, inner, choice, seed=seed)
        stages = A.predict_edge(edge, rec.x[held]).argmax(1)
        order = np.argsort(rec.epoch_index[held], kind="stable")
        if not np.array_equal(rec.epoch_index[held][order], epochs_of[name]):
            raise SleepEdgeError(f"{name}: the nested run scored other epochs than this benchmark's")
        preds[name], chosen[name] = stages[order].astype(np.int64), choice.edge_choice.name
    return preds, chosen


# --------------------------------------------------------------------------------------------
# scoring and reports
# --------------------------------------------------------------------------------------------

def score_model(people: list[Person], predicted: dict[str, np.ndarray]) -> dict[str, Any]:
    """Pooled scores over all epochs plus each person's, and the spread of per-person figures."""
    from host_tools import evaluation

    y = np.concatenate([p.y for p in people])
    pred = np.concatenate([predicted[p.name] for p in people])
    pooled = evaluation.scores(y, pred)
    per = {p.name: {k: evaluation.scores(p.y, predicted[p.name])[k] for k in ("n", "acc", "mf1", "kappa")}
           for p in people}
    return {k: pooled[k] for k in ("n", "acc", "mf1", "kappa", "f1", "confusion")} | {
        "per_person": per, "per_person_spread": _spread(per)}


def _spread(per: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of per-person accuracy and kappa."""
    return {k: {"mean": float(np.mean([v[k] for v in per.values()])),
                "sd": float(np.std([v[k] for v in per.values()], ddof=1)) if len(per) > 1 else 0.0}
            for k in ("acc", "kappa")}


def corpus_summary(people: list[Person]) -> dict[str, Any]:
    y = np.concatenate([p.y for p in people])
    return {"name": CORPUS, "folder": str(DREAMS_DIR), "people": len(people), "epochs": int(len(y)),
            "stage_counts": {s: int(np.sum(y == i)) for i, s in enumerate(C.STAGES)},
            "recordings": [{"name": p.name, "channel": p.channel, "fs_orig": p.fs_orig, "epochs": p.n_epochs,
                            "stage_counts": {s: int(np.sum(p.y == i)) for i, s in enumerate(C.STAGES)}}
                           for p in people]}


def write_reports(out: Path, report: dict[str, Any], people: list[Person], preds: dict[str, dict]) -> None:
    """JSON, Markdown, a confusion matrix per model, accuracy per person and a hypnogram per person."""
    from host_tools import plotting

    out.mkdir(parents=True, exist_ok=True)
    note = f"corpus: {CORPUS}"
    for name, s in report["scores"].items():
        if "confusion" not in s:
            continue
        plotting.confusion_matrix(out / f"confusion_{name}.png", s["confusion"], title=f"{name}, DREAMS (real)",
                                  note=note)
    names = [p.name for p in people]
    plotting.grouped_bars(out / "per_person_accuracy.png", names,
                          {name: [s["per_person"][n]["acc"] for n in names] for name, s in report["scores"].items()},
                          ylabel="accuracy", title="Accuracy per person (one DREAMS excerpt each, real EEG)",
                          note=note)
    for p in people:
        plotting.hypnogram(out / f"hypnogram_{p.name}.png",
                           {"expert": p.y} | {name: pr[p.name] for name, pr in preds.items()},
                           title=f"DREAMS {p.name} ({p.channel}, real EEG)", note=note)
    (out / "bench-real.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "README.md").write_text(format_markdown(report))


def bench_real(models_dir: Path, out: Path, *, dreams: Path = DREAMS_DIR, with_yasa: bool = True,
               gssc_python: Path | None = GSSC_PYTHON, adapt_budget: float | None = ADAPT_BUDGET, seed: int = 0,
               nested: bool = False, log: Any = None) -> dict[str, Any]:
    """Score every stager on the four DREAMS people and write reports into ``out``.

    Parameters
    ----------
    models_dir
        Folder with ``edge/model.tflite`` (the shipped int8 edge model).
    gssc_python
        The GSSC environment's Python; None or missing: GSSC is skipped and the report says why.
    adapt_budget
        ``sleepedge adapt --budget`` for its leave-one-person-out figures; None skips it.
    nested
        Also :func:`adapt_nested` at ``adapt_budget`` (about as long again as adapt).

    Returns
    -------
    dict
        What ``out/bench-real.json`` holds: ``scores`` per stager (pooled and per person),
        ``skipped`` (stager -> reason), the corpus.
    """
    say = log or (lambda msg: None)
    edge_dir = Path(models_dir) / "edge"
    if not (edge_dir / "model.tflite").is_file():
        raise SleepEdgeError(f"{edge_dir}: no model.tflite (the shipped int8 edge model)")
    t0 = time.time()
    people = load_dreams(dreams)
    preds: dict[str, dict[str, np.ndarray]] = {}
    skipped: dict[str, str] = {}
    say("edge int8 (zero-shot) ...")
    preds["edge_int8"] = edge_zero_shot(edge_dir, people)
    from host_tools.deploy.predict import ContextHead

    if ContextHead.find(edge_dir) is not None:  # the head's effect on real EEG, side by side
        preds["edge_int8_no_context"] = edge_zero_shot(edge_dir, people, context=False)
    if with_yasa:
        say("YASA ...")
        preds["yasa"] = {p.name: yasa_stages(p) for p in people}
    if gssc_python is not None and Path(gssc_python).is_file():
        say("GSSC (in its own environment) ...")
        preds["gssc"] = gssc_stages(people, Path(gssc_python))
    else:
        skipped["gssc"] = (f"no GSSC environment at {gssc_python} (`make bench-real` creates .venv-gssc)"
                           if gssc_python is not None else "not requested (--no-gssc)")
    adapted: dict[str, Any] = {}
    if adapt_budget is not None:
        say(f"sleepedge adapt, leave one person out (budget {adapt_budget}) ...")
        preds["adapt_lopo"], adapted = adapt_lopo(Path(models_dir), Path(dreams), people, budget=adapt_budget,
                                                  seed=seed)
    else:
        skipped["adapt_lopo"] = "not requested (--no-adapt)"
    chosen: dict[str, str] = {}
    if nested and adapt_budget is not None:
        say(f"adapt's choice, nested leave one person out (float, budget {adapt_budget}) ...")
        preds["adapt_nested_float"], chosen = adapt_nested(Path(dreams), people, Path(models_dir), budget=adapt_budget,
                                                           seed=seed)
    elif nested:  # said in the report, not dropped silently
        skipped["adapt_nested_float"] = "--nested needs adapt (--no-adapt was given)"
    scores = {name: score_model(people, pr) for name, pr in preds.items()}
    if adapted:
        scores["adapt_lopo"]["adapt"] = adapted
    if chosen:
        scores["adapt_nested_float"]["chosen_per_person"] = chosen
    report = {"corpus": corpus_summary(people), "models": str(models_dir), "scores": scores,
              "skipped": skipped, "reference_by_hand": {k: {"acc": a, "kappa": kk}
                                                        for k, (a, kk) in REFERENCE_BY_HAND.items()},
              "seconds": round(time.time() - t0, 1)}
    write_reports(Path(out), report, people, preds)
    return report


LABELS = {"edge_int8": "SleepEdge int8 edge model, zero-shot (device arithmetic; with its context head if shipped)",
          "edge_int8_no_context": "SleepEdge int8 edge model without its context head",
          "adapt_lopo": "SleepEdge edge model + `sleepedge adapt`, leave one person out",
          "adapt_nested_float": "SleepEdge edge model + `sleepedge adapt`, its choice made without the held-out person (nested; float)",
          "yasa": "YASA 0.8.1 pretrained (EEG only)",
          "gssc": "GSSC 0.0.9 pretrained (EEG only, whole-excerpt context)"}


def format_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: corpus first, then one row per stager."""
    c = report["corpus"]
    counts = ", ".join(f"{s} {n}" for s, n in c["stage_counts"].items())
    lines = ["# Real-EEG benchmark", "", f"**Corpus: {c['name']}**", "",
             f"{c['people']} people, {c['epochs']} epochs ({counts}); resampled to {C.FS_HZ} Hz.", "",
             "| model | acc | macro-F1 | kappa | per-person acc (mean ± sd) | per-person kappa (mean ± sd) |",
             "|---|---|---|---|---|---|"]
    for name, s in report["scores"].items():
        a, k = s["per_person_spread"]["acc"], s["per_person_spread"]["kappa"]
        lines.append(f"| {LABELS.get(name, name)} | {s['acc']:.3f} | {s['mf1']:.3f} | {s['kappa']:.3f} | "
                     f"{a['mean']:.3f} ± {a['sd']:.3f} | {k['mean']:.3f} ± {k['sd']:.3f} |")
    for name, why in report.get("skipped", {}).items():
        lines.append(f"| {LABELS.get(name, name)} | skipped: {why} | | | | |")
    lines += ["", "Macro-F1 averages the stages present (DREAMS excerpts 1-4 hold no REM). With 4 people "
              "and 240 epochs, differences of a few points are within the spread.", ""]
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path, default=Path("models"), help="models folder (default: %(default)s)")
    parser.add_argument("--dreams", type=Path, default=DREAMS_DIR, help="DREAMS excerpts folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench-real"), help="report folder")
    parser.add_argument("--gssc-python", type=Path, default=GSSC_PYTHON,
                        help="Python of the GSSC environment (default: %(default)s)")
    parser.add_argument("--no-gssc", action="store_true", help="skip GSSC")
    parser.add_argument("--no-yasa", action="store_true", help="skip YASA")
    parser.add_argument("--no-adapt", action="store_true", help="skip `sleepedge adapt` leave-one-person-out")
    parser.add_argument("--nested", action="store_true",
                        help="also adapt's choice nested inside each fold (float; the honest estimate, ~5 more min)")
    parser.add_argument("--adapt-budget", type=float, default=ADAPT_BUDGET,
                        help="`sleepedge adapt --budget` (default: %(default)s; 1.0 = its full search)")


def run(args: argparse.Namespace) -> int:
    r = bench_real(args.models, args.out, dreams=args.dreams, with_yasa=not args.no_yasa,
                   gssc_python=None if args.no_gssc else args.gssc_python,
                   adapt_budget=None if args.no_adapt else args.adapt_budget, nested=args.nested,
                   log=lambda msg: print(f"bench real: {msg}", file=sys.stderr))
    print(format_markdown(r))
    print(f"wrote {args.out}")
    return 0

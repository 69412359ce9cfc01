"""``sleepedge bench randomization``: what each randomization family buys, synthetic and real.

Issue 10, item 4: for each family of the domain randomization (:mod:`host_tools.data.randomize`:
montage, gain, acquisition path, artefacts), for the training augmentation
(:mod:`host_tools.data.augment`) and for the running normalization
(:mod:`host_tools.data.normalize`), synthetic test figures and real zero-shot figures side by side.

Protocol (a from-scratch training at a small budget swings +-10 points between seeds, so every
arm starts from the same trained edge model and is fine-tuned briefly, seed fixed):

1. corpora, in a work folder (default ``data/ablation/``, reused when present with the same
   settings): the plain SC corpus and one randomized SC corpus per family arm, same subjects and
   seed (so the same physiology and hypnograms; only the recording differs), prepared as
   ``make train`` prepares (Fpz-Cz, wake margin 30 min);
2. every arm: the edge model ``--init`` (default ``models/ablation-start/float.keras``, the plain-only edge model) fine-tuned with
   hard labels, class weights, Adam 5e-4, batch 256, ``--passes`` passes of half a sweep each, on
   the training subjects of the plain corpus plus (family arms) the arm's randomized corpus, with
   or without augmentation;
3. scored (float model, argmax) on the plain synthetic test subjects, the fully randomized test
   subjects (the ``all`` corpus) and the four DREAMS people zero-shot, their epochs built exactly
   as ``sleepedge bench real`` builds them (:func:`host_tools.bench.real.device_epochs`).

Arms: ``control`` (plain, no augmentation: what more passes alone do), ``augment`` (plain +
augmentation), ``all`` (every family + augmentation), one arm per family + augmentation
(``montage``, ``gain``, ``acquisition`` = native rate + amplifier noise + mains, ``artefacts``),
and ``all+norm`` (``all`` with the running normalization applied per night to every input, test
sets included). The untouched ``--init`` model is scored too, as the ``init`` row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from host_tools import shown_path
from host_tools import constants as C
from host_tools.errors import SleepEdgeError

#: The plain-only edge model every arm starts from (models/ablation-start/README.md).
DEFAULT_INIT = Path("models/ablation-start/float.keras")
DEFAULT_SPLIT = Path("models/source/model.json")
DEFAULT_WORK = Path("data/ablation")
DEFAULT_OUT = Path("reports/bench-randomization")
#: The switches of :class:`host_tools.data.randomize.RandomizationConfig`.
SWITCHES: tuple[str, ...] = ("montage", "gain", "acquisition", "noise", "mains", "artefacts")
#: Randomized corpora: name -> the switches that are on (the rest off, so the corpus differs from
#: the plain one only there). ``all`` is also the randomized test set.
CORPORA: dict[str, tuple[str, ...]] = {
    "all": SWITCHES,
    "montage": ("montage",),
    "gain": ("gain",),
    "acquisition": ("acquisition", "noise", "mains"),
    "artefacts": ("artefacts",),
}
TEST_SETS: tuple[str, ...] = ("plain", "randomized", "dreams")
TEST_LABELS = {"plain": "plain synthetic (test subjects)",
               "randomized": "randomized synthetic (test subjects, all families)",
               "dreams": "DREAMS real (4 people, zero-shot)"}
#: Running-normalization window (epochs) of the ``+norm`` arm.
NORM_WINDOW = C.NORM_WINDOW_EPOCHS


@dataclass(frozen=True)
class Arm:
    """One fine-tuning arm: which randomized corpus joins the plain one, augmentation, norm."""

    name: str
    corpus: str | None  #: a key of CORPORA, or None for the plain corpus alone
    augment: bool
    norm: bool = False


ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("control", None, False),
    Arm("augment", None, True),
    Arm("all", "all", True),
    Arm("montage", "montage", True),
    Arm("gain", "gain", True),
    Arm("acquisition", "acquisition", True),
    Arm("artefacts", "artefacts", True),
    Arm("all+norm", "all", True, norm=True),
)}


def family_config(switches: tuple[str, ...]) -> Any:
    """A RandomizationConfig with exactly ``switches`` on, the documented ranges otherwise."""
    from host_tools.data.randomize import RandomizationConfig

    return RandomizationConfig(**{s: s in switches for s in SWITCHES})


def normalize_night(x: np.ndarray) -> np.ndarray:
    """The ``+norm`` arms' input transform of one night's filtered epochs (stream order).

    The device's running normalization (:func:`host_tools.data.normalize.normalized_model_input`,
    bit-exact with firmware/core/se_norm.c), every epoch entering the ring.
    """
    from host_tools.data.normalize import normalized_model_input

    return normalized_model_input(x)


# --------------------------------------------------------------------------------------------
# subjects and corpora
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CorpusSettings:
    """What a corpus in the work folder was made with (it is reused only when all agree)."""

    subjects: tuple[str, ...]
    nights: int
    night_minutes: int | None
    seed: int
    switches: tuple[str, ...] | None  #: None: the plain corpus


def subject_number(subject: str) -> int:
    """``SC405`` -> 5: the generator's subject index of a synthetic SC subject id."""
    s = str(subject).strip()
    if len(s) != 5 or not s.startswith("SC4") or not s[3:].isdigit():
        raise SleepEdgeError(f"subject {subject!r}: expected a synthetic SC subject id like SC405")
    return int(s[3:])


def load_split(path: Path, train: list[str] | None, test: list[str] | None) -> dict[str, list[str]]:
    """Training and test subjects: the shipped split (``model.json`` "split") unless given."""
    if train is None or test is None:
        path = Path(path)
        try:
            split = json.loads(path.read_text())["split"]
        except FileNotFoundError:
            raise SleepEdgeError(f"{path}: not found (the shipped split; or give --train-subjects "
                                 "and --test-subjects)") from None
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SleepEdgeError(f"{path}: no \"split\" with train and test subjects") from None
        train = list(split["train"]) if train is None else train
        test = list(split["test"]) if test is None else test
    if not train or not test:
        raise SleepEdgeError("bench randomization: needs at least one training and one test subject")
    if set(train) & set(test):
        both = sorted(set(train) & set(test))
        raise SleepEdgeError(f"bench randomization: subjects both in training and test: {both}")
    for s in (*train, *test):
        subject_number(s)
    return {"train": sorted(train), "test": sorted(test)}


def _synth_job(job: tuple[str, int, int, int | None, int, Any]) -> None:
    from host_tools.data import synth

    out, subject, night, minutes, seed, cfg = job
    synth.generate_night(out, subject, night, "sc", seed, night_minutes=minutes, randomize=cfg)


def build_corpus(work: Path, name: str, settings: CorpusSettings, *, workers: int = 2,
                 say: Callable[[str], None] = lambda m: None) -> Path:
    """The prepare cache of one corpus in ``work/cache/<name>``, generated and prepared unless
    present with the same settings. Returns the cache folder.

    The EDF files go to ``work/synth/<name>`` (randomized nights with their
    ``*-randomization.json`` sidecars); prepared as ``make train`` prepares (Fpz-Cz, wake
    margin 30 min).
    """
    from host_tools.data import prepare

    src, cache = work / "synth" / name, work / "cache" / name
    stamp = cache / "bench-randomization.json"
    wanted = json.loads(json.dumps(asdict(settings)))
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        say(f"corpus {name}: reused {shown_path(cache)}")
        return cache
    for folder in (src, cache):
        if folder.exists():
            shutil.rmtree(folder)  # ours, from other settings or an interrupted run
    src.mkdir(parents=True)
    cfg = None if settings.switches is None else family_config(settings.switches)
    jobs = [(str(src), subject_number(s), night, settings.night_minutes, settings.seed, cfg)
            for s in settings.subjects for night in range(1, settings.nights + 1)]
    say(f"corpus {name}: {len(jobs)} nights -> {shown_path(src)}")
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            _synth_job(job)
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            pool.map(_synth_job, jobs)
    prepare.prepare_corpus(src, cache, channel="Fpz-Cz", wake_margin_min=30, seed=settings.seed, progress=False)
    stamp.write_text(json.dumps(wanted, indent=1) + "\n")
    return cache


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

def model_inputs(x: np.ndarray, nights: np.ndarray | None, norm: bool) -> np.ndarray:
    """Edge model inputs: filtered epochs, normalized per night for ``+norm`` arms, clipped to
    +-EDGE_INPUT_CLIP_UV as the int8 input saturates."""
    x = np.asarray(x, dtype=np.float32)
    if norm:
        x = x.copy()
        keys = np.zeros(len(x), dtype=int) if nights is None else nights
        for n in np.unique(keys):
            rows = keys == n
            x[rows] = normalize_night(x[rows])
    return np.clip(x, -C.EDGE_INPUT_CLIP_UV, C.EDGE_INPUT_CLIP_UV)


def load_set(cache: Path, subjects: list[str], norm: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels of ``subjects`` from a prepare cache (nights in stream order)."""
    from host_tools.data import datasets as D

    index = D.load_index_checked(cache)
    x, y, _, nights = D.load_subjects(cache, index, subjects)
    return model_inputs(x, nights, norm), y


@dataclass
class TestSet:
    """One test set: inputs per group (a person for DREAMS, one group otherwise) and labels."""

    name: str
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]


def dreams_set(people: list[Any], norm: bool) -> TestSet:
    """The DREAMS people's epochs as ``sleepedge bench real`` builds them, per person."""
    from host_tools.bench.real import device_epochs

    return TestSet("dreams", {p.name: model_inputs(device_epochs(p), None, norm) for p in people},
                   {p.name: p.y for p in people})


def test_sets(caches: dict[str, Path], split: dict[str, list[str]], people: list[Any], norm: bool) -> list[TestSet]:
    """Plain and fully randomized synthetic test subjects, and the DREAMS people."""
    out = []
    for name, corpus in (("plain", "plain"), ("randomized", "all")):
        x, y = load_set(caches[corpus], split["test"], norm)
        out.append(TestSet(name, {name: x}, {name: y}))
    return out + [dreams_set(people, norm)]


# --------------------------------------------------------------------------------------------
# fine-tuning and scoring
# --------------------------------------------------------------------------------------------

def score_set(model: Any, ts: TestSet) -> dict[str, Any]:
    """Pooled scores (acc, macro-F1, kappa, per-stage F1 and recall, N3 recall, confusion), and
    per group (person) accuracy and kappa when there are several."""
    from host_tools import evaluation
    from host_tools.learn.models import predict_proba

    pred = {g: predict_proba(model, x).argmax(1) for g, x in ts.x.items()}
    y = np.concatenate([ts.y[g] for g in ts.x])
    s = evaluation.scores(y, np.concatenate([pred[g] for g in ts.x]))
    rec = evaluation.recall(s["confusion"])
    out = {k: s[k] for k in ("n", "acc", "mf1", "kappa", "f1")} | {"recall": rec, "n3_recall": rec["N3"],
                                                                  "confusion": s["confusion"]}
    if len(ts.x) > 1:
        out["per_person"] = {g: {k: evaluation.scores(ts.y[g], pred[g])[k] for k in ("n", "acc", "kappa")}
                             for g in ts.x}
    return out


def load_init(init: Path) -> Any:
    """The model every arm starts from (a fresh copy each time)."""
    from host_tools.learn.models import load_keras_model

    if not Path(init).exists():
        raise SleepEdgeError(f"{init}: not found (--init: the float edge model every arm starts from)")
    return load_keras_model(init)


def fine_tune(init: Path, x: np.ndarray, y: np.ndarray, *, augment: bool, passes: int, lr: float,
              batch: int, seed: int) -> tuple[Any, dict[str, Any]]:
    """``init`` fine-tuned on (x, y): hard labels, class weights, ``passes`` passes of half a
    sweep each, seed fixed. Returns the model and what was run."""
    from host_tools.data import datasets as D
    from host_tools.learn.models import keras
    from host_tools.learn.train import augment_config, fit_model, make_strategy

    strategy = make_strategy("default")
    keras().utils.set_random_seed(seed)
    model = load_init(init)
    steps = max(1, len(y) // batch // 2)
    cw = D.class_weights(y)
    t0 = time.time()
    fit_model(model, strategy, x, y, D.sample_weights(y, cw), loss="sparse_categorical_crossentropy", lr=lr,
              batch=batch, passes=passes, steps_per_pass=steps, seed=seed, callbacks=[], verbose=0,
              augment=augment_config(augment, C.EDGE_INPUT_CLIP_UV))
    return model, {"n_train": int(len(y)), "steps_per_pass": steps, "passes": passes,
                   "class_weights": [round(float(w), 3) for w in cw], "train_seconds": round(time.time() - t0, 1)}


def run_arm(arm: Arm, init: Path, caches: dict[str, Path], split: dict[str, list[str]],
            tests: list[TestSet], *, passes: int, lr: float, batch: int, seed: int) -> dict[str, Any]:
    """Fine-tune one arm and score it on every test set."""
    x, y = load_set(caches["plain"], split["train"], arm.norm)
    if arm.corpus is not None:
        x2, y2 = load_set(caches[arm.corpus], split["train"], arm.norm)
        x, y = np.concatenate([x, x2]), np.concatenate([y, y2])
    model, run = fine_tune(init, x, y, augment=arm.augment, passes=passes, lr=lr, batch=batch, seed=seed)
    return {"arm": asdict(arm), "train": run | {"corpora": ["plain"] + ([arm.corpus] if arm.corpus else [])},
            "scores": {ts.name: score_set(model, ts) for ts in tests}}


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------

def parse_arms(text: str | None) -> list[Arm]:
    """``control,montage`` -> those arms, in the order of ARMS; None -> every arm."""
    if text is None:
        return list(ARMS.values())
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in ARMS]
    if unknown or not names:
        raise SleepEdgeError(f"--arms {text!r}: choose from {', '.join(ARMS)}")
    return [a for a in ARMS.values() if a.name in names]


def corpus_notes(split: dict[str, list[str]], nights: int, night_minutes: int | None) -> dict[str, str]:
    """What each test set is, in words (every figure and table says it)."""
    from host_tools.bench.real import CORPUS as DREAMS_CORPUS

    length = "full-length nights" if night_minutes is None else f"{night_minutes}-min nights"
    size = f"{len(split['test'])} held-out subject(s) x {nights} night(s), {length}"
    return {"plain": f"synthetic SC corpus, plain (Fpz-Cz, 100 Hz, one amplifier), {size}; generator "
                     f"figures, not Sleep-EDF",
            "randomized": f"synthetic SC corpus, every randomization family on (same nights recorded "
                          f"through random montage, gain, acquisition path, artefacts), {size}",
            "dreams": DREAMS_CORPUS + "; zero-shot, epochs as `sleepedge bench real` builds them"}


def bench_randomization(
    out: Path, *, init: Path = DEFAULT_INIT, work: Path = DEFAULT_WORK, split_path: Path = DEFAULT_SPLIT,
    train_subjects: list[str] | None = None, test_subjects: list[str] | None = None, nights: int = 1,
    night_minutes: int | None = None, arms: list[Arm] | None = None, passes: int = 4, lr: float = 5e-4,
    batch: int = 256, seed: int = 0, workers: int = 2, dreams: Path | None = None, progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build the corpora, fine-tune every arm, score it and write the reports into ``out``.

    Returns
    -------
    dict
        What ``out/randomization.json`` holds: ``arms`` (arm -> ``scores`` per test set, what was
        trained), ``init`` (the starting model's scores), ``corpus`` (each test set in words),
        ``settings``.
    """
    from host_tools.bench import real as R

    say = log or (lambda m: None)
    for name, val in (("passes", passes), ("batch", batch), ("nights", nights), ("workers", workers)):
        if int(val) < 1:
            raise SleepEdgeError(f"--{name} must be >= 1, got {val}")
    if nights not in (1, 2):
        raise SleepEdgeError(f"--nights {nights}: must be 1 or 2")
    if night_minutes is not None and not 30 <= int(night_minutes) <= 24 * 60:
        raise SleepEdgeError(f"--night-minutes {night_minutes}: must be 30..1440")
    if not Path(init).exists():
        raise SleepEdgeError(f"{init}: not found (--init: the float edge model every arm starts from)")
    arms = list(ARMS.values()) if arms is None else arms
    split = load_split(split_path, train_subjects, test_subjects)
    people = R.load_dreams(R.DREAMS_DIR if dreams is None else Path(dreams))
    t0 = time.time()
    subjects = tuple(sorted(set(split["train"]) | set(split["test"])))
    needed = ["plain", "all"] + sorted({a.corpus for a in arms if a.corpus and a.corpus != "all"})
    caches = {name: build_corpus(Path(work), name, CorpusSettings(subjects, nights, night_minutes, seed,
                                                                  None if name == "plain" else CORPORA[name]),
                                 workers=workers, say=say)
              for name in needed}
    tests = {norm: test_sets(caches, split, people, norm) for norm in sorted({a.norm for a in arms})}
    if False not in tests:
        tests[False] = test_sets(caches, split, people, False)
    report: dict[str, Any] = {
        "corpus": corpus_notes(split, nights, night_minutes),
        "settings": {"init": shown_path(init), "init_sha256": _sha256(Path(init)), "split": split,
                     "nights": nights, "night_minutes": night_minutes,
                     "passes": passes, "lr": lr, "batch": batch, "seed": seed, "norm_window": NORM_WINDOW,
                     "work": shown_path(work), "corpora": {n: list(CORPORA.get(n, ())) for n in needed}},
        "init": {},
        "arms": {},
    }
    start = load_init(init)
    report["init"] = {ts.name: score_set(start, ts) for ts in tests[False]}
    bar = _progress(len(arms), progress)
    for arm in arms:
        bar.set_description(f"arm {arm.name}")
        report["arms"][arm.name] = run_arm(arm, init, caches, split, tests[arm.norm], passes=passes, lr=lr,
                                           batch=batch, seed=seed)
        bar.update(1)
    bar.close()
    report["seconds"] = round(time.time() - t0, 1)
    write_reports(Path(out), report)
    return report


def _sha256(path: Path) -> str | None:
    """SHA-256 of a model file (None for a SavedModel folder): ties a report to its start model."""
    from host_tools.learn.models import sha256_file

    return sha256_file(path) if path.is_file() else None


def _progress(total: int, on: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="arm", disable=not on, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------------

def _rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("init (no fine-tuning)", report["init"])] + [(n, a["scores"]) for n, a in report["arms"].items()]


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def format_markdown(report: dict[str, Any]) -> str:
    """Accuracy / kappa / N3 recall per arm and test set, then per-stage recall."""
    c, s = report["corpus"], report["settings"]
    lines = ["# Randomization ablation: each family, synthetic and real side by side", "",
             "Test sets:", ""] + [f"- **{TEST_LABELS[t]}**: {c[t]}" for t in TEST_SETS] + [
        "", f"Every arm starts from `{s['init']}` and is fine-tuned for {s['passes']} pass(es) of half a sweep ("
            f"Adam {s['lr']}, batch {s['batch']}, class-weighted, seed {s['seed']}) on the training subjects "
            f"({len(s['split']['train'])}) of the plain corpus plus the arm's randomized corpus; float model, "
            "argmax. `+norm`: running normalization per night on every input.", "",
        "| arm | plain acc | plain κ | plain N3 rec | rand acc | rand κ | rand N3 rec "
        "| DREAMS acc | DREAMS κ | DREAMS N3 rec |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for name, sc in _rows(report):
        cells = [f"{_f(sc[t]['acc'])} | {_f(sc[t]['kappa'])} | {_f(sc[t]['n3_recall'])}" for t in TEST_SETS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Per-stage recall (W / N1 / N2 / N3 / REM; – = stage absent from the test set):", "",
              "| arm | plain | randomized | DREAMS |", "|---|---|---|---|"]
    for name, sc in _rows(report):
        cells = [" / ".join(_f(sc[t]["recall"][st]) for st in C.STAGES) for t in TEST_SETS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "DREAMS: 4 people, 240 epochs, no REM; differences of a few points are within the "
              "per-person spread (randomization.json has each person's figures).", ""]
    return "\n".join(lines)


def write_reports(out: Path, report: dict[str, Any]) -> None:
    """``randomization.json``, ``README.md`` (the tables) and grouped bars of accuracy and kappa."""
    from host_tools import plotting

    out.mkdir(parents=True, exist_ok=True)
    (out / "randomization.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "README.md").write_text(format_markdown(report))
    rows = _rows(report)
    names = [n.split(" ")[0] for n, _ in rows]
    note = "corpora: " + "; ".join(f"{TEST_LABELS[t]} = {report['corpus'][t]}" for t in TEST_SETS)
    for metric, label in (("acc", "accuracy"), ("kappa", "Cohen's kappa")):
        plotting.grouped_bars(out / f"randomization_{metric}.png", names,
                              {TEST_LABELS[t]: [max(0.0, sc[t][metric]) for _, sc in rows] for t in TEST_SETS},
                              ylabel=label, title=f"{label} per arm: synthetic test subjects and DREAMS (real)",
                              note=note)


def card_summary(report: dict[str, Any], float_model: Path) -> dict[str, Any] | None:
    """What the model card shows of a report (acc, kappa, N3 recall per arm and test set), or
    None when the report was made from another start model than ``float_model`` (stale)."""
    sha = _sha256(Path(float_model))
    if not report or sha is None or report.get("settings", {}).get("init_sha256") != sha:
        return None
    keep = ("acc", "kappa", "n3_recall")
    return {"corpus": report["corpus"], "passes": report["settings"]["passes"],
            "rows": {name: {t: {k: sc[t][k] for k in keep} for t in TEST_SETS} for name, sc in _rows(report)}}


def card_lines(summary: dict[str, Any]) -> list[str]:
    """The model card's section: one row per arm, synthetic and DREAMS figures side by side."""
    c = summary["corpus"]
    lines = ["## Randomization ablation: synthetic and real side by side", "",
             f"`make bench-randomization`: the float edge model fine-tuned {summary['passes']} short passes "
             "per arm (plain corpus, plus one randomized corpus for the family arms; augmentation in every arm "
             "but `control`; `+norm`: running normalization), float, argmax. Corpora: plain = "
             f"{c['plain']}; randomized = the same nights recorded with every family on; "
             f"DREAMS = {c['dreams']}.", "",
             "| arm | plain acc / κ | randomized acc / κ | DREAMS acc / κ | N3 recall plain / rand / DREAMS |",
             "|---|---|---|---|---|"]
    for name, r in summary["rows"].items():
        cells = [f"{_f(r[t]['acc'])} / {_f(r[t]['kappa'])}" for t in TEST_SETS]
        n3 = " / ".join(_f(r[t]["n3_recall"]) for t in TEST_SETS)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {n3} |")
    return lines + ["", "Full tables (per-stage recall, per person): `reports/bench-randomization/`."]


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

def _subjects(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--init", type=Path, default=DEFAULT_INIT,
                        help="float edge model every arm starts from (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="corpora folder, reused when present with the same settings (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder (default: %(default)s)")
    parser.add_argument("--split", type=Path, default=DEFAULT_SPLIT,
                        help="model.json whose \"split\" gives the train and test subjects (default: %(default)s)")
    parser.add_argument("--train-subjects", default=None, help="comma-separated, e.g. SC401,SC402 (overrides --split)")
    parser.add_argument("--test-subjects", default=None, help="comma-separated, e.g. SC400 (overrides --split)")
    parser.add_argument("--nights", type=int, default=1, help="nights per subject, 1 or 2 (default 1)")
    parser.add_argument("--night-minutes", type=int, default=None,
                        help="crop each night to M minutes around sleep onset (default: full nights)")
    parser.add_argument("--arms", default=None, help=f"comma-separated subset of: {', '.join(ARMS)} (default: all)")
    parser.add_argument("--passes", type=int, default=4, help="fine-tuning passes of half a sweep (default 4)")
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default 5e-4)")
    parser.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="corpus and training seed (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="processes generating nights (default 2)")
    parser.add_argument("--dreams", type=Path, default=None, help="DREAMS excerpts folder (default: ../shared)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    r = bench_randomization(
        args.out, init=args.init, work=args.work, split_path=args.split,
        train_subjects=_subjects(args.train_subjects), test_subjects=_subjects(args.test_subjects),
        nights=args.nights, night_minutes=args.night_minutes, arms=parse_arms(args.arms), passes=args.passes,
        lr=args.lr, batch=args.batch, seed=args.seed, workers=args.workers, dreams=args.dreams,
        progress=not args.quiet,
        log=None if args.quiet else (lambda m: print(f"bench randomization: {m}", file=sys.stderr)))
    print(format_markdown(r))
    print(f"wrote {args.out}")
    return 0

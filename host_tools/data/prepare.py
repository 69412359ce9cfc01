"""``sleepedge data prepare``: PSG + hypnogram pairs (EDF, BDF, BrainVision, FIF; EDF+ or text
hypnograms, see :mod:`host_tools.data.recordings`) -> a per-night epoch cache at 100 Hz.

The cache layout is fixed by docs/architecture.md ("Data"):

- ``out/nights/<ID>.npz``: ``x_raw`` int16 (n, 3000) device samples, ``x_filt`` float32 (n, 3000)
  (``filters.filter_device`` of the whole recording, then cut), ``y`` int8 class index into
  ``STAGES``, ``epoch_index`` int32 epoch number from the PSG start, and scalars ``subject``,
  ``night``, ``fs`` (always 100), ``fs_in`` (the file's rate), ``channel`` (as the file names it),
  ``domain``.
- ``out/index.json``: version, channel, fs, wake margin, one entry per night, subject-wise folds.

Epoch ``k`` is samples ``[3000k, 3000k + 3000)`` from the PSG start, the same numbering the device
uses. Its label is the hypnogram annotation covering the epoch's midpoint (real Sleep-EDF
annotations are whole multiples of 30 s from the start, so this is the annotation covering the
whole epoch). R&K stages map to AASM with ``constants.RK_TO_AASM``; ``M`` / ``?`` / unscored
epochs are dropped and counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

INDEX_VERSION = 1
#: Annotation text of the "unscored" R&K stage. Sleep-EDF pads hypnograms to 24 h with it, so
#: it routinely runs past the end of the PSG and must be tolerated there.
UNKNOWN_STAGE = "Sleep stage ?"
#: Counted in ``dropped`` for epochs that no stage annotation covers.
UNSCORED = "unscored"
#: Scored annotations may end at most this far past the signal's end: less than one epoch can
#: only be the final partial epoch, which is never cut anyway.
_END_TOLERANCE_S = float(C.EPOCH_S)
#: Past this overshoot the hypnogram cannot belong to the PSG (wrong pair), not just a short cut.
_MISMATCH_OVERSHOOT_S = 3600.0



# --- labelling -----------------------------------------------------------------------------

def epoch_labels(
    onsets_s: np.ndarray,
    durations_s: np.ndarray,
    descriptions: list[str] | np.ndarray,
    n_epochs: int,
) -> tuple[np.ndarray, list[str | None]]:
    """Per-epoch annotation text for epochs ``0 .. n_epochs-1``.

    Parameters
    ----------
    onsets_s, durations_s, descriptions
        Hypnogram annotations, onsets in seconds from the PSG start.
    n_epochs
        Number of whole epochs in the signal.

    Returns
    -------
    label : ndarray of int16, shape (n_epochs,)
        AASM class index (0..4) or -1 where the epoch is dropped.
    text : list of (str or None)
        Annotation text covering each epoch (None where no stage annotation covers it).
    """
    mids = np.arange(n_epochs, dtype=np.float64) * C.EPOCH_S + C.EPOCH_S / 2
    text: list[str | None] = [None] * n_epochs
    for onset, duration, desc in zip(onsets_s, durations_s, descriptions, strict=True):
        if desc not in C.RK_TO_AASM or duration <= 0:
            continue  # events (lights off, ...) do not label epochs
        lo = int(np.searchsorted(mids, onset, side="left"))
        hi = int(np.searchsorted(mids, onset + duration, side="left"))
        for k in range(lo, min(hi, n_epochs)):
            text[k] = str(desc)
    label = np.array(
        [-1 if t is None or C.RK_TO_AASM[t] is None else C.RK_TO_AASM[t] for t in text],
        dtype=np.int16,
    )
    return label, text


def trim_wake(label: np.ndarray, wake_margin_min: float) -> tuple[int, int]:
    """Epoch range ``[lo, hi)`` kept: the sleep period (first to last epoch scored N1..REM)
    widened by ``wake_margin_min`` minutes each side. A night without sleep keeps everything."""
    sleep = np.flatnonzero(label >= 1)
    if sleep.size == 0:
        return 0, len(label)
    margin = int(round(wake_margin_min * 60 / C.EPOCH_S))
    return max(0, int(sleep[0]) - margin), min(len(label), int(sleep[-1]) + 1 + margin)


def check_pair(
    psg: Path,
    hyp: Path,
    psg_start: Any,
    hyp_start: Any,
    onsets_s: np.ndarray,
    durations_s: np.ndarray,
    descriptions: list[str],
    signal_s: float,
) -> None:
    """Raise :class:`SleepEdgeError` when the hypnogram does not fit the PSG.

    Checks that both start at the same wall-clock second and that no annotation other than
    ``Sleep stage ?`` extends more than a partial epoch past the end of the signal.
    """
    if psg_start != hyp_start:
        raise SleepEdgeError(
            f"{hyp}: mismatched pair: hypnogram starts {hyp_start:%Y-%m-%d %H:%M:%S} but "
            f"{psg.name} starts {psg_start:%Y-%m-%d %H:%M:%S}"
        )
    from host_tools.data.recordings import Hypnogram, check_fits

    check_fits(Hypnogram(Path(hyp), np.asarray(onsets_s), np.asarray(durations_s), list(descriptions), hyp_start),
               psg, signal_s)


# --- one night -------------------------------------------------------------------------------

#: Generic recording names that say whose night it is: ``alice_n2``, ``bob-night1``.
_GENERIC_NIGHT_RE = re.compile(r"^(?P<subject>.+?)[-_ ]n(?:ight)?(?P<night>\d+)$", re.IGNORECASE)
#: Domain of recordings not named like Sleep-EDF (unless prepare_corpus is given one).
USER_DOMAIN = "user"


def night_id(psg: Path) -> str:
    """``SC4001E0-PSG.edf`` -> ``SC4001E0``; ``excerpt1-PSG.edf`` -> ``excerpt1``."""
    from host_tools.data.recordings import recording_id

    nid = recording_id(psg)
    if not nid:
        raise SleepEdgeError(f"{psg}: cannot name the recording (expected NAME-PSG.<ext>)")
    return nid


def night_meta(nid: str, domain: str | None = None) -> tuple[str, int, str]:
    """``(subject, night, domain)`` of a recording id.

    Sleep-EDF ids: subject = first 5 characters (``SC400``), night = 6th, domain ``sc``/``st``.
    Other ids: ``SUBJECT_nN`` / ``SUBJECT-nightN`` give subject and night; any other name is one
    subject's night 1. ``domain`` overrides the domain (default ``user`` for non-Sleep-EDF ids).
    """
    from host_tools.data.recordings import is_sleep_edf_name

    if is_sleep_edf_name(nid):
        return nid[:5], int(nid[5]), domain or nid[:2].lower()
    m = _GENERIC_NIGHT_RE.match(nid)
    if m:
        return m["subject"], int(m["night"]), domain or USER_DOMAIN
    return nid, 1, domain or USER_DOMAIN


def prepare_night(
    psg: Path, hyp: Path, channel: str, wake_margin_min: float, *, stage_seconds: float = 30,
    codes: str | None = None, domain: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load, check, resample, filter, cut and label one recording.

    Parameters
    ----------
    psg, hyp
        A pair from :func:`host_tools.data.recordings.find_pairs` (any supported format).
    channel
        Channel name or comma-separated alternatives (``Fpz-Cz,C3-A1``).
    wake_margin_min
        Minutes of wake kept around the sleep period.
    stage_seconds, codes
        For text hypnograms: seconds per line and numeric code scheme (``aasm``, ``rk``,
        ``rk-dreams``).
    domain
        Domain recorded in the cache (default: ``sc``/``st`` from Sleep-EDF names, else ``user``).

    Returns
    -------
    arrays : dict
        The ``.npz`` content (see module docstring).
    entry : dict
        The night's ``index.json`` entry (without ``file``).
    """
    from host_tools.data import filters, recordings

    nid = night_id(psg)
    signal, fs_in, psg_start, matched = recordings.read_eeg(psg, channel)
    hypno = recordings.read_hypnogram(hyp, stage_seconds, codes)
    # Text hypnograms carry no clock: they start with the signal.
    hyp_start = hypno.start if hypno.start is not None and psg_start is not None else psg_start
    check_pair(psg, hyp, psg_start, hyp_start, hypno.onsets, hypno.durations, hypno.descriptions,
               len(signal) / C.FS_HZ)

    n_epochs = len(signal) // C.EPOCH_SAMPLES
    label, text = epoch_labels(hypno.onsets, hypno.durations, hypno.descriptions, n_epochs)
    lo, hi = trim_wake(label, wake_margin_min)
    window = np.arange(lo, hi)
    keep = window[label[window] >= 0]
    dropped = Counter(text[k] if text[k] is not None else UNSCORED for k in window if label[k] < 0)

    # Filter the whole recording from its first sample, exactly as the streaming device does,
    # and only then cut epochs, so x_filt carries the filter state of everything before it.
    used = n_epochs * C.EPOCH_SAMPLES
    raw_q = filters.to_device_samples(signal[:used])
    filt = filters.filter_device(signal[:used])
    x_raw = raw_q.reshape(n_epochs, C.EPOCH_SAMPLES)[keep]
    x_filt = filt.reshape(n_epochs, C.EPOCH_SAMPLES)[keep]
    y = label[keep].astype(np.int8)

    subject, night, domain = night_meta(nid, domain)
    arrays = {
        "x_raw": np.ascontiguousarray(x_raw, dtype=np.int16),
        "x_filt": np.ascontiguousarray(x_filt, dtype=np.float32),
        "y": y,
        "epoch_index": keep.astype(np.int32),
        "subject": np.array(subject),
        "night": np.array(night),
        "fs": np.array(C.FS_HZ),
        "fs_in": np.array(fs_in),
        "channel": np.array(matched),
        "domain": np.array(domain),
    }
    entry = {
        "id": nid,
        "subject": subject,
        "night": night,
        "domain": domain,
        "n_epochs": int(len(keep)),
        "stage_counts": {s: int(np.sum(y == i)) for i, s in enumerate(C.STAGES)},
        "dropped": dict(sorted(dropped.items())),
        "psg": str(psg.resolve()),
        "hypnogram": str(hyp.resolve()),
        "channel": matched,
        "fs_in": fs_in,
    }
    return arrays, entry


# --- folds -----------------------------------------------------------------------------------

def make_folds(subjects: list[str], folds: int, seed: int) -> list[list[str]]:
    """Shuffle the distinct subjects with ``seed`` and deal them into ``min(folds, n)`` folds.

    The result depends only on the set of subjects, ``folds`` and ``seed``.
    """
    if folds < 1:
        raise SleepEdgeError(f"--folds must be at least 1, got {folds}")
    uniq = sorted(set(subjects))
    order = np.random.default_rng(seed).permutation(len(uniq))
    k = max(1, min(folds, len(uniq)))
    return [sorted(uniq[i] for i in order[f::k]) for f in range(k)]


def subject_folds(index: dict[str, Any]) -> list[tuple[list[str], list[str]]]:
    """``(train_subjects, test_subjects)`` per fold of a cache index; a subject (both its nights)
    is always entirely on one side."""
    folds = index["folds"]
    out = []
    for i, test in enumerate(folds):
        train = sorted(s for j, f in enumerate(folds) if j != i for s in f)
        out.append((train, sorted(test)))
    return out


# --- the cache -------------------------------------------------------------------------------

def prepare_corpus(
    in_dir: str | Path,
    out_dir: str | Path,
    channel: str = "Fpz-Cz",
    wake_margin_min: float = 30,
    folds: int = 5,
    seed: int = 0,
    *,
    stage_seconds: float = 30,
    codes: str | None = None,
    domain: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Read every PSG/hypnogram pair under ``in_dir`` and write the cache to ``out_dir``.

    Parameters
    ----------
    in_dir
        Folder with ``NAME-PSG.<edf|bdf|vhdr|fif>`` and their hypnograms (searched recursively,
        pairs in the same folder; see :func:`host_tools.data.recordings.find_pairs`).
    out_dir
        Cache folder (created). Existing night files are overwritten.
    channel
        EEG channel as the files name it, or comma-separated alternatives tried in order
        (``Fpz-Cz,C3-A1,Cz-A1``; case-insensitive, ``EEG `` prefix optional).
    wake_margin_min
        Minutes of wake kept before the first and after the last sleep epoch.
    folds, seed
        Subject-wise folds (fewer when there are fewer subjects), shuffled by ``seed``.
    stage_seconds, codes
        Text hypnograms: seconds per line (30, 20, 5, ...) and numeric code scheme.
    domain
        Domain written for every night (default ``sc``/``st`` from Sleep-EDF names, else ``user``).
    progress
        Show a per-night progress bar on stderr.

    Returns
    -------
    dict
        The index written to ``out_dir/index.json``.
    """
    from tqdm import tqdm

    from host_tools.data import recordings

    if wake_margin_min < 0:
        raise SleepEdgeError(f"--wake-margin-min must be >= 0, got {wake_margin_min}")
    if folds < 1:
        raise SleepEdgeError(f"--folds must be at least 1, got {folds}")
    if not stage_seconds > 0:
        raise SleepEdgeError(f"--stage-seconds must be positive, got {stage_seconds}")
    recordings.parse_channels(channel)
    pairs = recordings.find_pairs(in_dir)
    out = Path(out_dir)
    (out / "nights").mkdir(parents=True, exist_ok=True)
    entries = []
    bar = tqdm(pairs, desc="prepare", unit="night", disable=not progress, file=sys.stderr)
    for psg, hyp in bar:
        bar.set_postfix_str(psg.name)
        arrays, entry = prepare_night(psg, hyp, channel, wake_margin_min, stage_seconds=stage_seconds,
                                      codes=codes, domain=domain)
        rel = f"nights/{entry['id']}.npz"
        tmp = out / f"{rel}.tmp.npz"
        np.savez(tmp, **arrays)  # uncompressed: training reads these repeatedly
        os.replace(tmp, out / rel)
        entries.append({"id": entry["id"], "file": rel, **{k: v for k, v in entry.items() if k != "id"}})
    index = {
        "version": INDEX_VERSION,
        "channel": ",".join(sorted({e["channel"] for e in entries})) or channel,
        "fs": C.FS_HZ,
        "wake_margin_min": wake_margin_min,
        "nights": entries,
        "folds": make_folds([e["subject"] for e in entries], folds, seed),
    }
    tmp = out / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    os.replace(tmp, out / "index.json")
    return index


def load_index(cache: str | Path) -> dict[str, Any]:
    """Read ``cache/index.json`` (raises :class:`SleepEdgeError` if absent or foreign)."""
    path = Path(cache) / "index.json"
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise SleepEdgeError(f"{path}: no cache index here; run `sleepedge data prepare` first") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SleepEdgeError(f"{path}: unreadable cache index ({exc})") from exc
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION:
        raise SleepEdgeError(
            f"{path}: cache index version {index.get('version') if isinstance(index, dict) else '?'} "
            f"is not {INDEX_VERSION}; re-run `sleepedge data prepare`"
        )
    return index


def load_night(cache: str | Path, night_id: str) -> dict[str, np.ndarray]:
    """All arrays of one night (scalars as 0-d arrays)."""
    path = Path(cache) / "nights" / f"{night_id}.npz"
    if not path.is_file():
        raise SleepEdgeError(f"{path}: night {night_id!r} is not in the cache")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_epochs(
    cache: str | Path, night_ids: list[str] | None = None, filtered: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stack epochs of several nights.

    Parameters
    ----------
    cache
        Cache folder.
    night_ids
        Nights to load, in this order (default: all nights of the index).
    filtered
        ``x_filt`` (True) or the raw device samples converted to float32 microvolts (False).

    Returns
    -------
    X : float32 (N, 3000)
    y : int64 (N,)
    subjects : str ndarray (N,)
    night_ids : str ndarray (N,)
    """
    from host_tools.data.filters import from_device_samples

    if night_ids is None:
        night_ids = [e["id"] for e in load_index(cache)["nights"]]
    xs, ys, subs, ids = [], [], [], []
    for nid in night_ids:
        d = load_night(cache, nid)
        x = d["x_filt"].astype(np.float32, copy=False) if filtered else from_device_samples(d["x_raw"])
        xs.append(x)
        ys.append(d["y"].astype(np.int64))
        subs.append(np.full(len(x), str(d["subject"])))
        ids.append(np.full(len(x), nid))
    if not xs:
        return (
            np.zeros((0, C.EPOCH_SAMPLES), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, dtype=str),
            np.zeros(0, dtype=str),
        )
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(subs), np.concatenate(ids)


def load_epoch_numbers(cache: str | Path, night_ids: list[str]) -> np.ndarray:
    """``epoch_index`` of the given nights, stacked in the order :func:`load_epochs` uses."""
    parts = [load_night(cache, nid)["epoch_index"].astype(np.int64) for nid in night_ids]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


# --- CLI -------------------------------------------------------------------------------------

def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sleepedge data prepare``."""
    parser.add_argument("--in", dest="in_dir", required=True, type=Path,
                        help="folder with NAME-PSG.edf|.bdf|.vhdr|.fif and NAME-Hypnogram.edf|.csv|.txt "
                             "(or Sleep-EDF names; searched recursively)")
    parser.add_argument("--out", dest="out_dir", required=True, type=Path, help="cache folder to write")
    add_recording_arguments(parser)
    parser.add_argument("--domain", default=None,
                        help="domain label for every night (default: sc/st for Sleep-EDF names, else user)")
    parser.add_argument("--wake-margin-min", type=float, default=30.0,
                        help="minutes of wake kept around the sleep period (default 30)")
    parser.add_argument("--folds", type=int, default=5, help="subject-wise folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="fold shuffle seed (default 0)")


def add_recording_arguments(parser: argparse.ArgumentParser, *, channel_default: str = "Fpz-Cz") -> None:
    """``--channel``, ``--stage-seconds`` and ``--codes``: how to read a recording and its hypnogram
    (shared by ``data prepare``, ``predict``, ``monitor`` and the demo)."""
    from host_tools.data.recordings import STAGE_CODES

    parser.add_argument("--channel", default=channel_default,
                        help="EEG channel as the file names it; comma-separated alternatives tried in order, "
                             "case-insensitive, 'EEG ' prefix optional (default: %(default)s)")
    parser.add_argument("--stage-seconds", type=float, default=30.0,
                        help="text hypnograms: seconds per line, e.g. 30 (default), 20, 5; "
                             "shorter stages are reduced to 30-s epochs by majority")
    parser.add_argument("--codes", choices=tuple(STAGE_CODES), default=None,
                        help="text hypnograms with numeric stages: aasm (0 W,1 N1,2 N2,3 N3,4 REM), "
                             "rk (0 W,1-4 S1-S4,5 REM) or rk-dreams (5 W,4 REM,3 S1,2 S2,1 S3,0 S4)")


def run(args: argparse.Namespace) -> int:
    """Build the cache and print a one-line summary per stage."""
    index = prepare_corpus(
        args.in_dir, args.out_dir, channel=args.channel, wake_margin_min=args.wake_margin_min,
        folds=args.folds, seed=args.seed, stage_seconds=args.stage_seconds, codes=args.codes,
        domain=args.domain,
    )
    totals = Counter()
    dropped = Counter()
    for e in index["nights"]:
        totals.update(e["stage_counts"])
        dropped.update(e["dropped"])
    n_subj = len({e["subject"] for e in index["nights"]})
    print(f"{len(index['nights'])} nights, {n_subj} subjects, {sum(totals.values())} epochs "
          f"-> {args.out_dir}/index.json ({len(index['folds'])} folds)")
    print("stages: " + ", ".join(f"{s} {totals[s]}" for s in C.STAGES)
          + ("; dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) if dropped else ""))
    if len(index["folds"]) < args.folds:
        print(f"note: only {n_subj} subjects, so {len(index['folds'])} folds instead of {args.folds}",
              file=sys.stderr)
    return 0

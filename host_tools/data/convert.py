"""``sleepedge data convert``: plain-text signals + a stage-per-line hypnogram -> an EDF pair.

Input, as the DREAMS databases distribute it (and as many devices export):

- signal files with one sample per line in microvolts, optionally a first line naming the
  channel in brackets (``[C3-A1]``); the sample rate is given with ``--fs``;
- a hypnogram with one stage per line (``--stage-seconds`` each), names or numeric codes
  (``--codes``, see :func:`host_tools.data.recordings.read_text_stages`).

Output: ``OUT/NAME-PSG.edf`` (16-bit EDF, the channels labelled ``EEG <name>``, whole 30-s data
records) and ``OUT/NAME-Hypnogram.edf`` (EDF+ annotations, Sleep-EDF vocabulary, 30-s epochs
reduced by majority), a pair every reader of the project accepts. ``--dreams DIR`` converts the
DREAMS Sleep Spindles excerpts with their known sample rates.

The DREAMS licence forbids distributing modified data: convert into a temporary folder, never
into the repository.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

#: Default recording start written into converted files (text files carry no clock).
DEFAULT_START = dt.datetime(2000, 1, 1, 0, 0, 0)
#: DREAMS Sleep Spindles excerpts: sample rate (Hz) per excerpt number. 1-4 are confirmed by the
#: files in ../shared/data/dreams-spindles (their README); 5-8 are the database's 200 Hz.
DREAMS_RATES: dict[int, int] = {1: 100, 2: 200, 3: 50, 4: 200, 5: 200, 6: 200, 7: 200, 8: 200}
#: The DREAMS hypnograms: one R&K code per 5 s (5 W, 4 REM, 3 S1, 2 S2, 1 S3, 0 S4).
DREAMS_STAGE_SECONDS = 5
DREAMS_CODES = "rk-dreams"


def read_text_signal(path: str | Path) -> tuple[np.ndarray, str | None]:
    """Samples (float64, microvolts) and the bracketed channel name of a one-sample-per-line file.

    Raises :class:`SleepEdgeError` naming the file and line for anything that is not a number.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").split("\n")
    except OSError as exc:
        raise SleepEdgeError(f"{path}: cannot read ({exc.strerror})") from exc
    name = None
    first = 0
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first < len(lines) and (m := re.fullmatch(r"\s*\[(.*)\]\s*", lines[first])):
        name, first = m[1].strip() or None, first + 1
    body = [s for s in (ln.strip() for ln in lines[first:]) if s]
    try:
        x = np.array(body, dtype=np.float64)
    except ValueError:
        for n, ln in enumerate(lines[first:], first + 1):
            try:
                float(ln) if ln.strip() else None
            except ValueError:
                raise SleepEdgeError(f"{path}: line {n} is not a sample value: {ln.strip()[:40]!r}") from None
        raise
    if x.size == 0:
        raise SleepEdgeError(f"{path}: no samples in this file")
    if not np.all(np.isfinite(x)):
        raise SleepEdgeError(f"{path}: NaN or infinite sample values")
    return x, name


def _edf_label(name: str) -> str:
    """``C3-A1`` -> ``EEG C3-A1`` (Sleep-EDF style); an existing ``EEG`` prefix is kept."""
    return name if name.lower().startswith(("eeg ", "eog ", "emg ")) else f"EEG {name}"


def convert_pair(
    signals: Sequence[str | Path],
    fs: float,
    out_dir: str | Path,
    *,
    hypnogram: str | Path | None = None,
    name: str | None = None,
    channel_names: Sequence[str] | None = None,
    stage_seconds: float = 30,
    codes: str | None = None,
    start: dt.datetime = DEFAULT_START,
) -> tuple[Path, Path | None]:
    """Write ``NAME-PSG.edf`` (and ``NAME-Hypnogram.edf``) from text files.

    Parameters
    ----------
    signals
        One file per channel (one sample per line, uV); all of the same length.
    fs
        Their sample rate (Hz); 30 * fs must be a whole number of samples.
    out_dir
        Folder to write into (created).
    hypnogram
        Stage-per-line file, or None for a PSG alone.
    name
        Recording name (default: the first signal file's stem).
    channel_names
        Channel names, one per signal (default: the file's ``[name]`` header, else its stem).
    stage_seconds, codes
        Hypnogram stage length and numeric code scheme.
    start
        Recording start written into both files.

    Returns
    -------
    (psg, hypnogram or None)
    """
    from host_tools.data import edf_io, recordings

    if not signals:
        raise SleepEdgeError("data convert: give at least one --signal file")
    if not fs > 0 or abs(fs * C.EPOCH_S - round(fs * C.EPOCH_S)) > 1e-9:
        raise SleepEdgeError(f"--fs {fs}: must be positive with a whole number of samples per 30 s")
    recordings.resample_ratio(fs, "--fs")  # refuse < 50 Hz now rather than at prepare time
    name = name or Path(signals[0]).stem
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise SleepEdgeError(f"--name {name!r}: use letters, digits, '_', '-', '.', '+' only")
    if channel_names is not None and len(channel_names) != len(signals):
        raise SleepEdgeError(f"--channel-name: {len(channel_names)} names for {len(signals)} signals")
    chans: dict[str, np.ndarray] = {}
    for i, path in enumerate(signals):
        x, header = read_text_signal(path)
        label = _edf_label(channel_names[i] if channel_names else header or Path(path).stem)
        if label in chans:
            raise SleepEdgeError(f"{path}: channel {label!r} given twice")
        if chans and len(x) != len(next(iter(chans.values()))):
            raise SleepEdgeError(f"{path}: {len(x)} samples, but {signals[0]} has {len(next(iter(chans.values())))}")
        chans[label] = x
    n = len(next(iter(chans.values())))
    per_epoch = int(round(fs * C.EPOCH_S))
    whole = n // per_epoch * per_epoch
    if whole == 0:
        raise SleepEdgeError(f"{signals[0]}: {n} samples at {fs:g} Hz is shorter than one 30-s epoch")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hyp_out = None
    if hypnogram is not None:
        hyp = recordings.read_hypnogram(hypnogram, stage_seconds, codes)
        recordings.check_fits(hyp, signals[0], n / fs)
        hyp_out = out / f"{name}-Hypnogram.edf"
        onsets, durations, descs = edf_io.stage_runs(list(hyp.descriptions))
        edf_io.write_hypnogram(hyp_out, onsets, durations, descs, start, patient=name)
    # Whole 30-s data records only: EDF writers would zero-pad a partial last record into signal.
    psg_out = out / f"{name}-PSG.edf"
    edf_io.write_psg(psg_out, {k: v[:whole] for k, v in chans.items()}, int(round(fs)) if float(fs).is_integer() else fs,
                     start, patient=name)
    return psg_out, hyp_out


def parse_excerpts(spec: str | None) -> list[int]:
    """``"1-4"`` / ``"1,3"`` -> excerpt numbers (default: those with a file in the folder)."""
    from host_tools.data.fetch import parse_subjects

    chosen = parse_subjects(spec)
    return sorted(chosen) if chosen is not None else []


def convert_dreams(src: str | Path, out_dir: str | Path, excerpts: Sequence[int] | None = None,
                   start: dt.datetime = DEFAULT_START) -> list[tuple[Path, Path]]:
    """Convert DREAMS Sleep Spindles excerpts (``excerptN.txt`` + ``Hypnogram_excerptN.txt``).

    Writes ``OUT/excerptN-PSG.edf`` (the excerpt's channel, ``EEG C3-A1`` or ``EEG CZ-A1``, at
    its own rate, :data:`DREAMS_RATES`) and ``OUT/excerptN-Hypnogram.edf`` (5-s R&K-DREAMS codes
    reduced to 30-s epochs by majority). ``excerpts`` default: every excerpt present in ``src``.
    """
    src = Path(src)
    if not src.is_dir():
        raise SleepEdgeError(f"--dreams {src}: folder not found")
    if not excerpts:
        excerpts = sorted(int(m[1]) for p in src.glob("excerpt*.txt") if (m := re.fullmatch(r"excerpt(\d+)\.txt", p.name)))
    if not excerpts:
        raise SleepEdgeError(f"--dreams {src}: no excerptN.txt files here")
    pairs = []
    for k in excerpts:
        if k not in DREAMS_RATES:
            raise SleepEdgeError(f"--dreams {src}: no excerpt {k} in the DREAMS Sleep Spindles database (1-8)")
        sig, hyp = src / f"excerpt{k}.txt", src / f"Hypnogram_excerpt{k}.txt"
        for f in (sig, hyp):
            if not f.is_file():
                raise SleepEdgeError(f"{f}: file not found")
        psg, hyp_out = convert_pair([sig], DREAMS_RATES[k], out_dir, hypnogram=hyp, name=f"excerpt{k}",
                                    stage_seconds=DREAMS_STAGE_SECONDS, codes=DREAMS_CODES, start=start)
        assert hyp_out is not None
        pairs.append((psg, hyp_out))
    return pairs


# --- CLI -------------------------------------------------------------------------------------------

def _start(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--start {text!r}: use ISO format, e.g. 2000-01-01T22:30:00") from None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sleepedge data convert``."""
    from host_tools.data.recordings import STAGE_CODES

    parser.add_argument("--signal", action="append", type=Path, default=[],
                        help="text file, one sample (uV) per line, optional [channel] first line; repeat per channel")
    parser.add_argument("--fs", type=float, default=None, help="sample rate of the signal files in Hz (>= 50)")
    parser.add_argument("--hypnogram", type=Path, default=None, help="text hypnogram, one stage per line")
    parser.add_argument("--stage-seconds", type=float, default=30.0,
                        help="seconds per hypnogram line: 30 (default), 20, 5, ...")
    parser.add_argument("--codes", choices=tuple(STAGE_CODES), default=None,
                        help="numeric stage codes: aasm (0 W..4 REM), rk (0 W,1-4,5 REM), rk-dreams (5 W,4 REM,3 S1,2 S2,1 S3,0 S4)")
    parser.add_argument("--name", default=None, help="recording NAME of NAME-PSG.edf (default: the signal file's stem)")
    parser.add_argument("--channel-name", action="append", default=None,
                        help="channel name per --signal (default: its [name] header)")
    parser.add_argument("--start", type=_start, default=DEFAULT_START,
                        help=f"recording start written to the EDF files (default {DEFAULT_START.isoformat()})")
    parser.add_argument("--dreams", type=Path, default=None,
                        help="convert the DREAMS Sleep Spindles excerpts in this folder (rates and codes known)")
    parser.add_argument("--excerpts", default=None, help="with --dreams: excerpt numbers, e.g. 1-4 (default: all present)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder (a temporary one for DREAMS: its licence forbids redistributing derived files)")


def run(args: argparse.Namespace) -> int:
    """Convert and print the written pair(s)."""
    if args.dreams is not None:
        if args.signal or args.hypnogram:
            raise SleepEdgeError("--dreams converts a whole folder: leave out --signal/--hypnogram")
        pairs = convert_dreams(args.dreams, args.out, parse_excerpts(args.excerpts), args.start)
        for psg, hyp in pairs:
            print(f"wrote {psg} + {hyp.name}")
        print("DREAMS data: CC BY-NC-ND licence; do not commit or redistribute the converted files")
        return 0
    if not args.signal or args.fs is None:
        raise SleepEdgeError("data convert: give --signal FILE and --fs HZ (or --dreams DIR)")
    psg, hyp = convert_pair(args.signal, args.fs, args.out, hypnogram=args.hypnogram, name=args.name,
                            channel_names=args.channel_name, stage_seconds=args.stage_seconds, codes=args.codes,
                            start=args.start)
    print(f"wrote {psg}" + (f" + {hyp.name}" if hyp else ""))
    return 0

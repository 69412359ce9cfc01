"""Recordings in: any PSG format MNE reads, its hypnogram, channel matching, resampling to 100 Hz.

What users' devices write reaches ``data prepare``, ``predict``, ``monitor`` and the demo through
this module:

- **Formats** (:data:`PSG_FORMATS`): EDF/EDF+ (``.edf``), BDF (``.bdf``), BrainVision (``.vhdr``
  with its ``.vmrk`` / ``.eeg``), FIF (``.fif``, ``.fif.gz``), read with MNE.
- **Pairs** (:func:`find_pairs`): Sleep-EDF's own names (``SC4001E0-PSG.edf`` +
  ``SC4001EC-Hypnogram.edf``: same first 7 characters) or, generically, ``NAME-PSG.<ext>`` with
  ``NAME-Hypnogram.edf`` (EDF+ annotations), ``NAME-Hypnogram.csv`` or ``NAME-Hypnogram.txt`` (one
  stage per line, :func:`read_text_stages`).
- **Channels** (:func:`match_channel`): ``"Fpz-Cz,C3-A1,Cz-A1"`` is a list of alternatives tried in
  order, matched case-insensitively with or without an ``EEG `` prefix.
- **Rates** (:func:`resample_to_device`): anything from :data:`MIN_FS_HZ` up is resampled to the
  device's 100 Hz with ``scipy.signal.resample_poly`` (a zero-phase polyphase FIR low-pass,
  Kaiser window, beta 5, cut-off at the lower of the two Nyquist frequencies). 100 Hz recordings
  pass through untouched.

Stages are returned in the Sleep-EDF vocabulary (``Sleep stage W/1/2/3/4/R/M/?``) so that the
labelling in :mod:`host_tools.data.prepare` (``constants.RK_TO_AASM``) serves every source.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

#: File suffix (lower case) -> format name, for PSG files.
PSG_FORMATS: dict[str, str] = {
    ".edf": "EDF", ".bdf": "BDF", ".vhdr": "BrainVision", ".fif": "FIF", ".fif.gz": "FIF",
}
#: Hypnogram suffixes: EDF+ annotations or one stage per line.
HYPNOGRAM_SUFFIXES: tuple[str, ...] = (".edf", ".csv", ".txt")
#: Lowest input sample rate accepted: below it the 0.3-30 Hz band the device filters is not there.
MIN_FS_HZ: float = 50.0
#: Stage lengths (s) a text hypnogram may use; shorter than 30 s is reduced to 30-s epochs.
STAGE_SECONDS_CHOICES: tuple[int, ...] = (30, 20, 15, 10, 5)
#: Kaiser window of the resampling FIR (scipy's default for resample_poly), stated in docs/data.md.
RESAMPLE_WINDOW: tuple[str, float] = ("kaiser", 5.0)

#: Files that sit beside recordings and are never recordings themselves.
_IGNORED_SUFFIXES = (".part", ".bad", ".tmp", ".vmrk", ".eeg", ".md5", ".sha256")
_SLEEP_EDF_RE = re.compile(r"^(?P<key>S[CT]\d{4}[A-Z0-9])(?P<letter>[A-Z0-9])$", re.IGNORECASE)

# --- stage vocabulary ----------------------------------------------------------------------------

#: Sleep-EDF annotation text per stage key (R&K, with N3 written as stage 3).
STAGE_TEXT: dict[str, str] = {
    "W": "Sleep stage W", "1": "Sleep stage 1", "2": "Sleep stage 2", "3": "Sleep stage 3",
    "4": "Sleep stage 4", "R": "Sleep stage R", "M": "Sleep stage M", "?": "Sleep stage ?",
}
UNSCORED_TEXT = STAGE_TEXT["?"]

#: Stage names (normalized: lower case, single spaces) -> stage key. AASM and R&K spellings.
STAGE_NAMES: dict[str, str] = {
    **{n: "W" for n in ("w", "wake", "awake", "stage w", "sleep stage w", "stage 0", "s0")},
    **{n: "1" for n in ("n1", "s1", "stage 1", "sleep stage 1", "stage n1", "sleep stage n1")},
    **{n: "2" for n in ("n2", "s2", "stage 2", "sleep stage 2", "stage n2", "sleep stage n2")},
    **{n: "3" for n in ("n3", "s3", "stage 3", "sleep stage 3", "stage n3", "sleep stage n3", "sws")},
    **{n: "4" for n in ("s4", "n4", "stage 4", "sleep stage 4", "sleep stage n4")},
    **{n: "R" for n in ("r", "rem", "stage r", "stage rem", "sleep stage r", "sleep stage rem")},
    **{n: "M" for n in ("m", "mt", "movement", "movement time", "sleep stage m", "stage m")},
    **{n: "?" for n in ("?", "u", "unscored", "unknown", "sleep stage ?", "stage ?", "a",
                        "artifact", "artefact", "unk", "nan", "-")},
}

#: Numeric stage codes per scheme (``--codes``); negative codes are unscored/movement in all.
STAGE_CODES: dict[str, dict[int, str]] = {
    "aasm": {0: "W", 1: "1", 2: "2", 3: "3", 4: "R"},
    "rk": {0: "W", 1: "1", 2: "2", 3: "3", 4: "4", 5: "R"},
    "rk-dreams": {5: "W", 4: "R", 3: "1", 2: "2", 1: "3", 0: "4"},
}
#: Header words a text hypnogram's first line may hold instead of a stage.
_HEADER_WORDS = {"stage", "stages", "sleep stage", "sleep_stage", "label", "labels", "hypnogram",
                 "epoch,stage", "epoch stage", "score", "scores"}
#: AASM class of a stage key (None: no class, the epoch is dropped).
_KEY_CLASS: dict[str, int | None] = {k: C.RK_TO_AASM[t] for k, t in STAGE_TEXT.items()}


# --- formats and channels ----------------------------------------------------------------------

def psg_suffix(path: str | Path) -> str | None:
    """The PSG format suffix of ``path`` (``.edf``, ``.fif.gz``, ...) or None if not supported."""
    name = Path(path).name.lower()
    return next((s for s in sorted(PSG_FORMATS, key=len, reverse=True) if name.endswith(s)), None)


def check_psg_format(path: str | Path) -> str:
    """The suffix of a supported PSG file; raises :class:`SleepEdgeError` naming the file if not."""
    suffix = psg_suffix(path)
    if suffix is None:
        kinds = ", ".join(f"{v} ({k})" for k, v in PSG_FORMATS.items() if k != ".fif.gz")
        raise SleepEdgeError(f"{path}: unknown recording format (readable: {kinds})")
    return suffix


def parse_channels(spec: str | Sequence[str]) -> list[str]:
    """``"Fpz-Cz, C3-A1"`` or ``["Fpz-Cz", "C3-A1"]`` -> ``["Fpz-Cz", "C3-A1"]`` (order kept)."""
    parts = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in str(s).split(",")]
    names = [p.strip() for p in parts if p.strip()]
    if not names:
        raise SleepEdgeError(f"--channel {spec!r}: no channel name given")
    return names


def _channel_key(name: str) -> str:
    """Case-insensitive channel key without an ``EEG`` prefix (``EEG Fpz-Cz`` == ``fpz-cz``)."""
    key = " ".join(name.strip().lower().split())
    return key[4:].strip() if key.startswith("eeg ") else key


def match_channel(available: Sequence[str], wanted: str | Sequence[str]) -> str | None:
    """The first of the ``wanted`` alternatives present in ``available``, as the file spells it.

    Each alternative matches case-insensitively, with or without an ``EEG `` prefix; the aliases
    of :data:`host_tools.data.edf_io.CHANNEL_ALIASES` (``EOG`` -> ``EOG horizontal``) also apply.
    An exact (case-insensitive) spelling wins over a prefix-insensitive one.
    """
    from host_tools.data.edf_io import canonical_channel

    for want in parse_channels(wanted):
        for candidate in (want, canonical_channel(want)):
            exact = [c for c in available if c.strip().lower() == candidate.strip().lower()]
            if exact:
                return exact[0]
        loose = [c for c in available if _channel_key(c) == _channel_key(want)]
        if loose:
            return loose[0]
    return None


# --- reading signals ---------------------------------------------------------------------------

def _open_raw(path: Path, suffix: str, include: list[str] | None = None) -> Any:
    """MNE Raw of ``path`` (not preloaded); ``include`` limits EDF/BDF to those channels, which
    keeps MNE from resampling a channel to another channel's rate."""
    import mne

    kw: dict[str, Any] = {"preload": False, "verbose": "error"}
    if suffix == ".edf":
        return mne.io.read_raw_edf(path, include=include, **kw)
    if suffix == ".bdf":
        return mne.io.read_raw_bdf(path, include=include, **kw)
    if suffix == ".vhdr":
        return mne.io.read_raw_brainvision(path, **kw)
    return mne.io.read_raw_fif(path, **kw)


def _start_of(raw: Any, path: Path, suffix: str) -> dt.datetime | None:
    """Recording start (UTC-aware) from MNE, or the EDF/BDF header; None when the file has none."""
    start = raw.info["meas_date"]
    if start is None and suffix in (".edf", ".bdf"):
        from host_tools.data.edf_io import read_header_start

        start = read_header_start(path)
    return start


def read_channel(path: str | Path, channels: str | Sequence[str]) -> tuple[np.ndarray, float, dt.datetime | None, str]:
    """One EEG channel at its own sample rate, in microvolts.

    Parameters
    ----------
    path
        PSG in any of :data:`PSG_FORMATS`.
    channels
        Channel name or comma-separated alternatives (see :func:`match_channel`).

    Returns
    -------
    signal_uv : float64 ndarray
    fs : float
        The channel's sample rate in Hz.
    start : datetime or None
        Recording start (UTC-aware); None when the file records none (e.g. an anonymized FIF).
    channel : str
        The channel's name as the file spells it.

    Raises
    ------
    SleepEdgeError
        Missing file, unknown format, truncated EDF/BDF, unreadable file, or no matching channel
        (the message lists the file's channels).
    """
    from host_tools.data.edf_io import _check_not_truncated

    path = Path(path)
    if not path.is_file():
        raise SleepEdgeError(f"{path}: recording not found")
    suffix = check_psg_format(path)
    if suffix in (".edf", ".bdf"):
        _check_not_truncated(path, bytes_per_sample=2 if suffix == ".edf" else 3)
    try:
        probe = _open_raw(path, suffix)
    except Exception as exc:  # MNE raises many types for malformed files
        raise SleepEdgeError(f"{path}: cannot read {PSG_FORMATS[suffix]} ({type(exc).__name__}: {exc})") from exc
    name = match_channel(probe.ch_names, channels)
    if name is None:
        raise SleepEdgeError(
            f"{path}: no channel {', '.join(parse_channels(channels))!r}; "
            f"available: {', '.join(probe.ch_names) or 'none'}"
        )
    try:
        raw = _open_raw(path, suffix, include=[name]) if suffix in (".edf", ".bdf") else probe
        data = raw.get_data(picks=[name], units="uV")[0].astype(np.float64, copy=False)
    except Exception as exc:
        raise SleepEdgeError(f"{path}: cannot read channel {name!r} ({type(exc).__name__}: {exc})") from exc
    return data, float(raw.info["sfreq"]), _start_of(raw, path, suffix), name


def resample_ratio(fs_in: float, path: str | Path = "signal") -> tuple[int, int]:
    """``(up, down)`` with ``fs_in * up / down == 100`` Hz exactly; raises for rates below
    :data:`MIN_FS_HZ` or rates that are not a ratio of small integers."""
    if not math.isfinite(fs_in) or fs_in < MIN_FS_HZ:
        raise SleepEdgeError(
            f"{path}: sampled at {fs_in:g} Hz; SleepEdge needs at least {MIN_FS_HZ:g} Hz "
            f"(it resamples to {C.FS_HZ} Hz)"
        )
    ratio = Fraction(C.FS_HZ) / Fraction(round(fs_in, 6)).limit_denominator(1000)
    if abs(float(ratio) * fs_in - C.FS_HZ) > 1e-6 * C.FS_HZ or max(ratio.numerator, ratio.denominator) > 10_000:
        raise SleepEdgeError(f"{path}: sample rate {fs_in!r} Hz cannot be resampled exactly to {C.FS_HZ} Hz")
    return ratio.numerator, ratio.denominator


def resample_to_device(x_uv: np.ndarray, fs_in: float, path: str | Path = "signal") -> np.ndarray:
    """Resample to the device's 100 Hz (float64); 100 Hz input is returned unchanged.

    ``scipy.signal.resample_poly`` with a Kaiser (beta 5) FIR low-pass at the lower Nyquist
    frequency (50 Hz when downsampling), applied forwards over the whole recording with the
    filter's delay removed (zero phase). Sample 0 stays at time 0; the output has
    ``ceil(n * up / down)`` samples.
    """
    from scipy.signal import resample_poly

    up, down = resample_ratio(fs_in, path)
    x = np.asarray(x_uv, dtype=np.float64)
    if up == down:
        return x
    return resample_poly(x, up, down, window=RESAMPLE_WINDOW).astype(np.float64, copy=False)


def read_eeg(path: str | Path, channels: str | Sequence[str] = "Fpz-Cz") -> tuple[np.ndarray, float, dt.datetime | None, str]:
    """One EEG channel resampled to 100 Hz: what the device is streamed.

    Returns
    -------
    signal_uv : float64 ndarray at 100 Hz
    fs_in : float
        The file's sample rate for that channel.
    start : datetime or None
        Recording start (UTC-aware) or None when the file has none.
    channel : str
        The channel's name as the file spells it.
    """
    x, fs, start, name = read_channel(path, channels)
    return resample_to_device(x, fs, path), fs, start, name


# --- hypnograms ----------------------------------------------------------------------------------

@dataclass
class Hypnogram:
    """Stage annotations in the Sleep-EDF vocabulary, onsets in seconds from the recording start.

    ``start`` is the hypnogram's own start time (EDF+) or None (text files: they start with the
    signal). Non-stage EDF+ events (``Lights off``) are kept; they label no epoch.
    """

    path: Path
    onsets: np.ndarray
    durations: np.ndarray
    descriptions: list[str]
    start: dt.datetime | None

    def scored_end_s(self) -> float:
        """End of the last annotation that scores a stage (``Sleep stage ?`` padding excluded)."""
        ends = [o + d for o, d, t in zip(self.onsets, self.durations, self.descriptions, strict=True)
                if C.RK_TO_AASM.get(t, None) is not None or t in ("Sleep stage M", "Movement time")]
        return float(max(ends, default=0.0))


def _stage_key(token: str, codes: str | None, where: str) -> str:
    """Stage key of one token: a name (any scheme) or a numeric code of scheme ``codes``."""
    norm = " ".join(token.strip().lower().replace("_", " ").split())
    if norm in STAGE_NAMES:
        return STAGE_NAMES[norm]
    try:
        value = float(norm)
    except ValueError:
        raise SleepEdgeError(f"{where}: unknown stage {token.strip()!r} (use W/N1/N2/N3/REM, R&K names, "
                             f"or numeric codes with --codes)") from None
    if not value.is_integer():
        raise SleepEdgeError(f"{where}: unknown stage code {token.strip()!r}")
    if codes is None:
        raise SleepEdgeError(f"{where}: numeric stage code {token.strip()!r}: say which scheme with "
                             f"--codes ({', '.join(STAGE_CODES)})")
    if value < 0:
        return "?"  # -1.. -3 in DREAMS / YASA style files: unscored, artefact, movement
    key = STAGE_CODES[codes].get(int(value))
    if key is None:
        raise SleepEdgeError(f"{where}: unknown stage code {int(value)} for --codes {codes} "
                             f"(known: {', '.join(str(k) for k in sorted(STAGE_CODES[codes]))})")
    return key


def read_text_stages(path: str | Path, codes: str | None = None) -> list[str]:
    """Stage keys of a stage-per-line text hypnogram (``.txt`` / ``.csv``).

    A first line in brackets (``[Hypnogram]``) or a header word (``stage``) is skipped. A line
    holding several fields (``12,N2`` / ``12;N2`` / tab) contributes its last field. Empty lines
    are ignored. Names of any scheme are accepted; numeric codes need ``codes`` (``aasm``: 0 W,
    1 N1, 2 N2, 3 N3, 4 REM; ``rk``: 0 W, 1-4 S1-S4, 5 REM; ``rk-dreams``: 5 W, 4 REM, 3 S1, 2 S2,
    1 S3, 0 S4); negative codes are unscored.
    """
    path = Path(path)
    if codes is not None and codes not in STAGE_CODES:
        raise SleepEdgeError(f"--codes {codes!r}: choose {', '.join(STAGE_CODES)}")
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise SleepEdgeError(f"{path}: cannot read ({exc.strerror})") from exc
    keys: list[str] = []
    for n, line in enumerate(lines, 1):
        field = re.split(r"[,;\t]", line.strip())[-1].strip().strip('"')
        if not field:
            continue
        if not keys and (field.startswith("[") or line.strip().lower() in _HEADER_WORDS
                         or field.lower() in _HEADER_WORDS):
            continue
        keys.append(_stage_key(field, codes, f"{path}: line {n}"))
    if not keys:
        raise SleepEdgeError(f"{path}: no stages in this hypnogram")
    return keys


def reduce_to_epochs(keys: Sequence[str], stage_seconds: float) -> list[str]:
    """Per-30-s-epoch Sleep-EDF stage texts from stages of ``stage_seconds`` each.

    Each epoch takes the AASM stage covering more than half of it (time-weighted, so 20-s stages
    work too); with no majority it is unscored (``Sleep stage ?``). An N3 epoch keeps the
    R&K stage (3 or 4) most of its N3 time had.
    """
    if stage_seconds <= 0:
        raise SleepEdgeError(f"--stage-seconds {stage_seconds}: must be positive")
    total = len(keys) * stage_seconds
    n_epochs = int(math.ceil(total / C.EPOCH_S - 1e-9))
    out: list[str] = []
    for k in range(n_epochs):
        lo, hi = k * C.EPOCH_S, (k + 1) * C.EPOCH_S
        by_class: Counter = Counter()
        by_key: Counter = Counter()
        for i in range(int(lo // stage_seconds), min(len(keys), int(math.ceil(hi / stage_seconds)))):
            overlap = min(hi, (i + 1) * stage_seconds) - max(lo, i * stage_seconds)
            if overlap > 0:
                key = keys[i]
                cls = _KEY_CLASS[key]
                by_class[cls if cls is not None else key] += overlap
                by_key[key] += overlap
        winner, seconds = by_class.most_common(1)[0] if by_class else (None, 0.0)
        if winner is None or seconds <= C.EPOCH_S / 2:
            out.append(UNSCORED_TEXT)
        elif isinstance(winner, str):
            out.append(STAGE_TEXT[winner])  # M or ? in the majority
        else:
            members = [(s, key) for key, s in by_key.items() if _KEY_CLASS[key] == winner]
            out.append(STAGE_TEXT[max(members)[1]])
    return out


def _normalize_edf_description(text: str, path: Path) -> str:
    """Sleep-EDF text for an EDF+ annotation: stage names of any scheme are mapped, other events
    pass through; an annotation that claims to be a stage but is unknown is an error."""
    if text in C.RK_TO_AASM:
        return text
    norm = " ".join(text.strip().lower().replace("_", " ").split())
    if norm in STAGE_NAMES:
        return STAGE_TEXT[STAGE_NAMES[norm]]
    if norm.startswith("sleep stage"):
        raise SleepEdgeError(f"{path}: unknown stage annotation {text!r}")
    return text


def read_hypnogram(path: str | Path, stage_seconds: float = 30, codes: str | None = None) -> Hypnogram:
    """Read an EDF+ or text hypnogram into Sleep-EDF-vocabulary annotations.

    Text hypnograms (``.txt``, ``.csv``; see :func:`read_text_stages`) start with the signal and
    hold one stage per ``stage_seconds``; they come back as one 30-s annotation per epoch
    (:func:`reduce_to_epochs`). EDF+ annotations keep their onsets and durations.
    """
    from host_tools.data import edf_io

    path = Path(path)
    if not path.is_file():
        raise SleepEdgeError(f"{path}: hypnogram file not found")
    suffix = path.suffix.lower()
    if suffix == ".edf":
        ann = edf_io.read_hypnogram(path)
        texts = [_normalize_edf_description(str(t), path) for t in ann.description]
        return Hypnogram(path, np.asarray(ann.onset, np.float64), np.asarray(ann.duration, np.float64),
                         texts, ann.orig_time)
    if suffix not in (".txt", ".csv"):
        raise SleepEdgeError(f"{path}: unknown hypnogram format (use EDF+ .edf, or .csv/.txt with one stage per line)")
    texts = reduce_to_epochs(read_text_stages(path, codes), stage_seconds)
    onsets = np.arange(len(texts), dtype=np.float64) * C.EPOCH_S
    return Hypnogram(path, onsets, np.full(len(texts), float(C.EPOCH_S)), texts, None)


def check_fits(hyp: Hypnogram, psg: str | Path, signal_s: float) -> None:
    """Refuse a hypnogram that scores a whole epoch or more past the end of the signal.

    Trailing ``Sleep stage ?`` padding (Sleep-EDF pads to 24 h) is allowed; less than one epoch
    past the end can only be the final partial epoch, which is never cut.
    """
    over = hyp.scored_end_s() - signal_s
    if over >= 3600:
        raise SleepEdgeError(
            f"{hyp.path}: mismatched pair: scored annotations run to {hyp.scored_end_s():.0f} s, "
            f"{over:.0f} s past the end of {Path(psg).name} ({signal_s:.0f} s of signal)")
    if over >= C.EPOCH_S:
        raise SleepEdgeError(
            f"{hyp.path}: hypnogram longer than the signal: annotations past the end of the signal: "
            f"scored until {hyp.scored_end_s():.0f} s but {Path(psg).name} holds {signal_s:.0f} s "
            f"(is the PSG cut short, or --stage-seconds wrong?)")


# --- pairing -------------------------------------------------------------------------------------

def split_name(path: str | Path) -> tuple[str, str, str] | None:
    """``NAME-PSG.vhdr`` -> ``("NAME", "PSG", ".vhdr")``; None if not ``NAME-PSG|Hypnogram.<ext>``."""
    m = re.match(r"^(?P<name>.+)-(?P<kind>PSG|Hypnogram)(?P<ext>\..+)$", Path(path).name, re.IGNORECASE)
    if not m:
        return None
    kind = "PSG" if m["kind"].lower() == "psg" else "Hypnogram"
    return m["name"], kind, m["ext"].lower()


def recording_id(psg: str | Path) -> str:
    """``SC4001E0-PSG.edf`` -> ``SC4001E0``; ``night3-PSG.bdf`` -> ``night3``; other names: the
    file name without its format suffix."""
    parts = split_name(psg)
    if parts is not None and parts[1] == "PSG":
        name = parts[0]
        return name.upper() if _SLEEP_EDF_RE.match(name) else name
    p = Path(psg)
    suffix = psg_suffix(p) or p.suffix
    return p.name[: len(p.name) - len(suffix)] if suffix else p.name


def is_sleep_edf_name(name: str) -> bool:
    """True for Sleep-EDF night names (``SC4001E0``, ``ST7011J0``)."""
    return bool(_SLEEP_EDF_RE.match(name))


def _ignored(path: Path) -> bool:
    return path.name.lower().endswith(_IGNORED_SUFFIXES) or path.name.startswith(".")


def find_pairs(directory: str | Path) -> list[tuple[Path, Path]]:
    """Pair every ``*-PSG.<ext>`` under ``directory`` (recursively) with its hypnogram.

    ``NAME-PSG.<ext>`` (any of :data:`PSG_FORMATS`) pairs with ``NAME-Hypnogram.edf|.csv|.txt``
    in the same folder; a Sleep-EDF PSG (``SC4001E0-PSG.edf``) also with the hypnogram whose
    first 7 characters match (``SC4001EC-Hypnogram.edf``).

    Raises
    ------
    SleepEdgeError
        Missing folder or no PSG; a PSG or hypnogram in an unknown format; a PSG with no
        hypnogram or several; a hypnogram with no PSG.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SleepEdgeError(f"{directory}: input folder not found")
    psgs: list[tuple[Path, str]] = []
    hyps: dict[Path, tuple[str, str]] = {}
    for f in sorted(p for p in directory.rglob("*") if p.is_file() and not _ignored(p)):
        parts = split_name(f)
        if parts is None:
            continue
        name, kind, ext = parts
        if kind == "PSG":
            check_psg_format(f)
            psgs.append((f, name))
        elif ext not in HYPNOGRAM_SUFFIXES:
            raise SleepEdgeError(f"{f}: unknown hypnogram format (use NAME-Hypnogram.edf, .csv or .txt)")
        else:
            hyps[f] = (name, ext)
    if not psgs:
        raise SleepEdgeError(f"{directory}: no PSG recordings found (NAME-PSG.edf|.bdf|.vhdr|.fif, "
                             f"e.g. SC4001E0-PSG.edf, with NAME-Hypnogram.edf|.csv|.txt beside it)")
    pairs: list[tuple[Path, Path]] = []
    used: set[Path] = set()
    for psg, name in psgs:
        found = [h for h, (hn, _ext) in hyps.items() if h.parent == psg.parent and hn.lower() == name.lower()]
        m = _SLEEP_EDF_RE.match(name)
        if m and psg.name.lower().endswith(".edf"):
            found += [h for h, (hn, ext) in hyps.items() if h.parent == psg.parent and ext == ".edf"
                      and h not in found and _SLEEP_EDF_RE.match(hn)
                      and _SLEEP_EDF_RE.match(hn)["key"].upper() == m["key"].upper()]
        if not found:
            want = f"{m['key'].upper()}?-Hypnogram.edf" if m else f"{name}-Hypnogram.edf|.csv|.txt"
            raise SleepEdgeError(f"{psg}: no hypnogram for this PSG (expected {want} beside it)")
        if len(found) > 1:
            raise SleepEdgeError(f"{psg}: several hypnograms match this PSG ({', '.join(h.name for h in found)})")
        pairs.append((psg, found[0]))
        used.add(found[0])
    for h in hyps:
        if h not in used:
            raise SleepEdgeError(f"{h}: hypnogram without a PSG (expected {hyps[h][0]}-PSG.<ext> beside it)")
    return sorted(pairs, key=lambda p: (p[0].name, str(p[0])))


def find_recordings(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file (any supported format), else the ``*-PSG.<ext>`` files in
    the folder (not recursive), sorted."""
    path = Path(path)
    if path.is_file():
        check_psg_format(path)
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and not _ignored(p)
                       and (s := split_name(p)) is not None and s[1] == "PSG")
        for p in found:
            check_psg_format(p)
        if not found:
            raise SleepEdgeError(f"{path}: folder holds no *-PSG.edf|.bdf|.vhdr|.fif recordings")
        return found
    raise SleepEdgeError(f"{path}: no such file or folder")

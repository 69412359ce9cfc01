"""Read and write Sleep-EDF-style EDF files (PSG signals and EDF+ hypnograms).

Writers mirror the real Sleep-EDF Expanded files closely enough that the real loading path
(:mod:`host_tools.data.prepare`) runs unchanged on generated recordings:

- PSG: channels labelled ``EEG Fpz-Cz``, ``EEG Pz-Oz``, ``EOG horizontal`` in ``uV``, 16-bit
  digital values, 30-s data records.
- Hypnogram: an annotations-only EDF+ file (one data record of duration 0, like the real
  ``SC4ssN?-Hypnogram.edf``) holding ``Sleep stage W/1/2/3/4/R/M/?`` annotations whose onsets
  are seconds from the recording start.

Readers go through MNE (``mne.io.read_raw_edf`` / ``mne.read_annotations``). MNE and edfio are
imported inside the functions so that ``sleepedge --help`` stays instant.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import mne

#: Canonical Sleep-EDF labels of the signals this project uses.
EEG_FPZ_CZ = "EEG Fpz-Cz"
EEG_PZ_OZ = "EEG Pz-Oz"
EOG_HORIZONTAL = "EOG horizontal"

#: Accepted spellings (lower case) -> the label in the EDF file.
CHANNEL_ALIASES: dict[str, str] = {
    "fpz-cz": EEG_FPZ_CZ,
    "eeg fpz-cz": EEG_FPZ_CZ,
    "pz-oz": EEG_PZ_OZ,
    "eeg pz-oz": EEG_PZ_OZ,
    "eog": EOG_HORIZONTAL,
    "horizontal": EOG_HORIZONTAL,
    "eog horizontal": EOG_HORIZONTAL,
}

#: Length of a PSG data record, as in the real Sleep-EDF files.
PSG_RECORD_S: int = 30

#: Recording file names: SC4ssN?-PSG.edf / ST7ssN?-Hypnogram.edf; the first 7 characters
#: (study, subject, night) identify the night.
_PSG_RE = re.compile(r"^(?P<key>S[CT]\d{4}[A-Z0-9])[A-Z0-9]-PSG\.edf$", re.IGNORECASE)
_HYP_RE = re.compile(r"^(?P<key>S[CT]\d{4}[A-Z0-9])[A-Z0-9]-Hypnogram\.edf$", re.IGNORECASE)


def canonical_channel(channel: str) -> str:
    """Map a user spelling (``Fpz-Cz``, ``EOG``, ...) to the Sleep-EDF label; unknown names pass
    through unchanged so any label present in a file can still be asked for."""
    return CHANNEL_ALIASES.get(channel.strip().lower(), channel.strip())


def _naive(start: dt.datetime) -> dt.datetime:
    """EDF headers hold local wall-clock time without zone: drop tzinfo (after converting to UTC,
    the convention MNE uses when it reads ``meas_date`` back)."""
    if start.tzinfo is not None:
        start = start.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return start.replace(microsecond=0)


def _physical_range(x: np.ndarray) -> tuple[float, float]:
    """Symmetric physical range just covering ``x``: the full 16-bit code range then spans the
    signal, so the quantization step is as small as possible (2*max|x| / 65535)."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not np.isfinite(peak):
        raise ValueError("signal contains NaN or infinity")
    peak = max(peak, 1.0)  # a flat (or empty) channel still needs a valid, non-degenerate range
    # EDF stores the range as <= 8 ASCII characters; round outwards so the data stay inside it.
    digits = max(0, 6 - len(str(int(peak))))
    scale = 10.0**digits
    peak = np.ceil(peak * scale) / scale
    return -float(peak), float(peak)


def write_psg(
    path: str | Path,
    signals_uv: dict[str, np.ndarray],
    fs: int,
    start: dt.datetime,
    *,
    patient: str = "X",
) -> None:
    """Write a Sleep-EDF-style PSG file.

    Parameters
    ----------
    path
        Output file (``SC4ssNE0-PSG.edf`` by convention).
    signals_uv
        Channel label (or an accepted alias such as ``Fpz-Cz``) -> samples in microvolts. All
        channels share ``fs`` and length. The length is zero-padded by edfio to whole 30-s data
        records when it is not a multiple of ``30 * fs``.
    fs
        Sample rate in Hz.
    start
        Recording start (wall clock; tz-aware values are converted to UTC).
    patient
        Patient name field (spaces become underscores, as EDF+ requires).
    """
    import edfio

    if not signals_uv:
        raise ValueError("write_psg needs at least one signal")
    if fs <= 0:
        raise ValueError(f"sample rate must be positive, got {fs}")
    lengths = {len(np.asarray(v)) for v in signals_uv.values()}
    if len(lengths) != 1:
        raise ValueError(f"all signals must have the same length, got {sorted(lengths)}")
    start = _naive(start)
    edf_signals = []
    for label, data in signals_uv.items():
        x = np.asarray(data, dtype=np.float64)
        edf_signals.append(
            edfio.EdfSignal(
                x,
                sampling_frequency=fs,
                label=canonical_channel(label),
                transducer_type="Ag-AgCl electrodes",
                physical_dimension="uV",
                physical_range=_physical_range(x),
                digital_range=(-32768, 32767),
            )
        )
    edf = edfio.Edf(
        edf_signals,
        patient=edfio.Patient(name=patient.replace(" ", "_") or "X"),
        recording=edfio.Recording(startdate=start.date()),
        starttime=start.time(),
        data_record_duration=PSG_RECORD_S,
    )
    edf.write(Path(path))


def stage_runs(texts: "list[str] | tuple[str, ...]") -> tuple[list[float], list[float], list[str]]:
    """Merge per-epoch stage texts into annotation runs ``(onsets_s, durations_s, texts)``, one per
    run of equal 30-s stages, as the real Sleep-EDF hypnograms are written."""
    onsets: list[float] = []
    durations: list[float] = []
    descs: list[str] = []
    for k, t in enumerate(texts):
        if descs and descs[-1] == t:
            durations[-1] += C.EPOCH_S
        else:
            onsets.append(float(k * C.EPOCH_S))
            durations.append(float(C.EPOCH_S))
            descs.append(t)
    return onsets, durations, descs


def write_hypnogram(
    path: str | Path,
    onsets_s: Sequence[float],
    durations_s: Sequence[float],
    descriptions: Sequence[str],
    start: dt.datetime,
    *,
    patient: str = "X",
) -> None:
    """Write an annotations-only EDF+ hypnogram like the real ``SC4ssN?-Hypnogram.edf``.

    Parameters
    ----------
    path
        Output file.
    onsets_s, durations_s, descriptions
        One entry per annotation; onsets in seconds from ``start``, descriptions such as
        ``"Sleep stage 2"``.
    start
        Recording start; must equal the PSG's start for the pair to load.
    patient
        Patient name field.
    """
    import edfio

    if not len(onsets_s) == len(durations_s) == len(descriptions):
        raise ValueError(
            f"onsets ({len(onsets_s)}), durations ({len(durations_s)}) and descriptions "
            f"({len(descriptions)}) must have the same length"
        )
    start = _naive(start)
    annotations = [
        edfio.EdfAnnotation(float(o), float(d), str(t))
        for o, d, t in zip(onsets_s, durations_s, descriptions, strict=True)
    ]
    # With no signals edfio writes what the real hypnograms hold: one data record of
    # duration 0 carrying only the "EDF Annotations" signal.
    edf = edfio.Edf(
        [],
        patient=edfio.Patient(name=patient.replace(" ", "_") or "X"),
        recording=edfio.Recording(startdate=start.date()),
        starttime=start.time(),
        annotations=annotations,
    )
    edf.write(Path(path))


def read_header_start(path: str | Path) -> dt.datetime:
    """Recording start from an EDF header (UTC-aware, as MNE reports ``meas_date``).

    Reads only the 256-byte fixed header, so it is cheap for multi-hour PSGs.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError as exc:
        raise SleepEdgeError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(head) < 256:
        raise SleepEdgeError(f"{path}: not an EDF file (header shorter than 256 bytes)")
    try:
        day, month, year = (int(v) for v in head[168:176].decode("ascii").split("."))
        hour, minute, second = (int(v) for v in head[176:184].decode("ascii").split("."))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SleepEdgeError(f"{path}: bad start date/time in the EDF header") from exc
    # EDF two-digit years: 85-99 -> 19xx, 00-84 -> 20xx (the EDF specification's clipping date).
    year += 1900 if year >= 85 else 2000
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)


def read_hypnogram(path: str | Path) -> "mne.Annotations":
    """Read a hypnogram's annotations.

    Returns
    -------
    mne.Annotations
        Onsets in seconds from the recording start, durations in seconds, descriptions as in
        the file; ``orig_time`` is the start from the file header (UTC-aware).
    """
    import mne

    path = Path(path)
    if not path.is_file():
        raise SleepEdgeError(f"{path}: hypnogram file not found")
    start = read_header_start(path)
    try:
        ann = mne.read_annotations(path)
    except Exception as exc:  # MNE raises many types for malformed files
        raise SleepEdgeError(f"{path}: cannot read EDF+ annotations ({exc})") from exc
    return mne.Annotations(
        onset=np.asarray(ann.onset, dtype=np.float64),
        duration=np.asarray(ann.duration, dtype=np.float64),
        description=list(ann.description),
        orig_time=start,
    )


def read_psg_channel(path: str | Path, channel: str) -> tuple[np.ndarray, int, dt.datetime]:
    """Read one channel of a PSG in microvolts.

    Parameters
    ----------
    path
        EDF file.
    channel
        Label in the file or an accepted alias (``Fpz-Cz``, ``Pz-Oz``, ``EOG``, ...).

    Returns
    -------
    signal_uv : ndarray of float64
    fs : int
        Sample rate of that channel.
    start : datetime
        Recording start (UTC-aware, MNE's ``meas_date``).

    Raises
    ------
    SleepEdgeError
        File missing or unreadable, truncated (shorter than its header says), channel absent
        (the message lists the channels present), or a non-integer sample rate.
    """
    import mne

    path = Path(path)
    if not path.is_file():
        raise SleepEdgeError(f"{path}: PSG file not found")
    _check_not_truncated(path)
    try:
        probe = mne.io.read_raw_edf(path, preload=False, verbose="error")
    except Exception as exc:
        raise SleepEdgeError(f"{path}: cannot read EDF ({exc})") from exc
    available = list(probe.ch_names)
    want = canonical_channel(channel)
    match = [c for c in available if c.lower() == want.lower()]
    if not match:
        raise SleepEdgeError(
            f"{path}: no channel {channel!r}; available: {', '.join(available) or 'none'}"
        )
    _check_ranges(path, match[0])
    try:
        # `include` keeps only this channel so MNE does not resample it to another channel's rate.
        raw = mne.io.read_raw_edf(path, include=[match[0]], preload=True, verbose="error")
    except Exception as exc:
        raise SleepEdgeError(f"{path}: cannot read channel {match[0]!r} ({exc})") from exc
    sfreq = float(raw.info["sfreq"])
    if abs(sfreq - round(sfreq)) > 1e-6:
        raise SleepEdgeError(f"{path}: channel {match[0]!r} has a non-integer sample rate {sfreq} Hz")
    data = raw.get_data(picks=[0], units="uV")[0].astype(np.float64, copy=False)
    start = raw.info["meas_date"]
    if start is None:
        start = read_header_start(path)
    return data, int(round(sfreq)), start


def _check_ranges(path: Path, label: str) -> None:
    """Refuse a channel whose header gives an empty digital or physical range: every sample
    would map to one value (or divide by zero), and the epochs would all look saturated."""
    with open(path, "rb") as fh:
        head = fh.read(256)
        ns = int(head[252:256].decode("ascii").strip())
        sig = fh.read(ns * 256)
    field = lambda off, width, i: sig[ns * off + width * i: ns * off + width * (i + 1)].decode("ascii", "replace").strip()  # noqa: E731
    for i in range(ns):
        if field(0, 16, i).lower() != label.lower():
            continue
        try:
            pmin, pmax, dmin, dmax = (float(field(off, 8, i)) for off in (104, 112, 120, 128))
        except ValueError as exc:
            raise SleepEdgeError(f"{path}: channel {label!r} has a malformed range in its header") from exc
        if dmin >= dmax or pmin == pmax:
            raise SleepEdgeError(f"{path}: channel {label!r} has an empty range in its header "
                                 f"(digital {dmin:g}..{dmax:g}, physical {pmin:g}..{pmax:g})")
        return


def _check_not_truncated(path: Path, bytes_per_sample: int = 2) -> None:
    """Compare the file size with what the header promises (MNE may silently read short files
    or fail with an obscure message; we want one clear line naming the file). BDF files (same
    header layout) store ``bytes_per_sample=3``."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(256)
        if len(head) < 256:
            raise SleepEdgeError(f"{path}: not an EDF file (header shorter than 256 bytes)")
        try:
            header_bytes = int(head[184:192].decode("ascii").strip())
            n_records = int(head[236:244].decode("ascii").strip())
            n_signals = int(head[252:256].decode("ascii").strip())
        except (ValueError, UnicodeDecodeError) as exc:
            raise SleepEdgeError(f"{path}: malformed EDF header") from exc
        if size < header_bytes or n_signals <= 0:
            raise SleepEdgeError(f"{path}: truncated EDF (file ends inside its header)")
        fh.seek(256 + n_signals * 216)
        raw_counts = fh.read(n_signals * 8)
    try:
        samples_per_record = [
            int(raw_counts[8 * i : 8 * i + 8].decode("ascii").strip()) for i in range(n_signals)
        ]
    except (ValueError, UnicodeDecodeError) as exc:
        raise SleepEdgeError(f"{path}: malformed EDF signal header") from exc
    if n_records < 0:  # -1 = unknown (still being recorded); nothing to check against
        return
    expected = header_bytes + bytes_per_sample * sum(samples_per_record) * n_records
    if size < expected:
        raise SleepEdgeError(
            f"{path}: truncated {'EDF' if bytes_per_sample == 2 else 'BDF'}: {size} bytes but the header declares {n_records} data records "
            f"({expected} bytes); re-download or re-export the file"
        )


def find_pairs(directory: str | Path) -> list[tuple[Path, Path]]:
    """Pair every ``*-PSG.edf`` under ``directory`` (recursively) with its hypnogram.

    A PSG ``SC4ssNE0-PSG.edf`` pairs with the hypnogram in the same folder whose first 7
    characters match (``SC4ssNEC-Hypnogram.edf``); the same rule holds for ``ST7ssNJ0``.

    Returns
    -------
    list of (psg, hypnogram)
        Sorted by PSG file name.

    Raises
    ------
    SleepEdgeError
        The folder is missing or holds no PSG, a PSG has no hypnogram or several, or a
        hypnogram has no PSG.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SleepEdgeError(f"{directory}: input folder not found")
    psgs: dict[tuple[Path, str], Path] = {}
    hyps: dict[tuple[Path, str], list[Path]] = {}
    for f in sorted(directory.rglob("*.edf")):
        if m := _PSG_RE.match(f.name):
            psgs[(f.parent, m["key"].upper())] = f
        elif m := _HYP_RE.match(f.name):
            hyps.setdefault((f.parent, m["key"].upper()), []).append(f)
    if not psgs:
        raise SleepEdgeError(
            f"{directory}: no Sleep-EDF PSG files (*-PSG.edf, e.g. SC4001E0-PSG.edf) found"
        )
    pairs: list[tuple[Path, Path]] = []
    for key, psg in psgs.items():
        found = hyps.get(key, [])
        if not found:
            raise SleepEdgeError(
                f"{psg}: no hypnogram for this PSG (expected {key[1]}?-Hypnogram.edf beside it)"
            )
        if len(found) > 1:
            names = ", ".join(h.name for h in found)
            raise SleepEdgeError(f"{psg}: several hypnograms match this PSG ({names})")
        pairs.append((psg, found[0]))
    for key, found in hyps.items():
        if key not in psgs:
            raise SleepEdgeError(
                f"{found[0]}: hypnogram without a PSG (expected {key[1]}?-PSG.edf beside it)"
            )
    return sorted(pairs, key=lambda p: (p[0].name, str(p[0])))

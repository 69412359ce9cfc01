"""Synthetic Sleep-EDF-style PSG corpus: real stage sequences, physiologically shaped signals.

``sleepedge data synth`` writes nights named and laid out like Sleep-EDF Expanded
(``SC4ssNE0-PSG.edf`` + ``SC4ssNE?-Hypnogram.edf``, or ``ST7ssNJ0-PSG.edf`` +
``ST7ssNJ?-Hypnogram.edf``) with 100 Hz ``EEG Fpz-Cz``, ``EEG Pz-Oz`` and ``EOG horizontal``.

How a night is made (docs/synthetic-data.md has the full story and the calibration):

1. **Stage sequence.** Synthetic subject *i* borrows a real Sleep-EDF subject's expert hypnograms
   (the 54 in ``shared/data``), jitters every bout's length, caps the wake before and after sleep
   to 60-120 min and, for the ST domain, turns part of N3 into N2 (temazepam). The result is the
   *generating* sequence.
2. **Continuous stage mixture.** The one-hot generating sequence is smoothed in time (Gaussian,
   sigma 8-16 s), so epochs beside a stage change carry features of both stages; N1 epochs keep
   part of the neighbouring wake / N2 / REM.
3. **Background EEG.** Short-time synthesis: every 2 s a 4-s frame of random-phase noise is shaped
   by the mixture-weighted per-stage power spectra (1/f background, theta, alpha at the subject's
   peak, EMG) times slowly wandering log-power fluctuations, and overlap-added (sqrt-Hann windows,
   constant variance).
4. **Events** at mixture-weighted Poisson rates: spindles, K-complexes, slow waves, vertex waves, sawtooth
   waves, blinks, saccades / rapid eye movements, slow eye movements, movement artefacts; plus
   drift, amplifier noise and residual 50 Hz mains.
5. **Written hypnogram** = generating sequence with human-like scorer disagreement: mostly at
   stage boundaries and in N1, N3 <-> N2 by slow-wave depth, a per-night scorer bias.

6. **Domain randomization** (``--randomize``, off by default): the night is recorded through a
   random montage (frontal / central), gain, offset and drift, native rate (resampled to 100 Hz
   with the real-input resampler), amplifier noise, 50/60 Hz mains and artefacts
   (:mod:`host_tools.data.randomize`).

Everything is drawn from ``numpy.random.default_rng`` seeded by ``(seed, domain, subject, night)``
(the randomization from its own stream), so files are byte-identical for a seed whatever the
number of workers, and the default corpus does not change when randomization exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import SHARED_DIR
from host_tools import constants as C
from host_tools.data import randomize
from host_tools.errors import SleepEdgeError

#: Channel names exactly as in Sleep-EDF PSG files.
CHANNELS: tuple[str, str, str] = ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal")
DOMAINS: tuple[str, ...] = ("sc", "st")
#: Real hypnograms driving the stage sequences (shared/ sits beside the checkout).
DEFAULT_HYPNOGRAM_DIR = (
    SHARED_DIR / "data" / "sleep-edfx" / "sleep-cassette"
)
HYPNOGRAM_DIR_ENV = "SLEEPEDGE_HYPNOGRAM_DIR"

FS = C.FS_HZ
EPOCH = C.EPOCH_SAMPLES
HOP = 200  #: synthesis hop (2 s): 15 frames per epoch
FRAME = 2 * HOP  #: synthesis frame (4 s), 0.25 Hz resolution
FRAMES_PER_EPOCH = EPOCH // HOP

# Generating states. W is split into two sub-states that the written hypnogram does not separate.
W_REL, W_ACT, S_N1, S_N2, S_N3, S_REM = range(6)
N_STATES = 6
#: Stage code of the generating sequence (AASM index into constants.STAGES), -1 = movement time.
MOVEMENT = -1

#: Letters real Sleep-EDF hypnogram files carry after the night digit (scorer / version code).
_HYPNO_LETTERS = "CHJPVUAEM"

_FREQS = np.fft.rfftfreq(FRAME, d=1.0 / FS)  # 0 .. 50 Hz, 201 bins
#: The generator's own derivation (all montage factors 1).
_FPZ_CZ = randomize.MONTAGES["frontal"]

# Band edges used for the per-stage templates (the bands of the real statistics JSON).
BANDS: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 50.0),
}

# Per-state band levels of the *background* in uV^2/Hz (Fpz-Cz, Pz-Oz). Starting points were the
# real per-stage Welch medians; the values below were then tuned by the calibration loop
# (docs/synthetic-data.md) because events (spindles, K-complexes, eye movements) add their own
# power on top of the background.
#            delta   theta  alpha  beta   gamma
_BG_LEVELS: dict[str, np.ndarray] = {
    "fpz": np.array(
        [
            [6.0, 2.2, 2.2, 0.30, 0.05],  # W relaxed (eyes closed): alpha
            [12.0, 3.5, 1.1, 1.10, 0.70],  # W active: EMG, eye movements added as events
            [1.2, 1.0, 0.28, 0.11, 0.045],  # N1: theta, alpha dropout
            [20.0, 3.4, 0.9, 0.30, 0.028],  # N2
            [42.0, 7.0, 1.8, 0.20, 0.022],  # N3
            [9.0, 2.6, 0.7, 0.17, 0.04],  # REM: low-voltage mixed frequency
        ]
    ),
    "pz": np.array(
        [
            [3.0, 1.4, 5.5, 0.45, 0.06],
            [7.5, 1.8, 1.2, 1.30, 0.80],
            [2.0, 0.8, 0.50, 0.09, 0.018],
            [20.0, 3.3, 0.75, 0.20, 0.012],
            [50.0, 5.5, 0.9, 0.11, 0.010],
            [6.5, 1.8, 0.80, 0.11, 0.014],
        ]
    ),
}


@dataclasses.dataclass(frozen=True)
class DomainParams:
    """What differs between the sleep-cassette (SC) and temazepam telemetry (ST) domains."""

    prefix: str  #: "SC4" / "ST7"
    night_letter: str  #: "E" / "J"
    gain: float  #: amplifier gain relative to SC
    noise_floor: float  #: white amplifier noise relative to SC
    mains: float  #: residual 50 Hz relative to SC
    spindle_rate: float
    spindle_amp: float
    beta: float  #: benzodiazepine beta
    delta: float  #: slow-wave power in N2/N3
    n3_keep: float  #: fraction of real N3 bouts kept as N3 (rest become N2)
    lead_wake_min: tuple[int, int]
    trail_wake_min: tuple[int, int]
    start_date: dt.date


DOMAIN_PARAMS: dict[str, DomainParams] = {
    "sc": DomainParams("SC4", "E", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, (60, 120), (60, 120),
                       dt.date(1989, 4, 24)),
    "st": DomainParams("ST7", "J", 0.68, 3.0, 4.0, 1.7, 1.3, 2.6, 0.55, 0.45, (40, 70), (40, 70),
                       dt.date(1994, 7, 18)),
}


# ------------------------------------------------------------------------------------------
# real hypnograms -> stage sequences
# ------------------------------------------------------------------------------------------

_RK_CODE = {
    "Sleep stage W": 0, "Sleep stage 1": 1, "Sleep stage 2": 2, "Sleep stage 3": 3,
    "Sleep stage 4": 3, "Sleep stage R": 4, "Sleep stage M": MOVEMENT, "Movement time": MOVEMENT,
}


def hypnogram_dir() -> Path:
    """Folder of the real Sleep-EDF hypnograms (env ``SLEEPEDGE_HYPNOGRAM_DIR`` overrides)."""
    return Path(os.environ.get(HYPNOGRAM_DIR_ENV, DEFAULT_HYPNOGRAM_DIR))


def load_real_sequences(folder: Path | None = None) -> dict[str, list[np.ndarray]]:
    """Read the real hypnograms into per-epoch stage codes, grouped by real subject.

    Parameters
    ----------
    folder
        Folder with ``SC4ssN?-Hypnogram.edf`` files; default :func:`hypnogram_dir`.

    Returns
    -------
    dict
        ``{"SC400": [night1_codes, night2_codes], ...}``; codes are AASM indices (0..4) or
        :data:`MOVEMENT`; unscored (``?``) epochs at the ends are dropped, inside sleep they take
        the previous stage.
    """
    import mne

    folder = Path(folder) if folder is not None else hypnogram_dir()
    files = sorted(folder.glob("SC4*-Hypnogram.edf")) if folder.is_dir() else []
    if not files:
        raise SleepEdgeError(
            f"{folder}: no real Sleep-EDF hypnograms (SC4ssN?-Hypnogram.edf) to draw stage sequences "
            f"from; keep shared/data beside the checkout or set {HYPNOGRAM_DIR_ENV}"
        )
    out: dict[str, list[np.ndarray]] = {}
    for f in files:
        try:
            ann = mne.read_annotations(f)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
            raise SleepEdgeError(f"{f}: not a readable EDF+ hypnogram ({exc})") from exc
        if len(ann) == 0:
            raise SleepEdgeError(f"{f}: no sleep stage annotations (not an EDF+ hypnogram?)")
        n = int(round(max(o + d for o, d in zip(ann.onset, ann.duration)) / C.EPOCH_S))
        codes = np.full(n, -9, dtype=np.int8)  # -9 = unscored
        for onset, dur, desc in zip(ann.onset, ann.duration, ann.description):
            if desc in _RK_CODE:
                a = int(round(onset / C.EPOCH_S))
                codes[a:a + int(round(dur / C.EPOCH_S))] = _RK_CODE[desc]
        scored = np.flatnonzero(codes != -9)
        if scored.size == 0:
            continue
        codes = codes[scored[0]:scored[-1] + 1]
        for i in np.flatnonzero(codes == -9):  # rare gaps inside the night
            codes[i] = codes[i - 1] if i > 0 else 0
        out.setdefault(f.name[:5], []).append(codes)
    return out


def _runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encoding: (values, lengths)."""
    change = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [codes.size]]))
    return codes[starts], lengths


def make_sequence(real: np.ndarray, rng: np.random.Generator, dom: DomainParams) -> np.ndarray:
    """Generating stage sequence from one real hypnogram: jittered bouts, capped wake.

    Parameters
    ----------
    real
        Real per-epoch codes (see :func:`load_real_sequences`).
    rng
        The night's random generator.
    dom
        Domain parameters (wake caps, N3 handling).

    Returns
    -------
    numpy.ndarray
        int8 codes, starting and ending with wake.
    """
    sleep = np.flatnonzero((real >= 1) & (real <= 4))
    body = real[sleep[0]:sleep[-1] + 1].copy()
    vals, lens = _runs(body)
    # Bout lengths vary night to night: jitter each one (log-normal, never below one epoch).
    lens = np.maximum(1, np.rint(lens * rng.lognormal(0.0, 0.25, lens.size))).astype(int)
    if dom.n3_keep < 1.0:  # temazepam suppresses slow-wave sleep
        drop = (vals == 3) & (rng.random(vals.size) > dom.n3_keep)
        vals = np.where(drop, 2, vals)
    body = np.repeat(vals, lens).astype(np.int8)
    lead = int(rng.integers(dom.lead_wake_min[0], dom.lead_wake_min[1] + 1)) * 2
    trail = int(rng.integers(dom.trail_wake_min[0], dom.trail_wake_min[1] + 1)) * 2
    return np.concatenate([np.zeros(lead, np.int8), body, np.zeros(trail, np.int8)])


def crop_window(seq: np.ndarray, n_epochs: int) -> tuple[int, int]:
    """Best window of ``n_epochs`` that contains sleep onset and as many stages as possible.

    Returns
    -------
    (score, start)
        ``score`` = number of AASM stages with at least two epochs in the window.
    """
    if n_epochs >= seq.size:
        return int(sum(np.count_nonzero(seq == s) >= 2 for s in range(5))), 0
    onset = int(np.flatnonzero(seq >= 1)[0])
    best = (-1, 0, 0)
    # Prefer ~25 min of wake before sleep onset (at least 5): enough for the 30-min wake margin.
    for lead in range(min(onset, n_epochs - 1), -1, -1):
        start = onset - lead
        if start + n_epochs > seq.size:
            continue
        w = seq[start:start + n_epochs]
        score = int(sum(np.count_nonzero(w == s) >= 2 for s in range(5)))
        pref = -abs(lead - 50) if lead >= 10 else -100 + lead
        if (score, pref) > best[:2]:
            best = (score, pref, start)
    return best[0], best[2]


# ------------------------------------------------------------------------------------------
# subject and night parameters
# ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Subject:
    """Per-subject physiology and recording set-up (drawn once, shared by both nights)."""

    gain: float  #: overall EEG amplitude (skull, electrode distance)
    pz_gain: float
    eog_gain: float
    eye_leak: float  #: fraction of the eye signal seen at Fpz-Cz
    eeg_leak: float  #: fraction of frontal EEG seen on the EOG
    alpha_hz: float
    alpha_pow: float
    spindle_hz: float
    spindle_rate: float
    slope: float  #: extra 1/f exponent (spectral tilt)
    emg: float
    noise_uv: float  #: amplifier noise (white) rms
    mains_uv: float
    drift_uv: float
    band_gain: np.ndarray  #: per-band log-power offsets (5,)
    blink_rate: float


def draw_subject(rng: np.random.Generator, dom: DomainParams) -> Subject:
    """Draw one subject's parameters; spreads follow the real per-subject medians."""
    return Subject(
        gain=dom.gain * float(rng.lognormal(0.0, 0.18)),
        pz_gain=float(rng.lognormal(np.log(0.9), 0.18)),
        eog_gain=float(rng.lognormal(0.0, 0.35)),
        eye_leak=float(rng.uniform(0.1, 0.3)),
        eeg_leak=float(rng.uniform(0.55, 0.85)),
        alpha_hz=float(np.clip(rng.normal(10.0, 0.8), 8.3, 11.8)),
        alpha_pow=float(rng.lognormal(0.0, 0.45)),
        spindle_hz=float(np.clip(rng.normal(13.0, 0.9), 11.2, 15.5)),
        spindle_rate=dom.spindle_rate * float(rng.lognormal(0.0, 0.3)),
        slope=float(rng.normal(0.0, 0.35)),
        emg=float(rng.lognormal(0.0, 0.9)),
        noise_uv=dom.noise_floor * float(rng.lognormal(np.log(0.8), 1.0)),
        mains_uv=dom.mains * float(rng.lognormal(np.log(0.15), 0.6)),
        drift_uv=float(rng.lognormal(np.log(3.0), 0.4)),
        band_gain=rng.normal(0.0, 1.0, 5) * np.array([0.12, 0.2, 0.3, 0.4, 0.6]),
        blink_rate=float(rng.lognormal(np.log(16.0), 0.4)),
    )


# ------------------------------------------------------------------------------------------
# spectra
# ------------------------------------------------------------------------------------------


def _band_shape(levels: np.ndarray, slope: float) -> np.ndarray:
    """Smooth PSD over ``_FREQS`` whose band means follow ``levels`` (uV^2/Hz)."""
    f = np.maximum(_FREQS, 0.25)
    logp = np.zeros_like(f)
    edges = list(BANDS.values())
    for (lo, hi), lev in zip(edges, levels):
        sel = (f >= lo) & (f < hi) if hi < 50 else (f >= lo)
        logp[sel] = np.log(lev)
    logp[f < 0.5] = np.log(levels[0]) + 0.7  # the 1/f background keeps rising below 0.5 Hz
    logf = np.log(f)
    # Smooth across band edges in log-frequency, then give the whole shape a 1/f tilt inside bands.
    k = np.exp(-0.5 * ((logf[:, None] - logf[None, :]) / 0.18) ** 2)
    logp = (k @ logp) / k.sum(axis=1)
    logp = logp - (0.6 + slope) * (logf - np.log(4.0))
    # Re-normalise each band to its level so the templates hit the targets exactly.
    for (lo, hi), lev in zip(edges, levels):
        sel = (f >= lo) & (f < hi) if hi < 50 else (f >= lo)
        logp[sel] += np.log(lev) - np.log(np.mean(np.exp(logp[sel])))
    return np.exp(logp)


def _peak(center: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((_FREQS - center) / width) ** 2)


def state_spectra(subj: Subject, dom: DomainParams, montage: Any = None) -> dict[str, np.ndarray]:
    """Per-state background PSDs (N_STATES, n_freq) for Fpz-Cz and Pz-Oz of one subject.

    ``montage`` (a :class:`host_tools.data.randomize.Montage`, randomized corpora only) changes
    the first channel's derivation: alpha in relaxed wake, N2/N3 delta, EMG, overall amplitude.
    """
    out = {}
    for ch in ("fpz", "pz"):
        lev = _BG_LEVELS[ch].copy() * np.exp(subj.band_gain)[None, :]
        lev[:, 3] *= dom.beta
        lev[(S_N2, S_N3), 0] *= dom.delta
        lev[W_ACT, 3:] *= subj.emg
        if montage is not None and ch == "fpz":
            lev[(S_N2, S_N3), 0] *= montage.slow_wave_amp ** 2
            lev[W_ACT, 3:] *= montage.emg ** 2
            lev *= montage.gain ** 2
        # The alpha band holds a subject-specific peak; the rest of the band is background.
        alpha_share = np.array([0.8, 0.3, 0.3, 0.2, 0.2, 0.35])
        specs = []
        for s in range(N_STATES):
            base = lev[s].copy()
            base[2] *= 1.0 - alpha_share[s]
            p = _band_shape(base, subj.slope)
            peak = _peak(subj.alpha_hz, 0.9)
            band = (_FREQS >= 8) & (_FREQS < 13)
            amp = lev[s, 2] * alpha_share[s] * subj.alpha_pow * band.sum() / peak[band].sum()
            if montage is not None and ch == "fpz" and s == W_REL:
                amp *= montage.alpha_wake ** 2
            specs.append(p + amp * peak)
        out[ch] = np.array(specs) * subj.gain**2 * (subj.pz_gain**2 if ch == "pz" else 1.0)
    return out


# ------------------------------------------------------------------------------------------
# the night
# ------------------------------------------------------------------------------------------


def _ar1(rng: np.random.Generator, n: int, tau: float, sd: float, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Stationary AR(1) series along axis 0 with time constant ``tau`` steps."""
    import scipy.signal

    a = math.exp(-1.0 / tau)
    e = rng.standard_normal((n, *shape)) * sd * math.sqrt(1 - a * a)
    e[0] = e[0] / math.sqrt(1 - a * a)
    return scipy.signal.lfilter([1.0], [1.0, -a], e, axis=0)


def _mixture(seq: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Continuous state weights per frame (n_frames, N_STATES) and per-epoch W activity."""
    from scipy.ndimage import gaussian_filter1d

    n = seq.size
    # W sub-state: long pre-/post-sleep wake is mostly active; wake inside sleep is a mixture.
    act = 1.0 / (1.0 + np.exp(-(_ar1(rng, n, 6.0, 1.6) + 0.3)))
    onehot = np.zeros((n, N_STATES))
    w = (seq == 0) | (seq == MOVEMENT)
    onehot[w, W_ACT] = act[w]
    onehot[w, W_REL] = 1.0 - act[w]
    for code, state in ((1, S_N1), (2, S_N2), (3, S_N3), (4, S_REM)):
        onehot[seq == code, state] = 1.0
    # N1 is a transitional state: each N1 epoch keeps part of the wake, N2 or REM it sits between.
    n1 = np.flatnonzero(seq == 1)
    share = rng.uniform(0.0, 0.5, n1.size)
    other = rng.choice([W_REL, S_N2, S_REM], size=n1.size, p=[0.5, 0.3, 0.2])
    onehot[n1, S_N1] = 1.0 - share
    onehot[n1, other] = share
    frames = np.repeat(onehot, FRAMES_PER_EPOCH, axis=0)
    frames = np.concatenate([frames, frames[-1:]])  # frame centres 0, HOP, ..., n*EPOCH
    sigma = rng.uniform(4.0, 8.0)  # frames of 2 s: 8-16 s blur across stage changes
    mix = gaussian_filter1d(frames, sigma, axis=0, mode="nearest")
    return mix / mix.sum(axis=1, keepdims=True), act


def _background(spec: np.ndarray, mix: np.ndarray, logmod: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Overlap-add synthesis of non-stationary coloured noise.

    ``spec`` (N_STATES, F) state PSDs; ``mix`` (n_frames, N_STATES); ``logmod`` (n_frames, F)
    log-power modulation. Output PSD within a frame = mix @ spec * exp(logmod) (uV^2/Hz, one-sided).
    """
    psd = (mix @ spec) * np.exp(logmod)
    scale = np.sqrt(psd * FS * FRAME / 2.0 / 2.0)
    z = (rng.standard_normal(psd.shape) + 1j * rng.standard_normal(psd.shape)) * scale
    z[:, 0] = 0.0
    z[:, -1] = z[:, -1].real * math.sqrt(2.0)
    frames = np.fft.irfft(z, n=FRAME, axis=1)
    win = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME))  # periodic sqrt-Hann
    frames *= win
    # Frame i covers samples [(i-1)*HOP, (i+1)*HOP): first half lands in block i-1, second in block i.
    nf = frames.shape[0]
    blocks = np.zeros((nf, HOP))
    blocks[: nf - 1] += frames[1:, :HOP]
    blocks += frames[:, HOP:]
    return blocks.reshape(-1)[:n]


def _event_times(rate_per_min: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson event times (s) for a per-frame rate (events/min)."""
    counts = rng.poisson(np.maximum(rate_per_min, 0.0) * HOP / FS / 60.0)
    idx = np.repeat(np.arange(counts.size), counts)
    return (idx + rng.random(idx.size) - 0.5) * HOP / FS


def _add(sig: np.ndarray, t0: float, wave: np.ndarray) -> None:
    """Add ``wave`` to ``sig`` starting at time ``t0`` (s), clipped to the record."""
    a = int(round(t0 * FS))
    b = a + wave.size
    lo, hi = max(a, 0), min(b, sig.size)
    if hi > lo:
        sig[lo:hi] += wave[lo - a: hi - a]


def synth_night(
    seq: np.ndarray, subj: Subject, dom: DomainParams, rng: np.random.Generator, montage: Any = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Generate the three channels for one generating sequence.

    ``montage`` (:class:`host_tools.data.randomize.Montage`; ``None`` = Fpz-Cz as always) makes
    the first channel another derivation: event rates and amplitudes, alpha, eye artefacts.
    The frontal montage gives exactly the plain generator's night.

    Returns
    -------
    signals, latent
        ``signals`` maps channel name -> float64 uV; ``latent`` holds per-epoch
        ``w_active`` and ``sws_depth`` used by the written hypnogram.
    """
    import scipy.signal

    n_ep = seq.size
    n = n_ep * EPOCH
    mix, act = _mixture(seq, rng)
    nf = mix.shape[0]
    spectra = state_spectra(subj, dom, montage)
    mt = montage if montage is not None else _FPZ_CZ
    t_frame = np.arange(nf) * HOP / FS

    # Slow log-power fluctuations in five smooth bands: within-night, within-stage variability.
    centers = np.log([1.5, 5.5, 10.0, 20.0, 40.0])
    bumps = np.exp(-0.5 * ((np.log(np.maximum(_FREQS, 0.25))[None, :] - centers[:, None]) / 0.6) ** 2)
    bumps /= bumps.sum(axis=0, keepdims=True)
    sd = 0.35 + 0.45 * mix[:, W_ACT:W_ACT + 1]  # wake is far less stationary than sleep
    z = _ar1(rng, nf, 12.0, 1.0, (5,)) * sd
    common = _ar1(rng, nf, 20.0, 0.3)[:, None]  # broadband (arousal level, electrode contact)
    logmod = z @ bumps + common
    # Slow-wave depth: how far into stage 4 an N3 stretch is; scales delta in N3.
    depth = _ar1(rng, n_ep, 8.0, 0.5)
    depth_f = np.repeat(depth, FRAMES_PER_EPOCH)
    depth_f = np.concatenate([depth_f, depth_f[-1:]])
    dmask = (np.log(np.maximum(_FREQS, 0.25)) < np.log(4.0)).astype(float)
    logmod = logmod + (mix[:, S_N3] * depth_f)[:, None] * dmask[None, :]

    fpz = _background(spectra["fpz"], mix, logmod, rng, n)
    # Pz-Oz shares the state course and part of the fluctuations but has its own noise.
    logmod_pz = 0.7 * logmod + _ar1(rng, nf, 12.0, 0.25, (5,)) @ bumps
    pz = _background(spectra["pz"], mix, logmod_pz, rng, n)
    eye = np.zeros(n)

    def rate(w: np.ndarray, per_min: float) -> np.ndarray:
        return w * per_min

    g = subj.gain
    # --- sleep spindles (11-16 Hz, 0.5-2 s), partly after K-complexes --------------------------
    sp_rate = mt.spindle_rate * subj.spindle_rate * rate(mix[:, S_N2] + 0.4 * mix[:, S_N3] + 0.1 * mix[:, S_N1], 5.0)
    sp_times = list(_event_times(sp_rate, rng))
    kc_times = _event_times(rate(mix[:, S_N2] + 0.5 * mix[:, S_N3], 1.4), rng)
    sp_times += [t + 0.7 for t in kc_times if rng.random() < 0.4]
    for t in sp_times:
        dur = rng.uniform(0.5, 2.0)
        tt = np.arange(int(dur * FS)) / FS
        env = np.sin(np.pi * tt / dur) ** 2
        f = np.clip(subj.spindle_hz + rng.normal(0, 0.5), 11.0, 16.0)
        wave = env * np.sin(2 * np.pi * f * tt + rng.uniform(0, 2 * np.pi))
        amp = g * dom.spindle_amp * rng.lognormal(np.log(16.0), 0.35)
        _add(fpz, t, mt.spindle_amp * mt.gain * amp * wave)
        _add(pz, t, 0.8 * subj.pz_gain * amp * wave)
    # --- K-complexes: sharp negative then slow positive wave, >0.5 s ---------------------------
    for t in kc_times:
        tt = np.arange(120) / FS
        amp = g * dom.delta ** 0.5 * rng.lognormal(np.log(80.0), 0.3)
        wave = amp * (-np.exp(-0.5 * ((tt - 0.25) / 0.07) ** 2) + 0.65 * np.exp(-0.5 * ((tt - 0.6) / 0.15) ** 2))
        _add(fpz, t, mt.kcomplex_amp * mt.gain * wave)
        _add(pz, t, 0.45 * subj.pz_gain * wave)
    # --- slow waves (0.5-2 Hz, > 75 uV peak-to-peak): dense in N3, more so the deeper it is ------
    depth_fr = np.interp(t_frame, (np.arange(n_ep) + 0.5) * C.EPOCH_S, depth)
    sw_rate = rate(mix[:, S_N3] * np.exp(0.6 * depth_fr), 17.0) + rate(mix[:, S_N2], 0.4)
    for t in _event_times(sw_rate, rng):
        period = 1.0 / rng.uniform(0.6, 1.6)
        tt = np.arange(int(period * FS)) / FS
        amp = g * dom.delta * rng.lognormal(np.log(52.0), 0.2)  # half of peak-to-peak
        _add(fpz, t, -(mt.slow_wave_amp * mt.gain * amp) * np.sin(2 * np.pi * tt / period))
        _add(pz, t, -0.5 * subj.pz_gain * amp * np.sin(2 * np.pi * tt / period))
    # --- vertex sharp waves in N1 --------------------------------------------------------------
    for t in _event_times(rate(mix[:, S_N1], 2.0), rng):
        tt = np.arange(50) / FS
        amp = g * rng.lognormal(np.log(28.0), 0.3)
        wave = amp * (-np.exp(-0.5 * ((tt - 0.2) / 0.04) ** 2) + 0.3 * np.exp(-0.5 * ((tt - 0.32) / 0.06) ** 2))
        _add(fpz, t, wave)
        _add(pz, t, 0.6 * subj.pz_gain * wave)
    # --- sawtooth wave trains in REM (2-4 Hz) ---------------------------------------------------
    for t in _event_times(rate(mix[:, S_REM], 1.5), rng):
        dur = rng.uniform(1.5, 4.0)
        tt = np.arange(int(dur * FS)) / FS
        wave = scipy.signal.sawtooth(2 * np.pi * rng.uniform(2.0, 3.5) * tt, 0.85)
        wave = g * rng.lognormal(np.log(18.0), 0.3) * np.sin(np.pi * tt / dur) * wave
        _add(fpz, t, wave)
        _add(pz, t, 0.5 * subj.pz_gain * wave)
    # --- eyes: blinks, saccades / REMs (steps of eye position), slow eye movements -------------
    for t in _event_times(subj.blink_rate * (mix[:, W_ACT] + 0.15 * mix[:, W_REL] + 0.1 * mix[:, S_N1]), rng):
        tt = np.arange(60) / FS
        blink = rng.lognormal(np.log(45.0), 0.35) * np.exp(-0.5 * ((tt - 0.3) / 0.1) ** 2)
        _add(fpz, t, (mt.eye * g) * blink)  # a blink is mostly vertical: big frontally, small on horizontal EOG
        _add(eye, t, 0.25 * blink)
    # REM sleep has phasic bursts of rapid eye movements: a slow on/off process gates them.
    phasic = 1.0 / (1.0 + np.exp(-(_ar1(rng, nf, 10.0, 2.0) - 0.5)))
    sac_rate = rate(mix[:, W_ACT], 60.0) + rate(mix[:, W_REL], 5.0) + rate(mix[:, S_REM] * phasic, 40.0)
    sac_t = _event_times(sac_rate, rng)
    pos = np.zeros(n)
    idx = np.clip(np.rint(sac_t * FS).astype(int), 0, n - 1)
    np.add.at(pos, idx, rng.normal(0.0, 85.0, idx.size))
    pos = np.cumsum(pos)
    pos -= scipy.signal.lfilter([1.0], [1.0, -0.995], pos) * 0.005  # gaze drifts back to centre
    pos = scipy.signal.lfilter(np.ones(4) / 4, [1.0], pos)  # saccades take ~40 ms
    # AC-coupled EOG amplifier: first-order high-pass (~0.16 Hz)
    pos = scipy.signal.lfilter([1.0, -1.0], [1.0, -0.99], pos)
    eye += pos
    # Vertical eye movements of the awake subject: seen frontally (Fpz-Cz), not on horizontal EOG.
    v_t = _event_times(rate(mix[:, W_ACT], 40.0), rng)
    vpos = np.zeros(n)
    np.add.at(vpos, np.clip(np.rint(v_t * FS).astype(int), 0, n - 1), rng.normal(0.0, 38.0, v_t.size))
    vpos = scipy.signal.lfilter([1.0, -1.0], [1.0, -0.99], scipy.signal.lfilter(np.ones(4) / 4, [1.0], np.cumsum(vpos)))
    fpz += (mt.eye * g) * vpos
    sem_w = np.interp(np.arange(n) / FS, t_frame, mix[:, S_N1] + 0.3 * mix[:, W_REL])
    b, a = scipy.signal.butter(2, [0.15, 0.6], btype="bandpass", fs=FS)
    sem = scipy.signal.lfilter(b, a, rng.standard_normal(n)) * 12.0 * np.sqrt(FS / 0.9)
    eye += sem * np.sqrt(sem_w) * 0.3
    # --- movement artefacts: movement-time epochs, active wake, arousals -----------------------
    mv_rate = rate(mix[:, W_ACT], 0.3)
    mv_t = list(_event_times(mv_rate, rng))
    mv_t += [k * C.EPOCH_S + rng.uniform(0, 25) for k in np.flatnonzero(seq == MOVEMENT)]
    for t in mv_t:
        dur = rng.uniform(1.0, 6.0)
        m = int(dur * FS)
        env = np.sin(np.pi * np.arange(m) / m)
        burst = scipy.signal.lfilter([0.3, 0.3, 0.3], [1.0], rng.standard_normal(m)) * rng.lognormal(np.log(25), 0.5)
        shift = np.cumsum(rng.standard_normal(m)) * 2.0
        art = env * (burst + shift)
        _add(fpz, t, art)
        _add(pz, t, 0.6 * art)
        _add(eye, t, 1.2 * art)

    # --- recording: drift, amplifier noise, residual mains, EOG mixing --------------------------
    tt = np.arange(n) / FS
    drift = _ar1(rng, n // 50 + 1, 8.0, 1.0).repeat(50)[:n]
    drift = scipy.signal.lfilter(np.ones(25) / 25, [1.0], drift)
    out = {}
    for name, sig, floor in (("EEG Fpz-Cz", fpz, 1.0), ("EEG Pz-Oz", pz, 0.8)):
        mains = subj.mains_uv * np.cos(2 * np.pi * 49.97 * tt + rng.uniform(0, 2 * np.pi))
        noise = rng.standard_normal(n) * subj.noise_uv * floor
        out[name] = sig + subj.drift_uv * drift * floor + noise + mains
    out["EEG Fpz-Cz"] += (mt.eye * subj.eye_leak) * eye
    # The horizontal EOG electrodes also pick up frontal EEG (and its events).
    out["EOG horizontal"] = subj.eog_gain * eye + subj.eeg_leak * fpz + rng.standard_normal(n) * subj.noise_uv * 1.5
    return out, {"w_active": act, "sws_depth": depth}


# ------------------------------------------------------------------------------------------
# written hypnogram (human scorer)
# ------------------------------------------------------------------------------------------


def score_hypnogram(seq: np.ndarray, latent: dict[str, np.ndarray], rng: np.random.Generator) -> list[str]:
    """R&K labels a human scorer would write for a generating sequence.

    Disagreement is concentrated where humans disagree: at stage changes, in N1, N2 vs N3 by
    slow-wave depth, and REM vs N1; a per-night bias scales all rates (~15-20 % overall inside the
    sleep period, like inter-scorer agreement on real PSG).
    """
    n = seq.size
    bias = rng.lognormal(0.0, 0.3)
    out = seq.copy()
    u = rng.random(n)
    for k in range(n):
        s = int(seq[k])
        if s == MOVEMENT:
            continue
        prev = int(seq[k - 1]) if k > 0 else s
        nxt = int(seq[k + 1]) if k + 1 < n else s
        if (prev != s or nxt != s) and u[k] < 0.35 * bias:
            other = [x for x in (prev, nxt) if x != s and x != MOVEMENT]
            if other:
                out[k] = other[int(rng.integers(len(other)))]
                continue
        r = rng.random()
        if s == 1 and r < 0.42 * bias:
            out[k] = rng.choice([0, 2, 4], p=[0.4, 0.45, 0.15])
        elif s == 2 and r < 0.08 * bias:
            out[k] = rng.choice([1, 3, 4], p=[0.45, 0.35, 0.2])
        elif s == 3 and latent["sws_depth"][k] < -0.45 and r < 0.7:
            out[k] = 2
        elif s == 4 and r < 0.07 * bias:
            out[k] = rng.choice([1, 2, 0], p=[0.6, 0.3, 0.1])
        elif s == 0 and seq[max(k - 10, 0):k + 11].max() > 0 and r < 0.06 * bias:
            out[k] = 1
    texts = []
    for k, s in enumerate(out):
        if s == MOVEMENT:
            texts.append("Movement time")
        elif s == 3:
            # R&K stage 4 = slow waves over more than half the epoch: the deepest N3 epochs.
            texts.append("Sleep stage 4" if latent["sws_depth"][k] > 0.25 else "Sleep stage 3")
        else:
            texts.append(("Sleep stage W", "Sleep stage 1", "Sleep stage 2", "", "Sleep stage R")[s])
    return texts


# ------------------------------------------------------------------------------------------
# corpus
# ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NightJob:
    """Everything a worker needs to write one night (picklable)."""

    out: str
    domain: str
    seed: int
    subject: int
    night: int
    real: tuple[np.ndarray, ...]  #: candidate real sequences, first preferred
    night_minutes: int | None
    randomize: randomize.RandomizationConfig | None = None  #: domain randomization (off: None)


def night_names(domain: str, subject: int, night: int, seed: int) -> tuple[str, str]:
    """Sleep-EDF style file names (PSG, hypnogram) of one night."""
    dom = DOMAIN_PARAMS[domain]
    stem = f"{dom.prefix}{subject:02d}{night}{dom.night_letter}"
    letter = _HYPNO_LETTERS[(subject * 7 + night * 3 + seed) % len(_HYPNO_LETTERS)]
    return f"{stem}0-PSG.edf", f"{stem}{letter}-Hypnogram.edf"


def _domain_code(domain: str) -> int:
    return DOMAINS.index(domain)


def _write_night(job: NightJob) -> tuple[str, str]:
    """Generate and write one night; returns the two file paths."""
    from host_tools.data import edf_io

    dom = DOMAIN_PARAMS[job.domain]
    subj = draw_subject(np.random.default_rng([job.seed, _domain_code(job.domain), job.subject, 0]), dom)
    rng = np.random.default_rng([job.seed, _domain_code(job.domain), job.subject, job.night])
    if job.night_minutes is None:
        seq = make_sequence(job.real[0], rng, dom)
    else:
        n_win = job.night_minutes * 2
        best = None
        for real in job.real:  # the subject's own night first, then others until all stages fit
            cand = make_sequence(real, rng, dom)
            score, start = crop_window(cand, n_win)
            if best is None or score > best[0]:
                best = (score, cand[start:start + n_win])
            if score == 5:
                break
        assert best is not None
        seq = best[1]
    if job.randomize is None:
        signals, latent = synth_night(seq, subj, dom, rng)
        draw = None
    else:
        rrng = randomize.night_rng(job.seed, _domain_code(job.domain), job.subject, job.night)
        draw = randomize.draw_night(rrng, job.randomize)
        signals, latent = synth_night(seq, subj, dom, rng, montage=randomize.MONTAGES[draw.montage])
        signals = randomize.record_night(signals, draw, rrng, job.randomize, stage_codes=seq)
    texts = score_hypnogram(seq, latent, rng)
    onsets, durs, descs = edf_io.stage_runs(texts)
    # Sleep-EDF recordings start in the afternoon/evening; deterministic per night.
    start = dt.datetime.combine(
        dom.start_date + dt.timedelta(days=37 * job.subject + 2 * job.night), dt.time(0, 0)
    ) + dt.timedelta(minutes=int(rng.integers(16 * 60, 23 * 60)))
    psg_name, hyp_name = night_names(job.domain, job.subject, job.night, job.seed)
    out = Path(job.out)
    psg, hyp = out / psg_name, out / hyp_name
    edf_io.write_psg(psg, {ch: signals[ch] for ch in CHANNELS}, FS, start,
                     patient=f"{dom.prefix}{job.subject:02d}")
    if draw is not None:
        randomize.write_sidecar(psg, draw)
    # Like the real files, the hypnogram ends with an unscored stretch.
    onsets.append(float(len(texts) * C.EPOCH_S))
    durs.append(float(C.EPOCH_S * int(rng.integers(1, 40))))
    descs.append("Sleep stage ?")
    edf_io.write_hypnogram(hyp, onsets, durs, descs, start)
    return str(psg), str(hyp)


def _night_job(out: Path, real: dict[str, list[np.ndarray]], domain: str, seed: int, subject: int,
               night: int, night_minutes: int | None,
               randomize_cfg: randomize.RandomizationConfig | None = None) -> NightJob:
    """The job for one night: which real hypnogram(s) drive it and its random streams.

    Depends only on (seed, domain, subject, night), so one night of a corpus can be regenerated
    on its own (:func:`generate_night`) byte for byte.
    """
    keys = sorted(real)
    order = np.random.default_rng([seed, _domain_code(domain), 99991]).permutation(len(keys))
    own = real[keys[order[subject % len(keys)]]]
    others = [real[keys[order[(subject + j) % len(keys)]]][0] for j in range(1, len(keys))]
    mine = own[(night - 1) % len(own)]
    cands = (mine, *others) if night_minutes is not None else (mine,)
    return NightJob(str(out), domain, int(seed), subject, night, cands,
                    None if night_minutes is None else int(night_minutes), randomize_cfg)


def generate_night(out: str | Path, subject: int, night: int, domain: str, seed: int,
                   night_minutes: int | None = None,
                   randomize: bool | randomize.RandomizationConfig | None = None) -> tuple[Path, Path]:
    """Write one night exactly as ``generate_corpus(out, ..., domain, seed, night_minutes,
    randomize=...)`` would.

    Returns
    -------
    (Path, Path)
        The PSG and hypnogram paths.
    """
    if domain not in DOMAINS:
        raise SleepEdgeError(f"domain {domain!r}: must be one of {', '.join(DOMAINS)}")
    Path(out).mkdir(parents=True, exist_ok=True)
    cfg = _randomize_config(randomize)
    psg, hyp = _write_night(_night_job(Path(out), load_real_sequences(), domain, seed, int(subject),
                                       int(night), night_minutes, cfg))
    return Path(psg), Path(hyp)


def generate_corpus(
    out: str | Path,
    n_subjects: int,
    nights: int,
    domain: str,
    seed: int,
    night_minutes: int | None = None,
    workers: int | None = None,
    progress: bool = False,
    randomize: bool | randomize.RandomizationConfig | None = None,
) -> list[Path]:
    """Write a synthetic Sleep-EDF-style corpus.

    Parameters
    ----------
    out
        Output folder (created).
    n_subjects
        Number of subjects, 1..100 (two-digit subject numbers like Sleep-EDF).
    nights
        1 or 2 nights per subject.
    domain
        ``"sc"`` (sleep cassette) or ``"st"`` (temazepam telemetry-like).
    seed
        Seed; the same seed gives byte-identical files.
    night_minutes
        Crop every night to this many minutes around sleep onset (tests); ``None`` = whole night.
    workers
        Processes (default 2); results do not depend on it.
    progress
        Show a progress bar.
    randomize
        Domain randomization (:mod:`host_tools.data.randomize`): ``True`` for the documented
        ranges, a ``RandomizationConfig``, or ``None``/``False`` (default) for the plain corpus,
        byte-identical to what it always was. Each randomized night also gets a
        ``*-randomization.json`` beside its PSG.

    Returns
    -------
    list of Path
        PSG and hypnogram paths, in (subject, night) order, PSG first.
    """
    if domain not in DOMAINS:
        raise SleepEdgeError(f"--domain {domain!r}: must be one of {', '.join(DOMAINS)}")
    if not 1 <= int(n_subjects) <= 100:
        raise SleepEdgeError(f"--subjects {n_subjects}: must be 1..100 (two-digit Sleep-EDF subject numbers)")
    if nights not in (1, 2):
        raise SleepEdgeError(f"--nights {nights}: must be 1 or 2")
    if night_minutes is not None and not 30 <= int(night_minutes) <= 24 * 60:
        raise SleepEdgeError(f"--night-minutes {night_minutes}: must be 30..1440")
    workers = 2 if workers is None else int(workers)
    if workers < 1:
        raise SleepEdgeError(f"--workers {workers}: must be at least 1")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SleepEdgeError(f"{out}: cannot create output folder ({exc.strerror})") from exc

    real = load_real_sequences()
    cfg = _randomize_config(randomize)
    jobs = [_night_job(out, real, domain, seed, i, night, night_minutes, cfg)
            for i in range(n_subjects) for night in range(1, nights + 1)]

    results: list[tuple[str, str]] = []
    bar = _progress(len(jobs), f"synth {domain} -> {out}") if progress else None
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            results.append(_write_night(job))
            if bar:
                bar.update(1)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no fork of a process that may hold TF / BLAS threads
        with ctx.Pool(min(workers, len(jobs))) as pool:
            for r in pool.imap(_write_night, jobs):
                results.append(r)
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    return [Path(p) for pair in results for p in pair]


def _randomize_config(value: Any) -> randomize.RandomizationConfig | None:
    try:
        return randomize.config_from_arg(value)
    except TypeError as exc:
        raise SleepEdgeError(f"randomize: {exc}") from exc


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="night")


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """``sleepedge data synth`` arguments."""
    parser.add_argument("--out", type=Path, help="output folder for the EDF files")
    parser.add_argument("--subjects", type=int, default=20, help="number of subjects (default 20)")
    parser.add_argument("--nights", type=int, choices=(1, 2), default=2, help="nights per subject")
    parser.add_argument("--domain", choices=DOMAINS, default="sc",
                        help="sc: sleep-cassette-like; st: temazepam telemetry-like")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument("--night-minutes", type=int, default=None,
                        help="crop each night to M minutes around sleep onset (quick tests)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--randomize", action="store_true",
                        help="domain randomization: random montage (frontal/central), gain, DC "
                             "offset and drift, native rate 128-256 Hz resampled to 100 Hz, "
                             "amplifier noise, 50/60 Hz mains, EMG, pops, movement "
                             "(docs/synthetic-data.md); off by default")
    parser.add_argument("--report", action="store_true",
                        help="calibration report against the real Sleep-EDF statistics "
                             "(of --in DIR alone, or of the corpus just written)")
    parser.add_argument("--in", dest="in_dir", type=Path, default=None,
                        help="with --report and no --out: report on an existing corpus")
    parser.add_argument("--st", type=Path, default=None,
                        help="with --report: an ST corpus for the SC->ST domain-gap check")
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"),
                        help="with --report: folder for calibration-*.png")
    parser.add_argument("--json", type=Path, default=None,
                        help="with --report: where to write the report JSON (default DIR/calibration.json)")


def run(args: argparse.Namespace) -> int:
    """Generate a corpus and/or report its calibration."""
    import time

    if args.out is None and not (args.report and args.in_dir is not None):
        raise SleepEdgeError("data synth: give --out DIR to generate, or --report --in DIR to check a corpus")
    corpus = args.in_dir
    if args.out is not None:
        t0 = time.perf_counter()
        files = generate_corpus(args.out, args.subjects, args.nights, args.domain, args.seed,
                                night_minutes=args.night_minutes, workers=args.workers, progress=True,
                                randomize=args.randomize)
        print(f"wrote {len(files) // 2} nights to {args.out} in {time.perf_counter() - t0:.1f} s")
        corpus = args.out
    if args.report:
        from host_tools.data import calibration

        report = calibration.run_report(Path(corpus), st_dir=args.st, figures_dir=args.figures,
                                        json_path=args.json, workers=args.workers)
        calibration.print_report(report)
    return 0

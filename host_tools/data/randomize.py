"""Domain randomization of the synthetic corpus (sim-to-real): montage, gain, acquisition path.

The default corpus is one synthetic world (Fpz-Cz, 100 Hz, one amplifier). A model trained on it
drops from 0.78 to 0.56 accuracy on real people recorded differently (DREAMS, central montage).
With ``sleepedge data synth --randomize`` every night is recorded through a randomly drawn
montage, amplifier and acquisition path, wide enough that a real recording is one more variation.
Each family, its range and why is in docs/synthetic-data.md ("Domain randomization"); the
ranges come from physiology, instrumentation and the real Sleep-EDF statistics
(``shared/data/sleep-edfx-real-epoch-statistics.json``), never from fitting the DREAMS people.

Families (each can be switched off in :class:`RandomizationConfig`):

- **montage**: frontal (Fpz-Cz, the Sleep-EDF channel) or central (C3/Cz referenced to the
  mastoid): stronger spindles and K-complexes, more alpha in wake, larger slow waves, fewer eye
  artefacts, more EMG (:data:`MONTAGES`, applied inside :func:`host_tools.data.synth.synth_night`);
- **gain**: per night x0.3-3 (log-uniform) times a slow per-epoch wander, total kept in x0.3-3;
  a DC offset and a slow electrode drift;
- **acquisition**: the night is recorded at 128/200/250/256 Hz (the physiology is band-limited
  to 50 Hz and interpolated up), the instrument adds its part at that rate, and the result is
  resampled to the device's 100 Hz by :func:`to_device_rate`, the code real recordings go through
  (:func:`host_tools.data.recordings.resample_to_device`);
- **noise**: an amplifier noise floor (white at the native rate);
- **mains**: 50 or 60 Hz interference with a slowly varying amplitude;
- **artefacts**: EMG bursts (stage-dependent: wake and arousals, few in REM), electrode pops,
  movement artefacts.

Everything is drawn from a generator seeded by the night (:func:`night_rng`), a stream of its own:
the same seed gives byte-identical files, and the default (non-randomized) corpus is untouched.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C

#: Native sample rates a randomized night is "recorded" at (common PSG / wearable amplifiers).
NATIVE_FS_HZ: tuple[int, ...] = (128, 200, 250, 256)
MONTAGE_NAMES: tuple[str, ...] = ("frontal", "central")
#: Stream id that separates the randomization generator from the night's physiology generator.
_STREAM = 7


@dataclasses.dataclass(frozen=True)
class Montage:
    """Multipliers a derivation applies to the generator's Fpz-Cz physiology (1.0 = Fpz-Cz).

    Central = C3 or Cz referenced to the contralateral mastoid (the AASM central derivation, also
    the DREAMS montage). Why each factor, in docs/synthetic-data.md.
    """

    name: str
    gain: float = 1.0  #: overall EEG amplitude (longer inter-electrode distance)
    alpha_wake: float = 1.0  #: alpha peak in relaxed wake
    spindle_rate: float = 1.0
    spindle_amp: float = 1.0
    kcomplex_amp: float = 1.0
    slow_wave_amp: float = 1.0  #: N3 slow waves and the N2/N3 delta background
    eye: float = 1.0  #: blinks, vertical eye movements and the eye leak at the EEG electrode
    emg: float = 1.0  #: EMG in active wake


MONTAGES: dict[str, Montage] = {
    "frontal": Montage("frontal"),
    "central": Montage("central", gain=1.2, alpha_wake=1.8, spindle_rate=1.3, spindle_amp=1.5,
                       kcomplex_amp=1.5, slow_wave_amp=1.3, eye=0.2, emg=1.5),
}


@dataclasses.dataclass(frozen=True)
class RandomizationConfig:
    """Which families are randomized and their ranges (see the module docstring).

    The defaults are the documented ranges; tests switch families off to look at one at a time.
    """

    montage: bool = True
    central_share: float = 0.5  #: probability of the central montage
    gain: bool = True
    night_gain: tuple[float, float] = (0.3, 3.0)  #: log-uniform
    epoch_gain_logsd: float = 0.2  #: per-epoch AR(1) wander (log), tau 20 epochs
    dc_offset_uv: float = 2000.0  #: uniform +-; int16 transport holds +-8192 uV
    drift_uv: tuple[float, float] = (5.0, 150.0)  #: rms of the slow electrode drift, log-uniform
    acquisition: bool = True
    native_fs: tuple[int, ...] = NATIVE_FS_HZ
    noise: bool = True
    noise_uv: tuple[float, float] = (0.2, 5.0)  #: white noise rms at the native rate, log-uniform
    mains: bool = True
    mains_uv: tuple[float, float] = (0.5, 40.0)  #: amplitude, log-uniform
    artefacts: bool = True
    emg_per_h: tuple[float, float] = (5.0, 120.0)  #: EMG bursts per hour of wake, log-uniform
    pops_per_h: tuple[float, float] = (0.2, 20.0)
    movements_per_h: tuple[float, float] = (1.0, 20.0)  #: per hour of wake


@dataclasses.dataclass(frozen=True)
class NightRandomization:
    """One night's draw (JSON-serializable; written beside the PSG as ``*-randomization.json``)."""

    montage: str
    gain: float
    dc_offset_uv: float
    drift_uv: float
    native_fs: int
    noise_uv: float
    mains_hz: float
    mains_uv: float
    emg_per_h: float
    pops_per_h: float
    movements_per_h: float

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


def night_rng(seed: int, domain_code: int, subject: int, night: int) -> np.random.Generator:
    """The randomization generator of one night (independent of its physiology stream)."""
    return np.random.default_rng([int(seed), int(domain_code), int(subject), int(night), _STREAM])


def _loguniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_night(rng: np.random.Generator, cfg: RandomizationConfig | None = None) -> NightRandomization:
    """Draw one night's montage, amplifier and acquisition path.

    Every draw is made whatever the switches, so switching one family off leaves the others'
    values unchanged; a family that is off takes its neutral value.
    """
    cfg = cfg or RandomizationConfig()
    central = rng.random() < cfg.central_share
    gain, dc, drift = _loguniform(rng, cfg.night_gain), rng.uniform(-1, 1) * cfg.dc_offset_uv, _loguniform(rng, cfg.drift_uv)
    fs = int(cfg.native_fs[int(rng.integers(len(cfg.native_fs)))])
    noise = _loguniform(rng, cfg.noise_uv)
    mains_hz, mains_uv = (50.0, 60.0)[int(rng.integers(2))], _loguniform(rng, cfg.mains_uv)
    emg, pops, moves = (_loguniform(rng, cfg.emg_per_h), _loguniform(rng, cfg.pops_per_h),
                        _loguniform(rng, cfg.movements_per_h))
    return NightRandomization(
        montage="central" if (cfg.montage and central) else "frontal",
        gain=gain if cfg.gain else 1.0,
        dc_offset_uv=float(dc) if cfg.gain else 0.0,
        drift_uv=drift if cfg.gain else 0.0,
        native_fs=fs if cfg.acquisition else C.FS_HZ,
        noise_uv=noise if cfg.noise else 0.0,
        # At 100 Hz without the acquisition path 60 Hz would fold to 40 Hz, which an analog
        # anti-aliasing filter prevents in a real amplifier: keep 50 Hz (at Nyquist) there.
        mains_hz=mains_hz if cfg.acquisition else 50.0,
        mains_uv=mains_uv if cfg.mains else 0.0,
        emg_per_h=emg if cfg.artefacts else 0.0,
        pops_per_h=pops if cfg.artefacts else 0.0,
        movements_per_h=moves if cfg.artefacts else 0.0,
    )


# ------------------------------------------------------------------------------------------
# the acquisition path
# ------------------------------------------------------------------------------------------


def to_device_rate(x_uv: np.ndarray, fs: float) -> np.ndarray:
    """Resample a native-rate recording to the device's 100 Hz with the real-input code."""
    from host_tools.data.recordings import resample_to_device

    return resample_to_device(x_uv, fs, "synthetic night")


def to_native_rate(x_uv: np.ndarray, fs: int) -> np.ndarray:
    """Band-limited interpolation of a 100 Hz physiological signal up to ``fs`` (>= 100 Hz)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    r = Fraction(int(fs), C.FS_HZ)
    if r == 1:
        return np.asarray(x_uv, dtype=np.float64)
    return resample_poly(np.asarray(x_uv, dtype=np.float64), r.numerator, r.denominator)


#: How much EMG / movement each AASM stage carries relative to wake (tone falls with depth,
#: REM atonia); movement time epochs (-1) count as wake.
_AROUSAL_WEIGHT = {-1: 1.0, 0: 1.0, 1: 0.5, 2: 0.15, 3: 0.05, 4: 0.03}


def _stage_weight(stage_codes: np.ndarray | None, n_epochs: int) -> np.ndarray:
    if stage_codes is None:
        return np.ones(n_epochs)
    return np.array([_AROUSAL_WEIGHT.get(int(s), 1.0) for s in stage_codes[:n_epochs]])


def _ar1(rng: np.random.Generator, n: int, tau: float, sd: float) -> np.ndarray:
    from scipy.signal import lfilter

    a = math.exp(-1.0 / tau)
    e = rng.standard_normal(n) * sd * math.sqrt(1 - a * a)
    e[0] /= math.sqrt(1 - a * a)
    return lfilter([1.0], [1.0, -a], e)


def epoch_gain(params: NightRandomization, rng: np.random.Generator, n_epochs: int,
               cfg: RandomizationConfig) -> np.ndarray:
    """Per-epoch gain: the night's gain times a slow wander (electrode impedance, sweat), kept
    in the night-gain range."""
    wander = np.exp(_ar1(rng, n_epochs, 20.0, cfg.epoch_gain_logsd)) if cfg.gain else np.ones(n_epochs)
    lo, hi = cfg.night_gain
    return np.clip(params.gain * wander, lo, hi)


def _events(rng: np.random.Generator, per_h: float, weight: np.ndarray) -> np.ndarray:
    """Poisson event times (s) with a per-epoch rate ``per_h * weight``."""
    counts = rng.poisson(per_h * weight * C.EPOCH_S / 3600.0)
    idx = np.repeat(np.arange(weight.size), counts)
    return (idx + rng.random(idx.size)) * C.EPOCH_S


def _put(sig: np.ndarray, start: int, wave: np.ndarray) -> None:
    end = min(start + wave.size, sig.size)
    if end > start >= 0:
        sig[start:end] += wave[: end - start]


def artefacts(params: NightRandomization, rng: np.random.Generator, n: int, fs: int,
              weight: np.ndarray) -> np.ndarray:
    """EMG bursts, electrode pops and movements at the native rate (uV, before the gain)."""
    from scipy.signal import butter, sosfilt

    out = np.zeros(n)
    emg_sos = butter(4, [20.0, 0.45 * fs], btype="bandpass", fs=fs, output="sos")
    for t in _events(rng, params.emg_per_h, weight):
        m = int(rng.uniform(0.5, 5.0) * fs)  # chewing, clenching, arousal tone: 0.5-5 s
        env = np.sin(np.pi * np.arange(m) / m) ** 0.5
        _put(out, int(t * fs), sosfilt(emg_sos, rng.standard_normal(m)) * env * _loguniform(rng, (10.0, 80.0)))
    for t in _events(rng, params.pops_per_h, np.ones_like(weight)):
        # Electrode pop: a sudden contact change, a step that decays with the amplifier's coupling.
        m = int(4.0 * fs)
        tau = rng.uniform(0.2, 1.5)
        step = rng.choice([-1.0, 1.0]) * _loguniform(rng, (100.0, 1000.0))
        _put(out, int(t * fs), step * np.exp(-np.arange(m) / (tau * fs)))
    for t in _events(rng, params.movements_per_h, weight):
        m = int(rng.uniform(1.0, 10.0) * fs)  # body movement: large slow swings plus cable noise
        slow = np.cumsum(rng.standard_normal(m)) / math.sqrt(fs) * 30.0
        env = np.sin(np.pi * np.arange(m) / m)
        _put(out, int(t * fs), env * (slow - slow.mean()) * _loguniform(rng, (1.0, 6.0)))
    return out


def record_channel(clean_uv: np.ndarray, params: NightRandomization, rng: np.random.Generator,
                   cfg: RandomizationConfig, stage_codes: np.ndarray | None = None,
                   gain: np.ndarray | None = None) -> np.ndarray:
    """One channel through the randomized acquisition path, at the native rate.

    ``x = gain(t) * (physiology + artefacts) + drift + offset + mains + amplifier noise``.

    Parameters
    ----------
    clean_uv
        The generator's 100 Hz channel (uV), a whole number of 30-s epochs.
    params, rng, cfg
        The night's draw, its generator and the configuration.
    stage_codes
        Per-epoch AASM codes (-1 movement) that make EMG and movement follow arousal.
    gain
        Per-epoch gain (shared by the channels of one amplifier); default from :func:`epoch_gain`.

    Returns
    -------
    numpy.ndarray
        float64 uV at ``params.native_fs``.
    """
    fs = params.native_fs
    n_ep = clean_uv.size // C.EPOCH_SAMPLES
    x = to_native_rate(clean_uv, fs)
    n = x.size
    weight = _stage_weight(stage_codes, n_ep)
    x = x + artefacts(params, rng, n, fs, weight)
    g = epoch_gain(params, rng, n_ep, cfg) if gain is None else gain
    x = x * np.repeat(g, n // n_ep)[:n]
    t = np.arange(n) / fs
    if params.drift_uv > 0 or params.dc_offset_uv != 0:
        # Electrode offset and drift (half-cell potential, sweat): an AR(1) with tau 60 s,
        # evaluated every second and interpolated. Not scaled by the gain of the scalp signal.
        d = _ar1(rng, int(t[-1]) + 2, 60.0, params.drift_uv)
        x = x + np.interp(t, np.arange(d.size), d) + params.dc_offset_uv
    if params.mains_uv > 0:
        knots = np.arange(int(t[-1] // 30) + 2) * 30.0  # amplitude wanders with cables and posture
        wobble = np.exp(np.interp(t, knots, _ar1(rng, knots.size, 10.0, 0.4)))
        x = x + params.mains_uv * wobble * np.cos(2 * np.pi * params.mains_hz * t + rng.uniform(0, 2 * np.pi))
    if params.noise_uv > 0:
        x = x + rng.standard_normal(n) * params.noise_uv
    return x


def record_night(signals: dict[str, np.ndarray], params: NightRandomization, rng: np.random.Generator,
                 cfg: RandomizationConfig | None = None, stage_codes: np.ndarray | None = None,
                 native: bool = False) -> dict[str, np.ndarray]:
    """Every channel of a night through the acquisition path; 100 Hz unless ``native``.

    The channels share the night's per-epoch gain (one amplifier); noise, mains phase,
    artefacts and drift are drawn per channel.
    """
    cfg = cfg or RandomizationConfig()
    n_ep = next(iter(signals.values())).size // C.EPOCH_SAMPLES
    gain = epoch_gain(params, rng, n_ep, cfg)
    out = {}
    for name, sig in signals.items():
        x = record_channel(sig, params, rng, cfg, stage_codes, gain)
        out[name] = x if native else to_device_rate(x, params.native_fs)
    return out


def write_sidecar(psg_path: str | Path, params: NightRandomization) -> Path:
    """``<night>-randomization.json`` beside the PSG: what this night's recording drew."""
    psg_path = Path(psg_path)
    out = psg_path.with_name(psg_path.name.replace("-PSG.edf", "-randomization.json"))
    out.write_text(params.to_json() + "\n")
    return out


def config_from_arg(value: Any) -> RandomizationConfig | None:
    """``None``/``False`` -> off; ``True`` -> default ranges; a config passes through."""
    if value is None or value is False:
        return None
    if value is True:
        return RandomizationConfig()
    if isinstance(value, RandomizationConfig):
        return value
    raise TypeError(f"randomize must be a bool or RandomizationConfig, got {type(value).__name__}")

"""Training-time augmentation of filtered epochs (sim-to-real, part 2 of the randomization).

:func:`augment_batch` perturbs a batch of filtered 30-s epochs (the models' input) with five
families, each applied to an epoch with probability ``p`` and a random strength:

- **scale**: amplitude x0.5-2 (log-uniform): the per-subject spread of real epoch amplitude
  (Sleep-EDF Fpz-Cz, 10th-90th percentile of per-subject medians: W 13.9-30.2 uV, N2 9.9-18.9 uV,
  i.e. ~2x) on top of electrode and amplifier gain;
- **jitter**: additive white noise, rms up to 10 % of the epoch's own rms (amplifier floors);
- **shift**: the epoch moves by up to +-1.5 s (edges reflected): where an event falls inside a
  scored epoch is arbitrary;
- **tilt**: the spectrum is multiplied by (f / 8 Hz)^b, b in +-0.3, rms preserved: electrode
  distance, skull and amplifier corners change the 1/f slope (real rms frequency of N2 spans
  3.6-6.9 Hz across subjects);
- **mix**: a random other epoch of the batch is added with weight lam <= 0.25 (the epoch's own
  weight 1 - lam): background activity of other states; hard labels are kept (the epoch's own
  stage still dominates), soft targets (``(N, C)`` floats, distillation) are mixed the same way.

Seeded (a ``numpy.random.Generator``), off by default (``config=None`` returns the batch as is).
The switch in training is ``train_source(..., augment=True)`` / ``sleepedge train source
--augment``; :func:`host_tools.data.datasets.make_dataset` applies it per batch.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from host_tools import constants as C


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Families, their probability per epoch and their ranges (0 / None switches one off)."""

    p: float = 0.5  #: probability that a family is applied to an epoch
    scale: tuple[float, float] | None = (0.5, 2.0)  #: log-uniform factor
    jitter: float = 0.1  #: max white-noise rms relative to the epoch rms
    shift: float = 1.5  #: max time shift (s), both ways
    tilt: float = 0.3  #: max |exponent| of the (f / 8 Hz)^b spectral tilt
    mix: float = 0.25  #: max weight of the partner epoch
    clip_uv: float | None = None  #: re-clip after augmenting (edge model input saturation)


FAMILIES: tuple[str, ...] = ("scale", "jitter", "shift", "tilt", "mix")


def _pick(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return rng.random(n) < p


def _shift(x: np.ndarray, rng: np.random.Generator, on: np.ndarray, max_s: float) -> np.ndarray:
    k = int(round(max_s * C.FS_HZ))
    s = rng.integers(-k, k + 1, size=x.shape[0])
    out = x.copy()
    for i in np.flatnonzero(on & (s != 0)):
        pad = np.pad(x[i], abs(int(s[i])), mode="reflect")
        a = abs(int(s[i])) - int(s[i])  # positive shift: the epoch moves right (later)
        out[i] = pad[a:a + x.shape[1]]
    return out


def _tilt(x: np.ndarray, rng: np.random.Generator, on: np.ndarray, max_b: float) -> np.ndarray:
    b = rng.uniform(-max_b, max_b, size=x.shape[0])
    idx = np.flatnonzero(on)
    if idx.size == 0:
        return x
    f = np.fft.rfftfreq(x.shape[1], d=1.0 / C.FS_HZ)
    logf = np.log(np.maximum(f, 0.3) / 8.0)
    spec = np.fft.rfft(x[idx].astype(np.float64), axis=1) * np.exp(b[idx, None] * logf[None, :])
    y = np.fft.irfft(spec, n=x.shape[1], axis=1)
    rms_in = np.sqrt(np.mean(x[idx].astype(np.float64) ** 2, axis=1, keepdims=True))
    rms_out = np.sqrt(np.mean(y ** 2, axis=1, keepdims=True))
    out = x.copy()
    out[idx] = y * (rms_in / np.maximum(rms_out, 1e-12))
    return out


def augment_batch(
    x: np.ndarray, y: np.ndarray | None = None, *, rng: np.random.Generator,
    config: AugmentConfig | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Augment one batch of filtered epochs.

    Parameters
    ----------
    x : ndarray (B, 3000) or (B, 3000, 1), float
        Filtered epochs in uV.
    y : ndarray (B,) int labels, (B, C) soft targets, or None
        Hard labels pass through; soft targets are mixed with the epochs.
    rng : numpy.random.Generator
        The stream that makes the augmentation reproducible.
    config : AugmentConfig or None
        ``None`` = off: ``(x, y)`` are returned unchanged (same objects).

    Returns
    -------
    (x_aug, y_aug)
        Same shapes and dtypes as the inputs.
    """
    if config is None or x.shape[0] == 0:
        return x, y
    shape, dtype = x.shape, x.dtype
    z = np.asarray(x, dtype=np.float64).reshape(shape[0], -1)
    n = z.shape[0]
    if config.scale is not None:
        lo, hi = config.scale
        g = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
        z = z * np.where(_pick(rng, n, config.p), g, 1.0)[:, None]
    if config.jitter > 0:
        on = _pick(rng, n, config.p)
        rms = np.sqrt(np.mean(z ** 2, axis=1))
        sd = rng.uniform(0.0, config.jitter, n) * rms * on
        z = z + rng.standard_normal(z.shape) * sd[:, None]
    if config.shift > 0:
        z = _shift(z, rng, _pick(rng, n, config.p), config.shift)
    if config.tilt > 0:
        z = _tilt(z, rng, _pick(rng, n, config.p), config.tilt)
    y_out = y
    if config.mix > 0 and n > 1:
        partner = rng.permutation(n)
        lam = rng.uniform(0.0, config.mix, n) * _pick(rng, n, config.p)
        z = (1.0 - lam)[:, None] * z + lam[:, None] * z[partner]
        if y is not None and np.ndim(y) == 2:
            yf = np.asarray(y, dtype=np.float64)
            y_out = ((1.0 - lam)[:, None] * yf + lam[:, None] * yf[partner]).astype(np.asarray(y).dtype)
    if config.clip_uv is not None:
        z = np.clip(z, -config.clip_uv, config.clip_uv)
    return z.reshape(shape).astype(dtype, copy=False), y_out

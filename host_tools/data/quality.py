"""Signal-quality gate: one verdict per 30-s epoch, the host reference of firmware/core/se_quality.c.

Computed in exact integer arithmetic on the raw int16 transport samples (0.25 uV per step), so
the device and the host agree bit for bit. Verdicts (``constants.QUALITY_VERDICTS``): ``ok``,
``flat`` (detached electrode), ``clipped`` (saturated amplifier, transport or EDF range),
``amplitude`` (implausibly large), ``mains`` (dominated by 50/60 Hz). Thresholds and their
derivation from the real Sleep-EDF statistics: docs/signal-quality.md.
"""

from __future__ import annotations

import numpy as np

from host_tools import constants as C

OK, FLAT, CLIPPED, AMPLITUDE, MAINS = range(len(C.QUALITY_VERDICTS))


def epoch_verdicts(q: np.ndarray) -> np.ndarray:
    """Verdict code (index into ``constants.QUALITY_VERDICTS``) of each epoch.

    Parameters
    ----------
    q
        int16 transport samples, shape (n_epochs, n_samples) with 3 <= n_samples <= 3000
        (one epoch per row, as the device assembles them).

    Returns
    -------
    int8 (n_epochs,)
        The first check that fires, in the device's order: samples on the int16 rails
        (clipped), variance below the flat threshold (flat), samples at the epoch's own minimum
        or maximum (clipped), variance above the amplitude threshold (amplitude), mean squared
        second difference above ``QUALITY_MAINS_RATIO`` x variance (mains).
    """
    x = np.asarray(q)
    if x.dtype != np.int16 or x.ndim != 2 or not 3 <= x.shape[1] <= C.EPOCH_SAMPLES:
        raise ValueError(f"expected int16 epochs (n, 3..{C.EPOCH_SAMPLES}), got {x.dtype} {x.shape}")
    v = x.astype(np.int64)
    n = np.int64(x.shape[1])
    s = v.sum(axis=1)
    var_n2 = n * (v * v).sum(axis=1) - s * s  # n^2 * variance, exact (< 2^63 for n <= 3000)
    n2 = n * n
    d2 = v[:, 2:] - 2 * v[:, 1:-1] + v[:, :-2]
    d2sq = (d2 * d2).sum(axis=1)
    n_rail = ((x == -32768) | (x == 32767)).sum(axis=1)
    mn, mx = v.min(axis=1, keepdims=True), v.max(axis=1, keepdims=True)
    # The device counts samples equal to its running min and max; a constant epoch counts twice.
    n_ext = (v == mn).sum(axis=1) + (v == mx).sum(axis=1)

    out = np.full(len(x), OK, dtype=np.int8)
    checks = [  # reversed so that the first check in the device's order wins
        (d2sq * n > C.QUALITY_MAINS_RATIO * var_n2, MAINS),
        (var_n2 > C.QUALITY_MAX_VAR_LSB2 * n2, AMPLITUDE),
        (n_ext >= C.QUALITY_CLIP_MIN_SAMPLES, CLIPPED),
        (var_n2 < C.QUALITY_FLAT_VAR_LSB2 * n2, FLAT),
        (n_rail >= C.QUALITY_CLIP_MIN_SAMPLES, CLIPPED),
    ]
    for cond, code in checks:
        out[cond] = code
    return out


def verdict_names(codes: np.ndarray) -> list[str]:
    """Codes -> names (``"ok"``, ``"flat"``, ...)."""
    return [C.QUALITY_VERDICTS[int(c)] for c in np.asarray(codes).ravel()]


def recording_verdicts(q: np.ndarray) -> np.ndarray:
    """Verdicts of the whole 30-s epochs of a recording's int16 transport samples (trailing
    partial epoch dropped, as the device and ``sleepedge predict`` do)."""
    q = np.asarray(q, dtype=np.int16)
    n = len(q) // C.EPOCH_SAMPLES
    return epoch_verdicts(q[: n * C.EPOCH_SAMPLES].reshape(n, C.EPOCH_SAMPLES))

"""Causal running normalization of filtered epochs (an experiment, not wired into the device).

Question (issue 10, item 2): would dividing each epoch by a running scale of the recording over
the last minutes make a model transfer better to recordings with another gain, montage or
amplifier? The scale must be causal (the device classifies epoch ``k`` when it ends, knowing only
epochs ``<= k``) and robust to artefacts, so it is the median, over the last ``window`` epochs
including the current one, of each epoch's robust amplitude (the MAD of its samples scaled to a
standard deviation). On a device it costs one MAD per epoch and a ring of ``window`` floats.

The measured note is in docs/training.md ("Running normalization (experiment)").
"""

from __future__ import annotations

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

#: Robust std of a Gaussian from its median absolute deviation.
MAD_TO_STD = 1.4826


def epoch_scale(x: np.ndarray) -> np.ndarray:
    """Robust amplitude (uV) of each epoch: ``1.4826 * median(|x - median(x)|)``.

    Parameters
    ----------
    x : ndarray (N, samples)
        Filtered epochs in uV.
    """
    x = np.asarray(x, dtype=np.float64)
    med = np.median(x, axis=1, keepdims=True)
    return MAD_TO_STD * np.median(np.abs(x - med), axis=1)


def running_scale(x: np.ndarray, window: int = 60, floor_uv: float = 1.0) -> np.ndarray:
    """Causal running scale: for epoch ``k`` the median of :func:`epoch_scale` over epochs
    ``max(0, k - window + 1) .. k`` of the same recording, at least ``floor_uv``.

    Parameters
    ----------
    x : ndarray (N, samples)
        One recording's filtered epochs, in stream order.
    window : int
        Epochs in the running window (60 = the last 30 minutes). 10 epochs (5 min) did worse in
        the experiment: inside a long N3 stretch it scales slow waves down to the N2 level.
    floor_uv : float
        Lower bound, so flat stretches (a lost electrode) are not blown up.
    """
    if window < 1:
        raise SleepEdgeError(f"running normalization window must be >= 1 epoch, got {window}")
    s = epoch_scale(x)
    out = np.empty_like(s)
    for k in range(s.size):
        out[k] = np.median(s[max(0, k - window + 1): k + 1])
    return np.maximum(out, floor_uv)


def running_normalize(x: np.ndarray, window: int = 60, target_uv: float = 15.0,
                      floor_uv: float = 1.0) -> np.ndarray:
    """Epochs rescaled so the running scale becomes ``target_uv`` (float32, still "uV-like",
    so models and the edge input clip keep their units).

    ``target_uv`` defaults to ~the median Fpz-Cz N2 epoch amplitude of real Sleep-EDF nights.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != C.EPOCH_SAMPLES:
        raise SleepEdgeError(f"epochs must have shape (N, {C.EPOCH_SAMPLES}), got {x.shape}")
    scale = running_scale(x, window, floor_uv)
    return (x * (target_uv / scale)[:, None]).astype(np.float32)

"""Causal running normalization (host_tools.data.normalize): causal, robust, removes a gain."""

from __future__ import annotations

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.data.normalize import epoch_scale, running_normalize, running_scale
from host_tools.errors import SleepEdgeError


def _night(n: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    amp = np.exp(rng.normal(np.log(15.0), 0.3, n))  # stage-like amplitude changes
    return rng.standard_normal((n, C.EPOCH_SAMPLES)) * amp[:, None]


def test_epoch_scale_is_robust_std() -> None:
    x = _night(5)
    s = epoch_scale(x)
    assert np.allclose(s, x.std(axis=1), rtol=0.05)
    x[0, :30] += 5000.0  # a pop in 1 % of the samples barely moves it
    assert epoch_scale(x)[0] == pytest.approx(s[0], rel=0.05)


def test_running_scale_is_causal_and_windowed() -> None:
    x = _night(30)
    s = running_scale(x, window=10)
    later = x.copy()
    later[20:] *= 50.0  # the future must not change the past
    assert np.array_equal(running_scale(later, window=10)[:20], s[:20])
    assert running_scale(later, window=10)[29] > 10 * s[29]
    assert s[0] == pytest.approx(epoch_scale(x[:1])[0])
    assert s[9] == pytest.approx(np.median(epoch_scale(x[:10])))
    assert np.all(running_scale(np.zeros((3, C.EPOCH_SAMPLES)), floor_uv=2.0) == 2.0)
    with pytest.raises(SleepEdgeError, match="window"):
        running_scale(x, window=0)


def test_running_normalize_removes_a_gain_and_keeps_stage_contrast() -> None:
    x = _night(30)
    a = running_normalize(x, window=10)
    b = running_normalize(3.0 * x, window=10)
    assert a.dtype == np.float32 and np.allclose(a, b, rtol=1e-5)
    # Within the window, relative amplitudes between epochs survive (it is not per-epoch z-scoring).
    ratio_in, ratio_out = x[25].std() / x[24].std(), a[25].std() / a[24].std()
    assert ratio_out == pytest.approx(ratio_in, rel=0.2)
    with pytest.raises(SleepEdgeError, match="shape"):
        running_normalize(np.zeros((2, 100)))

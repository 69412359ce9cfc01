"""A small deterministic stand-in for the cloud model, used by the cloud/proxy/monitor tests.

It is a real computation (a fixed random linear map and a softmax), so tests can compare the
service's answer for an epoch with a direct call on that epoch alone. Importable by uvicorn
worker processes as ``py:tests.fake_device:make_model``.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from host_tools import constants as C


class StandInCloudModel:
    """Linear softmax model over the epoch; counts calls and can simulate compute time.

    Parameters
    ----------
    delay_s
        Sleep this long per call (simulates a model whose cost is mostly per call, not per epoch).
    seed
        Seed of the weight matrix.
    """

    def __init__(self, delay_s: float = 0.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.standard_normal((C.EPOCH_SAMPLES, C.N_CLASSES)).astype(np.float32)
        self.delay_s = delay_s
        self.name = f"standin-linear-{seed}"
        self.sha256 = "0" * 64
        self.calls = 0
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def predict_proba(self, x_uv: np.ndarray) -> np.ndarray:
        x = np.asarray(x_uv, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != C.EPOCH_SAMPLES:
            raise ValueError(f"expected (N, {C.EPOCH_SAMPLES}), got {x.shape}")
        with self._lock:
            self.calls += 1
            self.batch_sizes.append(len(x))
        if self.delay_s:
            time.sleep(self.delay_s)
        # Row-wise normalisation keeps logits O(1) whatever the amplitude.
        logits = (x @ self.weights) / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-3)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def stage_of(self, samples_int16: np.ndarray) -> int:
        """The class index this model gives one epoch of int16 transport samples."""
        x = np.asarray(samples_int16, dtype=np.int16).astype(np.float32) * np.float32(C.SAMPLE_UV_PER_LSB)
        return int(np.argmax(self.predict_proba(x[None, :])[0]))


def make_model() -> StandInCloudModel:
    """Factory for ``sleepedge cloud serve --model py:tests.fake_device:make_model``."""
    return StandInCloudModel()

"""Causal running input normalization: the host reference of ``firmware/core/se_norm.c``.

Question (issue 10, item 2): does dividing each epoch by a running scale of the recording over
the last minutes make a model transfer better to recordings with another gain, montage or
amplifier? The scale must be causal (the device classifies epoch ``k`` when it ends, knowing only
epochs ``<= k``) and robust to artefacts. Definition (integer where it matters, so the C core and
this module agree bit for bit; docs/training.md "Running normalization"):

- ``q``: the filtered epoch at 0.25 uV, ``clamp(floor(y * 4 + 0.5), int16)`` in float32 (the
  device's ``epoch_q``, what an escalation sends; :func:`transport_samples`);
- epoch amplitude ``a_k = upper_median(|q - upper_median(q)|)`` in LSB, where the upper median is
  element ``n // 2`` of the sorted values (:func:`epoch_amplitude_lsb`);
- a ring of the amplitudes of the last ``NORM_WINDOW_EPOCHS`` *classified* epochs (artefact and
  incomplete epochs do not enter), the current one included; running scale
  ``S_k = max(upper_median(ring), NORM_FLOOR_LSB)`` (:class:`RunningNorm`);
- gain ``h_k = float32(NORM_TARGET_MAD_LSB) / float32(S_k) * 0.25`` (float32, in this order) and
  model input ``float32(q_i) * h_k`` (:func:`normalized_model_input`), quantized to int8 by the
  usual ``filters.quantize_model_input``.

Off unless the model folder says so: ``"input_norm": {"window": 60, ...}`` in its
``export.json`` or ``compress.json`` (:func:`model_input_norm`); ``sleepedge export`` then writes
``SE_MODEL_INPUT_NORM 1`` into ``model_data.h``.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

#: The model-folder metadata key that switches the normalization on.
INPUT_NORM_KEY = "input_norm"
#: Model-folder files searched for :data:`INPUT_NORM_KEY`, in this order.
METADATA_FILES: tuple[str, ...] = ("export.json", "compress.json")


def default_input_norm() -> dict[str, Any]:
    """The metadata value that switches the normalization on (the compiled-in constants)."""
    return {"window": C.NORM_WINDOW_EPOCHS, "target_mad_lsb": C.NORM_TARGET_MAD_LSB,
            "floor_lsb": C.NORM_FLOOR_LSB}


def check_input_norm(value: Any, where: str) -> dict[str, Any] | None:
    """Validate an ``input_norm`` metadata value: ``None``/``False`` = off, a dict = on.

    The device compiles the window, target and floor in (generated header), so a dict may only
    restate them; any other value is refused rather than silently ignored.
    """
    if value is None or value is False:
        return None
    if value is True:
        return default_input_norm()
    if not isinstance(value, dict):
        raise SleepEdgeError(f"{where}: input_norm must be an object like {default_input_norm()}, got {value!r}")
    want = default_input_norm()
    unknown = sorted(set(value) - set(want))
    if unknown:
        raise SleepEdgeError(f"{where}: input_norm has unknown keys {unknown} (known: {sorted(want)})")
    for key, ref in want.items():
        if key in value and not np.isclose(float(value[key]), float(ref), rtol=1e-6, atol=0.0):
            raise SleepEdgeError(f"{where}: input_norm {key}={value[key]!r} differs from the firmware's "
                                 f"{ref!r} (host_tools/constants.py NORM_*)")
    return want


def model_input_norm(model_dir: str | Path, files: tuple[str, ...] = METADATA_FILES) -> dict[str, Any] | None:
    """The ``input_norm`` setting of a model folder (``None`` = off, today's models).

    The first of ``files`` (default :data:`METADATA_FILES`) that has the key decides.
    """
    folder = Path(model_dir)
    for name in files:
        path = folder / name
        if not path.is_file():
            continue
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SleepEdgeError(f"{path}: unreadable model metadata ({exc})") from None
        if isinstance(meta, dict) and INPUT_NORM_KEY in meta:
            return check_input_norm(meta[INPUT_NORM_KEY], str(path))
    return None


def transport_samples(y: np.ndarray) -> np.ndarray:
    """Filtered uV -> int16 at 0.25 uV, as the device's escalation transport (``epoch_q``).

    ``clamp(floor(y * 4 + 0.5), -32768, 32767)`` in float32; NaN goes to -32768 like the C code.
    """
    y = np.asarray(y, dtype=np.float32)
    v = np.floor(y * np.float32(1.0 / C.SAMPLE_UV_PER_LSB) + np.float32(0.5))
    v = np.where(np.isnan(v), np.float32(-32768.0), v)
    return np.clip(v, -32768.0, 32767.0).astype(np.int16)


def _upper_median(x: np.ndarray) -> np.ndarray:
    """Element ``n // 2`` of the sorted values along the last axis."""
    k = x.shape[-1] // 2
    return np.partition(x, k, axis=-1)[..., k]


def epoch_amplitude_lsb(q: np.ndarray) -> np.ndarray:
    """Amplitude of each epoch: ``upper_median(|q - upper_median(q)|)`` (int64, LSB).

    Parameters
    ----------
    q : int16 ndarray (N, samples) or (samples,)
        Transport samples (:func:`transport_samples`).
    """
    q = np.asarray(q)
    if q.dtype != np.int16:
        raise SleepEdgeError(f"epoch amplitude needs int16 transport samples, got {q.dtype}")
    if q.shape[-1] == 0:
        raise SleepEdgeError("epoch amplitude of an empty epoch")
    q = q.astype(np.int64)
    med = _upper_median(q)
    return _upper_median(np.abs(q - med[..., None]))


class RunningNorm:
    """The device's ring of epoch amplitudes, fed in stream order (``se_norm_t``)."""

    def __init__(self, window: int = C.NORM_WINDOW_EPOCHS, floor_lsb: int = C.NORM_FLOOR_LSB) -> None:
        if window < 1:
            raise SleepEdgeError(f"running normalization window must be >= 1 epoch, got {window}")
        self.floor = int(floor_lsb)
        self.ring: deque[int] = deque(maxlen=window)

    def scale(self, extra: int | None = None) -> int:
        """Running scale of the ring (plus ``extra`` for this call only, not stored)."""
        values = list(self.ring) + ([] if extra is None else [int(extra)])
        med = sorted(values)[len(values) // 2] if values else 0
        return max(int(med), self.floor)

    def update(self, amplitude: int) -> int:
        """Push a classified epoch's amplitude; the scale including it (``se_norm_update``)."""
        self.ring.append(int(amplitude))
        return self.scale()


def norm_gain(scale: np.ndarray | int) -> np.ndarray:
    """float32 gain ``NORM_TARGET_MAD_LSB / S * 0.25`` (``se_norm_gain``), per scale."""
    s = np.maximum(np.asarray(scale, dtype=np.int64), C.NORM_FLOOR_LSB).astype(np.float32)
    return np.float32(C.NORM_TARGET_MAD_LSB) / s * np.float32(C.SAMPLE_UV_PER_LSB)


def running_scales(amplitudes: np.ndarray, classified: np.ndarray | None = None,
                   window: int = C.NORM_WINDOW_EPOCHS) -> np.ndarray:
    """Running scale ``S_k`` (int64 LSB) per epoch of one recording, in stream order.

    Classified epochs enter the ring and get the scale including themselves; the others
    (``classified[k]`` false: artefact, incomplete) do not enter it and get the scale the ring
    would give them with their own amplitude counted once (the device never runs the model on
    them, so this only matters for training inputs).
    """
    a = np.asarray(amplitudes, dtype=np.int64).reshape(-1)
    mask = np.ones(a.size, bool) if classified is None else np.asarray(classified, bool).reshape(-1)
    if mask.size != a.size:
        raise SleepEdgeError(f"classified mask has {mask.size} epochs, amplitudes {a.size}")
    norm = RunningNorm(window)
    return np.array([norm.update(v) if m else norm.scale(extra=v) for v, m in zip(a, mask)], np.int64)


def normalized_model_input(y_epochs: np.ndarray, classified: np.ndarray | None = None,
                           raw: np.ndarray | None = None) -> np.ndarray:
    """The float32 epochs a normalized model sees, for ONE recording in stream order.

    ``filters.quantize_model_input(result, scale, zp)`` gives exactly the device's int8 input.

    Parameters
    ----------
    y_epochs : ndarray (N, EPOCH_SAMPLES)
        Filtered uV epochs of one recording, consecutive, from its start (the device filter).
    classified : bool ndarray (N,), optional
        Epochs the device classifies (quality gate ``ok`` and complete); default all. The
        others do not enter the running ring.
    raw : int16 ndarray (N, EPOCH_SAMPLES), optional
        The same epochs' raw transport samples (a prepared cache's ``x_raw``): epochs the
        signal-quality gate rejects are then left out of the ring too, as on the device.

    Returns
    -------
    float32 ndarray (N, EPOCH_SAMPLES)
        ``float32(q) * h_k``: "microvolts" of a recording whose running MAD is a 15-uV std.
    """
    y = np.asarray(y_epochs)
    if y.ndim != 2 or y.shape[1] != C.EPOCH_SAMPLES:
        raise SleepEdgeError(f"epochs must have shape (N, {C.EPOCH_SAMPLES}), got {y.shape}")
    if raw is not None:
        from host_tools.data import quality

        if np.shape(raw) != y.shape:
            raise SleepEdgeError(f"raw epochs have shape {np.shape(raw)}, filtered {y.shape}")
        ok = quality.epoch_verdicts(np.asarray(raw)) == quality.OK
        classified = ok if classified is None else ok & np.asarray(classified, bool)
    q = transport_samples(y)
    gains = norm_gain(running_scales(epoch_amplitude_lsb(q), classified))
    return q.astype(np.float32) * gains[:, None]

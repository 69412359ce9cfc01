"""Butterworth band-pass: design, the device's causal sample-by-sample form, and C export.

The firmware runs the same second-order sections in float32, Direct Form II transposed, in the
same operation order as ``scipy.signal.sosfilt``; host and device therefore agree bit for bit
(C compiled with ``-ffp-contract=off`` so no fused multiply-add changes the rounding).
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from host_tools import constants as C


def design_sos(
    low_hz: float = C.FILTER_LOW_HZ,
    high_hz: float = C.FILTER_HIGH_HZ,
    order: int = C.FILTER_ORDER,
    fs_hz: float = C.FS_HZ,
) -> np.ndarray:
    """Band-pass Butterworth as float32 second-order sections, shape (n_sections, 6).

    Each row is ``b0 b1 b2 a0 a1 a2`` with ``a0 == 1``.
    """
    if not 0 < low_hz < high_hz < fs_hz / 2:
        raise ValueError(f"need 0 < low ({low_hz}) < high ({high_hz}) < fs/2 ({fs_hz / 2})")
    sos = scipy.signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs_hz, output="sos")
    return sos.astype(np.float32)


def to_device_samples(signal_uv: np.ndarray) -> np.ndarray:
    """Microvolts -> the int16 samples the device receives (round half to even, saturating)."""
    q = np.rint(np.asarray(signal_uv, dtype=np.float64) / C.SAMPLE_UV_PER_LSB)
    return np.clip(q, -32768, 32767).astype(np.int16)


def from_device_samples(samples: np.ndarray) -> np.ndarray:
    """int16 device samples -> float32 microvolts, exactly as the firmware converts them."""
    return np.asarray(samples, dtype=np.int16).astype(np.float32) * np.float32(C.SAMPLE_UV_PER_LSB)


def filter_causal(
    x: np.ndarray, sos: np.ndarray | None = None, zi: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run the filter causally in float32, from rest unless ``zi`` is given.

    Returns the filtered signal and the final state (n_sections, 2) so that a stream can be
    filtered block by block with the same result as in one piece.
    """
    sos = design_sos() if sos is None else np.asarray(sos, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    if zi is None:
        zi = np.zeros((sos.shape[0], 2), dtype=np.float32)
    y, zf = scipy.signal.sosfilt(sos, x, zi=np.asarray(zi, dtype=np.float32))
    return y.astype(np.float32, copy=False), zf.astype(np.float32, copy=False)


def filter_device(signal_uv: np.ndarray, sos: np.ndarray | None = None) -> np.ndarray:
    """What the device computes from a recording: int16 transport, then the causal filter."""
    y, _ = filter_causal(from_device_samples(to_device_samples(signal_uv)), sos)
    return y


def filter_reference(x: np.ndarray, sos: np.ndarray | None = None) -> np.ndarray:
    """Plain-Python per-sample DF2T loop: the firmware's algorithm, written out for reading
    and for tests (slow; use :func:`filter_causal` for real signals)."""
    sos = design_sos() if sos is None else np.asarray(sos, dtype=np.float32)
    state = np.zeros((sos.shape[0], 2), dtype=np.float32)
    out = np.empty(len(x), dtype=np.float32)
    for n, sample in enumerate(np.asarray(x, dtype=np.float32)):
        v = np.float32(sample)
        for s in range(sos.shape[0]):
            b0, b1, b2, _, a1, a2 = sos[s]
            y = b0 * v + state[s, 0]
            state[s, 0] = (b1 * v - a1 * y) + state[s, 1]
            state[s, 1] = b2 * v - a2 * y
            v = y
        out[n] = v
    return out


def quantize_model_input(filtered_uv: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float32 filtered microvolts -> int8 model input, as the firmware does it.

    ``q = clamp(floor(x * (1/scale) + 0.5) + zero_point, -128, 127)`` in float32 arithmetic.
    """
    inv = np.float32(1.0 / np.float32(scale))
    x = np.asarray(filtered_uv, dtype=np.float32)
    q = np.floor(x * inv + np.float32(0.5)).astype(np.int64) + int(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)

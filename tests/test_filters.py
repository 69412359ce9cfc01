import numpy as np
import scipy.signal

from host_tools import constants as C
from host_tools.data import filters


def test_design_is_butterworth_bandpass():
    sos = filters.design_sos()
    assert sos.dtype == np.float32 and sos.shape == (C.FILTER_ORDER, 6)
    w, h = scipy.signal.sosfreqz(sos.astype(np.float64), worN=[0.05, 1.0, 10.0, 45.0], fs=C.FS_HZ)
    gain_db = 20 * np.log10(np.abs(h))
    assert gain_db[1] > -1.0 and gain_db[2] > -1.0  # pass band
    assert gain_db[0] < -20.0 and gain_db[3] < -20.0  # stop bands


def test_causal_matches_scipy_on_a_real_length_signal():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(8 * 3600 * C.FS_HZ) * 30).astype(np.float32)  # 8 h at 100 Hz
    y, _ = filters.filter_causal(x)
    ref = scipy.signal.sosfilt(filters.design_sos().astype(np.float64), x.astype(np.float64))
    err = np.max(np.abs(y - ref))
    assert err < 1e-3 * np.max(np.abs(ref)), err


def test_block_by_block_equals_one_piece():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(5000).astype(np.float32)
    whole, _ = filters.filter_causal(x)
    zi = None
    parts = []
    for start in range(0, len(x), 137):
        y, zi = filters.filter_causal(x[start:start + 137], zi=zi)
        parts.append(y)
    assert np.array_equal(np.concatenate(parts), whole)


def test_reference_loop_is_bit_exact_with_vectorised_filter():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(600) * 50).astype(np.float32)
    y, _ = filters.filter_causal(x)
    assert np.array_equal(filters.filter_reference(x), y)


def test_device_sample_roundtrip_and_input_quantization():
    uv = np.array([0.0, 0.125, 0.374, -1.0, 1e6, -1e6])
    q = filters.to_device_samples(uv)
    assert q.dtype == np.int16 and list(q) == [0, 0, 1, -4, 32767, -32768]
    x = np.array([0.0, 0.49, 0.5, -0.5, 500.0, -500.0], dtype=np.float32)
    assert list(filters.quantize_model_input(x, 1.0, 0)) == [0, 0, 1, 0, 127, -128]
    assert list(filters.quantize_model_input(x, 1.0, -3)) == [-3, -3, -2, -3, 127, -128]

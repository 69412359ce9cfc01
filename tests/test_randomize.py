"""Domain randomization (host_tools.data.randomize): every family varies the signal as documented."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from host_tools import cli
from host_tools import constants as C
from host_tools.data import randomize as R
from host_tools.data import synth
from host_tools.data.filters import filter_device
from host_tools.errors import SleepEdgeError

ONLY = dict(montage=False, gain=False, acquisition=False, noise=False, mains=False, artefacts=False)


def _cfg(**on: object) -> R.RandomizationConfig:
    """A configuration with every family off except those given."""
    return R.RandomizationConfig(**{**ONLY, **on})


def _clean(n_epochs: int, seed: int = 0) -> np.ndarray:
    """Band-limited (0.5-30 Hz) noise of ~20 uV rms at 100 Hz: a stand-in for the physiology."""
    sos = scipy.signal.butter(4, [0.5, 30.0], btype="bandpass", fs=C.FS_HZ, output="sos")
    x = scipy.signal.sosfilt(sos, np.random.default_rng(seed).standard_normal(n_epochs * C.EPOCH_SAMPLES))
    return x * 20.0 / x.std()


def _draw(seed: int, cfg: R.RandomizationConfig) -> R.NightRandomization:
    return R.draw_night(R.night_rng(seed, 0, 0, 1), cfg)


def _epochs(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, C.EPOCH_SAMPLES)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_draws_cover_the_documented_ranges() -> None:
    cfg = R.RandomizationConfig()
    draws = [_draw(s, cfg) for s in range(300)]
    gains = np.array([d.gain for d in draws])
    assert gains.min() >= 0.3 and gains.max() <= 3.0
    assert gains.min() < 0.4 and gains.max() > 2.4  # log-uniform fills the range
    assert {d.montage for d in draws} == {"frontal", "central"}
    assert {d.native_fs for d in draws} == set(R.NATIVE_FS_HZ)
    assert {d.mains_hz for d in draws} == {50.0, 60.0}
    assert all(abs(d.dc_offset_uv) <= cfg.dc_offset_uv for d in draws)
    assert all(cfg.noise_uv[0] <= d.noise_uv <= cfg.noise_uv[1] for d in draws)
    # A family switched off takes its neutral value, the others keep theirs.
    off = R.draw_night(R.night_rng(5, 0, 0, 1), dataclasses.replace(cfg, mains=False, acquisition=False))
    on = _draw(5, cfg)
    assert off.mains_uv == 0.0 and off.native_fs == C.FS_HZ
    # Recorded at 100 Hz directly, mains is 50 Hz (60 Hz would fold to 40 Hz without the path).
    at100 = [_draw(s, dataclasses.replace(cfg, acquisition=False)) for s in range(20)]
    assert {d.mains_hz for d in at100} == {50.0} and {d.native_fs for d in at100} == {C.FS_HZ}
    assert (off.gain, off.noise_uv, off.montage) == (on.gain, on.noise_uv, on.montage)


def test_gain_per_night_and_per_epoch_within_0p3_to_3() -> None:
    """Measured on the output std: night gains spread over [0.3, 3], epochs wander inside it."""
    cfg = _cfg(gain=True, drift_uv=(1e-6, 1e-6))  # no drift: std measures the gain alone
    clean = _clean(60)
    ref = _epochs(clean).std(axis=1)
    night_medians = []
    for seed in range(12):
        params = _draw(seed, cfg)
        out = R.record_night({"EEG Fpz-Cz": clean}, params, R.night_rng(seed, 0, 0, 1), cfg)["EEG Fpz-Cz"]
        ratio = _epochs(out).std(axis=1) / ref
        assert np.all(ratio >= 0.3 - 1e-9) and np.all(ratio <= 3.0 + 1e-9)
        assert np.std(np.log(ratio)) > 0.03  # the per-epoch wander is there
        # The DC offset shows in the mean (gain off would leave it at 0).
        assert np.mean(out) == pytest.approx(params.dc_offset_uv, abs=0.1 * params.gain * 20 + 1)
        night_medians.append(np.median(ratio))
    night_medians = np.array(night_medians)
    assert night_medians.max() / night_medians.min() > 3.0


def test_drift_adds_slow_power() -> None:
    clean = _clean(20)
    cfg = _cfg(gain=True, night_gain=(1.0, 1.0), epoch_gain_logsd=0.0, drift_uv=(100.0, 100.0))
    params = _draw(1, cfg)
    out = R.record_night({"x": clean}, params, R.night_rng(1, 0, 0, 1), cfg)["x"]
    f, p_out = scipy.signal.welch(out - out.mean(), fs=C.FS_HZ, nperseg=6000)
    _, p_in = scipy.signal.welch(clean, fs=C.FS_HZ, nperseg=6000)
    slow = (f > 0) & (f < 0.1)
    assert p_out[slow].mean() > 100 * p_in[slow].mean()
    assert np.allclose(p_out[(f > 5) & (f < 20)], p_in[(f > 5) & (f < 20)], rtol=0.05)


@pytest.fixture(scope="module")
def montage_pair() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """One sequence, one subject, the same random streams: frontal vs central first channel."""
    seq = np.array([0] * 6 + [2] * 24 + [3] * 12, dtype=np.int8)
    dom = synth.DOMAIN_PARAMS["sc"]
    subj = synth.draw_subject(np.random.default_rng(3), dom)
    out = {}
    for name in R.MONTAGE_NAMES:
        sig, _ = synth.synth_night(seq, subj, dom, np.random.default_rng(4), montage=R.MONTAGES[name])
        out[name] = _epochs(sig["EEG Fpz-Cz"])
    return out["frontal"], out["central"], seq


def _band_power(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = scipy.signal.welch(x, fs=C.FS_HZ, nperseg=400, axis=-1)
    return float(np.median(p[:, (f >= lo) & (f < hi)].mean(axis=1)))


def test_central_montage_has_its_spectra_and_events(montage_pair) -> None:
    frontal, central, seq = montage_pair
    n2 = np.flatnonzero(seq == 2)[2:-2]  # away from the blurred stage changes
    n3 = np.flatnonzero(seq == 3)[2:]
    wake = np.flatnonzero(seq == 0)[:-2]
    # Spindles (11-16 Hz) in N2: rate x1.3, amplitude x1.5 at the central derivation.
    assert _band_power(central[n2], 11, 16) > 1.8 * _band_power(frontal[n2], 11, 16)
    # Larger slow waves in N3.
    assert _band_power(central[n3], 0.5, 2) > 1.4 * _band_power(frontal[n3], 0.5, 2)
    # Relative alpha in wake: more at central (alpha is posterior, Fpz-Cz sees little of it).
    rel = lambda x: _band_power(x, 8, 12) / _band_power(x, 0.5, 30)  # noqa: E731
    assert rel(central[wake]) > 1.2 * rel(frontal[wake])
    # The generator without a montage is exactly the frontal montage.
    dom = synth.DOMAIN_PARAMS["sc"]
    subj = synth.draw_subject(np.random.default_rng(3), dom)
    plain, _ = synth.synth_night(seq, subj, dom, np.random.default_rng(4))
    assert np.array_equal(_epochs(plain["EEG Fpz-Cz"]), frontal)


def test_mains_peak_at_50_or_60_hz_in_the_native_psd() -> None:
    clean = _clean(4)
    cfg = _cfg(mains=True, acquisition=True, noise=True)
    for hz in (50.0, 60.0):
        params = dataclasses.replace(_draw(2, cfg), mains_hz=hz, mains_uv=5.0, native_fs=250)
        native = R.record_night({"x": clean}, params, R.night_rng(2, 0, 0, 1), cfg, native=True)["x"]
        f, p = scipy.signal.welch(native, fs=250, nperseg=1000)
        peak = p[np.argmin(np.abs(f - hz))]
        side = p[(np.abs(f - hz) > 2) & (np.abs(f - hz) < 8)]
        assert peak > 100 * np.median(side)
        assert f[np.argmax(np.where(f > 35, p, 0))] == pytest.approx(hz, abs=0.25)
    # After the anti-aliasing resampler 60 Hz is gone, not folded down to 40 Hz.
    out = R.to_device_rate(native, 250)
    f, p = scipy.signal.welch(out, fs=C.FS_HZ, nperseg=400)
    _, p_clean = scipy.signal.welch(clean, fs=C.FS_HZ, nperseg=400)
    at40 = np.argmin(np.abs(f - 40))
    assert p[at40] < 20 * max(p_clean[at40], 1e-6) + 10 * params.noise_uv ** 2 / 125


@pytest.mark.parametrize("fs", R.NATIVE_FS_HZ)
def test_resampled_output_is_100_hz_with_the_expected_length(fs: int) -> None:
    n_ep = 3
    clean = _clean(n_ep)
    cfg = _cfg(acquisition=True)
    params = dataclasses.replace(_draw(0, cfg), native_fs=fs)
    native = R.record_night({"x": clean}, params, R.night_rng(0, 0, 0, 1), cfg, native=True)["x"]
    out = R.record_night({"x": clean}, params, R.night_rng(0, 0, 0, 1), cfg)["x"]
    assert native.size == n_ep * C.EPOCH_S * fs
    assert out.size == n_ep * C.EPOCH_SAMPLES and out.dtype == np.float64
    # Only the acquisition path: up to fs and back to 100 Hz keeps the 0.5-30 Hz physiology.
    inner = slice(200, -200)
    assert np.corrcoef(out[inner], clean[inner])[0, 1] > 0.999
    # The down-sampling is the real-input resampler.
    from host_tools.data.recordings import resample_to_device

    assert np.array_equal(out, resample_to_device(native, fs))


def test_noise_floor_is_white_at_the_native_rate() -> None:
    zero = np.zeros(4 * C.EPOCH_SAMPLES)
    cfg = _cfg(noise=True, acquisition=True)
    params = dataclasses.replace(_draw(0, cfg), noise_uv=2.0, native_fs=256)
    native = R.record_night({"x": zero}, params, R.night_rng(0, 0, 0, 1), cfg, native=True)["x"]
    out = R.to_device_rate(native, 256)
    assert native.std() == pytest.approx(2.0, rel=0.03)
    # Band-limited to 50 Hz of the native 128 Hz Nyquist: the rms falls as sqrt(50/128).
    assert out[100:-100].std() == pytest.approx(2.0 * np.sqrt(50 / 128), rel=0.08)


def test_artefacts_follow_arousal_and_pop() -> None:
    n_ep = 40
    clean = _clean(n_ep)
    stages = np.array([0] * 20 + [3] * 20)
    cfg = _cfg(artefacts=True, acquisition=True)
    params = dataclasses.replace(_draw(0, cfg), native_fs=200, emg_per_h=600.0, pops_per_h=0.0,
                                 movements_per_h=0.0)
    native = R.record_night({"x": clean}, params, R.night_rng(0, 0, 0, 1), cfg, stage_codes=stages,
                            native=True)["x"]
    ep = (native - R.to_native_rate(clean, 200)).reshape(n_ep, -1)  # what the artefacts added
    f, p = scipy.signal.welch(ep, fs=200, nperseg=400, axis=1)
    emg = p[:, (f > 30) & (f < 90)].mean(axis=1)
    assert np.mean(emg[:20]) > 5 * np.mean(emg[20:]) and np.median(emg[:20]) > 0.5  # EMG in wake, hardly any in N3
    # Electrode pops: steps of >= 100 uV that decay; movements: big slow swings.
    pops = dataclasses.replace(params, emg_per_h=0.0, pops_per_h=60.0)
    x = R.record_night({"x": clean}, pops, R.night_rng(1, 0, 0, 1), cfg, native=True)["x"]
    jumps = np.abs(np.diff(x - R.to_native_rate(clean, 200)))
    assert np.count_nonzero(jumps > 90) >= 3
    moves = dataclasses.replace(params, emg_per_h=0.0, movements_per_h=120.0)
    x = R.record_night({"x": clean}, moves, R.night_rng(1, 0, 0, 1), cfg, stage_codes=stages, native=True)["x"]
    d = (x - R.to_native_rate(clean, 200)).reshape(n_ep, -1)
    touched = np.abs(d).max(axis=1) > 20
    assert np.abs(d).max() > 50 and touched[:20].sum() >= max(3 * touched[20:].sum(), 5)


def test_same_seed_same_bytes_and_sidecar(tmp_path: Path) -> None:
    a, b, c, plain = tmp_path / "a", tmp_path / "b", tmp_path / "c", tmp_path / "plain"
    synth.generate_corpus(a, 1, 2, "sc", seed=3, night_minutes=30, workers=1, randomize=True)
    synth.generate_corpus(b, 1, 2, "sc", seed=3, night_minutes=30, workers=2, randomize=True)
    synth.generate_corpus(c, 1, 2, "sc", seed=4, night_minutes=30, workers=1, randomize=True)
    synth.generate_corpus(plain, 1, 2, "sc", seed=3, night_minutes=30, workers=1)
    da, db, dc, dp = _digest(a), _digest(b), _digest(c), _digest(plain)
    assert da == db
    psg, side = "SC4001E0-PSG.edf", "SC4001E0-randomization.json"
    assert da[psg] != dc[psg] and da[side] != dc[side]
    assert da[psg] != dp[psg] and side not in dp  # the default corpus stays as it was
    draw = json.loads((a / side).read_text())
    assert set(draw) == {fld.name for fld in dataclasses.fields(R.NightRandomization)}
    # The written PSG is at 100 Hz and prepares through the normal path.
    import mne

    raw = mne.io.read_raw_edf(a / psg, verbose="error")
    assert raw.info["sfreq"] == C.FS_HZ and raw.n_times == 30 * 60 * C.FS_HZ
    x = filter_device(raw.get_data(picks=[0], units="uV")[0])
    assert np.isfinite(x).all()


def test_cli_randomize_flag(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    assert cli.main(["data", "synth", "--out", str(out), "--subjects", "1", "--nights", "1",
                     "--night-minutes", "30", "--workers", "1", "--randomize", "--seed", "2"]) == 0
    assert (out / "SC4001E0-randomization.json").is_file()
    with pytest.raises(SleepEdgeError, match="randomize"):
        synth.generate_corpus(tmp_path / "bad", 1, 1, "sc", 0, night_minutes=30, randomize="yes")

"""Training-time augmentation (host_tools.data.augment): each family does what it says, seeded,
identity when off, and the tf.data hook applies it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.signal

from host_tools import constants as C
from host_tools.data.augment import FAMILIES, AugmentConfig, augment_batch

OFF = dict(scale=None, jitter=0.0, shift=0.0, tilt=0.0, mix=0.0)


def _only(family: str, **kw: object) -> AugmentConfig:
    """Every family off except ``family`` (at its default range), applied to every epoch."""
    default = AugmentConfig()
    return AugmentConfig(**{**OFF, family: getattr(default, family), "p": 1.0, **kw})


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    sos = scipy.signal.butter(4, [0.3, 30.0], btype="bandpass", fs=C.FS_HZ, output="sos")
    x = scipy.signal.sosfilt(sos, np.random.default_rng(0).standard_normal((16, C.EPOCH_SAMPLES)), axis=1)
    return (x * 20.0 / x.std()).astype(np.float32)


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.asarray(x, np.float64) ** 2, axis=1))


def test_identity_when_off(batch: np.ndarray) -> None:
    y = np.arange(16) % 5
    xa, ya = augment_batch(batch, y, rng=np.random.default_rng(0), config=None)
    assert xa is batch and ya is y
    # Every family at zero strength is an identity too (up to float32 round trip).
    xa, _ = augment_batch(batch, y, rng=np.random.default_rng(0), config=AugmentConfig(**OFF))
    assert np.array_equal(xa, batch)


def test_seeded(batch: np.ndarray) -> None:
    cfg = AugmentConfig()
    a, _ = augment_batch(batch, None, rng=np.random.default_rng(7), config=cfg)
    b, _ = augment_batch(batch, None, rng=np.random.default_rng(7), config=cfg)
    c, _ = augment_batch(batch, None, rng=np.random.default_rng(8), config=cfg)
    assert a.dtype == batch.dtype and a.shape == batch.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # With p = 0.5 some epochs are changed and the batch as a whole always is.
    assert not np.array_equal(a, batch)


def test_scale_within_range(batch: np.ndarray) -> None:
    xa, _ = augment_batch(batch, None, rng=np.random.default_rng(1), config=_only("scale"))
    g = _rms(xa) / _rms(batch)
    assert np.all(g >= 0.5 - 1e-4) and np.all(g <= 2.0 + 1e-4) and np.ptp(g) > 0.5
    # The shape of every epoch is untouched: a pure gain.
    assert np.allclose(xa, batch * g[:, None].astype(np.float32), rtol=1e-4, atol=1e-3)


def test_jitter_is_small_white_noise(batch: np.ndarray) -> None:
    xa, _ = augment_batch(batch, None, rng=np.random.default_rng(2), config=_only("jitter"))
    rel = _rms(xa - batch) / _rms(batch)
    assert np.all(rel <= 0.1 * 1.05) and rel.max() > 0.02
    f, p = scipy.signal.welch(xa - batch, fs=C.FS_HZ, nperseg=500, axis=1)
    k = rel.argmax()
    assert p[k, f > 40].mean() > 0.5 * p[k, (f > 1) & (f < 30)].mean()  # white, unlike the EEG


def test_shift_moves_epochs_by_up_to_1p5_s(batch: np.ndarray) -> None:
    xa, _ = augment_batch(batch, None, rng=np.random.default_rng(3), config=_only("shift"))
    k = int(1.5 * C.FS_HZ)
    moved = 0
    for a, b in zip(batch, xa):
        mid = slice(k, C.EPOCH_SAMPLES - k)
        found = [s for s in range(-k, k + 1) if np.array_equal(b[mid], a[k - s: C.EPOCH_SAMPLES - k - s])]
        assert len(found) == 1  # each output is its input moved by one lag within +-1.5 s
        moved += found[0] != 0
    assert moved >= 12


def test_tilt_changes_the_slope_not_the_rms(batch: np.ndarray) -> None:
    xa, _ = augment_batch(batch, None, rng=np.random.default_rng(4), config=_only("tilt"))
    assert np.allclose(_rms(xa), _rms(batch), rtol=1e-4)
    f, p0 = scipy.signal.welch(batch, fs=C.FS_HZ, nperseg=500, axis=1)
    _, p1 = scipy.signal.welch(xa, fs=C.FS_HZ, nperseg=500, axis=1)
    lo, hi = (f > 1) & (f < 4), (f > 15) & (f < 25)
    slope = np.log(p1[:, hi].mean(1) / p1[:, lo].mean(1)) - np.log(p0[:, hi].mean(1) / p0[:, lo].mean(1))
    # (f/8)^b on amplitude: the 1-4 vs 15-25 Hz power ratio moves by up to 2*0.3*log(~8) ~ 1.25.
    assert np.abs(slope).max() > 0.3 and np.abs(slope).max() < 1.5
    assert (slope > 0.05).any() and (slope < -0.05).any()


def test_mix_keeps_hard_labels_and_mixes_soft_targets(batch: np.ndarray) -> None:
    y = np.arange(16) % 5
    xa, ya = augment_batch(batch, y, rng=np.random.default_rng(5), config=_only("mix"))
    assert ya is y
    soft = np.eye(5, dtype=np.float32)[y]
    xb, sb = augment_batch(batch, soft, rng=np.random.default_rng(5), config=_only("mix"))
    assert np.array_equal(xa, xb) and sb.dtype == np.float32 and sb.shape == soft.shape
    assert np.allclose(sb.sum(1), 1.0, atol=1e-6)
    own = sb[np.arange(16), y]
    assert np.all(own >= 0.75 - 1e-6) and own.min() < 0.99  # the epoch's own stage still dominates
    # Each output is (1 - lam) * own + lam * another epoch of the batch with the lam of its target.
    for i in range(16):
        lam = 1.0 - own[i] if own[i] < 1 else 0.0
        if lam == 0.0:
            continue
        rest = (xb[i] - (1 - lam) * batch[i]) / lam
        assert min(np.abs(rest - batch[j]).max() for j in range(16)) < 1e-2


def test_clip_and_3d_input(batch: np.ndarray) -> None:
    cfg = dataclasses.replace(_only("scale"), scale=(3.0, 3.0), clip_uv=30.0)
    xa, _ = augment_batch(batch[..., None], None, rng=np.random.default_rng(0), config=cfg)
    assert xa.shape == batch[..., None].shape and np.abs(xa).max() <= 30.0
    assert set(FAMILIES) == set(OFF)


def test_make_dataset_applies_it_only_when_asked(batch: np.ndarray) -> None:
    from host_tools.data.datasets import make_dataset

    y = np.arange(16) % 5
    plain = make_dataset(batch, y, batch=16, shuffle=False, repeat=False)
    aug = make_dataset(batch, y, batch=16, shuffle=False, repeat=False, augment=_only("scale"), seed=3)
    (x0, y0), = list(plain.as_numpy_iterator())
    (x1, y1), = list(aug.as_numpy_iterator())
    assert np.array_equal(x0[..., 0], batch) and np.array_equal(y0, y1)
    g = _rms(x1[..., 0]) / _rms(batch)
    assert x1.shape == (16, C.EPOCH_SAMPLES, 1) and np.ptp(g) > 0.3 and g.min() >= 0.5 - 1e-4
    # Same seed, same augmented batch; weights pass through.
    again = make_dataset(batch, y, np.ones(16, np.float32), batch=16, shuffle=False, repeat=False,
                         augment=_only("scale"), seed=3)
    (x2, _, w2), = list(again.as_numpy_iterator())
    assert np.array_equal(x1, x2) and np.array_equal(w2, np.ones(16))


def test_training_hook_calls_it_and_the_cli_switch(batch: np.ndarray, monkeypatch) -> None:
    """``fit_model(..., augment=cfg)`` trains on augmented batches; ``--augment`` reaches the
    trainers; the default is off."""
    import inspect

    from host_tools import cli
    from host_tools.data import augment as A
    from host_tools.learn import distil as distil_mod
    from host_tools.learn import train as T
    from host_tools.learn.models import build_edge_cnn

    calls = []
    real = A.augment_batch

    def spy(x, y=None, *, rng, config):
        calls.append(x.shape)
        return real(x, y, rng=rng, config=config)

    monkeypatch.setattr(A, "augment_batch", spy)
    y = np.arange(16) % 5
    model = build_edge_cnn(seed=0)
    T.fit_model(model, T.make_strategy("default"), np.clip(batch, -200, 200), y, np.ones(16, np.float32),
                loss="sparse_categorical_crossentropy", lr=1e-3, batch=8, passes=1, steps_per_pass=2,
                seed=0, callbacks=[], verbose=0, augment=T.augment_config(True, clip_uv=200.0))
    assert len(calls) >= 2 and calls[0] == (8, C.EPOCH_SAMPLES, 1)
    assert T.augment_config(False) is None
    assert inspect.signature(T.train_source).parameters["augment"].default is False
    assert inspect.signature(distil_mod.distil).parameters["augment"].default is False

    seen = {}
    monkeypatch.setattr(T, "train_source", lambda *a, **kw: seen.setdefault("source", kw))
    monkeypatch.setattr(distil_mod, "distil", lambda *a, **kw: seen.setdefault("distil", kw))
    assert cli.main(["train", "source", "--cache", "c", "--out", "o", "--augment"]) == 0
    assert cli.main(["transfer", "distil", "--teacher", "t", "--cache", "c", "--out", "o", "--augment"]) == 0
    assert seen["source"]["augment"] is True and seen["distil"]["augment"] is True

"""Shared fixtures. Paths to ../shared (real Sleep-EDF hypnograms and metadata) live here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SLEEP_EDFX = SHARED_DATA / "sleep-edfx"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_edfx() -> Path:
    if not SLEEP_EDFX.is_dir():
        pytest.fail(f"{SLEEP_EDFX} is missing: CI and developers keep ../shared beside the checkout")
    return SLEEP_EDFX


def have_arm_toolchain() -> bool:
    return shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None


# --- tiny corpora shared by the data, model and firmware tests ----------------------------------
# Built once per test session from the project's own synthetic PSG generator (host_tools.data.synth)
# and the real loading path (host_tools.data.prepare).

@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """3 subjects x 2 nights of synthetic Sleep-EDF-style SC recordings, 90 min each."""
    from host_tools.data.synth import generate_corpus

    out = tmp_path_factory.mktemp("corpus_sc")
    generate_corpus(out, n_subjects=3, nights=2, domain="sc", seed=7, night_minutes=90)
    return out


@pytest.fixture(scope="session")
def tiny_st_corpus(tmp_path_factory) -> Path:
    """3 subjects x 2 nights of the synthetic telemetry-like (ST) domain, 90 min each."""
    from host_tools.data.synth import generate_corpus

    out = tmp_path_factory.mktemp("corpus_st")
    generate_corpus(out, n_subjects=3, nights=2, domain="st", seed=8, night_minutes=90)
    return out


@pytest.fixture(scope="session")
def tiny_cache(tiny_corpus, tmp_path_factory) -> Path:
    from host_tools.data.prepare import prepare_corpus

    out = tmp_path_factory.mktemp("cache_sc")
    prepare_corpus(tiny_corpus, out, channel="Fpz-Cz", folds=3)
    return out


@pytest.fixture(scope="session")
def tiny_st_cache(tiny_st_corpus, tmp_path_factory) -> Path:
    from host_tools.data.prepare import prepare_corpus

    out = tmp_path_factory.mktemp("cache_st")
    prepare_corpus(tiny_st_corpus, out, channel="Fpz-Cz", folds=3)
    return out


# --- a random-weight edge CNN exported to C, for firmware tests that need no trained model --------

def export_random_edge_model(out: Path, signal_raw, *, seed: int, threshold: float, name: str) -> Path:
    """The shipped edge architecture with random weights, full int8, exported to C in ``out``.

    ``signal_raw`` (int16 device samples) is the representative set, filtered and clipped as the
    device input is.
    """
    import numpy as np

    from host_tools import constants as C
    from host_tools.deploy.c_export import export_model
    from host_tools.learn.compress import convert_int8
    from host_tools.data.filters import filter_device
    from host_tools.learn.models import build_edge_cnn

    rep = filter_device(signal_raw * C.SAMPLE_UV_PER_LSB).reshape(-1, C.EPOCH_SAMPLES)
    rep = np.clip(rep, -C.EDGE_INPUT_CLIP_UV, C.EDGE_INPUT_CLIP_UV)
    model = build_edge_cnn(seed=seed)
    # Untrained, the logits span hundreds and every epoch saturates to one class; scale the
    # classifier so the logits spread ~1.5 and the int8 outputs (and confidences) vary.
    logits = model.get_layer("logits")
    z = type(model)(model.input, logits.output).predict(rep[..., None], verbose=0)
    w, b = logits.get_weights()
    scale = 1.5 / max(float(z.std()), 1e-6)
    logits.set_weights([w * scale, b * scale])
    (out / "model.tflite").write_bytes(convert_int8(model, rep))
    export_model(out / "model.tflite", out, threshold=threshold, name=name)
    return out

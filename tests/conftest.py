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
# Built once per test session from the project's own synthetic PSG generator (host_tools.synth)
# and the real loading path (host_tools.prepare).

@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """3 subjects x 2 nights of synthetic Sleep-EDF-style SC recordings, 90 min each."""
    from host_tools.synth import generate_corpus

    out = tmp_path_factory.mktemp("corpus_sc")
    generate_corpus(out, n_subjects=3, nights=2, domain="sc", seed=7, night_minutes=90)
    return out


@pytest.fixture(scope="session")
def tiny_st_corpus(tmp_path_factory) -> Path:
    """3 subjects x 2 nights of the synthetic telemetry-like (ST) domain, 90 min each."""
    from host_tools.synth import generate_corpus

    out = tmp_path_factory.mktemp("corpus_st")
    generate_corpus(out, n_subjects=3, nights=2, domain="st", seed=8, night_minutes=90)
    return out


@pytest.fixture(scope="session")
def tiny_cache(tiny_corpus, tmp_path_factory) -> Path:
    from host_tools.prepare import prepare_corpus

    out = tmp_path_factory.mktemp("cache_sc")
    prepare_corpus(tiny_corpus, out, channel="Fpz-Cz", folds=3)
    return out


@pytest.fixture(scope="session")
def tiny_st_cache(tiny_st_corpus, tmp_path_factory) -> Path:
    from host_tools.prepare import prepare_corpus

    out = tmp_path_factory.mktemp("cache_st")
    prepare_corpus(tiny_st_corpus, out, channel="Fpz-Cz", folds=3)
    return out

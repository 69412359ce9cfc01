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

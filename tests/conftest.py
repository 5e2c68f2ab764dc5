"""Shared fixtures. Tests that need MNIST read it from the offline mirror: VAE_DATA_MIRROR, else
../shared/data beside the checkout. Under CI (CI=true) a missing mirror fails the test, never skips it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def mirror_dir() -> Path | None:
    candidates = [os.environ.get("VAE_DATA_MIRROR"), REPO_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def mnist_mirror() -> Path:
    found = mirror_dir()
    if found is None:
        message = "MNIST mirror not found: set VAE_DATA_MIRROR or place the data in ../shared/data"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def mnist_raw(mnist_mirror, tmp_path_factory) -> Path:
    """The four verified MNIST IDX files, downloaded once per session from the mirror."""
    from vaepipe.data import download

    out = tmp_path_factory.mktemp("mnist-raw")
    download("mnist", out, str(mnist_mirror))
    return out

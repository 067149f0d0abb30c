"""Shared fixtures: tiny synthetic images and the optional real data folder."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

#: A small network for fast tests: two convolution blocks (minimum 4 px).
SMALL_NET = dict(conv_filters=(8, 16), dense_units=(16,), dropout=0.0, batch_size=16)


def real_data_dir():
    """The real X-ray folder (``CXRLEARN_DATA`` or ``../shared/data``)."""
    return Path(os.environ.get("CXRLEARN_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir():
    path = real_data_dir()
    if not (path / "README.md").exists():
        pytest.skip(f"real X-ray data not found at {path} (set CXRLEARN_DATA)")
    return path


@pytest.fixture(scope="session")
def xrays():
    """120 synthetic 32x32 grayscale X-rays with string labels."""
    from cxrlearn.datasets import make_synthetic_xrays

    return make_synthetic_xrays(120, image_size=32, random_state=0)


@pytest.fixture(autouse=True, scope="session")
def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def small_cnn(**params):
    """A fast PneumoniaCNN for unit tests."""
    from cxrlearn import PneumoniaCNN

    return PneumoniaCNN(**{**SMALL_NET, "epochs": 3, "random_state": 0, **params})


@pytest.fixture
def rng():
    return np.random.default_rng(0)

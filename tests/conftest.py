"""Shared fixtures: tiny synthetic images and the optional real data folder."""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

#: A small network for fast tests: two convolution blocks (minimum 4 px).
SMALL_NET = dict(conv_filters=(8, 16), dense_units=(16,), dropout=0.0, batch_size=16)


def load_benchmark(name):
    """The script ``benchmarks/NAME.py`` as a module, to test its functions.

    Loaded by file path, and ``sys.path`` restored afterwards (a script may put
    ``benchmarks/`` there to import its neighbours): with ``benchmarks/`` on
    it, ``benchmarks/distributed.py`` would shadow the dask package of that
    name for every later test in the process.
    """
    saved = list(sys.path)
    try:
        path = REPO_ROOT / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"_benchmark_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


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


@pytest.fixture
def tf_log():
    """Messages of the ``tensorflow`` logger (where retracing warnings go)."""
    import logging

    messages = []

    class Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger = logging.getLogger("tensorflow")
    handler = Keep()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def small_cnn(**params):
    """A fast PneumoniaCNN for unit tests."""
    from cxrlearn import PneumoniaCNN

    return PneumoniaCNN(**{**SMALL_NET, "epochs": 3, "random_state": 0, **params})


@pytest.fixture
def rng():
    return np.random.default_rng(0)


#: The test modules that take a test worker longest, slowest first (about
#: 80 s down to 27 s of the 2-core machine each, ``--durations=0``). ``make
#: test`` sends whole modules to its two workers (``--dist loadfile``, so a
#: module's fitted fixtures are built once) in this order, the rest after
#: them, so that both workers end on short modules at about the same time.
SLOW_MODULES = (
    "test_estimator_checks.py", "test_cli.py", "test_cli_scaling.py", "test_classifier.py",
    "test_training_control.py", "test_model_selection.py", "test_distributed.py",
    "test_path_pipelines.py", "test_persistence.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: modules stay whole


@pytest.fixture(autouse=True, scope="session")
def _one_tensorflow_thread_per_test_worker():
    """TensorFlow on one thread in each ``pytest -n 2`` worker: two workers with a
    pool of every core each would fight over the 2 cores of the test machine."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        from cxrlearn.utils import limit_tf_threads

        limit_tf_threads(1)

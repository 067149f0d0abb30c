"""Grid searches on a Dask cluster and in joblib workers: scores, threads, data, halving.

One in-process ``LocalCluster`` (2 one-thread workers, ``processes=False``)
serves the module: its workers share this process, so they start in no
time and need no second TensorFlow start-up. The thread caps, which only
show in a fresh process, are checked in one joblib (loky) worker.
"""

import os
import pickle
import threading

import joblib
import numpy as np
import pytest
from conftest import small_cnn
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline

import cxrlearn._loading as loading
from cxrlearn import ImageLoader, ImageLoadError
from cxrlearn.datasets import make_synthetic_xrays, patient_ids, write_synthetic_xray_directory
from cxrlearn.utils import _threads, limit_tf_threads

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install 'cxrlearn[dask]')"
)

pytestmark = pytest.mark.filterwarnings(
    # the in-process workers share this process's TensorFlow, already started
    # with one thread per CPU: on a machine with more than 2 CPUs the cap warns
    "ignore:cxrlearn could not cap TensorFlow:RuntimeWarning",
    # scikit-learn's experimental import; the threaded workers' teardown
    "ignore::DeprecationWarning",
)

GRID = {"cnn__activation": ["relu", "swish"]}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("xrays")
    paths, labels = write_synthetic_xray_directory(root, 24, 16, random_state=0)
    return np.asarray(paths, dtype=object), np.asarray(labels)


def _pipeline(memory=None):
    return Pipeline([
        ("loader", ImageLoader(image_size=16, color_mode="grayscale", n_jobs=2,
                               memory=memory)),
        ("cnn", small_cnn(epochs=1, conv_filters=(4, 8), dense_units=(8,))),
    ])


def _search(files, **params):
    paths, labels = files
    search = GridSearchCV(_pipeline(**params), GRID, scoring="roc_auc", refit=False,
                          cv=StratifiedGroupKFold(2), error_score="raise")
    return search.fit(paths, labels, groups=patient_ids(paths))


@pytest.fixture
def decoded(monkeypatch):
    """Paths really decoded, by any thread of this process (cache hits are not)."""
    paths = []
    lock = threading.Lock()
    original = loading.decode_file

    def counting(path, *args, **kwargs):
        with lock:
            paths.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(loading, "decode_file", counting)
    return paths


def test_dask_grid_search_matches_n_jobs_1(files, client, tmp_path, decoded):
    # one test, not several sharing a fixture: pytest-xdist could run such
    # tests in two processes and pay for the searches twice
    paths, labels = files
    reference = _search(files)  # n_jobs=1, no cache
    assert len(decoded) == 4 * len(paths)  # 2 candidates x 2 folds, each decodes all
    decoded.clear()

    with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as stream:
        search = _search(files, memory=tmp_path / "cache")

    # the fits ran on both workers of the cluster
    assert {task["worker"] for task in stream.data} == set(client.scheduler_info()["workers"])
    # the same scores and the same best candidate
    for key in ["split0_test_score", "split1_test_score", "mean_test_score"]:
        np.testing.assert_allclose(search.cv_results_[key], reference.cv_results_[key],
                                   atol=1e-6)
    assert search.best_params_ == reference.best_params_
    # 4 fits, 2 at a time on 2 workers: each file decoded once, in the cache
    # folder they share
    assert sorted(decoded) == sorted(paths)
    # what travels to a worker is the pipeline and the paths, not pixels
    task = pickle.dumps((_pipeline(), paths, labels))
    pixels = ImageLoader(image_size=16, color_mode="grayscale").transform(paths)
    assert len(task) < pixels.nbytes / 2


def test_loader_decodes_in_its_worker(files, client):
    paths, _ = files

    def load_in_worker():
        X = ImageLoader(image_size=16, color_mode="grayscale", n_jobs=2).transform(paths)
        return X.shape

    with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as stream:
        # the way a grid-search task runs: inside Dask's joblib backend, which
        # the loader's own Parallel(n_jobs=2) would otherwise use as well
        shape = joblib.Parallel(n_jobs=2)([joblib.delayed(load_in_worker)()])[0]
    assert shape == (len(paths), 16, 16, 1)
    assert len(stream.data) == 1  # one task: no chunk of files went back to the cluster


def test_missing_file_names_path_and_worker(files, client):
    paths, labels = files
    gone = np.array([p.replace(".png", "-gone.png") for p in paths], dtype=object)
    search = GridSearchCV(_pipeline(), {"cnn__activation": ["relu"]}, scoring="roc_auc",
                          cv=StratifiedGroupKFold(2), error_score="raise")
    with joblib.parallel_backend("dask"), pytest.raises(ImageLoadError) as info:
        search.fit(gone, labels, groups=patient_ids(paths))
    err = info.value
    assert err.path in set(gone)
    assert err.reason == "file not found"
    workers = set(client.scheduler_info()["workers"])
    assert any(address in err.worker for address in workers), err.worker
    assert err.path in str(err) and "Dask worker inproc://" in str(err)
    assert f"pid {os.getpid()}" in str(err)  # the in-process workers' pid


def test_image_load_error_round_trips_with_its_worker():
    err = ImageLoadError("/data/a.png", "file not found",
                         worker="Dask worker tcp://10.0.0.5:4000 (host n5, pid 7)")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ImageLoadError
    assert (back.path, back.reason, back.worker) == (err.path, err.reason, err.worker)
    assert str(back) == str(err) == (
        "cannot load image '/data/a.png': file not found "
        "(on Dask worker tcp://10.0.0.5:4000 (host n5, pid 7))"
    )
    here = pickle.loads(pickle.dumps(ImageLoadError("b.png", "empty file (0 bytes)")))
    assert here.worker is None  # raised outside any worker: nothing added
    assert str(here) == "cannot load image 'b.png': empty file (0 bytes)"


def test_dask_worker_share(client):
    # both workers live in this process and share its TensorFlow: 2 threads
    assert client.submit(_threads._worker_thread_share, pure=False).result() == 2
    assert _threads._worker_thread_share() is None  # the client's own thread
    # the loader's decoding threads keep to it too; outside a worker, as asked
    loader = ImageLoader(16, n_jobs=-1)
    assert client.submit(loader._decode_n_jobs, pure=False).result() == 2
    assert loader._decode_n_jobs() == -1
    assert client.submit(ImageLoader(16, n_jobs=1)._decode_n_jobs, pure=False).result() == 1


def test_nanny_worker_process_outside_task_threads(client, monkeypatch):
    # Dask unpickles a task's arguments (e.g. a fitted network, whose loading
    # starts TensorFlow) on the event-loop thread of a worker process started
    # by a nanny, outside the task's context: the process's worker counts
    import multiprocessing

    assert _threads._worker_thread_share() is None  # this process: a client
    monkeypatch.setattr(multiprocessing.current_process(), "name",
                        _threads._NANNY_PROCESS_NAME)
    assert _threads._worker_thread_share() == 2  # the workers running here
    where = _threads.worker_description()
    assert where.startswith("Dask worker inproc://") and f"pid {os.getpid()}" in where


def test_loky_worker_share_is_read_from_joblib_env(monkeypatch):
    executor = pytest.importorskip("joblib.externals.loky.process_executor")
    for name in _threads._THREAD_LIMIT_VARS:  # e.g. set by an earlier loky pool
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _threads._worker_thread_share() is None  # not a worker: no cap
    monkeypatch.setattr(executor, "_CURRENT_DEPTH", 1)
    assert _threads._worker_thread_share() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    assert _threads._worker_thread_share() == 2


def _fit_in_fresh_worker():
    """A fit in a loky worker: the TensorFlow pools it ends up with."""
    X, y = make_synthetic_xrays(16, image_size=16, random_state=0)
    small_cnn(epochs=1, conv_filters=(4,), dense_units=(4,)).fit(X, y)
    import tensorflow as tf  # after the fit, which starts it (quietly)

    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
        os.environ.get("OMP_NUM_THREADS"),
        ImageLoadError("x.png", "file not found").worker,
        os.getpid(),
        ImageLoader(16, n_jobs=-1)._decode_n_jobs(),
    )


def test_fit_in_loky_worker_caps_tensorflow_threads():
    with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
        [(intra, inter, env, where, pid, decode_threads)] = joblib.Parallel(n_jobs=2)(
            [joblib.delayed(_fit_in_fresh_worker)()]
        )
    assert env == "1"
    assert decode_threads == 1  # the loader's n_jobs=-1 keeps to the share as well
    assert (intra, inter) == (1, 1)  # TensorFlow's default would read (0, 0)
    assert pid != os.getpid()
    assert where.startswith("joblib worker process (host ") and f"pid {pid})" in where


def test_thread_cap_is_a_positive_int():
    # what the cap does once TensorFlow has started: tests/test_utils.py (a fresh process)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_threads"):
            limit_tf_threads(bad)


def test_halving_search_over_epochs(files, client):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    paths, labels = files
    search = HalvingGridSearchCV(
        _pipeline(), {"cnn__activation": ["relu", "swish"]}, resource="cnn__epochs",
        min_resources=1, max_resources=2, factor=2, scoring="roc_auc", refit=False,
        cv=StratifiedGroupKFold(2), error_score="raise", random_state=0,
    )
    with joblib.parallel_backend("dask"):
        search.fit(paths, labels, groups=patient_ids(paths))
    # round 1: both candidates for 1 epoch; round 2: the better one for 2
    assert search.n_resources_ == [1, 2]
    assert search.n_candidates_ == [2, 1]
    results = search.cv_results_
    assert list(results["param_cnn__epochs"]) == [1, 1, 2]
    assert np.all(np.isfinite(results["mean_test_score"]))
    promoted = results["params"][2]["cnn__activation"]
    first_round = dict(zip([p["cnn__activation"] for p in results["params"][:2]],
                           results["mean_test_score"][:2]))
    assert first_round[promoted] == max(first_round.values())  # the better one went on
    assert search.best_params_ == {"cnn__activation": promoted, "cnn__epochs": 2}

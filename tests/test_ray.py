"""A path-based grid search on Ray's joblib backend (``pip install 'cxrlearn[ray]'``).

Skipped without Ray. Marked slow: Ray's start (about 5 s) and its joblib
backend, which starts fresh worker processes for every search (each
imports TensorFlow), made it take about a minute on a shared 2-core machine.
"""

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from conftest import small_cnn
from cxrlearn import ImageLoader
from cxrlearn.datasets import load_image_directory, write_synthetic_xray_directory

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    from ray.util.joblib import register_ray

    def cap_tensorflow():  # pickled by value: the workers cannot import this test module
        import os

        from cxrlearn.utils import limit_tf_threads

        limit_tf_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": cap_tensorflow})
    register_ray()
    yield
    ray.shutdown()


def test_grid_search_on_ray_scores_as_on_one_machine(ray_cluster, tmp_path):
    write_synthetic_xray_directory(tmp_path, 40, 32, random_state=0)
    paths, labels = load_image_directory(tmp_path)
    paths, labels = np.asarray(paths, dtype=object), np.asarray(labels)
    pipe = Pipeline([("loader", ImageLoader(32)), ("cnn", small_cnn(epochs=2))])
    grid = {"cnn__dropout": [0.0, 0.3]}

    plain = GridSearchCV(pipe, grid, cv=2, scoring="roc_auc").fit(paths, labels)
    with joblib.parallel_backend("ray"):
        on_ray = GridSearchCV(pipe, grid, cv=2, scoring="roc_auc").fit(paths, labels)

    for key in ("split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(on_ray.cv_results_[key], plain.cv_results_[key])
    assert on_ray.best_params_ == plain.best_params_
    # the refit ran here, under Ray's backend: the loader decoded with threads of this process
    np.testing.assert_array_equal(on_ray.predict_proba(paths[:4]), plain.predict_proba(paths[:4]))


def test_the_setup_hook_caps_tensorflow_in_ray_workers(ray_cluster):
    @ray.remote
    def pools():
        import tensorflow as tf

        return (tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads())

    assert ray.get(pools.remote()) == (1, 1)  # Ray gives a task one CPU: OMP_NUM_THREADS=1

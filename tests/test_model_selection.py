"""PneumoniaCNN inside scikit-learn's model-selection tools (array inputs)."""

import numpy as np
import pytest
from conftest import small_cnn
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    StratifiedKFold,
    TunedThresholdClassifierCV,
    cross_validate,
)
from sklearn.pipeline import Pipeline


@pytest.fixture(scope="module")
def data():
    from cxrlearn.datasets import make_synthetic_xrays

    return make_synthetic_xrays(60, image_size=24, random_state=3)


def test_grid_search_headline(data, tf_log):
    """The design card's headline: activation x dropout x class_weight, ROC-AUC.

    Its 17 small fits and their scoring in one process also show that no
    function is traced again and again (TensorFlow's retracing warning).
    """
    X, y = data
    # class weights act on the loss when the batches are not resampled
    pipe = Pipeline([("cnn", small_cnn(epochs=2, dense_units=(8,), balanced_batches=False))])
    grid = GridSearchCV(
        pipe,
        {
            "cnn__activation": ["relu", "swish"],
            "cnn__dropout": [0.2, 0.5],
            "cnn__class_weight": [None, "balanced"],
        },
        scoring="roc_auc",
        cv=2,
        error_score="raise",
    )
    grid.fit(X, y)
    scores = grid.cv_results_["mean_test_score"]
    assert len(scores) == 8
    assert np.all(np.isfinite(scores))
    assert 0.0 <= grid.best_score_ <= 1.0
    assert grid.best_estimator_.predict_proba(X[:3]).shape == (3, 2)
    assert not [m for m in tf_log if "retracing" in m]


def test_randomized_search(data):
    X, y = data
    search = RandomizedSearchCV(
        small_cnn(epochs=1),
        {"activation": ["relu", "swish", "elu"], "learning_rate": [1e-3, 3e-3]},
        n_iter=2,
        scoring="roc_auc",
        cv=2,
        random_state=0,
        error_score="raise",
    ).fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_cross_validate_scores(data):
    X, y = data
    res = cross_validate(
        small_cnn(epochs=2), X, y, cv=StratifiedKFold(3),
        scoring=["roc_auc", "accuracy", "balanced_accuracy"], error_score="raise",
    )
    for key in ("test_roc_auc", "test_accuracy", "test_balanced_accuracy"):
        assert res[key].shape == (3,)
        assert np.all(np.isfinite(res[key]))


def test_tuned_threshold(data):
    X, y = data
    tuned = TunedThresholdClassifierCV(
        small_cnn(epochs=2), scoring="balanced_accuracy", cv=2, random_state=0
    ).fit(X, y)
    assert 0.0 < tuned.best_threshold_ < 1.0
    pred = tuned.predict(X)
    proba = tuned.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(
        pred == "PNEUMONIA", proba >= tuned.best_threshold_
    )

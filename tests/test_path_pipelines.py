"""Pipelines on file paths: grid search by patient, resampling, caching, streaming."""

import threading

import numpy as np
import pytest
from conftest import small_cnn
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline

import cxrlearn._loading as loading
from cxrlearn import ImageLoader, LazyImages
from cxrlearn.datasets import patient_ids, write_synthetic_xray_directory


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    paths, labels = write_synthetic_xray_directory(root, 48, 48, random_state=0)
    return np.asarray(paths, dtype=object), np.asarray(labels)


@pytest.fixture
def decode_counter(monkeypatch):
    """Count real decodes (cache hits do not call the decoder)."""
    counts = {"n": 0}
    lock = threading.Lock()
    original = loading.decode_file

    def counting(*args, **kwargs):
        with lock:
            counts["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(loading, "decode_file", counting)
    return counts


def _pipeline(**loader):
    return Pipeline([
        ("loader", ImageLoader(image_size=24, color_mode="grayscale", **loader)),
        ("cnn", small_cnn(epochs=2, dense_units=(8,), balanced_batches=False)),
    ])


def test_grid_search_on_paths_by_patient(files, tmp_path, decode_counter):
    paths, labels = files
    groups = patient_ids(paths)
    assert len(np.unique(groups)) < len(paths)  # some patients have two images
    cv = StratifiedGroupKFold(3)
    for train, test in cv.split(paths, labels, groups):
        assert not set(groups[train]) & set(groups[test])
    grid = GridSearchCV(
        _pipeline(memory=tmp_path / "cache"),
        {"cnn__activation": ["relu", "swish"], "cnn__class_weight": [None, "balanced"]},
        scoring="roc_auc", cv=cv, error_score="raise",
    )
    grid.fit(paths, labels, groups=groups)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    # 4 candidates x 3 folds + refit read every file many times, decoded once
    assert decode_counter["n"] == len(paths)
    proba = grid.predict_proba(paths[:3])
    assert proba.shape == (3, 2)


def test_without_cache_files_are_decoded_again(files, decode_counter):
    paths, labels = files
    pipe = _pipeline().fit(paths, labels)
    pipe.predict_proba(paths)
    assert decode_counter["n"] == 2 * len(paths)


def test_imblearn_oversampling_of_paths(files):
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.pipeline import Pipeline as ImbPipeline

    paths, labels = files
    keep = np.r_[np.flatnonzero(labels == "NORMAL")[:6], np.flatnonzero(labels == "PNEUMONIA")]
    paths, labels = paths[keep], labels[keep]
    seen = {}

    class Spy(ImageLoader):
        def transform(self, X):
            seen["n"] = len(X)
            return super().transform(X)

    pipe = ImbPipeline([
        ("oversample", RandomOverSampler(random_state=0)),
        ("loader", Spy(image_size=24, color_mode="grayscale")),
        ("cnn", small_cnn(epochs=1)),
    ])
    pipe.fit(paths.reshape(-1, 1), labels)
    # the sampler balanced the paths before any decoding
    assert seen["n"] == 2 * np.sum(labels == "PNEUMONIA")
    grid = GridSearchCV(pipe, {"cnn__dropout": [0.0, 0.3]}, scoring="roc_auc",
                        cv=StratifiedGroupKFold(2), error_score="raise")
    grid.fit(paths.reshape(-1, 1), labels, groups=patient_ids(paths))
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))


def test_streamed_fit_and_predict(files):
    paths, labels = files
    lazy = ImageLoader(image_size=24, color_mode="grayscale", lazy=True).transform(paths)
    assert isinstance(lazy, LazyImages)
    clf = small_cnn(epochs=2, n_jobs=2, validation_fraction=0.25).fit(lazy, labels)
    assert clf.input_shape_ == (24, 24, 1)
    assert "val_loss" in clf.history_
    dense = lazy.load()
    np.testing.assert_allclose(clf.predict_proba(lazy), clf.predict_proba(dense), atol=1e-6)
    with pytest.raises(ValueError, match="fitted on images of shape"):
        clf.predict(ImageLoader(image_size=30, color_mode="grayscale", lazy=True)
                    .transform(paths[:2]))


def test_streamed_pipeline_decodes_in_batches(files, decode_counter):
    paths, labels = files
    pipe = Pipeline([
        ("loader", ImageLoader(image_size=24, color_mode="grayscale", lazy=True)),
        ("cnn", small_cnn(epochs=2, batch_size=8)),
    ]).fit(paths, labels)
    # each epoch decodes each file once (nothing is held in memory), and one
    # more pass records the training images (digests and hashes, for
    # trained_on); Keras also peeks at up to two batches to learn the output
    # signature
    assert 3 * len(paths) <= decode_counter["n"] <= 3 * len(paths) + 2 * 8
    assert pipe[-1].trained_on(ImageLoader(image_size=24, color_mode="grayscale")
                               .transform(paths)).all()
    assert pipe.predict(paths[:5]).shape == (5,)


def test_streamed_fit_is_reproducible(files):
    paths, labels = files
    lazy = ImageLoader(image_size=24, color_mode="grayscale", lazy=True).transform(paths)
    a = small_cnn(epochs=2).fit(lazy, labels).predict_proba(lazy)
    b = small_cnn(epochs=2).fit(lazy, labels).predict_proba(lazy)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_streamed_fit_length_mismatch(files):
    paths, labels = files
    lazy = ImageLoader(image_size=24, color_mode="grayscale", lazy=True).transform(paths)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        small_cnn().fit(lazy, labels[:-1])

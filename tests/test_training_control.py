"""Training that generalizes: checkpoints, calibration, three classes, imbalance."""

import numpy as np
import pytest
from conftest import small_cnn
from sklearn.metrics import balanced_accuracy_score

from cxrlearn.datasets import make_synthetic_xrays
from cxrlearn.utils import import_keras


class _Interrupt(Exception):
    pass


def test_checkpoint_resumes_interrupted_fit(xrays, tmp_path):
    keras = import_keras()
    X, y = xrays

    class StopAtEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise _Interrupt

    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Interrupt):
        small_cnn(epochs=5, checkpoint_dir=ckpt, callbacks=[StopAtEpoch()]).fit(X, y)
    assert any(ckpt.iterdir())  # training state was backed up
    resumed = small_cnn(epochs=5, checkpoint_dir=ckpt).fit(X, y)
    assert len(resumed.history_["loss"]) == 3  # epochs 3, 4 and 5 only
    assert not ckpt.exists() or not any(ckpt.iterdir())  # removed once complete


def test_reduce_lr_on_plateau_records_learning_rate(xrays):
    X, y = xrays
    # a learning rate this large stalls the loss at once; with shuffled (not
    # resampled) batches the epoch loss then repeats, which is the plateau
    clf = small_cnn(epochs=6, reduce_lr_on_plateau=1, learning_rate=0.5,
                    lr_schedule="constant", balanced_batches=False).fit(X, y)
    lr = clf.history_["learning_rate"]
    assert len(lr) == 6 and min(lr) < 0.5


def test_cosine_schedule_decays_to_one_percent(xrays):
    X, y = xrays
    clf = small_cnn(epochs=2, lr_schedule="cosine", learning_rate=0.01).fit(X, y)
    opt = clf.model_.optimizer
    assert float(opt.learning_rate) == pytest.approx(1e-4, rel=1e-3)
    assert opt.iterations.numpy() == 2 * -(-len(y) // 16)


def test_cosine_schedule_and_plateau_conflict(xrays):
    X, y = xrays
    with pytest.raises(ValueError, match="cannot be combined"):
        small_cnn(lr_schedule="cosine", reduce_lr_on_plateau=2).fit(X, y)


def test_calibration_of_frozen_cnn(xrays):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    X, y = xrays
    cnn = small_cnn(epochs=3).fit(X[:60], y[:60])
    before = [w.copy() for w in cnn.model_.get_weights()]
    calibrated = CalibratedClassifierCV(FrozenEstimator(cnn), method="sigmoid")
    calibrated.fit(X[60:], y[60:])
    proba = calibrated.predict_proba(X[:10])
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    after = cnn.model_.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # not refit
    np.testing.assert_array_equal(calibrated.classes_, cnn.classes_)


def test_operating_point_on_cnn(xrays):
    from sklearn.frozen import FrozenEstimator

    from cxrlearn import OperatingPointClassifier, threshold_for_sensitivity

    X, y = xrays
    cnn = small_cnn(epochs=3).fit(X[:60], y[:60])
    op = OperatingPointClassifier(FrozenEstimator(cnn), target_sensitivity=0.9,
                                  pos_label="PNEUMONIA").fit(X[60:], y[60:])
    score = cnn.predict_proba(X[60:])[:, 1]
    assert op.threshold_ == threshold_for_sensitivity(y[60:], score, 0.9,
                                                      pos_label="PNEUMONIA")
    pred = op.predict(X[60:])
    sens = np.mean(pred[y[60:] == "PNEUMONIA"] == "PNEUMONIA")
    assert sens >= 0.9


def test_three_class_grid_search_ovr():
    from sklearn.model_selection import GridSearchCV

    X, y = make_synthetic_xrays(60, image_size=24, random_state=5)
    rng = np.random.default_rng(0)
    # split the pneumonia class into bacterial / viral, as Kermany file names do
    y3 = np.where(y == "NORMAL", "NORMAL", rng.choice(["BACTERIA", "VIRUS"], len(y)))
    grid = GridSearchCV(small_cnn(epochs=1), {"activation": ["relu", "swish"]},
                        scoring="roc_auc_ovr", cv=2, error_score="raise").fit(X, y3)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.predict_proba(X[:4]).shape == (4, 3)


@pytest.mark.parametrize("balanced_batches", [True, False])
def test_imbalanced_small_net_does_not_collapse(balanced_batches):
    """Both ways of balancing: resampled batches, and balanced class weights."""
    X, y = make_synthetic_xrays(300, image_size=32, weights=[0.1, 0.9], random_state=2,
                                class_sep=2.0)
    Xv, yv = make_synthetic_xrays(200, image_size=32, weights=[0.1, 0.9], random_state=3,
                                  class_sep=2.0)
    clf = small_cnn(epochs=10, class_weight="balanced", balanced_batches=balanced_batches)
    clf.fit(X, y)
    pred = clf.predict(Xv)
    assert len(set(pred)) == 2
    assert balanced_accuracy_score(yv, pred) > 0.65


@pytest.mark.slow
def test_imbalanced_default_model_does_not_collapse():
    """The default PneumoniaCNN on a 1:9 imbalanced set (study lesson 1)."""
    from cxrlearn import PneumoniaCNN

    X, y = make_synthetic_xrays(600, image_size=176, weights=[0.1, 0.9], random_state=2,
                                class_sep=3.0)
    Xv, yv = make_synthetic_xrays(200, image_size=176, weights=[0.1, 0.9], random_state=3,
                                  class_sep=3.0)
    clf = PneumoniaCNN(random_state=0).fit(X, y)
    pred = clf.predict(Xv)
    assert balanced_accuracy_score(yv, pred) > 0.7


@pytest.mark.parametrize("counts", [(9, 81), (30, 30, 7), (5, 6)])
def test_balanced_order_interleaves_classes(counts):
    from cxrlearn._training import balanced_order

    y = np.repeat(np.arange(len(counts)), counts)
    n, k = len(y), len(counts)
    order = balanced_order(y, np.random.default_rng(0))
    assert order.shape == (n,)
    for start in range(0, n - k + 1, k):  # every run of k rows holds each class once
        assert sorted(y[order[start:start + k]]) == list(range(k))
    batch = order[:4 * k]  # and so does any batch, up to one row per class
    assert np.ptp(np.bincount(y[batch], minlength=k)) <= 1
    for c, count in enumerate(counts):  # rows of a class are used as evenly as possible
        uses = np.bincount(order[y[order] == c], minlength=n)[y == c]
        assert uses.max() - uses.min() <= 1
        assert uses.sum() == np.sum(y[order] == c)
    again = balanced_order(y, np.random.default_rng(0))
    np.testing.assert_array_equal(order, again)


def test_balanced_order_draws_a_new_majority_subset_each_epoch():
    from cxrlearn._training import balanced_order

    y = np.array([0] * 10 + [1] * 90)
    rng = np.random.default_rng(0)
    seen = [set(balanced_order(y, rng)[1::2].tolist()) for _ in range(4)]
    assert all(len(s) == 50 for s in seen)  # 50 distinct majority rows per epoch
    assert len(set.union(*seen)) > 80  # most of the 90 are seen within four epochs
    assert seen[0] != seen[1]


def _epoch_batches(data):
    """The (x, y) batches of one epoch of a training source, as arrays."""
    if hasattr(data, "on_epoch_end"):  # a keras PyDataset (lazy images)
        batches = [tuple(np.asarray(t) for t in data[i]) for i in range(len(data))]
        data.on_epoch_end()
        return batches
    return [tuple(np.asarray(t) for t in batch) for batch in data]  # tf.data


@pytest.mark.parametrize("lazy", [False, True])
def test_training_batches_are_class_balanced(tmp_path, lazy):
    from cxrlearn import ImageLoader
    from cxrlearn._training import make_training_data
    from cxrlearn.datasets import write_synthetic_xray_directory

    paths, labels = write_synthetic_xray_directory(
        tmp_path, 40, 16, weights=[0.2, 0.8], random_state=0)
    loader = ImageLoader(image_size=16, color_mode="grayscale", lazy=lazy)
    X = loader.transform(paths)
    y = (np.asarray(labels) == "PNEUMONIA").astype(np.float32)
    assert y.mean() > 0.7
    data = make_training_data(X, y, None, batch_size=8, seed=0, balanced=True)
    assert len(data) == 5  # the usual number of steps per epoch
    seen = []
    for epoch in range(2):
        batches = _epoch_batches(data)
        assert len(batches) == 5
        for xb, yb in batches:
            assert xb.shape[1:] == (16, 16, 1)
            assert yb.sum() == len(yb) / 2
        seen.append(np.concatenate([xb for xb, _ in batches]))
    assert not np.array_equal(seen[0], seen[1])  # a new order for the second epoch


def _blend(m, X):
    """The ``(lam, k, j)`` with ``m == lam * X[k] + (1 - lam) * X[j]`` best, and its error."""
    d = X[:, None, :] - X[None, :, :]  # X[k] - X[j]
    r = m[None, None, :] - X[None, :, :]  # m - X[j]
    dd = (d * d).sum(-1)
    lam = np.where(dd > 0, (r * d).sum(-1) / np.where(dd > 0, dd, 1), 1.0)
    err = np.abs(r - lam[..., None] * d).max(-1)
    k, j = np.unravel_index(np.argmin(err), err.shape)
    return lam[k, j], k, j, err[k, j]


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("lazy", [False, True])
def test_mixup_batches_blend_pairs_of_training_rows(tmp_path, lazy, balanced):
    from cxrlearn import ImageLoader
    from cxrlearn._training import make_training_data
    from cxrlearn.datasets import write_synthetic_xray_directory

    paths, labels = write_synthetic_xray_directory(
        tmp_path, 32, 16, weights=[0.3, 0.7], random_state=0)
    X = ImageLoader(image_size=12, color_mode="grayscale", lazy=lazy).transform(paths)
    flat = (X.load(np.arange(32)) if lazy else X).reshape(32, -1).astype(np.float64)
    y = (np.asarray(labels) == "PNEUMONIA").astype(np.float32)
    w = np.linspace(1.0, 2.0, 32).astype(np.float32)
    data = make_training_data(X, y, w, batch_size=8, seed=0, balanced=balanced,
                              mixup_alpha=1.0)
    lams = []
    for epoch in range(2):
        batches = _epoch_batches(data)
        assert len(batches) == 4
        for xb, yb, wb in batches:
            assert xb.dtype == np.float32 and xb.shape[1:] == (12, 12, 1)
            for m, ym, wm in zip(xb.reshape(len(xb), -1), yb, wb):
                lam, k, j, err = _blend(m.astype(np.float64), flat)
                assert err < 1e-4  # the image is a blend of two training images ...
                assert -1e-4 <= lam <= 1 + 1e-4
                # ... and its target and weight the same blend of theirs
                assert ym == pytest.approx(lam * y[k] + (1 - lam) * y[j], abs=1e-4)
                assert wm == pytest.approx(lam * w[k] + (1 - lam) * w[j], abs=1e-4)
                if k != j:
                    lams.append(lam)
    lams = np.asarray(lams)
    assert len(lams) > 40 and ((lams > 0.1) & (lams < 0.9)).mean() > 0.5  # Beta(1, 1)
    plain = make_training_data(X, y, w, batch_size=8, seed=0, balanced=balanced)
    assert not np.allclose(_epoch_batches(plain)[0][0], _epoch_batches(data)[0][0])


@pytest.mark.parametrize("mixup_alpha", [None, 0.4])
def test_arrays_and_streamed_images_train_on_the_same_batches(tmp_path, mixup_alpha):
    """In-memory arrays (tf.data) and lazy images (PyDataset) draw the same
    balanced orders (and mixtures) for the same seed, so the two fits are the
    same fit."""
    from cxrlearn import ImageLoader
    from cxrlearn.datasets import write_synthetic_xray_directory

    paths, labels = write_synthetic_xray_directory(
        tmp_path, 48, 16, weights=[0.25, 0.75], random_state=1)
    arrays = ImageLoader(image_size=16, color_mode="grayscale").transform(paths)
    lazy = ImageLoader(image_size=16, color_mode="grayscale", lazy=True).transform(paths)
    a = small_cnn(batch_size=8, random_state=3, mixup_alpha=mixup_alpha).fit(arrays, labels)
    b = small_cnn(batch_size=8, random_state=3, mixup_alpha=mixup_alpha).fit(lazy, labels)
    assert a.history_["loss"][-1] != a.history_["loss"][0]
    np.testing.assert_allclose(a.history_["loss"], b.history_["loss"], rtol=1e-5)
    np.testing.assert_allclose(a.predict_proba(arrays), b.predict_proba(arrays), atol=1e-5)


def test_balanced_batches_on_imbalanced_stream(tmp_path):
    from cxrlearn import ImageLoader
    from cxrlearn.datasets import write_synthetic_xray_directory

    paths, labels = write_synthetic_xray_directory(
        tmp_path / "train", 300, 32, weights=[0.1, 0.9], class_sep=2.0, random_state=2)
    vpaths, vlabels = write_synthetic_xray_directory(
        tmp_path / "val", 200, 32, weights=[0.1, 0.9], class_sep=2.0, random_state=3)
    loader = ImageLoader(image_size=32, color_mode="grayscale", lazy=True)
    clf = small_cnn(epochs=10, n_jobs=2)  # the default: balanced batches
    assert clf.balanced_batches
    clf.fit(loader.transform(paths), labels)
    pred = clf.predict(loader.transform(vpaths))
    assert len(set(pred)) == 2
    assert balanced_accuracy_score(vlabels, pred) > 0.65
    # the same fit without any balancing leans on the majority class (0.5 here)
    plain = small_cnn(epochs=10, balanced_batches=False, class_weight=None, n_jobs=2)
    plain.fit(loader.transform(paths), labels)
    plain_pred = plain.predict(loader.transform(vpaths))
    assert balanced_accuracy_score(vlabels, plain_pred) < (
        balanced_accuracy_score(vlabels, pred) - 0.1)


def test_balanced_batches_make_balanced_class_weight_neutral(xrays):
    X, y = xrays
    y = y.copy()
    y[: len(y) // 3] = "NORMAL"  # imbalanced, so that balanced weights would not be 1
    assert abs(np.mean(y == "NORMAL") - 0.5) > 0.1
    a = small_cnn(epochs=1, balanced_batches=True).fit(X, y).predict_proba(X)
    b = small_cnn(epochs=1, balanced_batches=True, class_weight=None).fit(X, y)
    np.testing.assert_allclose(a, b.predict_proba(X), atol=1e-6)
    c = small_cnn(epochs=1, balanced_batches=True, class_weight={"NORMAL": 3.0}).fit(X, y)
    assert np.abs(c.predict_proba(X) - a).max() > 1e-4  # a dict still weighs the loss


@pytest.mark.parametrize("balanced", [True, False])
def test_repeated_source_runs_the_same_epochs(balanced):
    """``repeat=N`` serves the N epochs a fresh source gives epoch by epoch:
    the same batches in the same order, each epoch ending on its short batch."""
    from cxrlearn._training import make_training_data

    rng = np.random.default_rng(0)
    X = rng.random((21, 4, 4, 1)).astype(np.float32)
    y = (np.arange(21) % 4 != 0).astype(np.float32)
    kw = dict(batch_size=8, seed=3, balanced=balanced, mixup_alpha=0.4 if balanced else None)
    fresh = make_training_data(X, y, None, **kw)
    expected = _epoch_batches(fresh) + _epoch_batches(fresh)
    repeated = _epoch_batches(make_training_data(X, y, None, repeat=2, **kw))
    assert [len(b[0]) for b in repeated] == [8, 8, 5, 8, 8, 5]
    assert not np.array_equal(repeated[0][0], repeated[3][0])  # a new order each epoch
    if balanced:  # our own orders: the very same batches
        for got, want in zip(repeated, expected, strict=True):
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w)
    else:  # tf.data's shuffle: every epoch a permutation of all rows
        for epoch in (repeated[:3], repeated[3:]):
            rows = np.concatenate([b[0] for b in epoch]).reshape(21, -1)
            assert sorted(map(tuple, rows)) == sorted(map(tuple, X.reshape(21, -1)))

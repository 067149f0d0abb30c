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
    clf = small_cnn(epochs=6, reduce_lr_on_plateau=1, learning_rate=0.5,
                    lr_schedule="constant").fit(X, y)
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


def test_imbalanced_small_net_does_not_collapse():
    X, y = make_synthetic_xrays(300, image_size=32, weights=[0.1, 0.9], random_state=2,
                                class_sep=2.0)
    Xv, yv = make_synthetic_xrays(200, image_size=32, weights=[0.1, 0.9], random_state=3,
                                  class_sep=2.0)
    clf = small_cnn(epochs=10, class_weight="balanced").fit(X, y)
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

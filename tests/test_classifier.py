"""PneumoniaCNN: the classifier contract, errors, persistence, reproducibility."""

import functools
import subprocess
import sys

import numpy as np
import pytest
from conftest import small_cnn
from sklearn.base import clone, is_classifier
from sklearn.utils._param_validation import InvalidParameterError

from cxrlearn import PneumoniaCNN
from cxrlearn.datasets import make_synthetic_xrays


@pytest.fixture(scope="module")
def fitted(xrays):
    X, y = xrays
    return small_cnn(epochs=6).fit(X[:90], y[:90])


def test_import_does_not_load_tensorflow():
    code = (
        "import sys, cxrlearn, cxrlearn.datasets, cxrlearn.networks;"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_is_a_classifier():
    assert is_classifier(PneumoniaCNN())
    assert PneumoniaCNN().__sklearn_tags__().estimator_type == "classifier"


def test_string_labels_and_proba_columns(fitted, xrays):
    X, y = xrays
    np.testing.assert_array_equal(fitted.classes_, ["NORMAL", "PNEUMONIA"])
    proba = fitted.predict_proba(X[90:])
    assert proba.shape == (30, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # column 1 is the probability of classes_[1]: it tracks decision_function
    scores = fitted.decision_function(X[90:])
    assert scores.shape == (30,)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-scores)), rtol=1e-10)
    pred = fitted.predict(X[90:])
    np.testing.assert_array_equal(pred, fitted.classes_[(proba[:, 1] >= 0.5).astype(int)])
    assert set(pred) <= {"NORMAL", "PNEUMONIA"}


def test_learns_synthetic_task():
    from sklearn.metrics import roc_auc_score

    X, y = make_synthetic_xrays(400, image_size=32, random_state=0)
    clf = small_cnn(epochs=6).fit(X[:300], y[:300])
    auc = roc_auc_score(y[300:] == "PNEUMONIA", clf.predict_proba(X[300:])[:, 1])
    assert auc > 0.7


def test_integer_labels_kept_as_given(xrays):
    X, y = xrays
    y_int = np.where(y == "PNEUMONIA", 7, 3)
    clf = small_cnn(epochs=1).fit(X[:40], y_int[:40])
    np.testing.assert_array_equal(clf.classes_, [3, 7])
    assert set(clf.predict(X[:10])) <= {3, 7}


def test_three_classes_use_softmax(xrays):
    X, y = xrays
    y3 = np.array(["NORMAL", "BACTERIA", "VIRUS"])[np.arange(len(y)) % 3]
    clf = small_cnn(epochs=1).fit(X[:60], y3[:60])
    assert clf.model_.output_shape == (None, 3)
    assert clf.model_.get_layer("probabilities").get_config()["activation"] == "softmax"
    proba = clf.predict_proba(X[:5])
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.decision_function(X[:5]).shape == (5, 3)
    np.testing.assert_array_equal(clf.classes_, ["BACTERIA", "NORMAL", "VIRUS"])


def test_binary_uses_single_sigmoid_unit(fitted):
    assert fitted.model_.output_shape == (None, 1)
    assert fitted.model_.get_layer("probabilities").get_config()["activation"] == "sigmoid"


def test_rgb_and_3d_inputs(xrays):
    X, y = xrays
    rgb = np.repeat(X[:30], 3, axis=-1)
    clf = small_cnn(epochs=1).fit(rgb, y[:30])
    assert clf.input_shape_ == (32, 32, 3)
    clf = small_cnn(epochs=1).fit(X[:30, :, :, 0], y[:30])  # (n, h, w)
    assert clf.input_shape_ == (32, 32, 1)
    assert clf.predict(X[:4, :, :, 0]).shape == (4,)


def test_default_network_is_the_study_model():
    from cxrlearn.networks import build_pneumonia_cnn

    params = PneumoniaCNN().get_params()
    assert params["conv_filters"] == (32, 64, 64, 128, 128)
    assert params["dense_units"] == (256,)
    model = build_pneumonia_cnn((300, 300, 3))
    # the study's "about 311k" parameters
    assert abs(model.count_params() - 311_000) / 311_000 < 0.001
    strides = [layer.strides[0] for layer in model.layers if layer.name.startswith("conv")]
    assert strides == [1, 1, 2, 2, 2]
    assert [layer.units for layer in model.layers if layer.name.startswith("dense")] == [256]
    n_dropout = sum(layer.name.startswith("dropout") for layer in model.layers)
    assert n_dropout == 1


def test_study_two_layer_head():
    from cxrlearn.networks import build_pneumonia_cnn

    model = build_pneumonia_cnn((300, 300, 3), dense_units=(256, 8))
    assert [layer.units for layer in model.layers if layer.name.startswith("dense")] == [256, 8]
    assert sum(layer.name.startswith("dropout") for layer in model.layers) == 2
    assert model.count_params() == 312_849  # 256 + 8 units: no "about 311k"


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "params, match",
    [
        ({"dropout": 1.5}, "dropout"),
        ({"epochs": 0}, "epochs"),
        ({"class_weight": "auto"}, "class_weight"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ],
)
def test_invalid_parameters(xrays, params, match):
    X, y = xrays
    with pytest.raises(InvalidParameterError, match=match):
        small_cnn(**params).fit(X[:10], y[:10])


def test_unknown_activation_is_a_clear_error(xrays):
    X, y = xrays
    with pytest.raises(ValueError, match="activation|Could not interpret"):
        small_cnn(activation="no-such-activation").fit(X[:10], y[:10])


def test_single_class_error(xrays):
    X, _ = xrays
    with pytest.raises(ValueError, match="only one class"):
        small_cnn().fit(X[:10], ["NORMAL"] * 10)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_pixels_rejected(xrays, bad):
    X, y = xrays
    X = X[:10].copy()
    X[3, 5, 5, 0] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        small_cnn().fit(X, y[:10])


def test_nan_at_predict_rejected(fitted, xrays):
    X = xrays[0][:4].copy()
    X[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict_proba(X)


def test_wrong_ndim_rejected(xrays):
    X, y = xrays
    with pytest.raises(ValueError, match="dimensions"):
        small_cnn().fit(X[:10, ..., np.newaxis], y[:10])
    with pytest.raises(ValueError):
        small_cnn().fit(X[:10].ravel(), y[:10])


def test_mismatched_lengths(xrays):
    X, y = xrays
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        small_cnn().fit(X[:10], y[:9])


def test_predict_shape_differs_from_fit(fitted, xrays):
    X, _ = xrays
    with pytest.raises(ValueError, match=r"fitted on images of shape \(32, 32, 1\)"):
        fitted.predict(np.zeros((2, 40, 40, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="fitted on images of shape"):
        fitted.predict(np.repeat(X[:2], 3, axis=-1))


@pytest.mark.parametrize("columns", [32, 7, 32 * 32])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_2d_array_to_an_image_model_is_a_clear_error(fitted, method, columns):
    """Not a Keras traceback (with terminal escape codes) but cxrlearn's message."""
    with pytest.raises(ValueError) as exc:
        getattr(fitted, method)(np.zeros((2, columns), dtype=np.float32))
    message = str(exc.value)
    assert message.startswith("PneumoniaCNN was fitted on images of shape (32, 32, 1)")
    assert "2-D array of shape (2, " in message and "\x1b" not in message


def test_too_small_image_names_minimum(xrays):
    X, y = xrays
    with pytest.raises(ValueError, match="minimum size is 172x172"):
        PneumoniaCNN(epochs=1).fit(X[:10], y[:10])


def test_2d_input_needs_no_convolutions(xrays):
    X, y = xrays
    flat = X[:20].reshape(20, -1)
    with pytest.raises(ValueError, match="conv_filters=\\(\\)"):
        small_cnn().fit(flat, y[:20])
    clf = small_cnn(conv_filters=(), epochs=1).fit(flat, y[:20])
    assert clf.predict_proba(flat).shape == (20, 2)


def test_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PneumoniaCNN().predict(np.zeros((1, 200, 200, 1)))


def test_class_weight_unknown_label(xrays):
    X, y = xrays
    with pytest.raises(ValueError, match="not in the training classes"):
        small_cnn(class_weight={"COVID": 2.0}).fit(X[:10], y[:10])


def test_warm_start_unseen_label(xrays):
    X, y = xrays
    clf = small_cnn(epochs=1, warm_start=True).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="not seen in the first fit"):
        clf.fit(X[:3], ["NORMAL", "PNEUMONIA", "COVID"])


# -------------------------------------------------------- label smoothing
def _separable(n, n_features):
    """Flat random 'images', pneumonia brighter by 0.3: a dense network separates them."""
    rng = np.random.default_rng(0)
    X = rng.random((n, n_features)).astype("float32")
    y = np.array(["NORMAL", "PNEUMONIA"] * (n // 2))
    X[y == "PNEUMONIA"] += 0.3
    return X, y


@functools.cache
def _separable_logits(**params):
    """Training-image logits of a small dense network fitted to ``_separable(80, 64)``."""
    X, y = _separable(80, 64)
    clf = PneumoniaCNN(conv_filters=(), dense_units=(16,), dropout=0.0, epochs=40,
                       learning_rate=0.015, random_state=0, **params).fit(X, y)
    return y == "PNEUMONIA", clf.decision_function(X)


def test_label_smoothing_moves_the_targets_to_a_quarter_and_three_quarters():
    # smoothed targets 0.25 / 0.75: the cross-entropy is least there, so a
    # network that separates its training images stops at those probabilities
    # instead of pushing them to 0 and 1
    from scipy.special import expit

    _, plain = _separable_logits()
    positive, smooth = _separable_logits(label_smoothing=0.5)
    plain, smooth = expit(plain), expit(smooth)
    assert np.abs(plain - 0.5).mean() > 0.45
    assert abs(np.abs(smooth - 0.5).mean() - 0.25) < 0.03
    assert np.abs(smooth - 0.5).max() < 0.3
    assert smooth[positive].min() > smooth[~positive].max()  # still separated


@pytest.mark.parametrize("param, value, invalid", [
    ("label_smoothing", 0.1, 1.0),
    ("mixup_alpha", 0.2, 0.0),
])
def test_target_options_need_two_classes_and_valid_values(xrays, param, value, invalid):
    # Keras's sparse categorical cross-entropy takes neither smoothed nor
    # mixed targets: a three-class fit refuses instead of ignoring the option
    X, y = xrays
    three = np.array(["NORMAL", "BACTERIA", "VIRUS"] * 40)
    with pytest.raises(ValueError, match=f"{param}={value} needs two classes"):
        small_cnn(**{param: value}).fit(X, three)
    with pytest.raises(InvalidParameterError, match=param):
        small_cnn(**{param: invalid}).fit(X[:10], y[:10])


def test_mixup_keeps_the_training_probabilities_off_0_and_1():
    # trained towards blends of two images' targets, a network cannot be
    # sure of the images at the ends of each blend either: the same network
    # without mixup pushes its training images to 0 and 1
    _, plain = _separable_logits()
    positive, mixed = _separable_logits(mixup_alpha=1.0)
    assert np.abs(plain).min() > 3  # probabilities beyond 0.05 and 0.95
    assert np.abs(mixed).mean() < 0.7 * np.abs(plain).mean()
    assert mixed[positive].min() > mixed[~positive].max()  # still separated


# ---------------------------------------------------- weight averaging
class _WeightsSeen:
    """Records the network's weights when training begins and after each epoch."""

    def __init__(self):
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                outer.first = self.model.get_weights()

            def on_epoch_end(self, epoch, logs=None):
                outer.last = self.model.get_weights()

        self.callback = Callback()


def _distance(a, b):
    return np.sqrt(sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b)))


def test_ema_momentum_ends_the_fit_with_the_averaged_weights():
    X, y = _separable(64, 32)
    params = dict(conv_filters=(), dense_units=(8,), dropout=0.0, epochs=4,
                  batch_size=8, learning_rate=0.01, random_state=0)
    seen_plain, seen_slow = _WeightsSeen(), _WeightsSeen()
    plain = PneumoniaCNN(**params, callbacks=[seen_plain.callback]).fit(X, y)
    slow = PneumoniaCNN(**params, ema_momentum=0.999999,
                        callbacks=[seen_slow.callback]).fit(X, y)
    # the same seeds train the same steps: the raw weights of the last epoch agree
    assert _distance(seen_plain.last, seen_slow.last) < 1e-5
    # without averaging the network keeps them; with it, the average replaces them
    assert _distance(plain.model_.get_weights(), seen_plain.last) == 0
    moved = _distance(seen_slow.first, seen_slow.last)
    assert moved > 0.1
    # an average that all but ignores later steps stays near the first step's weights
    assert _distance(slow.model_.get_weights(), seen_slow.first) < moved / 5
    assert not np.allclose(plain.predict_proba(X), slow.predict_proba(X))


def _norm(weights):
    return np.sqrt(sum(float(np.sum(w ** 2)) for w in weights))


def test_weight_decay_shrinks_the_weights():
    X, y = _separable(64, 32)
    params = dict(conv_filters=(), dense_units=(8,), dropout=0.0, epochs=4,
                  batch_size=8, learning_rate=0.01, lr_schedule="constant", random_state=0)
    plain = PneumoniaCNN(**params).fit(X, y)
    decayed = PneumoniaCNN(**params, weight_decay=5.0).fit(X, y)
    assert plain.model_.optimizer.weight_decay is None
    assert decayed.model_.optimizer.weight_decay == pytest.approx(5.0)
    # 32 steps of w -= 5 * 0.01 * w shrink the weights by up to 1 - 0.95**32 = 81%
    assert _norm(decayed.model_.get_weights()) < 0.6 * _norm(plain.model_.get_weights())
    # "adamw" keeps its own default when none is given, and takes the one given
    default = PneumoniaCNN(**{**params, "epochs": 1}, optimizer="adamw").fit(X, y)
    assert default.model_.optimizer.weight_decay == pytest.approx(0.004)
    given = PneumoniaCNN(**{**params, "epochs": 1}, optimizer="adamw",
                         weight_decay=0.0).fit(X, y)
    assert given.model_.optimizer.weight_decay == 0.0


@pytest.mark.parametrize("param, value, invalid, on_instance", [
    ("ema_momentum", 0.99, 1.0, "use_ema and ema_momentum"),
    ("weight_decay", 0.1, -0.1, "weight_decay"),
])
def test_optimizer_options_need_an_optimizer_by_name(xrays, param, value, invalid,
                                                      on_instance):
    import keras

    X, y = xrays
    clf = small_cnn(**{param: value}, optimizer=keras.optimizers.SGD())
    with pytest.raises(ValueError, match=f"set {on_instance} on the optimizer instance"):
        clf.fit(X[:10], y[:10])
    with pytest.raises(InvalidParameterError, match=param):
        small_cnn(**{param: invalid}).fit(X[:10], y[:10])


# -------------------------------------------------------------- weighting
def test_class_weight_shifts_predictions(xrays):
    X, y = xrays
    heavy_normal = small_cnn(epochs=3, class_weight={"NORMAL": 20.0}).fit(X, y)
    heavy_pneu = small_cnn(epochs=3, class_weight={"PNEUMONIA": 20.0}).fit(X, y)
    p_normal = heavy_normal.predict_proba(X)[:, 1].mean()
    p_pneu = heavy_pneu.predict_proba(X)[:, 1].mean()
    assert p_pneu > p_normal + 0.2


def test_balanced_class_weight_matches_sklearn(xrays):
    from sklearn.utils.class_weight import compute_class_weight

    X, y = xrays
    y = y.copy()
    y[:80] = "PNEUMONIA"
    clf = small_cnn(class_weight="balanced", balanced_batches=False)
    clf.classes_, y_enc = np.unique(y, return_inverse=True)
    weights = clf._sample_weight(y_enc, None, len(y))
    expected = compute_class_weight("balanced", classes=clf.classes_, y=y)
    np.testing.assert_allclose(weights, expected[y_enc], rtol=1e-6)
    # with balanced batches (the default) the classes are already balanced
    clf.set_params(balanced_batches=True)
    np.testing.assert_allclose(clf._sample_weight(y_enc, None, len(y)), 1.0)


def test_sample_weight_changes_fit(xrays):
    X, y = xrays
    w = np.where(y == "PNEUMONIA", 10.0, 1.0)
    a = small_cnn(epochs=2).fit(X, y).predict_proba(X)
    b = small_cnn(epochs=2).fit(X, y, sample_weight=w).predict_proba(X)
    assert b[:, 1].mean() > a[:, 1].mean()


# ------------------------------------------------------- reproducibility
def test_same_seed_same_predictions(xrays):
    X, y = xrays
    a = small_cnn(epochs=2, dropout=0.3, augmentation="light").fit(X, y).predict_proba(X)
    b = small_cnn(epochs=2, dropout=0.3, augmentation="light").fit(X, y).predict_proba(X)
    np.testing.assert_allclose(a, b, atol=1e-6)
    c = small_cnn(epochs=2, random_state=1).fit(X, y).predict_proba(X)
    assert np.abs(a - c).max() > 1e-4


def test_augmentation_only_in_training(xrays):
    X, y = xrays
    clf = small_cnn(epochs=1, augmentation="standard").fit(X[:40], y[:40])
    names = [layer.__class__.__name__ for layer in clf.model_.layers]
    assert "RandomRotation" in names and "RandomZoom" in names
    assert "RandomFlip" not in names  # chest anatomy is not symmetric
    np.testing.assert_array_equal(clf.predict_proba(X[:8]), clf.predict_proba(X[:8]))


# ------------------------------------------------------ training control
def test_validation_fraction_and_early_stopping(xrays):
    X, y = xrays
    clf = small_cnn(epochs=40, validation_fraction=0.25, early_stopping=2,
                    learning_rate=0.05).fit(X, y)
    assert "val_loss" in clf.history_
    assert len(clf.history_["loss"]) < 40


def test_warm_start_continues(xrays):
    X, y = xrays
    clf = small_cnn(epochs=2, warm_start=True).fit(X, y)
    weights = clf.model_.get_weights()[0].copy()
    model = clf.model_
    clf.fit(X, y)
    assert clf.model_ is model
    assert len(clf.history_["loss"]) == 4
    assert not np.allclose(weights, clf.model_.get_weights()[0])
    cold = small_cnn(epochs=2).fit(X, y)
    cold.fit(X, y)
    assert len(cold.history_["loss"]) == 2



@pytest.mark.parametrize("change, found", [
    ({"equalize": True}, "HistogramEqualization 'equalize'"),
    ({"resize": 16}, "Resizing 'resize'"),
    ({"conv_filters": (8, 32)}, "filters=16; the parameters build a Conv2D 'conv2' with filters=32"),
    ({"dropout": 0.3}, "Dropout 'dropout1'"),
    ({"activation": "swish"}, "activation='relu'"),
    ({"batch_norm": True}, "with activation='linear'"),  # (the activation after it)
])
def test_warm_start_refuses_another_network(xrays, change, found):
    # continuing would train the old network while the training records (the
    # hashes of equalised images, say) followed the new parameters
    X, y = xrays
    clf = small_cnn(epochs=1, warm_start=True).fit(X[:40], y[:40])
    weights = [w.copy() for w in clf.model_.get_weights()]
    hashes = clf.training_hashes_.copy()
    clf.set_params(**change)
    with pytest.raises(ValueError, match="parameters now describe another network") as info:
        clf.fit(X[40:], y[40:])
    assert found in str(info.value)
    assert len(clf.history_["loss"]) == 1
    assert all(np.array_equal(a, b) for a, b in zip(weights, clf.model_.get_weights()))
    np.testing.assert_array_equal(clf.training_hashes_, hashes)
    clf.set_params(**{k: small_cnn().get_params()[k] for k in change}).fit(X[40:], y[40:])
    assert len(clf.history_["loss"]) == 2

def test_user_callbacks_are_called(xrays):
    from cxrlearn.utils import import_keras

    keras = import_keras()
    seen = []
    cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    small_cnn(epochs=2, callbacks=[cb]).fit(xrays[0][:20], xrays[1][:20])
    assert seen == [0, 1]


# ------------------------------------------------------------- prediction
def test_predictions_of_any_length_share_one_trace(xrays, tf_log):
    X, y = xrays
    clf = small_cnn(epochs=1, batch_size=8).fit(X[:40], y[:40])
    full = clf.decision_function(X)
    for n in (5, 17, 3, 40, 9, 21, 1, 64, 11):
        np.testing.assert_allclose(clf.decision_function(X[:n]), full[:n], atol=1e-5)
        clf.predict_proba(X[n:n + 7])
    assert clf._inference.experimental_get_tracing_count() == 1
    assert not [m for m in tf_log if "retracing" in m]


def test_fit_after_fit_leaves_no_graph_functions_behind(xrays):
    """A worker process of a grid search runs fit after fit: TensorFlow's
    function library (kept for the life of the process) must not grow with them."""
    import gc

    from tensorflow.python.eager import context

    X, y = xrays
    small_cnn(epochs=1).fit(X[:32], y[:32]).predict_proba(X[:4])  # the process warmed up
    gc.collect()
    before = set(context.context().list_function_names())
    for seed in (1, 2):
        small_cnn(epochs=1, random_state=seed).fit(X[:32], y[:32]).predict_proba(X[:4])
    gc.collect()
    assert set(context.context().list_function_names()) - before == set()


def test_lazy_images_predict_like_arrays(tmp_path, xrays):
    from cxrlearn import ImageLoader
    from cxrlearn.datasets import write_synthetic_xray_directory

    paths, labels = write_synthetic_xray_directory(tmp_path, 30, 32, random_state=0)
    loader = ImageLoader(image_size=32, color_mode="grayscale")
    X = loader.transform(paths)
    clf = small_cnn(epochs=1, batch_size=8).fit(X, labels)
    lazy = loader.set_params(lazy=True).transform(paths)
    np.testing.assert_allclose(clf.predict_proba(lazy), clf.predict_proba(X), atol=1e-6)
    # a streamed fit records the same training images as a fit on the arrays
    streamed = small_cnn(epochs=1, batch_size=8).fit(lazy[:20], labels[:20])
    in_memory = small_cnn(epochs=1, batch_size=8).fit(X[:20], labels[:20])
    np.testing.assert_array_equal(streamed.training_fingerprints_,
                                  in_memory.training_fingerprints_)
    np.testing.assert_array_equal(streamed.training_hashes_, in_memory.training_hashes_)
    assert streamed.trained_on(X).tolist() == [True] * 20 + [False] * 10


# ------------------------------------------------------------ persistence
def test_pickle_roundtrip(fitted, xrays):
    import pickle

    X, _ = xrays
    fitted.predict_proba(X[:2])  # builds the traced inference function
    clone_ = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(clone_.predict_proba(X), fitted.predict_proba(X), atol=1e-6)
    assert "_inference" not in fitted.__getstate__()  # rebuilt, never pickled
    # pickling does not strip the live estimator
    assert hasattr(fitted, "model_")


def test_clone_unfitted(fitted):
    c = clone(fitted)
    assert not hasattr(c, "model_")
    assert c.get_params() == fitted.get_params()


def test_synthetic_generator_is_default_data():
    X, y = make_synthetic_xrays(10, image_size=32, random_state=0)
    assert X.shape == (10, 32, 32, 1) and len(y) == 10

"""Two recipes in one model: ``resize`` and ``PneumoniaCNN(companion=...)``.

A network can shrink the pipeline's images itself (``resize``, a Keras
``Resizing`` layer), so a 28 px network joins 176 px ones in one model: the
estimator trains its own networks, then a clone of its ``companion`` on the
same images, and averages the two recipes' log-odds. These tests check the
arithmetic against the two recipes fitted alone with the same seed, that
saving (once), loading, Grad-CAM and the refusals work, that a shrinking
network trains from images shrunk once to the weights it reached shrinking
them at every step, and the ``cxrlearn train --companion-size`` options.
"""

import argparse
import copy
import pickle

import numpy as np
import pytest
from conftest import small_cnn
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import InvalidParameterError

from cxrlearn.networks import (
    add_companion,
    build_pneumonia_cnn,
    companion_network,
    member_networks,
)

#: float32: the checks compare sums of logits, which bfloat16 would round
PRECISION = "float32"
SMALL = dict(conv_filters=(4,), dense_units=(8,), resize=16, n_networks=2)
#: a companion-like network in the precision the companion trains in here
SHRINKING = dict(conv_filters=(4,), dense_units=(8,), resize=16, n_networks=2,
                 precision="auto", epochs=2)


@pytest.fixture(scope="module")
def data(xrays):
    X, y = xrays
    return X[:80], y[:80], X[80:]


@pytest.fixture(scope="module")
def paired(data):
    X, y, _ = data
    companion = small_cnn(precision=PRECISION, random_state=None, **SMALL)
    return small_cnn(precision=PRECISION, companion=companion).fit(X, y)


@pytest.fixture(scope="module")
def alone(data):
    """The estimator's own network, fitted without a companion (same seed)."""
    X, y, _ = data
    return small_cnn(precision=PRECISION).fit(X, y)


@pytest.fixture(scope="module")
def small_alone(data):
    """The companion's recipe fitted alone with the estimator's seed."""
    X, y, _ = data
    return small_cnn(precision=PRECISION, **SMALL).fit(X, y)


# ------------------------------------------------------------------ networks
def test_resize_shrinks_the_images_inside_the_network():
    net = build_pneumonia_cnn((32, 32, 1), conv_filters=(4, 8), dense_units=(8,), resize=12)
    assert net.input_shape == (None, 32, 32, 1)
    assert net.get_layer("resize").output.shape == (None, 12, 12, 1)
    assert net.layers[1].name == "resize"  # before augmentation and centring
    assert build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), resize=(8, 12)).get_layer(
        "resize").output.shape == (None, 8, 12, 1)


def test_resize_is_shrinking_the_images_first():
    """Same seed, same weights: the resizing network on 32 px images scores as
    the 8 px network scores the images shrunk by TensorFlow beforehand."""
    import tensorflow as tf

    X = np.random.default_rng(0).random((6, 32, 32, 1)).astype("float32")
    inside = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), dense_units=(8,),
                                 resize=8, seed=3)
    before = build_pneumonia_cnn((8, 8, 1), conv_filters=(4,), dense_units=(8,), seed=3)
    for a, b in zip(inside.get_weights(), before.get_weights()):
        np.testing.assert_array_equal(a, b)
    shrunk = tf.image.resize(X, (8, 8), method="bilinear", antialias=True).numpy()
    np.testing.assert_allclose(inside.predict(X, verbose=0), before.predict(shrunk, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_shape=(32, 32, 1), conv_filters=(4, 8, 16), resize=8),
     "too small for 3 convolution blocks .* Give a larger resize"),
    (dict(input_shape=(32, 32, 1), conv_filters=(4,), resize=0), "resize must be a positive"),
    (dict(input_shape=(32, 32, 1), conv_filters=(4,), resize=(8, 8, 8)), "resize must be"),
    (dict(input_shape=(20,), conv_filters=(), resize=8), "resize needs image inputs"),
])
def test_bad_resize(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_pneumonia_cnn(**kwargs)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_add_companion_weighs_the_two_recipes_logits(n_classes):
    X = np.random.default_rng(1).random((5, 32, 32, 1)).astype("float32")
    big = [build_pneumonia_cnn((32, 32, 1), n_classes, conv_filters=(4,), dense_units=(8,),
                               seed=s) for s in (0, 1)]
    small = build_pneumonia_cnn((32, 32, 1), n_classes, conv_filters=(4,), dense_units=(8,),
                                resize=8, seed=2)
    from cxrlearn.networks import average_networks

    both = add_companion(average_networks(big), small, weight=0.25)
    assert [m.name for m in member_networks(both)] == ["network0", "network1"]
    assert companion_network(both).name == "companion"

    def logits(net):
        import keras

        return keras.Model(net.inputs, net.get_layer("logits").output).predict(X, verbose=0)

    expected = 0.75 * (logits(big[0]) + logits(big[1])) / 2 + 0.25 * logits(small)
    np.testing.assert_allclose(logits(both), expected, rtol=1e-5, atol=1e-6)
    proba = both.predict(X, verbose=0)
    np.testing.assert_allclose(proba.sum(axis=1) if n_classes > 2 else proba[:, 0],
                               1.0 if n_classes > 2 else 1 / (1 + np.exp(-expected[:, 0])),
                               rtol=1e-5)


def test_add_companion_refuses_what_does_not_fit():
    a = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), dense_units=(8,))
    with pytest.raises(ValueError, match="differ in input shape"):
        add_companion(a, build_pneumonia_cnn((16, 16, 1), conv_filters=(4,), dense_units=(8,)))
    with pytest.raises(ValueError, match="differ in input shape .* or number of logits"):
        add_companion(a, build_pneumonia_cnn((32, 32, 1), 3, conv_filters=(4,),
                                             dense_units=(8,)))
    with pytest.raises(ValueError, match="weight must be in"):
        add_companion(a, a, weight=1.0)
    both = add_companion(a, build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), dense_units=(8,)))
    with pytest.raises(ValueError, match="cannot take or be another companion"):
        add_companion(both, a)


# ----------------------------------------------------------------- estimator
def test_scores_are_the_weighted_mean_of_the_two_recipes_fitted_alone(
        paired, alone, small_alone, data):
    _, _, X_new = data
    # the estimator's network is the one it trains without a companion, and the
    # companion's networks those of its recipe fitted alone with the same seed
    np.testing.assert_allclose(paired.companion_.decision_function(X_new),
                               small_alone.decision_function(X_new), rtol=1e-5, atol=1e-5)
    expected = 0.5 * alone.decision_function(X_new) + 0.5 * small_alone.decision_function(X_new)
    np.testing.assert_allclose(paired.decision_function(X_new), expected, rtol=1e-5, atol=1e-5)
    proba = paired.predict_proba(X_new)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-expected)), rtol=1e-5, atol=1e-6)
    assert np.array_equal(paired.predict(X_new), paired.classes_[(expected > 0).astype(int)])
    # the two recipes disagree somewhere: the average is not either one
    assert not np.allclose(alone.decision_function(X_new), small_alone.decision_function(X_new))


def test_the_model_nests_both_recipes(paired):
    model = paired.model_
    assert [layer.name for layer in model.layers] == [
        "image", "network0", "companion", "network_share", "companion_share", "logits",
        "probabilities"]
    assert [m.name for m in member_networks(model)] == ["network0"]
    assert [m.name for m in member_networks(companion_network(model))] == [
        "network0", "network1"]
    assert paired.companion_.history_ and paired.companion_.n_networks == 2
    assert paired.companion.__dict__.get("model_") is None  # the parameter stays unfitted
    assert paired.get_params()["companion__resize"] == 16


def test_companion_weight(data, paired):
    X, y, X_new = data
    heavy = clone(paired).set_params(companion_weight=0.9).fit(X, y)
    z_own = heavy.decision_function(X_new) - 0.9 * heavy.companion_.decision_function(X_new)
    np.testing.assert_allclose(z_own / 0.1, paired.decision_function(X_new) * 2
                               - paired.companion_.decision_function(X_new),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("save", ["skops", "pickle"])
def test_saved_and_loaded_once(paired, data, tmp_path, save):
    from cxrlearn.io import load_model, save_model

    _, _, X_new = data
    if save == "skops":
        path = save_model(paired, tmp_path / "m.skops")
        loaded = load_model(path)
    else:
        loaded = pickle.loads(pickle.dumps(paired))
    np.testing.assert_allclose(loaded.predict_proba(X_new), paired.predict_proba(X_new),
                               rtol=1e-6, atol=1e-7)
    # the companion predicts on its own after loading, from the shared weights
    np.testing.assert_allclose(loaded.companion_.predict_proba(X_new),
                               paired.companion_.predict_proba(X_new), rtol=1e-6, atol=1e-7)
    assert loaded.companion_.history_ == paired.companion_.history_
    # its network travels once: inside the estimator's model
    state = paired.__getstate__()
    assert "_model_keras_bytes" in state
    assert not {"model_", "_model_keras_bytes"} & set(state["companion_"].__getstate__())
    assert paired.companion_.model_ is not None  # saving took nothing from the original


def test_grad_cam_weighs_the_estimators_own_maps(paired, alone, data):
    from cxrlearn.explain import grad_cam

    _, _, X_new = data
    maps = grad_cam(paired, X_new[:4], layer="conv2")
    assert maps.shape == (4, 32, 32) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1 and maps.max() == 1
    # the companion has no "conv2": the maps are the estimator's own network's
    with pytest.raises(ValueError, match="no layer named 'conv2'"):
        grad_cam(paired.companion_, X_new[:1], layer="conv2")


def test_refusals(paired, data):
    X, y, _ = data
    with pytest.raises(ValueError, match="has a companion"):
        copy.deepcopy(paired).set_params(warm_start=True).fit(X, y)
    inner = small_cnn(companion=small_cnn())
    with pytest.raises(ValueError, match="cannot have a companion of its own"):
        small_cnn(companion=inner).fit(X, y)
    with pytest.raises(ValueError, match="companion must be a PneumoniaCNN"):
        small_cnn(companion=LogisticRegression()).fit(X, y)
    with pytest.raises(InvalidParameterError, match="companion_weight"):
        small_cnn(companion=small_cnn(), companion_weight=0).fit(X, y)


def test_refit_without_companion_drops_it(paired, data):
    X, y, X_new = data
    plain = clone(paired).set_params(companion=None, epochs=1).fit(X, y)
    assert not hasattr(plain, "companion_") and companion_network(plain.model_) is None
    again = copy.deepcopy(paired).set_params(companion=None, epochs=1).fit(X, y)
    assert not hasattr(again, "companion_")
    np.testing.assert_allclose(again.decision_function(X_new), plain.decision_function(X_new),
                               rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ shrinking once
def _input_recorder():
    """A callback noting the input shape of the model that ``fit`` trains."""
    from cxrlearn.utils import import_keras

    keras = import_keras()

    class InputShape(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.shapes = getattr(self, "shapes", []) + [self.model.input_shape]

    return InputShape()


def _shrinking_every_step(**params):
    """The estimator as it was: whole networks train, shrinking at every step."""
    from cxrlearn import PneumoniaCNN

    class ShrinkEveryStep(PneumoniaCNN):
        def _trainees(self, networks, fit_data, val_data):
            return networks, fit_data, val_data

    return ShrinkEveryStep(**small_cnn(**params).get_params(deep=False))


@pytest.mark.parametrize("extra", [
    dict(),
    dict(equalize=True, augmentation="light", validation_fraction=0.25),
])
def test_a_shrinking_network_trains_from_images_shrunk_once(data, extra):
    """The networks of a ``resize`` estimator train from the shrunk images
    (their trained part takes 16 px images) and end with the very weights,
    history and scores of whole networks shrinking at every step, in the
    precision the default's companion trains in on this machine."""
    X, y, X_new = data
    recorders = [_input_recorder(), _input_recorder()]
    now = small_cnn(callbacks=[recorders[0]], **SHRINKING, **extra).fit(X, y)
    before = _shrinking_every_step(callbacks=[recorders[1]], **SHRINKING, **extra).fit(X, y)
    assert recorders[0].shapes == [(None, 16, 16, 1)] * 2
    assert recorders[1].shapes == [(None, 32, 32, 1)] * 2
    assert now.model_.input_shape == (None, 32, 32, 1)  # the model takes the images
    for a, b in zip(now.model_.get_weights(), before.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert now.history_ == before.history_
    np.testing.assert_array_equal(now.predict_proba(X_new), before.predict_proba(X_new))


def test_warm_start_continues_the_shrunk_networks_optimizer(data):
    """The trained part shares the network's optimizer: a warm-started fit
    goes on with its step count (the learning-rate schedule) and moments."""
    X, y, _ = data
    params = {**SHRINKING, "n_networks": 1, "warm_start": True}
    now, before = small_cnn(**params), _shrinking_every_step(**params)
    for est in (now, before):
        est.fit(X, y)
        est.fit(X, y)
    assert int(now.model_.optimizer.iterations.numpy()) == 2 * 2 * -(-len(y) // 16)
    for a, b in zip(now.model_.get_weights(), before.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_mixup_trains_the_whole_network(data):
    """``mixup_alpha`` blends the images the network takes, before any shrink
    (an equalisation of a blend is not a blend of equalisations): the whole
    network trains."""
    X, y, _ = data
    recorder = _input_recorder()
    small_cnn(callbacks=[recorder], mixup_alpha=0.4, equalize=True, **SHRINKING).fit(X, y)
    assert recorder.shapes == [(None, 32, 32, 1)] * 2


def test_split_only_where_the_images_shrink():
    from cxrlearn._training import shrunk_inputs, split_shrinking_inputs

    assert split_shrinking_inputs(build_pneumonia_cnn((32, 32, 1), conv_filters=(4,))) is None
    assert split_shrinking_inputs(  # an equalisation alone would only copy the images
        build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), equalize=True)) is None
    network = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), dense_units=(8,),
                                  resize=8, equalize=True, seed=0)
    opening, rest = split_shrinking_inputs(network)
    assert [layer.name for layer in opening.layers[1:]] == ["equalize", "resize"]
    assert set(map(id, rest.weights)) == set(map(id, network.weights))
    X = np.random.default_rng(0).random((5, 32, 32, 1)).astype("float32")
    shrunk = shrunk_inputs(opening, X, batch_size=2)
    assert shrunk.shape == (5, 8, 8, 1) and shrunk.dtype == np.float32
    np.testing.assert_array_equal(rest.predict(shrunk, verbose=0),
                                  network.predict(X, verbose=0))


def test_training_pipelines_run_without_the_autotuning_model():
    """tf.data's autotuning model held up the end of fit: its thread, in
    TensorFlow 2.21, delayed the iterator's deletion by up to a minute."""
    from cxrlearn._training import make_training_data

    X = np.zeros((10, 4, 4, 1), np.float32)
    y = np.arange(10) % 2
    for balanced in (False, True):
        ds = make_training_data(X, y, None, batch_size=4, seed=0, balanced=balanced)
        assert ds.options().autotune.enabled is False


def test_companion_benchmark_times_the_same_networks(capsys):
    from conftest import load_benchmark

    from cxrlearn import _training

    load_benchmark("companion").main(["--synthetic", "40", "--epochs", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "identical weights: True" in out
    assert "now / before: median" in out and "once / before: median" in out
    assert _training._AUTOTUNE_MODEL is False  # restored


# ----------------------------------------------------------------------- CLI
def _args(argv):
    from cxrlearn.cli import build_parser

    return build_parser().parse_args(["train", "DIR", "--out", "m.skops", *argv])


def test_train_adds_the_28px_companion_by_default():
    from cxrlearn.cli._common import COMPANION_RECIPE, make_pipeline, network_names

    cnn = make_pipeline(_args([])).named_steps["cnn"]
    small = cnn.companion
    assert cnn.n_networks == 1 and small.resize == 28 and small.n_networks == 3
    assert {k: small.get_params()[k] for k in COMPANION_RECIPE} == COMPANION_RECIPE
    # the main networks' smoothing and precision
    assert small.label_smoothing == cnn.label_smoothing == 0.2
    assert small.precision == cnn.precision
    assert network_names(cnn, 176) == ["176 px network 1/1", "28 px network 1/3",
                                       "28 px network 2/3", "28 px network 3/3"]
    assert make_pipeline(_args(["--companion-size", "0"])).named_steps["cnn"].companion is None
    other = make_pipeline(_args(["--companion-size", "40", "--companion-networks", "1",
                                 "--label-smoothing", "0"])).named_steps["cnn"].companion
    assert (other.resize, other.n_networks, other.label_smoothing) == (40, 1, 0)


@pytest.mark.parametrize("intensity, loader_intensity, equalize", [
    (None, "raw", True), ("equalize", "raw", True),
    ("raw", "raw", False), ("stretch", "stretch", False),
])
def test_train_equalises_inside_the_main_networks(intensity, loader_intensity, equalize):
    """The 176 px network equalises the films itself; the companion sees them raw."""
    from cxrlearn.cli._common import make_pipeline

    pipe = make_pipeline(_args([] if intensity is None else ["--intensity", intensity]))
    cnn = pipe.named_steps["cnn"]
    assert pipe.named_steps["loader"].intensity == loader_intensity
    assert cnn.equalize is equalize
    assert cnn.companion.equalize is False  # the companion sees what the loader gives


def test_tune_has_no_companion_unless_asked():
    from cxrlearn.cli import build_parser
    from cxrlearn.cli._common import make_pipeline

    args = build_parser().parse_args(["tune", "DIR", "--out", "m.skops", "--param", "x=1"])
    assert make_pipeline(args).named_steps["cnn"].companion is None


@pytest.mark.parametrize("argv, message", [
    (["--companion-size", "8"], "--companion-size 8 is too small for 3 convolution blocks"),
    (["--companion-size", "200"], "larger than --image-size 176"),
    (["--companion-size", "-1"], "--companion-size must be positive"),
    (["--companion-networks", "0"], "--companion-networks must be at least 1"),
])
def test_bad_companion_options(argv, message):
    from cxrlearn.cli._common import CLIError, make_pipeline

    with pytest.raises(CLIError, match=message):
        make_pipeline(_args(argv))


def test_train_with_a_companion_end_to_end(tmp_path, capsys):
    from cxrlearn.cli import main
    from cxrlearn.datasets import write_synthetic_xray_directory
    from cxrlearn.io import load_model

    write_synthetic_xray_directory(tmp_path / "data", 40, 64, random_state=0)
    out = tmp_path / "m.skops"
    assert main(["train", str(tmp_path / "data"), "--out", str(out), "--image-size", "48",
                 "--conv-filters", "8,16", "--epochs", "1", "--batch-size", "16",
                 "--companion-size", "16", "--companion-networks", "2"]) == 0
    err = capsys.readouterr().err
    # every network's epochs are named, the companion's by their size
    assert "48 px network 1/1 epoch 1/1: loss" in err
    assert "16 px network 1/2 epoch 30/30: loss" in err
    assert "16 px network 2/2 epoch 30/30: loss" in err
    cnn = load_model(out).named_steps["cnn"]
    assert cnn.companion_.n_networks == 2 and cnn.companion_.resize == 16
    assert cnn.callbacks is None and cnn.companion.callbacks is None
    assert cnn.companion_.callbacks is None
    assert [m.name for m in member_networks(companion_network(cnn.model_))] == [
        "network0", "network1"]


def test_parser_default_matches_the_train_constant():
    from cxrlearn.cli._train import TRAIN_COMPANION_SIZE

    assert _args([]).companion_size == TRAIN_COMPANION_SIZE == 28
    assert isinstance(_args([]), argparse.Namespace)


def test_tune_a_companion_weight(tmp_path, capsys):
    """A grid over the companion's share; every fit trains both recipes."""
    from cxrlearn.cli import main
    from cxrlearn.datasets import write_synthetic_xray_directory
    from cxrlearn.io import load_model

    write_synthetic_xray_directory(tmp_path / "data", 24, 48, random_state=1)
    out = tmp_path / "best.skops"
    assert main(["tune", str(tmp_path / "data"), "--out", str(out), "--image-size", "32",
                 "--conv-filters", "4,8", "--epochs", "1", "--batch-size", "16", "--cv", "2",
                 "--companion-size", "16", "--companion-networks", "1", "--no-progress",
                 "--param", "cnn__companion_weight=0.3,0.7"]) == 0
    captured = capsys.readouterr()
    assert "'cnn__companion_weight': 0.3" in captured.out
    assert "'cnn__companion_weight': 0.7" in captured.out
    best = load_model(out).named_steps["cnn"]
    assert best.companion_weight in (0.3, 0.7) and best.companion_.resize == 16
    assert best.callbacks is None and best.companion_.callbacks is None
    # the companion's ensemble size is not a grid parameter, as the estimator's is not
    assert main(["tune", str(tmp_path / "data"), "--out", str(out), "--companion-size", "16",
                 "--param", "cnn__companion__n_networks=1,2"]) == 1
    assert "not a grid parameter" in capsys.readouterr().err

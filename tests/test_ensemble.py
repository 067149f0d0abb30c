"""Seed ensembles: ``PneumoniaCNN(n_networks=...)`` and ``cxrlearn train --networks``.

An ensemble is several networks of the same configuration, each trained from
its own seeds, whose logits are averaged into one Keras model. These tests
check the arithmetic (the ensemble's scores are the mean of its members'),
that the first member is exactly the single network of the same seed, and
that saving, Grad-CAM and the refusal to warm-start work on it.
"""

import copy
import pickle

import numpy as np
import pytest
from conftest import small_cnn
from scipy.special import expit
from sklearn.utils._param_validation import InvalidParameterError

from cxrlearn.networks import average_networks, build_pneumonia_cnn, member_networks

EPOCHS = 3
#: float32: the arithmetic checks below compare sums of float32 logits, which
#: bfloat16 (the default where the CPU has it) would round to 1e-3
PRECISION = "float32"


@pytest.fixture(scope="module")
def data(xrays):
    X, y = xrays
    return X[:80], y[:80], X[80:]


@pytest.fixture(scope="module")
def single(data):
    X, y, _ = data
    return small_cnn(epochs=EPOCHS, precision=PRECISION).fit(X, y)


@pytest.fixture(scope="module")
def ensemble(data):
    X, y, _ = data
    return small_cnn(epochs=EPOCHS, n_networks=3, precision=PRECISION).fit(X, y)


def _member_logits(clf, X):
    members = member_networks(clf.model_)
    return np.stack([m.predict(X.astype("float32"), batch_size=clf.batch_size, verbose=0)[:, 0]
                     for m in members])


def test_members_are_nested_networks(ensemble):
    members = member_networks(ensemble.model_)
    assert [m.name for m in members] == ["network0", "network1", "network2"]
    assert [layer.name for layer in ensemble.model_.layers] == [
        "image", "network0", "network1", "network2", "logits", "probabilities"]
    # every member has the study network's own weights, none shared
    assert len(ensemble.model_.weights) == 3 * len(members[0].weights)


def test_scores_are_the_mean_of_the_members(ensemble, data):
    _, _, X_test = data
    z = _member_logits(ensemble, X_test)
    np.testing.assert_allclose(ensemble.decision_function(X_test), z.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(ensemble.predict_proba(X_test)[:, 1], expit(z.mean(axis=0)),
                               atol=1e-6)
    assert np.all(ensemble.predict(X_test) == ensemble.classes_[(z.mean(axis=0) > 0) * 1])
    # the members are different networks (their own seeds), not copies
    assert np.abs(z[0] - z[1]).max() > 1e-3
    assert np.abs(z[1] - z[2]).max() > 1e-3


def test_first_member_is_the_single_network(ensemble, single, data):
    _, _, X_test = data
    z = _member_logits(ensemble, X_test)
    np.testing.assert_allclose(z[0], single.decision_function(X_test), atol=1e-5)


def test_same_seed_same_ensemble(ensemble, data):
    X, y, X_test = data
    again = small_cnn(epochs=EPOCHS, n_networks=3, precision=PRECISION).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X_test), ensemble.predict_proba(X_test))


def test_history_records_each_network(ensemble):
    assert ensemble.history_["network"] == [0] * EPOCHS + [1] * EPOCHS + [2] * EPOCHS
    assert len(ensemble.history_["loss"]) == 3 * EPOCHS


def test_save_and_pickle_roundtrip(ensemble, data, tmp_path):
    from cxrlearn.io import load_model, save_model

    _, _, X_test = data
    expected = ensemble.predict_proba(X_test)
    save_model(ensemble, tmp_path / "ensemble.skops", include_optimizer=False)
    loaded = load_model(tmp_path / "ensemble.skops")
    np.testing.assert_array_equal(loaded.predict_proba(X_test), expected)
    assert len(member_networks(loaded.model_)) == 3
    np.testing.assert_allclose(pickle.loads(pickle.dumps(ensemble)).predict_proba(X_test),
                               expected, atol=1e-6)


def test_warm_start_refuses_an_ensemble(ensemble, single, data):
    X, y, _ = data
    with pytest.raises(ValueError, match="single network"):
        copy.deepcopy(ensemble).set_params(warm_start=True).fit(X, y)
    # nor may a single fitted network be continued as an ensemble
    with pytest.raises(ValueError, match="n_networks=2"):
        copy.deepcopy(single).set_params(warm_start=True, n_networks=2).fit(X, y)


def test_n_networks_is_validated(data):
    X, y, _ = data
    with pytest.raises(InvalidParameterError, match="n_networks"):
        small_cnn(n_networks=0).fit(X[:10], y[:10])


def test_grad_cam_of_an_ensemble(ensemble, single, data):
    from cxrlearn.explain import grad_cam

    _, _, X_test = data
    maps = grad_cam(ensemble, X_test[:6])
    assert maps.shape == (6, 32, 32)
    assert maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_array_equal(maps, grad_cam(ensemble, X_test[:6]))
    assert grad_cam(ensemble, X_test[:2], layer="conv1").shape == (2, 32, 32)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        grad_cam(ensemble, X_test[:2], layer="nope")
    # An ensemble of one network twice scores and explains exactly like it: each
    # copy's maps get half the gradient of the averaged logit, and are summed.
    twice = copy.copy(single)
    twice.model_ = average_networks([single.model_, single.model_])
    twice._logits_model = None  # not used by Grad-CAM
    np.testing.assert_allclose(grad_cam(twice, X_test[:6]), grad_cam(single, X_test[:6]),
                               atol=1e-5)
    # and it is not the single network's map: the members look at different places
    assert np.abs(maps - grad_cam(single, X_test[:6])).max() > 0.05


def test_average_networks_checks_its_members():
    a = build_pneumonia_cnn((16, 16, 1), 2, conv_filters=(4,), dense_units=(8,), seed=0)
    b = build_pneumonia_cnn((20, 20, 1), 2, conv_filters=(4,), dense_units=(8,), seed=1)
    with pytest.raises(ValueError, match="at least two"):
        average_networks([a])
    with pytest.raises(ValueError, match="input shape"):
        average_networks([a, b])


def test_models_saved_before_n_networks_existed_load_as_one_network(single, data):
    from sklearn.base import clone

    _, _, X_test = data
    state = single.__getstate__()
    del state["n_networks"]  # as in files written before ensembles
    del state["label_smoothing"]  # ... and before label smoothing
    del state["mixup_alpha"]  # ... and before mixup
    del state["ema_momentum"], state["weight_decay"]  # ... and before these
    old = type(single).__new__(type(single))
    old.__setstate__(state)
    assert old.n_networks == 1 and "n_networks" not in repr(old)
    assert clone(old).get_params()["n_networks"] == 1
    assert clone(old).get_params()["label_smoothing"] == 0.0
    assert clone(old).get_params()["mixup_alpha"] is None
    assert clone(old).get_params()["ema_momentum"] is None
    assert clone(old).get_params()["weight_decay"] is None
    np.testing.assert_allclose(old.predict_proba(X_test), single.predict_proba(X_test),
                               atol=1e-6)

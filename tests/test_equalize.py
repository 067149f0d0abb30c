"""Histogram equalisation inside a network: ``PneumoniaCNN(equalize=True)``.

The default recipe's 176 px network sees equalised films and its 28 px
companion the films' own grey levels, from one loader that passes them raw.
These tests check that the network's equalisation gives exactly the
loader's values (so the estimator trains exactly as on an equalising
loader), image by image whatever the batch, that the model file still
loads without code from it (``cxrlearn train`` building it: test_companion.py).
"""

import io
import json
import zipfile

import numpy as np
import pytest
from conftest import small_cnn
from PIL import Image
from sklearn.utils._param_validation import InvalidParameterError

from cxrlearn import ImageLoader
from cxrlearn._decoders import _normalize_intensity


def _equalised(X):
    return np.stack([_normalize_intensity(x, "equalize") for x in X])


@pytest.fixture(scope="module")
def layer():
    from cxrlearn._layers import HistogramEqualization

    return HistogramEqualization()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Grey PNGs and JPEGs (one RGB, one constant, one dull) of other sizes."""
    root = tmp_path_factory.mktemp("films")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        size = (40 + 7 * i, 30 + 5 * i)
        pixels = rng.integers(0, 256, size=size[::-1], dtype=np.uint8)
        if i == 1:  # dull: a narrow band of grey levels
            pixels = (100 + pixels // 16).astype(np.uint8)
        if i == 2:
            pixels[:] = 77  # constant
        image = Image.fromarray(pixels)
        if i == 3:
            image = Image.merge("RGB", (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                        image))
        path = root / f"film{i}.{'png' if i % 2 else 'jpeg'}"
        image.save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("color_mode", ["grayscale", "rgb"])
def test_the_layer_gives_the_loaders_values_exactly(layer, files, color_mode):
    def load(intensity):
        return ImageLoader(image_size=(24, 20), color_mode=color_mode,
                           intensity=intensity).transform(files)

    raw, equalised = load("raw"), load("equalize")
    got = np.asarray(layer(raw))
    assert got.dtype == np.float32 and got.shape == raw.shape
    np.testing.assert_array_equal(got, equalised)
    assert not np.array_equal(raw, equalised)  # it did something
    np.testing.assert_array_equal(got[2], 0.0)  # the constant film


def test_each_image_on_its_own_in_training_and_prediction(layer, rng):
    X = rng.random((5, 16, 16, 1)).astype(np.float32)
    X[1] *= 0.2  # a dark image beside bright ones
    together = np.asarray(layer(X))
    alone = np.concatenate([np.asarray(layer(X[i : i + 1])) for i in range(len(X))])
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(together, _equalised(X))
    np.testing.assert_array_equal(np.asarray(layer(X, training=True)), together)
    # out of [0, 1]: counted in the end levels, never an error or a wrapped index
    wild = np.asarray(layer(X * 3 - 1))
    assert np.isfinite(wild).all() and wild.min() >= 0 and wild.max() <= 1


def test_builder_puts_it_first_with_no_weights():
    from cxrlearn.networks import build_pneumonia_cnn

    plain = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), dense_units=(8,), resize=16)
    model = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), dense_units=(8,), resize=16,
                                equalize=True)
    assert [layer.name for layer in model.layers[:3]] == ["image", "equalize", "resize"]
    assert model.count_params() == plain.count_params()
    with pytest.raises(ValueError, match="equalize=False"):
        build_pneumonia_cnn((6,), conv_filters=(), equalize=True)


@pytest.fixture(scope="module")
def pair(xrays):
    """The same recipe on raw images equalising inside, and on equalised images."""
    X, y = xrays
    X = X[:80] * np.float32(0.6) + np.float32(0.1)  # grey levels that equalising changes
    inside = small_cnn(precision="float32", equalize=True).fit(X, y[:80])
    outside = small_cnn(precision="float32").fit(_equalised(X), y[:80])
    return X, inside, outside


def test_training_inside_equals_training_on_an_equalising_loader(pair, xrays):
    X, inside, outside = pair
    X_new = xrays[0][80:] * np.float32(0.6) + np.float32(0.1)
    np.testing.assert_array_equal(inside.decision_function(X_new),
                                  outside.decision_function(_equalised(X_new)))
    assert inside.model_.layers[1].name == "equalize"
    # the pixels' digests are those of the images it was given; the perceptual
    # hashes those of the images the network saw, as with an equalising loader
    np.testing.assert_array_equal(inside.training_hashes_, outside.training_hashes_)
    assert not np.array_equal(inside.training_fingerprints_, outside.training_fingerprints_)
    assert inside.trained_on(X[:5]).all()
    # a brighter copy of a training film is still the same film
    assert inside.trained_on(np.clip(X[:5] * 1.3, 0, 1)).all()
    assert not inside.trained_on(np.clip(X[:5] * 1.3, 0, 1), near=False).any()


def test_bfloat16_networks_equalise_in_float32(xrays):
    # where bfloat16 is native, cxrlearn train's 176 px network computes in
    # mixed bfloat16: its equalisation must still give the loader's values
    # exactly (bfloat16 keeps 8 bits: 256 levels would not survive it)
    X, y = xrays
    X = X[:60] * np.float32(0.6) + np.float32(0.1)
    inside = small_cnn(epochs=1, precision="bfloat16", equalize=True).fit(X, y[:60])
    outside = small_cnn(epochs=1, precision="bfloat16").fit(_equalised(X), y[:60])
    layer = inside.model_.get_layer("equalize")
    assert layer.dtype_policy.name == "float32"
    assert inside.model_.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"
    np.testing.assert_array_equal(np.asarray(layer(X)), _equalised(X))
    np.testing.assert_array_equal(inside.decision_function(X), outside.decision_function(
        _equalised(X)))

def test_saved_and_loaded_without_code(pair, tmp_path):
    from cxrlearn.io import load_model, save_model

    X, inside, _ = pair
    save_model(inside, tmp_path / "m.skops")
    loaded = load_model(tmp_path / "m.skops")
    assert loaded.equalize is True
    np.testing.assert_array_equal(loaded.decision_function(X[:10]), inside.decision_function(X[:10]))


@pytest.mark.parametrize("module, class_name", [
    ("cxrlearn._layers", "Evil"), ("cxrlearn.io", "HistogramEqualization"),
])
def test_only_cxrlearns_own_layer_is_let_through(module, class_name):
    from cxrlearn._training import _check_keras_modules, model_to_bytes
    from cxrlearn.networks import build_pneumonia_cnn

    data = model_to_bytes(build_pneumonia_cnn((16, 16, 1), conv_filters=(4,), dense_units=(4,),
                                              equalize=True))
    _check_keras_modules(data)  # the genuine layer passes
    source = zipfile.ZipFile(io.BytesIO(data))
    config = json.loads(source.read("config.json"))
    entry = next(layer for layer in config["config"]["layers"]
                 if layer["class_name"] == "HistogramEqualization")
    entry.update(module=module, class_name=class_name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for item in source.infolist():
            content = (json.dumps(config).encode() if item.filename == "config.json"
                       else source.read(item))
            out.writestr(item, content)
    with pytest.raises(ValueError, match="outside Keras"):
        _check_keras_modules(buffer.getvalue())


def test_parameter_is_validated(xrays):
    X, y = xrays
    with pytest.raises(InvalidParameterError, match="equalize"):
        small_cnn(equalize="yes").fit(X[:20], y[:20])


def test_models_saved_before_equalize_existed_load_without_it(pair):
    from sklearn.base import clone

    X, _, outside = pair
    state = outside.__getstate__()
    del state["equalize"]  # as in files written before the option
    old = type(outside).__new__(type(outside))
    old.__setstate__(state)
    assert old.equalize is False and clone(old).get_params()["equalize"] is False
    np.testing.assert_array_equal(old.decision_function(_equalised(X[:10])),
                                  outside.decision_function(_equalised(X[:10])))
    # its hashes were made from the images it was given: it still finds them
    assert old.trained_on(_equalised(X[:5])).all()

"""The network builder on its own, and as a scikeras model."""

import numpy as np
import pytest

from cxrlearn.networks import (
    AUGMENTATION_PRESETS,
    build_pneumonia_cnn,
    minimum_input_size,
)


def test_minimum_input_size_is_tight():
    size = minimum_input_size()
    build_pneumonia_cnn((size, size, 1))
    with pytest.raises(ValueError, match=f"minimum size is {size}x{size}"):
        build_pneumonia_cnn((size - 1, size, 1))


def test_activation_and_dropout_are_used():
    model = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), dense_units=(8, 4),
                                activation="swish", dropout=0.0)
    assert model.get_layer("conv1").get_config()["activation"] in ("swish", "silu")
    assert not any(layer.name.startswith("dropout") for layer in model.layers)


def test_batch_norm_blocks():
    model = build_pneumonia_cnn((32, 32, 3), conv_filters=(4, 8), batch_norm=True)
    assert [layer.name for layer in model.layers if layer.name.startswith("bn")] == [
        "bn1", "bn2"
    ]


def test_seeded_builds_are_identical():
    a = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), seed=3).get_weights()
    b = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), seed=3).get_weights()
    c = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), seed=4).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("bad, match", [
    ("wobbly", "Unknown augmentation preset"),
    ({"shear": 0.1}, "Unknown augmentation keys"),
    ({"rotation": 2.0}, r"in \[0, 1\)"),
])
def test_bad_augmentation(bad, match):
    with pytest.raises(ValueError, match=match):
        build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), augmentation=bad)


def test_presets_never_flip():
    assert all(not p["horizontal_flip"] for p in AUGMENTATION_PRESETS.values())


def test_builder_as_scikeras_model():
    """scikeras users keep using the builder as ``model=``."""
    scikeras = pytest.importorskip("scikeras.wrappers")
    from cxrlearn.datasets import make_synthetic_xrays

    X, y = make_synthetic_xrays(40, image_size=32, random_state=0)
    y01 = (y == "PNEUMONIA").astype(int)
    clf = scikeras.KerasClassifier(
        model=build_pneumonia_cnn,
        model__input_shape=(32, 32, 1),
        model__n_classes=2,
        model__conv_filters=(8, 16),
        model__dense_units=(16,),
        model__seed=0,
        loss="binary_crossentropy",
        optimizer="adam",
        epochs=2,
        verbose=0,
        random_state=0,
    )
    clf.fit(X, y01)
    proba = clf.predict_proba(X[:5])
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(clf.predict(X)) <= {0, 1}


def test_inputs_are_centred_without_parameters():
    keras_model = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), seed=0)
    center = keras_model.get_layer("center")
    assert center.count_params() == 0
    out = center(np.array([[[[0.0]], [[1.0]]]], dtype="float32"))
    np.testing.assert_allclose(np.asarray(out).ravel(), [-1.0, 1.0])
    plain = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), center_inputs=False)
    assert "center" not in [layer.name for layer in plain.layers]
    assert plain.count_params() == keras_model.count_params()


def test_augmentation_runs_before_centring():
    model = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), augmentation="light")
    names = [layer.name for layer in model.layers]
    first_aug = min(i for i, layer in enumerate(model.layers)
                    if layer.__class__.__name__.startswith("Random"))
    assert first_aug < names.index("center")

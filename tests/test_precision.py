"""Mixed-precision (bfloat16) training: resolution, layers, persistence."""

import pickle

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.utils._param_validation import InvalidParameterError

from cxrlearn import networks
from cxrlearn.networks import build_pneumonia_cnn, resolve_precision

from conftest import small_cnn


@pytest.mark.parametrize(
    "flags, gpu, expected",
    [
        ({"avx2", "avx512f", "avx512_bf16"}, None, "bfloat16"),
        ({"avx2", "amx_bf16", "amx_tile"}, None, "bfloat16"),
        ({"avx2", "avx512f"}, None, "float32"),
        (set(), None, "float32"),
        ({"avx512_bf16"}, False, "float32"),  # an older GPU does the work: float32
        (set(), True, "bfloat16"),
    ],
)
def test_auto_uses_bfloat16_only_where_native(monkeypatch, flags, gpu, expected):
    monkeypatch.setattr(networks, "_cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(networks, "_gpu_bfloat16", lambda: gpu)
    assert resolve_precision("auto") == expected
    assert resolve_precision("float32") == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"


@pytest.mark.parametrize(
    "flags, gpu, asked, expected",
    [
        ({"avx2", "avx512_bf16"}, None, "auto", "precision: bfloat16, which this machine"),
        ({"avx2", "avx512f"}, None, "auto", "precision: float32, as this machine computes no"),
        (set(), False, "auto", "precision: float32, as this machine computes no"),
        ({"amx_bf16"}, None, "bfloat16", "precision: bfloat16, which this machine"),
        ({"avx2", "avx512f"}, None, "bfloat16", "warning: --precision bfloat16 is emulated"),
        ({"avx2"}, None, "float32", None),  # asked for by name: nothing to explain
        ({"avx512_bf16"}, None, "float32", None),
    ],
)
def test_the_cli_says_what_precision_trains(monkeypatch, flags, gpu, asked, expected):
    from cxrlearn.cli._common import precision_status

    monkeypatch.setattr(networks, "_cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(networks, "_gpu_bfloat16", lambda: gpu)
    line = precision_status(asked)
    if expected is None:
        assert line is None
    else:
        assert line.startswith(expected), line
        assert "\n" not in line


def test_cpu_flags_are_read_from_the_kernel():
    flags = networks._cpu_flags()
    assert isinstance(flags, frozenset)
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        assert flags == frozenset()
    else:
        assert ("avx512_bf16" in flags) == (" avx512_bf16" in text)


def test_builder_computes_body_in_bfloat16_and_head_in_float32():
    model = build_pneumonia_cnn((32, 32, 1), conv_filters=(4, 8), dense_units=(8,),
                                dtype="mixed_bfloat16", seed=0)
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers[1:]}
    assert policies["conv1"] == policies["dense1"] == "mixed_bfloat16"
    assert policies["logits"] == policies["probabilities"] == "float32"
    assert all(w.dtype == "float32" for w in model.weights)  # variables stay float32
    assert model.output.dtype == "float32"
    plain = build_pneumonia_cnn((32, 32, 1), conv_filters=(4, 8), dense_units=(8,), seed=0)
    assert {layer.dtype_policy.name for layer in plain.layers[1:]} == {"float32"}
    assert model.count_params() == plain.count_params()


@pytest.fixture(scope="module")
def bf16_and_f32(xrays):
    X, y = xrays
    return {p: small_cnn(epochs=4, precision=p).fit(X, y) for p in ("bfloat16", "float32")}


def test_bfloat16_fit_learns_like_float32(bf16_and_f32, xrays):
    X, y = xrays
    bf16, f32 = bf16_and_f32["bfloat16"], bf16_and_f32["float32"]
    assert bf16.precision_ == "bfloat16" and f32.precision_ == "float32"
    assert bf16.model_.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"
    proba = bf16.predict_proba(X)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    auc_bf16 = roc_auc_score(y == "PNEUMONIA", proba[:, 1])
    auc_f32 = roc_auc_score(y == "PNEUMONIA", f32.predict_proba(X)[:, 1])
    # 4 epochs of a tiny network: both well above chance, and close together
    assert auc_f32 > 0.7 and abs(auc_bf16 - auc_f32) < 0.03
    # the arithmetic differs: not the float32 network under another name
    assert not np.allclose(proba, f32.predict_proba(X), atol=1e-6)


def test_bfloat16_network_survives_pickle_and_safe_files(bf16_and_f32, xrays, tmp_path):
    from cxrlearn.io import load_model, save_model

    X, _ = xrays
    bf16 = bf16_and_f32["bfloat16"]
    expected = bf16.predict_proba(X)
    for restored in (pickle.loads(pickle.dumps(bf16)),
                     load_model(save_model(bf16, tmp_path / "m.skops"))):
        assert restored.precision_ == "bfloat16"
        assert restored.model_.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"
        np.testing.assert_allclose(restored.predict_proba(X), expected, atol=1e-6)


def test_warm_start_keeps_the_first_fits_precision(xrays):
    X, y = xrays
    clf = small_cnn(epochs=1, precision="bfloat16", warm_start=True).fit(X, y)
    clf.set_params(precision="float32").fit(X, y)  # continues the same network
    assert clf.precision_ == "bfloat16"
    assert len(clf.history_["loss"]) == 2


def test_models_saved_before_precision_existed_load_as_float32(bf16_and_f32):
    f32 = bf16_and_f32["float32"]
    state = f32.__getstate__()
    del state["precision"], state["precision_"]  # as in files of cxrlearn <= 0.x
    old = type(f32).__new__(type(f32))
    old.__setstate__(state)
    assert old.precision == "float32" and old.precision_ == "float32"
    assert "precision='float32'" in repr(old)


def test_unknown_precision_is_refused_at_fit(xrays):
    X, y = xrays
    with pytest.raises(InvalidParameterError, match="precision"):
        small_cnn(precision="float16").fit(X, y)

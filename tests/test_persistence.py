"""Model files that run no code: cxrlearn.io.save_model / load_model."""

import io
import json
import os
import subprocess
import sys
import zipfile

import joblib
import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from cxrlearn import ImageLoader, OperatingPointClassifier
from cxrlearn.datasets import load_image_directory, write_synthetic_xray_directory
from cxrlearn.io import (
    ModelFileError,
    UntrustedModelError,
    is_trusted_type,
    load_model,
    save_model,
)

from _evil import MARKER_ENV, MarkerOnLoad, PickleBomb
from conftest import REPO_ROOT, small_cnn


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("xrays")
    write_synthetic_xray_directory(root, 40, 32, class_sep=3.0, random_state=0)
    paths, labels = load_image_directory(root)
    return root, np.asarray(paths, dtype=object), np.asarray(labels)


def _pipeline(cache=None, **cnn):
    return Pipeline([
        ("loader", ImageLoader(32, color_mode="grayscale", memory=cache)),
        ("cnn", small_cnn(epochs=1, **cnn)),
    ])


@pytest.fixture(scope="module")
def models(images, tmp_path_factory):
    """Three fitted models: binary pipeline, operating point, three classes."""
    root, paths, labels = images
    cache = tmp_path_factory.mktemp("train-cache")
    binary = _pipeline(cache=str(cache)).fit(paths, labels)
    point = OperatingPointClassifier(
        _pipeline(), target_sensitivity=0.9, pos_label="NORMAL", cv=2
    ).fit(paths, labels)
    three = np.array(["NORMAL", "BACTERIA", "VIRUS"])[np.arange(len(paths)) % 3]
    multi = _pipeline().fit(paths, three)
    return {"binary": binary, "operating_point": point, "three_classes": multi}


@pytest.fixture(scope="module")
def saved(models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    files = {}
    for name, model in models.items():
        files[name] = save_model(model, folder / f"{name}.skops")
    return files


def test_round_trip_in_a_fresh_process(models, saved, images, tmp_path):
    _, paths, _ = images
    np.save(tmp_path / "paths.npy", paths.astype(str))
    script = (
        "import json, sys, numpy as np\n"
        "from cxrlearn.io import load_model\n"
        "paths = np.load(sys.argv[1]).astype(object)\n"
        "out = {}\n"
        "for name, file in json.loads(sys.argv[2]).items():\n"
        "    m = load_model(file)\n"
        "    out[name] = [m.predict_proba(paths).tolist(), m.predict(paths).tolist()]\n"
        "print(json.dumps(out))\n"
    )
    files = {name: str(path) for name, path in saved.items()}
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "paths.npy"), json.dumps(files)],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    for name, model in models.items():
        proba, pred = loaded[name]
        np.testing.assert_allclose(proba, model.predict_proba(paths), rtol=0, atol=1e-6)
        assert pred == model.predict(paths).tolist()
    assert json.loads(run.stdout.strip().splitlines()[-1])["three_classes"][0][0].__len__() == 3


def test_loaded_model_keeps_classes_and_threshold(models, saved):
    point = load_model(saved["operating_point"])
    assert point.pos_label_ == "NORMAL"
    assert point.threshold_ == models["operating_point"].threshold_
    assert list(load_model(saved["three_classes"]).classes_) == ["BACTERIA", "NORMAL", "VIRUS"]


def test_decode_cache_does_not_travel(models, saved, images, tmp_path, monkeypatch):
    _, paths, _ = images
    assert models["binary"].named_steps["loader"].memory is not None  # caller's untouched
    loaded = load_model(saved["binary"])
    assert loaded.named_steps["loader"].memory is None
    monkeypatch.chdir(tmp_path)
    loaded.predict_proba(paths[:4])
    assert list(tmp_path.iterdir()) == []


def test_joblib_pipeline_writes_no_cache_where_it_is_used(images, tmp_path):
    """A pipeline trained with memory='.cache', pickled, used in another folder."""
    root, paths, labels = images
    train_dir, use_dir = tmp_path / "train", tmp_path / "app"
    train_dir.mkdir(), use_dir.mkdir()
    old = os.getcwd()
    os.chdir(train_dir)
    try:
        pipe = _pipeline(cache=".cache").fit(paths, labels)
        assert (train_dir / ".cache").is_dir()  # the cache works where it was asked for
        expected = pipe.predict_proba(paths[:3])
        joblib.dump(pipe, tmp_path / "pipe.joblib")
    finally:
        os.chdir(old)
    code = ("import json, sys, joblib, numpy as np; m = joblib.load(sys.argv[1]);"
            "print(type(m).__name__, json.dumps("
            "m.predict_proba(np.array(sys.argv[2:], dtype=object)).tolist()))")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pipe.joblib"),
                          *paths[:3]], cwd=use_dir, capture_output=True, text=True,
                         check=True)
    name, proba = run.stdout.strip().splitlines()[-1].split(" ", 1)
    assert name == "Pipeline"
    # the other process scores as this one does
    np.testing.assert_allclose(json.loads(proba), expected, rtol=0, atol=1e-6)
    assert list(use_dir.iterdir()) == []


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "marker.txt"
    monkeypatch.setenv(MARKER_ENV, str(path))
    monkeypatch.syspath_prepend(str(REPO_ROOT / "tests"))
    return path


def test_untrusted_type_is_refused_and_runs_nothing(marker, tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    crafted = tmp_path / "crafted.skops"
    crafted.write_bytes(sio.dumps(Pipeline([("evil", FunctionTransformer(MarkerOnLoad()))])))
    with pytest.raises(UntrustedModelError) as exc:
        load_model(crafted)
    assert "_evil.MarkerOnLoad" in exc.value.types
    assert str(crafted) in str(exc.value) and "_evil.MarkerOnLoad" in str(exc.value)
    assert not marker.exists()
    # trusting it on purpose is possible, and then it does run: the guard was real
    load_model(crafted, trusted=["_evil.MarkerOnLoad"])
    assert marker.exists()


def test_function_references_are_refused(tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    crafted = tmp_path / "system.skops"
    crafted.write_bytes(sio.dumps(FunctionTransformer(os.system)))
    with pytest.raises(UntrustedModelError, match="system"):
        load_model(crafted)


def test_pickle_is_never_opened(marker, tmp_path):
    crafted = tmp_path / "model.joblib"
    joblib.dump(PickleBomb(), crafted)
    with pytest.raises(ModelFileError, match="pickle") as exc:
        load_model(crafted)
    assert str(crafted) in str(exc.value)
    assert not marker.exists()


@pytest.mark.parametrize("name, trusted", [
    ("cxrlearn._classifier.PneumoniaCNN", True),
    ("cxrlearn._thresholds.OperatingPointClassifier", True),
    ("sklearn.pipeline.Pipeline", True),
    ("sklearn.model_selection._classification_threshold.TunedThresholdClassifierCV", True),
    ("builtins.eval", False),
    ("os.system", False),
    ("posix.system", False),
    ("sklearn.utils.fixes.os.system", False),   # not a name sklearn defines
    ("cxrlearn._decoders.os.system", False),    # a module imported by cxrlearn
    ("cxrlearn.nonexistent.Thing", False),
    ("sklearnx.Thing", False),
])
def test_allow_list(name, trusted):
    assert is_trusted_type(name) is trusted


def test_truncated_file_names_file_and_cause(saved, tmp_path):
    data = saved["binary"].read_bytes()
    for size in (200, len(data) // 2, len(data) - 1):
        cut = tmp_path / f"cut{size}.skops"
        cut.write_bytes(data[:size])
        with pytest.raises(ModelFileError) as exc:
            load_model(cut)
        message = str(exc.value)
        assert str(cut) in message
        assert "truncated" in message or "corrupted" in message


def _member_data_offset(data, name):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    start = info.header_offset
    name_len, extra_len = np.frombuffer(data[start + 26:start + 30], dtype="<u2")
    return start + 30 + int(name_len) + int(extra_len), info.compress_size


def test_flipped_byte_in_the_network_is_detected(saved, tmp_path):
    data = saved["binary"].read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        biggest = max(archive.infolist(), key=lambda i: i.compress_size).filename
    offset, size = _member_data_offset(data, biggest)
    damaged = bytearray(data)
    damaged[offset + size // 2] ^= 0x10
    path = tmp_path / "damaged.skops"
    path.write_bytes(bytes(damaged))
    with pytest.raises(ModelFileError, match="corrupted") as exc:
        load_model(path)
    assert str(path) in str(exc.value)


def test_random_damage_fails_loudly_or_changes_nothing(saved, images, tmp_path):
    """Every byte flip or cut either raises ModelFileError or is harmless."""
    _, paths, _ = images
    data = saved["binary"].read_bytes()
    reference = load_model(saved["binary"]).predict_proba(paths[:8])
    rng = np.random.default_rng(11)
    outcomes = {"refused": 0, "harmless": 0}
    for trial in range(40):
        damaged = bytearray(data)
        if trial % 4 == 3:
            damaged = damaged[: int(rng.integers(1, len(data)))]
        else:
            damaged[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        path = tmp_path / f"m{trial}.skops"
        path.write_bytes(bytes(damaged))
        try:
            model = load_model(path)
        except ModelFileError as exc:
            assert str(path) in str(exc)
            outcomes["refused"] += 1
            continue
        np.testing.assert_array_equal(model.predict_proba(paths[:8]), reference)
        outcomes["harmless"] += 1
    assert outcomes["refused"] >= 20, outcomes


def test_keras_network_from_foreign_module_is_refused():
    from cxrlearn._training import _check_keras_modules, model_to_bytes
    from cxrlearn.networks import build_pneumonia_cnn

    data = model_to_bytes(build_pneumonia_cnn((8, 8, 1), 2, conv_filters=(), dense_units=(4,)))
    _check_keras_modules(data)  # Keras's own modules pass
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "config.json":
                content = content.replace(b'"module": "keras.layers"', b'"module": "os"', 1)
            out.writestr(item, content)
    with pytest.raises(ValueError, match="outside Keras"):
        _check_keras_modules(buffer.getvalue())


def test_keras_lambda_code_is_not_loaded():
    from cxrlearn._training import load_model_bytes, model_to_bytes
    from cxrlearn.utils import import_keras

    keras = import_keras()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    with pytest.raises(ValueError, match="(?i)lambda|safe_mode"):
        load_model_bytes(model_to_bytes(model))


def test_save_is_atomic_and_follows_umask(models, tmp_path):
    target = tmp_path / "model.skops"
    target.write_bytes(b"previous model")
    old = os.umask(0o027)
    try:
        save_model(models["binary"], target)
    finally:
        os.umask(old)
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    assert load_model(target).classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skops"]


def test_cache_follows_the_process_that_fits(tmp_path):
    """Unfitted loaders keep their cache when sent to workers; fitted ones lose it."""
    import pickle

    loader = ImageLoader(8, memory=str(tmp_path / "cache"))
    assert pickle.loads(pickle.dumps(loader))._memory() is not None  # joblib / Dask workers
    loader.fit(["a.png"])
    assert loader._memory() is not None  # fitted here
    shipped = pickle.loads(pickle.dumps(loader))
    assert shipped.memory == loader.memory and shipped._memory() is None
    lazy = shipped.set_params(lazy=True).transform(["a.png"])
    assert lazy.loader._memory() is None
    assert shipped.fit(["a.png"])._memory() is not None  # refitted here: cache again


def test_network_only_file_predicts_the_same_and_is_smaller(models, images, tmp_path):
    _, paths, _ = images
    full = save_model(models["binary"], tmp_path / "full.skops")
    bare = save_model(models["binary"], tmp_path / "bare.skops", include_optimizer=False)
    assert bare.stat().st_size < 0.7 * full.stat().st_size
    np.testing.assert_array_equal(load_model(bare).predict_proba(paths),
                                  models["binary"].predict_proba(paths))
    cnn = models["binary"].named_steps["cnn"]
    assert cnn.model_.optimizer is not None  # the caller's network keeps its optimizer
    assert load_model(full).named_steps["cnn"].model_.optimizer is not None
    assert getattr(load_model(bare).named_steps["cnn"].model_, "optimizer", None) is None

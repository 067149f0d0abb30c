"""The ready-trained model shipped in the package (cxrlearn.pretrained)."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import load_benchmark

from cxrlearn import pretrained
from cxrlearn.cli import main
from cxrlearn.io import ModelFileError
from cxrlearn.pretrained import _model


@pytest.fixture(scope="module")
def model():
    return pretrained.load()


def test_pinned_hash_matches_the_packaged_file():
    digest = hashlib.sha256(_model.MODEL_PATH.read_bytes()).hexdigest()
    assert digest == pretrained.MODEL_SHA256 == pretrained.model_card()["sha256"]


def test_network_only_file_is_small():
    size = _model.MODEL_PATH.stat().st_size
    assert size == pretrained.model_card()["size_bytes"]
    assert 1e6 < size < 6e6


def test_a_flipped_byte_is_refused(tmp_path, monkeypatch):
    data = bytearray(_model.MODEL_PATH.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged = tmp_path / "kermany224_default.skops"
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(_model, "MODEL_PATH", damaged)
    with pytest.raises(ModelFileError, match="SHA-256") as exc:
        pretrained.load()
    assert str(damaged) in str(exc.value)


def test_loaded_model_is_a_fitted_path_pipeline(model):
    assert list(model.classes_) == ["NORMAL", "PNEUMONIA"]
    assert list(model.named_steps) == ["loader", "cnn"]
    assert model.named_steps["loader"].memory is None
    assert getattr(model.named_steps["cnn"].model_, "optimizer", None) is None
    # the default recipe of cxrlearn train: one 176 px network that equalises the
    # films itself and a companion of three 28 px networks that shrink the same
    # films, with their own grey levels (docs/pretrained.rst)
    from cxrlearn.networks import companion_network, member_networks

    cnn = model.named_steps["cnn"]
    loader = model.named_steps["loader"]
    assert (loader.image_size, loader.intensity) == ((176, 176), "raw")
    assert cnn.equalize is True and cnn.companion_.equalize is False
    assert cnn.n_networks == len(member_networks(cnn.model_)) == 1
    small = companion_network(cnn.model_)
    assert small is not None and len(member_networks(small)) == 3
    assert cnn.companion_.resize == 28 and cnn.companion_.model_ is not None
    assert cnn.companion_weight == 0.5
    # the card says what the file holds (written by benchmarks/train_pretrained.py)
    card_recipe = pretrained.model_card()["recipe"]
    assert card_recipe == load_benchmark("train_pretrained").recipe_text(model)
    assert "a companion of 3 networks at 28 px, images as loaded" in card_recipe
    assert "at 176 px, images equalised inside the model" in card_recipe
    # digests of its 4,307 training images: 23 groups of pixel-identical files
    # (48 files, each group one patient's) count once
    fingerprints = cnn.training_fingerprints_
    assert fingerprints.dtype == np.uint64 and len(fingerprints) == 4307 - 48 + 23
    assert np.all(np.diff(fingerprints.astype(np.float64)) >= 0)  # sorted
    # ... and a perceptual hash of each, to find the same films at other sizes
    assert cnn.training_hashes_.shape == (len(fingerprints), 32)
    # it clones, companion and all: the recipe to train again on other films
    from sklearn.base import clone

    params = clone(model).named_steps["cnn"].get_params()
    assert params["companion__n_networks"] == 3 and params["weight_decay"] is None


def test_model_card_says_what_a_user_must_know():
    card = pretrained.model_card()
    assert card["training_data"]["images_per_class"] == {"NORMAL": 1074, "PNEUMONIA": 3233}
    assert "CC BY 4.0" in card["training_data"]["source"] and "Kermany" in card["attribution"]
    figures = card["cross_validation"]["figures"]
    for name in ("roc_auc", "sensitivity", "specificity", "accuracy"):
        assert figures[name]["low"] <= figures[name]["estimate"] <= figures[name]["high"]
    assert "patient" in card["cross_validation"]["scheme"].lower()
    limits = " ".join(card["limitations"]).lower()
    for word in ("adult", "lateral", "equipment", "covid"):
        assert word in limits
    assert "not a medical device" in card["intended_use"].lower()
    json.dumps(card)


def _val_files(data_dir, per_class=40):
    files, labels = [], []
    for label in ("NORMAL", "PNEUMONIA"):
        found = sorted((data_dir / "kermany224" / "val" / label).glob("*.jpeg"))[:per_class]
        files += [str(p) for p in found]
        labels += [label] * len(found)
    return np.asarray(files, dtype=object), np.asarray(labels)


def test_predicts_real_val_files_well_above_chance(model, data_dir):
    """A sanity bound, not a performance figure: these images were in its training set."""
    files, labels = _val_files(data_dir)
    proba = model.predict_proba(files)[:, 1]
    assert roc_auc_score(labels == "PNEUMONIA", proba) > 0.9


def model_trained_on(files, near=True):
    from cxrlearn.evaluation import trained_on

    return trained_on(pretrained.load(), np.asarray([str(f) for f in files], dtype=object),
                      near=near)


def test_full_resolution_originals_are_found_as_training_films(data_dir):
    """The 400 originals are Kermany-224 training films before their resize to 224 px."""
    originals = sorted((data_dir / "kermany-originals").glob("*/*.jpeg"))
    assert len(originals) == 400
    assert model_trained_on(originals).all()
    assert not model_trained_on(originals, near=False).any()  # no pixel is the same


def test_hashes_tell_the_training_patients_apart(model, data_dir):
    """No training film is within the near-duplicate distance of another patient's."""
    from cxrlearn.datasets import load_image_directory, patient_ids
    from cxrlearn.utils import NEAR_DUPLICATE_BITS, hash_distances, perceptual_hashes

    paths = []
    for split in ("train", "val"):
        paths += list(load_image_directory(data_dir / "kermany224" / split)[0])
    hashes = perceptual_hashes(model.named_steps["loader"].transform(paths))
    patients = np.asarray(patient_ids(paths))
    nearest_other = np.full(len(paths), 256)
    for start in range(0, len(paths), 512):
        d = hash_distances(hashes[start : start + 512], hashes).astype(int)
        d[patients[start : start + 512, None] == patients[None, :]] = 256
        nearest_other[start : start + 512] = d.min(axis=1)
    # 36 bits at the least when measured (docs/design.rst): over twice the threshold
    assert nearest_other.min() > 2 * NEAR_DUPLICATE_BITS


def test_cli_predict_evaluate_report_with_pretrained(data_dir, tmp_path, capsys):
    originals = sorted((data_dir / "kermany-originals" / "PNEUMONIA").glob("*.jpeg"))[:1] + \
        sorted((data_dir / "kermany-originals" / "NORMAL").glob("*.jpeg"))[:1]
    assert main(["predict", "--pretrained", *map(str, originals), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == [str(p) for p in originals]
    assert all(r["label"] in ("NORMAL", "PNEUMONIA") for r in rows)

    folder = tmp_path / "small"
    files, labels = _val_files(data_dir, per_class=10)
    for path, label in zip(files, labels):
        (folder / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / label)
    assert main(["evaluate", "--pretrained", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    # copies of val files, which the ready-trained model was trained on: found by pixels
    assert result["n_samples"] == 20 and result["n_trained_on"] == 20
    assert "WARNING: 20 of the 20 images" in captured.err
    assert main(["threshold", "--pretrained", str(folder), "--sensitivity", "0.9",
                 "--out", str(tmp_path / "t.skops")]) == 1
    assert "were used to train" in capsys.readouterr().err
    # the full-resolution originals of two training films: other pixels, the same films
    assert model_trained_on(originals).all()
    out = tmp_path / "report.html"
    assert main(["report", "--pretrained", str(folder), "--out", str(out),
                 "--n-resamples", "50"]) == 0
    assert out.stat().st_size > 10_000


def test_cli_needs_a_model_or_pretrained(capsys):
    assert main(["evaluate", "somewhere"]) == 1
    assert "--pretrained" in capsys.readouterr().err


def test_serve_app_from_pretrained():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from cxrlearn.serve import create_app

    client = TestClient(create_app(pretrained.load(), model_id="kermany224_default"))
    info = client.get("/model").json()
    assert info["classes"] == ["NORMAL", "PNEUMONIA"]
    assert client.get("/health").status_code == 200


def test_cli_serve_and_explain_with_pretrained(data_dir, tmp_path, monkeypatch, capsys):
    uvicorn = pytest.importorskip("uvicorn")
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    assert main(["serve", "--pretrained", "--port", "8123"]) == 0
    assert started["host"] == "127.0.0.1" and started["port"] == 8123
    assert "kermany224_default" in capsys.readouterr().err

    original = sorted((data_dir / "kermany-originals" / "NORMAL").glob("*.jpeg"))[0]
    out = tmp_path / "heatmaps"
    assert main(["explain", "--pretrained", str(original), "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 1

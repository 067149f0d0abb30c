"""benchmarks/pneumoniamnist.py: the 28 px variants and the paired comparison of runs."""

import numpy as np
import pytest
from conftest import load_benchmark

from cxrlearn import ImageLoader

Image = pytest.importorskip("PIL.Image")

bench = load_benchmark("pneumoniamnist")


def _thumbnails(n=3):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def test_prepare_normalises_as_the_image_loader_does(tmp_path):
    pixels = _thumbnails()
    X = (pixels / 255.0).astype(np.float32)[..., np.newaxis]  # as load_medmnist gives them
    np.testing.assert_array_equal(bench.prepare(X, "raw", 28), X)
    paths = []
    for i, image in enumerate(pixels):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    for intensity in ("equalize", "stretch"):
        loader = ImageLoader(image_size=(28, 28), color_mode="grayscale", intensity=intensity)
        expected = loader.fit_transform(paths)
        got = bench.prepare(X, intensity, 28)
        assert got.shape == expected.shape == (3, 28, 28, 1)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert not np.allclose(got, X, atol=0.01)  # it did change the grey levels


def test_prepare_upsamples():
    X = (_thumbnails() / 255.0).astype(np.float32)[..., np.newaxis]
    big = bench.prepare(X, "raw", 56)
    assert big.shape == (3, 56, 56, 1) and big.dtype == np.float32
    assert 0.0 <= big.min() and big.max() <= 1.0
    # the same picture: back down to 28 px it is close to the original
    small = bench.prepare(big, "raw", 28)
    assert np.corrcoef(small.ravel(), X.ravel())[0, 1] > 0.9


def test_compare_refuses_runs_of_other_images(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "RUNS", tmp_path)
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    patient = np.array([f"p{i // 2}" for i in range(60)])
    proba = np.clip(y * 0.6 + rng.random(60) * 0.5, 0, 1)
    decisions = {"0.5": (proba >= 0.5).astype(int), "cross-fitted": (proba >= 0.4).astype(int)}
    np.savez(tmp_path / "base.npz", label=y, patient=patient, proba=proba,
             pred_05=decisions["0.5"], pred_cross_fitted=decisions["cross-fitted"])
    bench.compare("base", y, proba, decisions, patient)  # against itself: no difference
    out = capsys.readouterr().out
    assert out.count("this - base") == 2 and "roc_auc +0.0000" in out
    other_patients = np.roll(patient, 2)  # the same labels, other patients' films
    with pytest.raises(SystemExit, match="other images or patients"):
        bench.compare("base", y, proba, decisions, other_patients)
    with pytest.raises(SystemExit, match="other images or patients"):
        bench.compare("base", y[::-1], proba, decisions, patient)


@pytest.mark.parametrize("augmentation", list(bench.AUGMENTATIONS))
def test_augmentation_and_width_options_reach_the_network(augmentation):
    import argparse

    from cxrlearn.networks import AUGMENTATION_PRESETS

    args = argparse.Namespace(width=2, augmentation=augmentation, epochs=1, networks=1,
                              random_state=0, label_smoothing=0.1, dropout=0.5)
    clf = bench.make_classifier(args)
    assert clf.conv_filters == (64, 128, 256)
    assert clf.label_smoothing == 0.1 and clf.dropout == 0.5
    assert clf.augmentation == bench.AUGMENTATIONS[augmentation]
    if isinstance(clf.augmentation, str):
        assert "contrast" in AUGMENTATION_PRESETS[clf.augmentation]

def test_the_default_trains_without_augmentation(monkeypatch):
    seen = {}
    monkeypatch.setattr(bench, "on_val", lambda npz, args: seen.update(vars(args)))
    monkeypatch.setattr(bench.Path, "is_file", lambda self: True)
    bench.main(["--data", "somewhere"])
    assert seen["augmentation"] == "none" and seen["width"] == 1 and seen["image_size"] == 28
    assert seen["dropout"] == 0.3 and seen["label_smoothing"] == 0.0 and seen["networks"] == 1
    default = bench.make_classifier(bench.argparse.Namespace(**seen))
    assert default.augmentation is None and default.conv_filters == (32, 64, 128)
    # the augmentation of the figures measured before
    assert bench.AUGMENTATIONS["geometric"] == {"rotation": 0.03, "zoom": 0.08,
                                                "translation": 0.06}


def _medmnist_file(path, splits, rng):
    """A tiny MedMNIST-style file: bright 'pneumonia' thumbnails, dark normal ones."""
    arrays = {}
    for split, n in splits.items():
        y = np.arange(n) % 2
        images = rng.integers(0, 90, size=(n, 28, 28)) + 120 * y[:, None, None]
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = y[:, None].astype(np.uint8)
    np.savez(path, **arrays)
    return path


def test_final_fit_saves_a_model_that_scores_the_test_split(tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "pneumoniamnist").mkdir()
    _medmnist_file(tmp_path / "pneumoniamnist" / "pneumoniamnist_trainval.npz",
                   {"train": 24, "val": 8}, rng)
    test_npz = _medmnist_file(tmp_path / "full.npz", {"train": 2, "test": 20}, rng)
    model = tmp_path / "final.skops"
    bench.main(["--data", str(tmp_path), "--epochs", "2", "--final-fit", str(model),
                "--test", str(test_npz)])
    out = capsys.readouterr().out
    settings = bench.json.loads((tmp_path / "final.skops.json").read_text())
    assert "trained on 32 images (train + val)" in out
    assert settings["trained_on"].endswith("32 images (16 normal)")
    assert settings["image_size"] == 28 and settings["recipe"]["augmentation"] == "none"
    assert "test split of full.npz: 20 images (10 normal)" in out
    assert "0 of them trained on" in out and "roc_auc" in out
    first = out.split("roc_auc")[1]
    # the saved model scores the test split exactly as the one just trained
    bench.main(["--model", str(model), "--test", str(test_npz)])
    assert capsys.readouterr().out.split("roc_auc")[1] == first


def test_a_saved_model_is_refused_without_its_own_settings(tmp_path, capsys):
    rng = np.random.default_rng(1)
    (tmp_path / "pneumoniamnist").mkdir()
    trainval = _medmnist_file(tmp_path / "pneumoniamnist" / "pneumoniamnist_trainval.npz",
                              {"train": 16, "val": 4}, rng)
    model = tmp_path / "final.skops"
    bench.main(["--data", str(tmp_path), "--epochs", "1", "--final-fit", str(model)])
    capsys.readouterr()
    # scoring the model's own training images says so
    with np.load(trainval) as f:
        np.savez(tmp_path / "seen.npz", test_images=f["train_images"][:6],
                 test_labels=f["train_labels"][:6])
    bench.main(["--model", str(model), "--test", str(tmp_path / "seen.npz")])
    assert "WARNING: 6 of the 6 test images" in capsys.readouterr().out
    card = tmp_path / "final.skops.json"
    settings = bench.json.loads(card.read_text())
    card.write_text(bench.json.dumps({**settings, "model_sha256": "0" * 64}))
    with pytest.raises(SystemExit, match="SHA-256 differs"):
        bench.main(["--model", str(model), "--test", str(tmp_path / "seen.npz")])
    card.unlink()
    with pytest.raises(SystemExit, match="is missing"):
        bench.main(["--model", str(model), "--test", str(tmp_path / "seen.npz")])


@pytest.mark.parametrize("argv", [
    ["--grouped-cv", "5", "--final-fit", "m.skops"],
    ["--final-fit", "m.skops", "--model", "m.skops", "--test", __file__],
    ["--model", "m.skops"],
    ["--test", __file__],
    ["--final-fit", "m.skops", "--test", "no-such.npz"],
])
def test_final_model_options_that_do_not_go_together(argv, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2  # argparse's usage error, before any training


def test_shifted_accuracy_reweights_the_classes():
    y = np.r_[np.zeros(10, int), np.ones(30, int)]
    pred = np.r_[np.zeros(8, int), np.ones(2, int), np.ones(30, int)]  # spec 0.8, sens 1
    assert bench.shifted_accuracy(y, pred, 0.25) == pytest.approx(np.mean(pred == y))
    assert bench.shifted_accuracy(y, pred, 0.5) == pytest.approx(0.9)
    assert bench.shifted_accuracy(y, pred, 234 / 624) == pytest.approx(
        234 / 624 * 0.8 + 390 / 624)


@pytest.mark.slow
def test_final_fit_on_the_real_file_names_its_own_films(data_dir, tmp_path, capsys):
    """Real PneumoniaMNIST: the final model flags val (its training films) as trained on."""
    trainval = data_dir / "pneumoniamnist" / "pneumoniamnist_trainval.npz"
    if not trainval.is_file():
        pytest.skip(f"{trainval} not found")
    model = tmp_path / "pm.skops"
    bench.main(["--data", str(data_dir), "--epochs", "3", "--final-fit", str(model)])
    assert "trained on 5232 images (train + val)" in capsys.readouterr().out
    with np.load(trainval) as f:
        np.savez(tmp_path / "val_as_test.npz", test_images=f["val_images"],
                 test_labels=f["val_labels"])
    bench.main(["--model", str(model), "--test", str(tmp_path / "val_as_test.npz")])
    out = capsys.readouterr().out
    assert "WARNING: 524 of the 524 test images" in out
    assert "524 images (135 normal)" in out

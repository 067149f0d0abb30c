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
                              random_state=0)
    clf = bench.make_classifier(args)
    assert clf.conv_filters == (64, 128, 256)
    assert clf.augmentation == bench.AUGMENTATIONS[augmentation]
    if isinstance(clf.augmentation, str):
        assert "contrast" in AUGMENTATION_PRESETS[clf.augmentation]

def test_the_default_trains_without_augmentation(monkeypatch):
    seen = {}
    monkeypatch.setattr(bench, "on_val", lambda npz, args: seen.update(vars(args)))
    monkeypatch.setattr(bench.Path, "is_file", lambda self: True)
    bench.main(["--data", "somewhere"])
    assert seen["augmentation"] == "none" and seen["width"] == 1 and seen["image_size"] == 28
    default = bench.make_classifier(bench.argparse.Namespace(**seen))
    assert default.augmentation is None and default.conv_filters == (32, 64, 128)
    # the augmentation of the figures measured before
    assert bench.AUGMENTATIONS["geometric"] == {"rotation": 0.03, "zoom": 0.08,
                                                "translation": 0.06}

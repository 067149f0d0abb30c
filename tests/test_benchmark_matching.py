"""benchmarks/pneumoniamnist_patients.py: finding a 28 px image's file among stretched copies.

The patient groups of the PneumoniaMNIST cross-validation (docs/recipe.rst)
rest on this matching, so it is tested on images made the two ways the data
were: MedMNIST's centre crop to the short side then 28x28, and Kermany-224's
stretch to 224x224.
"""

import numpy as np
import pytest
from conftest import load_benchmark

Image = pytest.importorskip("PIL.Image")

patients_script = load_benchmark("pneumoniamnist_patients")


def _films(n, rng):
    """Smooth random 'films' of different aspect ratios (wider than tall)."""
    films = []
    for _ in range(n):
        h = int(rng.integers(180, 260))
        w = int(h * rng.uniform(1.05, 1.6))
        coarse = rng.random((6, 8)) * 255
        img = Image.fromarray(coarse.astype("uint8")).resize((w, h), Image.BICUBIC)
        films.append(img)
    return films


def _as_medmnist(img):
    w, h = img.size
    s = min(w, h)
    left = (w - s) // 2
    return np.asarray(img.crop((left, 0, left + s, s)).resize((28, 28), Image.BICUBIC))


def test_each_stretched_copy_finds_its_cropped_thumbnail(tmp_path):
    rng = np.random.default_rng(0)
    films = _films(12, rng)
    mnist = np.stack([_as_medmnist(f) for f in films])
    order = rng.permutation(len(films))  # the 224 px files in another order
    paths = []
    for k, i in enumerate(order):
        path = tmp_path / f"person{k}_bacteria_{k}.jpeg"
        films[i].resize((224, 224), Image.BICUBIC).save(path, quality=95)
        paths.append(str(path))
    best, corr = patients_script.match(paths, mnist)
    np.testing.assert_array_equal(best, order)
    assert corr.min() > 0.95


def test_a_thumbnail_claimed_by_two_patients_gets_none():
    best = np.array([0, 0, 1, 2])
    corr = np.array([0.99, 0.98, 0.97, 0.5])
    patients = np.array(["person1", "person2", "person3", "person4"])
    out, conflicts = patients_script.patients_of_mnist(4, best, corr, patients, 0.9)
    assert conflicts == 1
    assert out.tolist() == ["", "person3", "", ""]  # index 2: below min_corr

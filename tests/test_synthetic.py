"""Tests of the synthetic chest-X-ray generator and directory writer."""

import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils._param_validation import InvalidParameterError

from cxrlearn.datasets import _synthetic as synthetic
from cxrlearn.datasets import make_synthetic_xrays, write_synthetic_xray_directory

NORMAL_NAME = re.compile(r"^IM-(\d{4})-(\d{4})\.(png|jpeg)$")
PNEUMONIA_NAME = re.compile(r"^(person\d+)_(bacteria|virus)_(\d+)\.(png|jpeg)$")


def _patient_id(path):
    name = Path(path).name
    m = NORMAL_NAME.match(name)
    if m:
        return f"IM-{m.group(1)}"
    m = PNEUMONIA_NAME.match(name)
    assert m, f"not a Kermany-like file name: {name}"
    return m.group(1)


def _lung_mean(X):
    """Mean intensity of two boxes that lie inside the lung fields."""
    g = X[..., 0]
    h, w = g.shape[1:]
    rows = slice(h // 4, 2 * h // 3)
    left = g[:, rows, w // 8:2 * w // 5].mean(axis=(1, 2))
    right = g[:, rows, 3 * w // 5:7 * w // 8].mean(axis=(1, 2))
    return (left + right) / 2


def _logreg_auc(class_sep, n=400, size=32, seed=0):
    X, y = make_synthetic_xrays(n, size, class_sep=class_sep, random_state=seed)
    X = X.reshape(n, -1)
    target = y == "PNEUMONIA"
    half = n // 2
    clf = LogisticRegression(C=0.1, max_iter=2000).fit(X[:half], target[:half])
    return roc_auc_score(target[half:], clf.decision_function(X[half:]))


# --------------------------------------------------------------------------
# make_synthetic_xrays
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "image_size, n_channels, expected",
    [(32, 1, (7, 32, 32, 1)), ((40, 24), 1, (7, 40, 24, 1)), (16, 3, (7, 16, 16, 3))],
)
def test_shapes_dtype_range(image_size, n_channels, expected):
    X, y = make_synthetic_xrays(7, image_size, n_channels=n_channels, random_state=0)
    assert X.shape == expected
    assert X.dtype == np.float32
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert X.std() > 0.05  # not a blank image
    assert y.shape == (7,)
    assert set(y) <= {"NORMAL", "PNEUMONIA"}
    assert all(isinstance(label, str) for label in y)


def test_uint8_is_the_rounded_float_image():
    X, y = make_synthetic_xrays(5, 24, random_state=3)
    X8, y8 = make_synthetic_xrays(5, 24, random_state=3, as_uint8=True)
    assert X8.dtype == np.uint8
    np.testing.assert_array_equal(X8, np.round(X * 255).astype(np.uint8))
    np.testing.assert_array_equal(y, y8)


def test_large_images_are_upsampled_smoothly():
    X, _ = make_synthetic_xrays(2, (200, 160), noise=0.0, random_state=0)
    assert X.shape == (2, 200, 160, 1)
    assert 0.0 <= X.min() and X.max() <= 1.0
    # noiseless and smooth: neighbouring pixels differ little
    assert np.abs(np.diff(X, axis=1)).mean() < 0.02


def test_looks_like_a_chest_radiograph():
    X, _ = make_synthetic_xrays(50, 64, noise=0.0, random_state=0)
    mean = X[..., 0].mean(axis=0)
    corners = mean[:6, :6].mean(), mean[:6, -6:].mean()
    lungs = _lung_mean(X).mean()
    mediastinum = mean[16:40, 29:35].mean()
    abdomen = mean[-8:, 16:48].mean()
    assert max(corners) < lungs < mediastinum  # dark air, darker lungs than spine
    assert lungs < abdomen


def test_deterministic_and_seed_dependent():
    X1, y1 = make_synthetic_xrays(20, 32, random_state=42)
    X2, y2 = make_synthetic_xrays(20, 32, random_state=42)
    X3, y3 = make_synthetic_xrays(20, 32, random_state=43)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(X1, X3)
    assert not np.array_equal(y1, y3)
    # a RandomState instance is accepted and advanced
    rs = np.random.RandomState(0)
    Xa, _ = make_synthetic_xrays(4, 16, random_state=rs)
    Xb, _ = make_synthetic_xrays(4, 16, random_state=rs)
    assert not np.allclose(Xa, Xb)


@pytest.mark.parametrize(
    "weights, n_samples, n_normal",
    [([0.1, 0.9], 50, 5), ([0.75, 0.25], 40, 30), ([0.3], 10, 3), (None, 30, 15)],
)
def test_weights_give_exact_class_counts(weights, n_samples, n_normal):
    _, y = make_synthetic_xrays(n_samples, 16, weights=weights, random_state=0)
    counts = Counter(y.tolist())
    assert counts["NORMAL"] == n_normal
    assert counts["PNEUMONIA"] == n_samples - n_normal


def test_labels_are_shuffled():
    _, y = make_synthetic_xrays(40, 16, random_state=0)
    assert not np.array_equal(y, np.sort(y))


def test_rgb_replicates_the_gray_image():
    gray, y1 = make_synthetic_xrays(6, 24, random_state=1)
    rgb, y3 = make_synthetic_xrays(6, 24, n_channels=3, random_state=1)
    np.testing.assert_array_equal(y1, y3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], gray[..., 0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 1}, "n_samples"),
        ({"n_samples": 10.0}, "n_samples"),
        ({"image_size": 8}, "image_size"),
        ({"image_size": (32, 15)}, "image_size"),
        ({"image_size": (32, 32, 3)}, "image_size"),
        ({"n_channels": 2}, "n_channels"),
        ({"n_channels": 3.0}, "n_channels"),
        ({"noise": float("inf")}, "noise"),
        ({"weights": 0.3}, "weights"),
        ({"as_uint8": "yes"}, "as_uint8"),
        ({"random_state": "0"}, "random_state"),
        ({"weights": [0.5, 0.6]}, "sum to 1"),
        ({"weights": [0.2, 0.3, 0.5]}, "2 classes"),
        ({"weights": [-0.5, 1.5]}, "non-negative"),
        ({"noise": -0.1}, "noise"),
        ({"class_sep": float("nan")}, "class_sep"),
    ],
)
def test_invalid_parameters_raise(kwargs, match):
    params = {"n_samples": 4, "image_size": 16, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_synthetic_xrays(**params)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_samples": 1}, {"image_size": 8}, {"n_channels": 2}, {"noise": -0.1},
     {"class_sep": float("nan")}, {"weights": "0.5"}],
)
def test_parameters_are_checked_by_validate_params(kwargs):
    """Types and ranges: scikit-learn's InvalidParameterError (a ValueError)."""
    params = {"n_samples": 4, "image_size": 16, **kwargs}
    name = next(iter(kwargs))
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        make_synthetic_xrays(**params)


def test_infiltrates_brighten_the_lungs():
    X, y = make_synthetic_xrays(200, 32, random_state=0)
    lung = _lung_mean(X)
    sick = y == "PNEUMONIA"
    diff = lung[sick].mean() - lung[~sick].mean()
    se = np.sqrt(lung[sick].var() / sick.sum() + lung[~sick].var() / (~sick).sum())
    assert diff > 0.02
    assert diff / se > 3  # a clear, not a chance, difference


def test_class_sep_zero_gives_identically_distributed_classes():
    X, y = make_synthetic_xrays(200, 32, class_sep=0.0, random_state=0)
    lung = _lung_mean(X)
    sick = y == "PNEUMONIA"
    assert abs(lung[sick].mean() - lung[~sick].mean()) < 0.02


@pytest.mark.parametrize("kwargs", [
    dict(image_size=32),
    dict(image_size=(150, 140)),  # rendered at 128 and upsampled
    dict(image_size=24, n_channels=3, as_uint8=True, class_sep=2.0),
])
def test_return_masks_leaves_images_and_labels_unchanged(kwargs):
    X, y = make_synthetic_xrays(20, random_state=4, **kwargs)
    X_m, y_m, masks = make_synthetic_xrays(20, random_state=4, return_masks=True, **kwargs)
    assert X_m.dtype == X.dtype and X_m.tobytes() == X.tobytes()
    np.testing.assert_array_equal(y_m, y)
    assert masks.dtype == bool and masks.shape == X.shape[:3]


@pytest.mark.parametrize("image_size", [32, (150, 140)])
def test_masks_mark_the_infiltrates(image_size):
    # Same seed, stronger infiltrates: the images differ only by the added
    # opacity, which must lie in the masks.
    kw = dict(n_samples=40, image_size=image_size, noise=0.0, random_state=2,
              return_masks=True)
    X1, y, masks = make_synthetic_xrays(class_sep=1.0, **kw)
    X2, _, masks2 = make_synthetic_xrays(class_sep=2.0, **kw)
    np.testing.assert_array_equal(masks, masks2)
    sick = y == "PNEUMONIA"
    assert not masks[~sick].any()
    assert masks[sick].any(axis=(1, 2)).all()
    area = masks[sick].mean()
    assert 0.03 < area < 0.15  # ~0.07: a small part of the image
    added = (X2 - X1)[sick, :, :, 0]
    assert np.abs(X2 - X1)[~sick].max() == 0
    # ~60% of the added opacity lies in the ~7% of the pixels the masks cover
    assert added[masks[sick]].sum() / added.sum() > 0.5
    assert added[masks[sick]].mean() > 10 * added[~masks[sick]].mean()


def test_learnable_but_not_trivial():
    auc = _logreg_auc(class_sep=1.0)
    assert 0.70 < auc < 0.95, auc
    assert _logreg_auc(class_sep=0.0) < 0.68
    assert _logreg_auc(class_sep=3.0) > auc


def _reference_upsample(grid, h, w):
    """The hand-written bilinear resize that scipy.ndimage.zoom replaced."""
    gh, gw = grid.shape[1:]
    ys, xs = np.linspace(0.0, gh - 1.0, h), np.linspace(0.0, gw - 1.0, w)
    y0 = np.minimum(ys.astype(int), gh - 2)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fy, fx = (ys - y0)[None, :, None], (xs - x0)[None, None, :]
    rows0, rows1 = grid[:, y0], grid[:, y0 + 1]
    top = rows0[:, :, x0] * (1 - fx) + rows0[:, :, x0 + 1] * fx
    bot = rows1[:, :, x0] * (1 - fx) + rows1[:, :, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def _reference_blur(img, sigma):
    """The hand-written separable Gaussian that scipy.ndimage replaced."""
    radius = int(np.ceil(2.5 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    h, w = img.shape[1:]
    padded = np.pad(img, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    img = sum(t * padded[:, k:k + h] for k, t in enumerate(taps))
    padded = np.pad(img, ((0, 0), (0, 0), (radius, radius)), mode="edge")
    return sum(t * padded[:, :, k:k + w] for k, t in enumerate(taps))


@pytest.mark.parametrize(
    "shape", [(10, 10, 16, 16), (14, 14, 64, 40), (128, 128, 300, 200)]
)
def test_upsample_is_corner_aligned_bilinear(shape):
    gh, gw, h, w = shape
    grid = np.random.default_rng(0).random((3, gh, gw)).astype(np.float32)
    out = synthetic._upsample(grid, h, w)
    assert out.shape == (3, h, w) and out.dtype == np.float32
    np.testing.assert_allclose(out, _reference_upsample(grid.astype(float), h, w),
                               atol=1e-6)
    np.testing.assert_array_equal(out[:, [0, -1]][:, :, [0, -1]],
                                  grid[:, [0, -1]][:, :, [0, -1]])


@pytest.mark.parametrize("size", [(16, 16), (64, 40), (128, 128)])
def test_blur_is_the_truncated_gaussian(size):
    img = np.random.default_rng(0).random((3, *size)).astype(np.float32)
    sigma = 0.6 * min(size) / 64
    out = synthetic._blur(img, sigma)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _reference_blur(img.astype(float), sigma),
                               atol=1e-6)


def test_fast_enough():
    make_synthetic_xrays(8, 64, random_state=0)  # warm-up
    start = time.perf_counter()
    make_synthetic_xrays(200, 64, random_state=0)
    # typically ~0.1 s; a generous bound for shared CI machines
    assert time.perf_counter() - start < 3.0


# --------------------------------------------------------------------------
# write_synthetic_xray_directory
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def png_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    paths, labels = write_synthetic_xray_directory(
        root, n_samples=40, image_size=48, weights=[0.25, 0.75], random_state=0
    )
    return root, paths, labels


def test_directory_layout_and_return_values(png_tree):
    root, paths, labels = png_tree
    assert isinstance(paths, list) and isinstance(labels, list)
    assert all(isinstance(p, str) for p in paths)
    assert len(paths) == len(labels) == 40
    assert Counter(labels) == {"NORMAL": 10, "PNEUMONIA": 30}
    assert sorted(d.name for d in root.iterdir()) == ["NORMAL", "PNEUMONIA"]
    on_disk = sorted(str(p) for p in root.glob("*/*.png"))
    assert on_disk == sorted(paths)
    for path, label in zip(paths, labels):
        assert Path(path).parent == root / label


def test_files_are_8bit_grayscale_images(png_tree):
    _, paths, _ = png_tree
    for path in paths[:10]:
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.mode == "L"
            assert im.size == (48, 48)
            assert np.asarray(im).std() > 10


def test_file_names_are_kermany_like_with_repeat_patients(png_tree):
    _, paths, labels = png_tree
    for path, label in zip(paths, labels):
        pattern = NORMAL_NAME if label == "NORMAL" else PNEUMONIA_NAME
        assert pattern.match(Path(path).name), path
    patients = Counter(_patient_id(p) for p in paths)
    assert max(patients.values()) == 2  # some patients have two images
    assert 1 in patients.values()
    # a patient belongs to one class only
    by_patient = {}
    for path, label in zip(paths, labels):
        by_patient.setdefault(_patient_id(path), set()).add(label)
    assert all(len(v) == 1 for v in by_patient.values())


def test_images_of_one_patient_are_alike(png_tree):
    _, paths, _ = png_tree
    pix = {p: np.asarray(Image.open(p), dtype=float) / 255 for p in paths}
    groups = {}
    for p in paths:
        groups.setdefault(_patient_id(p), []).append(p)
    pairs = [g for g in groups.values() if len(g) == 2]
    singles = [g[0] for g in groups.values()]
    same = np.mean([np.abs(pix[a] - pix[b]).mean() for a, b in pairs])
    other = np.mean(
        [np.abs(pix[a] - pix[b]).mean() for a, b in zip(singles[:-1], singles[1:])]
    )
    assert same < 0.6 * other  # repeat images are near-duplicates


def test_directory_is_reproducible_and_jpeg(tmp_path):
    a, la = write_synthetic_xray_directory(tmp_path / "a", 6, 32, random_state=5)
    b, lb = write_synthetic_xray_directory(tmp_path / "b", 6, 32, random_state=5)
    assert [Path(p).name for p in a] == [Path(p).name for p in b]
    assert la == lb
    assert Path(a[0]).read_bytes() == Path(b[0]).read_bytes()
    paths, _ = write_synthetic_xray_directory(
        tmp_path / "j", 4, 32, format="jpeg", random_state=5
    )
    for path in paths:
        assert path.endswith(".jpeg")
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.mode == "L"


def test_directory_invalid_parameters(tmp_path):
    with pytest.raises(InvalidParameterError, match="format"):
        write_synthetic_xray_directory(tmp_path, 4, format="bmp")
    with pytest.raises(InvalidParameterError, match="n_samples"):
        write_synthetic_xray_directory(tmp_path, 1)
    with pytest.raises(InvalidParameterError, match="root"):
        write_synthetic_xray_directory(None, 4)
    with pytest.raises(ValueError, match="sum to 1"):
        write_synthetic_xray_directory(tmp_path, 4, weights=[0.9, 0.9])
    assert not any(tmp_path.iterdir())  # nothing written on error

"""What a model remembers of its training images: pixel digests and perceptual
hashes, and how they find the same film again."""

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from cxrlearn.datasets import make_synthetic_xrays
from cxrlearn.io import load_model, save_model
from cxrlearn.utils import (
    HASH_BITS,
    NEAR_DUPLICATE_BITS,
    hash_distances,
    image_fingerprints,
    perceptual_hashes,
)

from conftest import small_cnn

SIZE = 176  # the default recipe's images, where the margin was measured


@pytest.fixture(scope="module")
def films():
    X, _ = make_synthetic_xrays(40, image_size=SIZE, random_state=3)
    return X[..., 0]


def _export(film, transform, quality=90):
    """A film as another system would store it, then decoded to SIZE px again."""
    image = transform(Image.fromarray(np.uint8(np.round(film * 255))))
    buffer = BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    back = Image.open(buffer).convert("L").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return np.asarray(back, dtype=np.float32) / 255


SAME_FILM = {
    "original at 3x, JPEG 90": lambda im: im.resize((3 * SIZE, 3 * SIZE),
                                                    Image.Resampling.LANCZOS),
    "half size": lambda im: im.resize((SIZE // 2, SIZE // 2), Image.Resampling.BILINEAR),
    "other grey levels": lambda im: im.point(lambda v: int(255 * (v / 255) ** 0.9)),
    "JPEG 50": lambda im: im,
}


@pytest.mark.parametrize("name", SAME_FILM)
def test_the_same_film_resized_or_reencoded_is_near(films, name):
    quality = 50 if name == "JPEG 50" else 90
    exported = np.stack([_export(f, SAME_FILM[name], quality) for f in films])
    d = hash_distances(perceptual_hashes(exported), perceptual_hashes(films))
    assert np.all(np.diag(d) <= NEAR_DUPLICATE_BITS), np.diag(d).max()
    # ... and no nearer to any other film than the threshold
    np.fill_diagonal(d, HASH_BITS)
    assert d.min() > NEAR_DUPLICATE_BITS
    # the pixels did change: a digest would not have found them
    assert not np.isin(image_fingerprints(exported), image_fingerprints(films)).any()


def test_equalising_loader_undoes_stronger_grey_level_changes(films, tmp_path):
    from cxrlearn import ImageLoader

    originals, exported = [], []
    for i, film in enumerate(films[:20]):
        image = Image.fromarray(np.uint8(np.round(film * 255)))
        originals.append(tmp_path / f"{i}.png")
        image.save(originals[-1])
        exported.append(tmp_path / f"{i}_export.jpeg")
        image.point(lambda v: int(255 * (v / 255) ** 0.7)).save(exported[-1], quality=85)
    loader = ImageLoader(image_size=SIZE, color_mode="grayscale", intensity="equalize")
    h = perceptual_hashes(loader.transform(originals))
    d = hash_distances(perceptual_hashes(loader.transform(exported)), h)
    same = np.diag(d).copy()
    assert same.max() <= NEAR_DUPLICATE_BITS
    np.fill_diagonal(d, HASH_BITS)
    assert d.min() > NEAR_DUPLICATE_BITS
    # without equalisation, gamma 0.7 moves these films further
    raw = ImageLoader(image_size=SIZE, color_mode="grayscale")
    d_raw = hash_distances(perceptual_hashes(raw.transform(exported)),
                           perceptual_hashes(raw.transform(originals)))
    assert np.diag(d_raw).max() > same.max()


def test_other_films_crops_and_flips_are_far(films):
    h = perceptual_hashes(films)
    d = hash_distances(h, h)
    np.fill_diagonal(d, HASH_BITS)
    assert d.min() > NEAR_DUPLICATE_BITS
    flipped = perceptual_hashes(films[:, :, ::-1])
    cropped = perceptual_hashes(np.stack([_export(f, lambda im: im.crop((12, 12, 164, 164)))
                                          for f in films]))
    assert np.diag(hash_distances(flipped, h)).min() > NEAR_DUPLICATE_BITS
    assert np.diag(hash_distances(cropped, h)).min() > NEAR_DUPLICATE_BITS


def test_hash_shape_channels_and_refusals(films):
    h = perceptual_hashes(films[:3])
    assert h.shape == (3, 32) and h.dtype == np.uint8
    assert not np.any(h[:, -1] & 1)  # the 256th bit is padding
    rgb = np.repeat(films[:3, ..., np.newaxis], 3, axis=-1)
    np.testing.assert_array_equal(perceptual_hashes(rgb), h)  # channels averaged
    np.testing.assert_array_equal(perceptual_hashes(films[:3, ..., np.newaxis]), h)
    with pytest.raises(ValueError, match="at least 8 pixels"):
        perceptual_hashes(np.zeros((2, 6, 30)))
    with pytest.raises(ValueError, match="at least 8 pixels"):
        perceptual_hashes(np.zeros((2, 30)))
    with pytest.raises(ValueError, match="perceptual hashes of shape"):
        hash_distances(h.astype(np.int64), h)
    assert hash_distances(h[:0], h).shape == (0, 3)
    d = hash_distances(h, h)
    assert np.all(np.diag(d) == 0) and np.all(d == d.T) and d.dtype == np.uint16


# -------------------------------------------------------------- the estimator
@pytest.fixture(scope="module")
def small_films():
    X, y = make_synthetic_xrays(30, image_size=32, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def fitted(small_films):
    X, y = small_films
    return small_cnn(epochs=1).fit(X[:20], y[:20])


def _resampled(X, size):
    """Each image up to ``size`` px and back (bicubic): other pixels, the same film."""
    out = []
    for x in X[..., 0]:
        up = Image.fromarray(x).resize((size, size), Image.Resampling.BICUBIC)
        out.append(np.asarray(up.resize(x.shape[::-1], Image.Resampling.BICUBIC)))
    return np.stack(out)[..., np.newaxis]


def test_fit_keeps_a_hash_per_distinct_training_image(fitted, small_films):
    X, _ = small_films
    assert fitted.training_hashes_.shape == (20, 32)
    np.testing.assert_array_equal(fitted.training_hashes_,
                                  np.unique(perceptual_hashes(X[:20]), axis=0))
    resampled = _resampled(X, 64)
    assert fitted.trained_on(resampled).tolist() == [True] * 20 + [False] * 10
    assert not fitted.trained_on(resampled, near=False).any()


def test_warm_start_adds_the_hashes_of_the_next_fit(small_films):
    X, y = small_films
    clf = small_cnn(epochs=1, warm_start=True).fit(X[:10], y[:10])
    assert clf.training_hashes_.shape == (10, 32)
    clf.fit(X[10:20], y[10:20])
    np.testing.assert_array_equal(clf.training_hashes_,
                                  np.unique(perceptual_hashes(X[:20]), axis=0))
    assert clf.trained_on(_resampled(X, 64)).tolist() == [True] * 20 + [False] * 10


def test_rows_that_are_not_images_keep_digests_only(small_films):
    X, y = small_films
    clf = small_cnn(conv_filters=(), epochs=1).fit(X[:20].reshape(20, -1), y[:20])
    assert clf.training_hashes_ is None and clf.training_fingerprints_.shape == (20,)
    assert clf.trained_on(X[15:25].reshape(10, -1)).tolist() == [True] * 5 + [False] * 5


def test_hashes_survive_the_safe_file_and_older_files_fall_back(fitted, small_films, tmp_path):
    X, _ = small_films
    again = load_model(save_model(fitted, tmp_path / "m.skops"))
    np.testing.assert_array_equal(again.training_hashes_, fitted.training_hashes_)
    resampled = _resampled(X, 64)
    assert again.trained_on(resampled).tolist() == fitted.trained_on(resampled).tolist()
    # a model saved before cxrlearn kept hashes: pixels only, no error
    state = fitted.__getstate__()
    state.pop("training_hashes_")
    old = type(fitted).__new__(type(fitted))
    old.__setstate__(state)
    assert old.training_hashes_ is None
    assert not old.trained_on(resampled).any()
    assert old.trained_on(X[18:22]).tolist() == [True, True, False, False]

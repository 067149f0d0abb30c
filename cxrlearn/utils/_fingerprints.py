"""Content fingerprints of images: which images a model was trained on.

A model scored on its own training images looks better than it is, and a
threshold chosen on them is wrong for every new patient -- without any
error. :class:`~cxrlearn.PneumoniaCNN` therefore keeps an 8-byte BLAKE2b
digest of every training image as the network saw it (after decoding,
resizing and normalising), and :meth:`~cxrlearn.PneumoniaCNN.trained_on`
compares new images with them. Digests cannot be turned back into images.

A digest finds pixel-identical copies only. The same film resized or
re-encoded -- the full-resolution original of a 224 px training copy -- has
other pixels, so the estimator also keeps a 255-bit perceptual hash of each
training image (:func:`perceptual_hashes`, the signs of its lowest spatial
frequencies), and :func:`hash_distances` finds the films within a few bits
of one. 32 bytes of signs hold no more of a film than a coarse outline.
"""

import hashlib

import numpy as np

__all__ = [
    "HASH_BITS",
    "NEAR_DUPLICATE_BITS",
    "hash_distances",
    "image_fingerprints",
    "perceptual_hashes",
]


def image_fingerprints(X):
    """An unsigned 64-bit BLAKE2b digest of each image's float32 pixels.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Images (or any rows). Rows equal as float32 arrays of the same
        shape get the same digest; a single changed pixel gives another.

    Returns
    -------
    fingerprints : ndarray of shape (n_samples,), dtype uint64

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.utils import image_fingerprints
    >>> X = np.zeros((3, 4, 4), dtype=np.float32)
    >>> X[2, 0, 0] = 0.5
    >>> f = image_fingerprints(X)
    >>> bool(f[0] == f[1]), bool(f[0] == f[2])
    (True, False)
    """
    X = np.asarray(X, dtype=np.float32)
    out = np.empty(len(X), dtype=np.uint64)
    shape = repr(X.shape[1:]).encode()
    for i, row in enumerate(X):
        digest = hashlib.blake2b(shape, digest_size=8, person=b"cxrlearn-image")
        digest.update(np.ascontiguousarray(row).data)
        out[i] = int.from_bytes(digest.digest(), "little")
    return out


# Perceptual hashes: the low spatial frequencies of an image, resampled to
# _HASH_GRID pixels a side, each coefficient one bit (above or below their median).
_HASH_GRID = 64
_HASH_FREQUENCIES = 16  # 16 x 16 coefficients, less the mean (DC): 255 bits
HASH_BITS = _HASH_FREQUENCIES**2 - 1
# How many of the 255 bits two hashes of one film may differ by. Measured on
# Kermany-224 through the ready-trained model's loader (docs/design.rst): a
# full-resolution original against its 224 px copy differs by at most 8 bits,
# a copy re-saved as JPEG at quality 50 by at most 12; two films of different
# patients by at least 36.
NEAR_DUPLICATE_BITS = 16
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def perceptual_hashes(X):
    """A 255-bit perceptual hash of each image, nearly the same for the same film resized.

    Unlike :func:`image_fingerprints`, which tells pixel-identical images
    apart from all others, the hash changes little when a film is resized or
    re-encoded (JPEG), so a full-resolution original and the 224 px copy a
    model was trained on are found to be one film (:func:`hash_distances`).
    Grey levels move it more: a gamma of 0.9 by a few bits, 0.7 by up to 20
    -- unless the images are equalised first (``ImageLoader(intensity=
    "equalize")``, the default recipe's), which undoes such changes.

    Each image is averaged over its channels, resampled to 64x64 pixels
    (box filter), and transformed by a 2-D discrete cosine transform; the
    16x16 lowest frequencies except the mean are each one bit: whether the
    coefficient is above their median (the DCT hash of Zauner, 2010).
    Crops, rotations and flips change the hash as much as another film
    does. Images without any detail (uniform) all share one hash. The hashed
    frequencies are coarse next to a 176 px image; images of a few dozen
    pixels are hashed less steadily (a 24 px image and a copy resampled at
    56 px can differ by 18 bits, a 16 px image and one resampled at 40 px
    by 34: too many to be found).

    Parameters
    ----------
    X : array-like of shape (n_samples, height, width[, channels])
        Images, e.g. from :class:`cxrlearn.ImageLoader`; at least 8 pixels
        a side.

    Returns
    -------
    hashes : ndarray of shape (n_samples, 32), dtype uint8
        The 255 bits of each image, packed (:func:`numpy.packbits`; the last
        bit is always 0).

    Raises
    ------
    ValueError
        If X is not a stack of images at least 8 pixels a side.

    See Also
    --------
    hash_distances : How many bits two sets of hashes differ by.

    Examples
    --------
    >>> import numpy as np
    >>> from PIL import Image
    >>> from cxrlearn.datasets import make_synthetic_xrays
    >>> from cxrlearn.utils import hash_distances, perceptual_hashes
    >>> X, _ = make_synthetic_xrays(2, image_size=128, random_state=0)
    >>> small = np.asarray(Image.fromarray(X[0, ..., 0]).resize((48, 48)))
    >>> h = perceptual_hashes(X)
    >>> h.shape, h.dtype
    ((2, 32), dtype('uint8'))
    >>> hash_distances(perceptual_hashes(small[np.newaxis]), h) <= 16
    array([[ True, False]])
    """
    from PIL import Image
    from scipy.fft import dctn

    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 4:
        X = X.mean(axis=-1)
    if X.ndim != 3 or min(X.shape[1:]) < 8:
        raise ValueError(
            "perceptual_hashes needs images of shape (n_samples, height, width[, "
            f"channels]) at least 8 pixels a side; got an array of shape {X.shape}"
        )
    grid = (_HASH_GRID, _HASH_GRID)
    small = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(x)).resize(
        grid, Image.Resampling.BOX)) for x in X]) if len(X) else np.zeros((0, *grid))
    k = _HASH_FREQUENCIES
    coefficients = dctn(small, norm="ortho", axes=(1, 2))[:, :k, :k].reshape(len(X), -1)[:, 1:]
    bits = coefficients > np.median(coefficients, axis=1, keepdims=True)
    return np.packbits(bits, axis=1)


def hash_distances(A, B):
    """How many bits each hash of `A` differs by from each hash of `B`.

    Parameters
    ----------
    A : ndarray of shape (n_a, 32), dtype uint8
    B : ndarray of shape (n_b, 32), dtype uint8
        Hashes from :func:`perceptual_hashes`.

    Returns
    -------
    distances : ndarray of shape (n_a, n_b), dtype uint16
        Hamming distances, from 0 (the same hash) to 255. Two hashes of one
        film differ by at most ``NEAR_DUPLICATE_BITS`` (16) bits after
        resizing or re-encoding.

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.utils import hash_distances
    >>> a = np.zeros((1, 32), dtype=np.uint8)
    >>> b = a.copy()
    >>> b[0, 0] = 0b10100000  # two bits differ
    >>> hash_distances(a, np.vstack([a, b]))
    array([[0, 2]], dtype=uint16)
    """
    A, B = _check_hashes(A), _check_hashes(B)
    out = np.empty((len(A), len(B)), dtype=np.uint16)
    for start in range(0, len(A), 64):  # 64 x n_b x 32 bytes at a time
        xor = np.bitwise_xor(A[start : start + 64, None, :], B[None, :, :])
        out[start : start + 64] = _POPCOUNT[xor].sum(axis=2, dtype=np.uint16)
    return out


def _check_hashes(H):
    H = np.asarray(H)
    if H.dtype != np.uint8 or H.ndim != 2 or H.shape[1] != 32:
        raise ValueError(f"expected perceptual hashes of shape (n, 32), dtype uint8; got "
                         f"shape {H.shape}, dtype {H.dtype}")
    return H


def _nearest_hash_distance(A, B):
    """The distance of each hash of `A` to the nearest of `B` (256 if `B` is empty)."""
    A, B = _check_hashes(A), _check_hashes(B)
    out = np.full(len(A), HASH_BITS + 1, dtype=np.uint16)
    if len(B):
        for start in range(0, len(A), 64):
            out[start : start + 64] = hash_distances(A[start : start + 64], B).min(axis=1)
    return out

"""Content fingerprints of images: which images a model was trained on.

A model scored on its own training images looks better than it is, and a
threshold chosen on them is wrong for every new patient -- without any
error. :class:`~cxrlearn.PneumoniaCNN` therefore keeps an 8-byte BLAKE2b
digest of every training image as the network saw it (after decoding,
resizing and normalising), and :meth:`~cxrlearn.PneumoniaCNN.trained_on`
compares new images with them. Digests cannot be turned back into images.
"""

import hashlib

import numpy as np

__all__ = ["image_fingerprints"]


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

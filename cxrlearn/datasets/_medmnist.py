"""MedMNIST ``.npz`` files: reading them and fetching PneumoniaMNIST once."""

import hashlib
import http.client
import os
import tempfile
import urllib.request
from numbers import Integral, Real

import numpy as np
from sklearn.datasets import get_data_home as _sklearn_get_data_home
from sklearn.utils._param_validation import Interval, Options, validate_params

__all__ = ["fetch_pneumoniamnist", "get_data_home", "load_medmnist"]

# From medmnist/info.py of the MedMNIST package, version 3.0.2 (Zenodo record
# 10519652, the files the ``medmnist`` package itself downloads).
_ZENODO = "https://zenodo.org/records/10519652/files/"
PNEUMONIAMNIST_MD5 = {
    28: "28209eda62fecd6e6a2d98b1501bb15f",
    64: "8f4eceb4ccffa70c672198ea285246c6",
    128: "05b46931834c231683c68f40c47b2971",
    224: "d6a3c71de1b945ea11211b03746c1fe1",
}
_CHUNK = 1 << 20


@validate_params(
    {"npz_path": [str, os.PathLike], "split": [str]},
    prefer_skip_nested_validation=True,
)
def load_medmnist(npz_path, split="train"):
    """Read one split of a MedMNIST ``.npz`` file as float images and labels.

    Parameters
    ----------
    npz_path : str or os.PathLike
        A MedMNIST file (keys ``train_images``, ``train_labels``,
        ``val_images``, ...), any of the 28 / 64 / 128 / 224 sizes.
    split : str, default="train"
        ``"train"``, ``"val"`` or ``"test"`` (any ``<split>_images`` /
        ``<split>_labels`` pair in the file).

    Returns
    -------
    X : ndarray of shape (n_samples, size, size, channels), float32
        Pixels divided by 255, in ``[0, 1]``; 1 channel for grayscale sets
        such as PneumoniaMNIST, 3 for colour ones.
    y : ndarray of shape (n_samples,) or (n_samples, n_labels), int64
        Labels, raveled when there is one per image (PneumoniaMNIST: 0 =
        normal, 1 = pneumonia); multi-label sets keep their 2-D label matrix.

    Raises
    ------
    ValueError
        If the split is not in the file (the available splits are listed) or
        the arrays do not look like 2-D MedMNIST images.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from cxrlearn.datasets import load_medmnist
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
    >>> np.savez(path, train_images=np.full((4, 28, 28), 255, np.uint8),
    ...          train_labels=np.array([[0], [1], [1], [0]], np.uint8))
    >>> X, y = load_medmnist(path, split="train")
    >>> X.shape, X.dtype, float(X.max()), y.tolist()
    ((4, 28, 28, 1), dtype('float32'), 1.0, [0, 1, 1, 0])
    """
    npz_path = os.fspath(npz_path)
    with np.load(npz_path, allow_pickle=False) as data:
        keys = set(data.files)
        splits = sorted(
            k[: -len("_images")]
            for k in keys
            if k.endswith("_images") and k[: -len("_images")] + "_labels" in keys
        )
        if split not in splits:
            raise ValueError(
                f"split {split!r} is not in '{npz_path}'; available splits: {splits}"
            )
        images = data[f"{split}_images"]
        labels = data[f"{split}_labels"]
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"'{npz_path}' {split}_images has shape {images.shape}; expected "
            "(n, size, size) or (n, size, size, 3) 2-D images"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"'{npz_path}' has {images.shape[0]} {split} images but "
            f"{labels.shape[0]} labels"
        )
    X = images.astype(np.float32)
    X /= np.float32(255.0)
    y = labels.astype(np.int64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    return X, y


@validate_params(
    {"data_home": [str, os.PathLike, None]}, prefer_skip_nested_validation=True
)
def get_data_home(data_home=None):
    """Folder where fetched data sets are cached, created if needed.

    :func:`sklearn.datasets.get_data_home` with cxrlearn's own default:
    ``~`` is expanded and the folder is created by scikit-learn.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        Explicit folder. Otherwise the ``CXRLEARN_DATA_HOME`` environment
        variable, otherwise ``~/.cxrlearn_data`` (not scikit-learn's
        ``SCIKIT_LEARN_DATA`` / ``~/scikit_learn_data``).

    Returns
    -------
    path : str
        The cache folder.

    Examples
    --------
    >>> import tempfile
    >>> from cxrlearn.datasets import get_data_home
    >>> folder = tempfile.mkdtemp()
    >>> get_data_home(folder) == folder
    True
    """
    if data_home is None:
        data_home = os.environ.get("CXRLEARN_DATA_HOME", os.path.join("~", ".cxrlearn_data"))
    return _sklearn_get_data_home(os.fspath(data_home))


def _pneumoniamnist_filename(size):
    return "pneumoniamnist.npz" if size == 28 else f"pneumoniamnist_{size}.npz"


def _md5(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url, target, md5, timeout):
    """Download ``url`` to ``target`` atomically, only if the MD5 matches."""
    folder = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    expected = response.headers.get("Content-Length")
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
            except (OSError, http.client.HTTPException) as exc:  # URLError, ...
                raise OSError(
                    f"could not download {url}: {exc}. Download it by hand to "
                    f"'{target}' or try again later"
                ) from exc
        if expected is not None and received != int(expected):
            raise OSError(
                f"incomplete download from {url}: got {received} of {expected} bytes"
            )
        if digest.hexdigest() != md5:
            raise OSError(
                f"the file downloaded from {url} has MD5 {digest.hexdigest()}, "
                f"expected {md5}; it is corrupt or not the expected file and was "
                "deleted"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@validate_params(
    {
        "size": [Options(Integral, set(PNEUMONIAMNIST_MD5))],
        "data_home": [str, os.PathLike, None],
        "url": [str, None],
        "md5": [str, None],
        "download_if_missing": ["boolean"],
        "timeout": [Interval(Real, 0, None, closed="neither")],
    },
    prefer_skip_nested_validation=True,
)
def fetch_pneumoniamnist(
    size=28, *, data_home=None, url=None, md5=None, download_if_missing=True, timeout=60
):
    """Download the PneumoniaMNIST ``.npz`` file once and return its local path.

    The official file (Zenodo record 10519652, the one the ``medmnist``
    package 3.x downloads) is downloaded to a temporary file in the cache
    folder and renamed into place only once its MD5 checksum matches, so the
    cache never holds a partial or corrupt file; a failed download is deleted
    and raises. A cached file is reused without any network access.

    Parameters
    ----------
    size : {28, 64, 128, 224}, default=28
        Image size: ``pneumoniamnist.npz`` for 28, else
        ``pneumoniamnist_{size}.npz``.
    data_home : str or os.PathLike, default=None
        Cache folder, see :func:`get_data_home`.
    url : str, default=None
        Download from this URL instead (a mirror of the same file).
    md5 : str, default=None
        Expected MD5 checksum; by default the official one for ``size``.
    download_if_missing : bool, default=True
        If False, raise instead of downloading when the file is not cached.
    timeout : float, default=60
        Network timeout in seconds.

    Returns
    -------
    path : str
        Local path of the verified file; read it with :func:`load_medmnist`.
        PneumoniaMNIST labels are 0 = normal, 1 = pneumonia; it has
        ``train`` (4708), ``val`` (524) and ``test`` (624) splits.

    Raises
    ------
    FileNotFoundError
        If the file is not cached and ``download_if_missing=False``.
    OSError
        If the download fails, is incomplete or has the wrong checksum.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from cxrlearn.datasets import fetch_pneumoniamnist, load_medmnist
    >>> home = tempfile.mkdtemp()  # pretend an earlier call downloaded it
    >>> np.savez(os.path.join(home, "pneumoniamnist.npz"),
    ...          val_images=np.zeros((2, 28, 28), np.uint8),
    ...          val_labels=np.array([[0], [1]], np.uint8))
    >>> path = fetch_pneumoniamnist(28, data_home=home, download_if_missing=False)
    >>> load_medmnist(path, split="val")[1].tolist()
    [0, 1]
    """
    filename = _pneumoniamnist_filename(size)
    target = os.path.join(get_data_home(data_home), filename)
    if os.path.exists(target):
        return target
    if not download_if_missing:
        raise FileNotFoundError(
            f"PneumoniaMNIST ({size}x{size}) is not cached at '{target}' and "
            "download_if_missing=False"
        )
    url = url or f"{_ZENODO}{filename}?download=1"
    md5 = (md5 or PNEUMONIAMNIST_MD5[size]).lower()
    _download(url, target, md5, timeout)
    return target

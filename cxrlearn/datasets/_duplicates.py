"""The same film twice in a data set: copies, resized or re-encoded."""

import numpy as np

__all__ = ["find_duplicate_films"]


def find_duplicate_films(paths, *, image_size=176, n_jobs=None):
    """Groups of image files that hold the same film.

    A film stored twice -- copied, resized or re-encoded -- under two
    patients' names, in both ``train`` and ``val``, or under two labels
    defeats a split by patient without any error: the validation scores the
    model on a film it was trained on, or the labels contradict each other.
    Each file is decoded as the default recipe sees it (``image_size`` px,
    grayscale, equalised) and hashed
    (:func:`cxrlearn.utils.perceptual_hashes`); files whose hashes are
    within :data:`cxrlearn.utils.NEAR_DUPLICATE_BITS` of one another,
    directly or through a chain of such files, form a group.

    Parameters
    ----------
    paths : array-like of shape (n_files,)
        Readable image files (find the unreadable ones first with
        :func:`scan_images`: one bad file stops the decoding).
    image_size : int, default=176
        The size the films are compared at. The threshold was measured at
        176 px (:doc:`/design`); much smaller sizes hash less steadily.
    n_jobs : int or None, default=None
        Parallel decoding, as :class:`cxrlearn.ImageLoader`'s.

    Returns
    -------
    groups : list of list of str
        The files of each group (two or more), in the order of `paths`;
        the groups in the order of their first file.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from cxrlearn.datasets import find_duplicate_films, write_synthetic_xray_directory
    >>> root = Path(tempfile.mkdtemp())
    >>> files, _ = write_synthetic_xray_directory(root, 6, image_size=128, random_state=0)
    >>> with Image.open(files[2]) as film:  # the same film, larger, as JPEG
    ...     film.resize((300, 300)).convert("RGB").save(root / "copy.jpeg", quality=80)
    >>> groups = find_duplicate_films([*files, str(root / "copy.jpeg")])
    >>> [[Path(f).name for f in group] for group in groups] == [
    ...     [Path(files[2]).name, "copy.jpeg"]]
    True
    """
    from .._loading import ImageLoader
    from ..utils import NEAR_DUPLICATE_BITS, hash_distances, perceptual_hashes

    paths = [str(p) for p in paths]
    loader = ImageLoader(image_size=image_size, color_mode="grayscale",
                         intensity="equalize", n_jobs=n_jobs)
    chunk = 256  # decoded images held at a time
    hashes = np.zeros((len(paths), 32), dtype=np.uint8)
    for start in range(0, len(paths), chunk):
        hashes[start : start + chunk] = perceptual_hashes(
            loader.transform(paths[start : start + chunk]))
    parent = np.arange(len(paths))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(paths), chunk):
        near = hash_distances(hashes[start : start + chunk], hashes) <= NEAR_DUPLICATE_BITS
        for i, j in zip(*np.nonzero(near)):
            a, b = root(start + i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups = {}
    for i in range(len(paths)):
        groups.setdefault(root(i), []).append(paths[i])
    return [group for _, group in sorted(groups.items()) if len(group) > 1]

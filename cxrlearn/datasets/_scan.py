"""Check a whole collection of image files and report every bad one at once."""

import os
from dataclasses import dataclass, field

from joblib import Parallel, delayed, effective_n_jobs

from .._decoders import ImageLoadError, decode_file
from .._loading import DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS, ImageLoader, _check_paths
from ._directory import IMAGE_EXTENSIONS, _image_files

__all__ = ["ScanReport", "scan_images"]


@dataclass
class ScanReport:
    """What :func:`scan_images` found.

    Attributes
    ----------
    n_files : int
        Number of files checked.
    bad : list of (str, str)
        ``(path, reason)`` for every file that cannot be decoded, in input
        order.
    """

    n_files: int
    bad: list = field(default_factory=list)

    @property
    def ok_count(self):
        """Number of files that decode."""
        return self.n_files - len(self.bad)

    @property
    def ok(self):
        """True when every file decodes."""
        return not self.bad

    @property
    def bad_paths(self):
        """The paths of the bad files."""
        return [path for path, _ in self.bad]

    def __str__(self):
        noun = "file" if self.n_files == 1 else "files"
        lines = [f"{self.n_files} {noun} checked: {self.ok_count} ok, {len(self.bad)} bad"]
        lines += [f"  {path}: {reason}" for path, reason in self.bad]
        return "\n".join(lines)


def _check_chunk(paths, spec, limits):
    problems = []
    for path in paths:
        try:
            decode_file(path, spec, *limits)
        except (ImageLoadError, ImportError) as exc:
            reason = exc.reason if isinstance(exc, ImageLoadError) else str(exc)
            problems.append((path, reason))
    return problems


def scan_images(
    paths,
    *,
    loader=None,
    max_pixels=DEFAULT_MAX_PIXELS,
    max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES,
    extensions=IMAGE_EXTENSIONS,
    n_jobs=None,
):
    """Try to decode every file and report all the bad ones, not just the first.

    Run it on a new data export before training: :class:`~cxrlearn.ImageLoader`
    stops at the first unreadable file, this lists them all with their cause
    (missing, empty, not an image, truncated, corrupt pixel data, damaged
    EXIF, too large, non-finite or unsupported DICOM). A file is reported
    unless its pixel data decodes completely.

    Parameters
    ----------
    paths : str, os.PathLike or sequence of paths
        The files to check, or a folder: every non-hidden file with one of
        ``extensions`` under it, recursively.
    loader : ImageLoader, default=None
        Check with this loader's decoding settings (colour mode, resize
        policy, ``max_pixels``, ``max_decoded_bytes``) and ``n_jobs``. By default files are decoded
        fully and resized to a 32x32 grayscale thumbnail, which exercises
        the same decoders cheaply.
    max_pixels : int or None, default=178_956_970
        Decompression-bomb limit when ``loader`` is None.
    max_decoded_bytes : int or None, default=268_435_456
        Limit on one file's decoded pixel data when ``loader`` is None (see
        :class:`~cxrlearn.ImageLoader`).
    extensions : sequence of str, default=IMAGE_EXTENSIONS
        File suffixes to pick up when ``paths`` is a folder.
    n_jobs : int, default=None
        Files checked in parallel (threads); the loader's ``n_jobs`` when a
        loader is given and this is None.

    Returns
    -------
    report : ScanReport
        ``report.bad`` lists ``(path, reason)`` pairs, ``report.ok_count`` the
        good files; ``print(report)`` gives a readable summary.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from cxrlearn.datasets import scan_images
    >>> folder = tempfile.mkdtemp()
    >>> Image.fromarray(np.zeros((8, 8), np.uint8)).save(os.path.join(folder, "ok.png"))
    >>> open(os.path.join(folder, "empty.png"), "wb").close()
    >>> with open(os.path.join(folder, "notes.png"), "w") as fh:
    ...     _ = fh.write("not an image")
    >>> report = scan_images(folder)
    >>> report.ok_count, len(report.bad)
    (1, 2)
    >>> print(report)  # doctest: +ELLIPSIS
    3 files checked: 1 ok, 2 bad
      .../empty.png: empty file (0 bytes)
      .../notes.png: not a recognised image file (unknown format or not an image)
    """
    if isinstance(paths, (str, os.PathLike)) and os.path.isdir(paths):
        ext = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
        files = _image_files(os.fspath(paths), ext)
        if not files:
            return ScanReport(n_files=0)
        paths = files
    paths = _check_paths(paths)
    if loader is None:
        loader = ImageLoader(
            image_size=32,
            color_mode="grayscale",
            max_pixels=max_pixels,
            max_decoded_bytes=max_decoded_bytes,
        )
    elif not isinstance(loader, ImageLoader):
        raise TypeError(f"loader must be an ImageLoader, got {type(loader).__name__}")
    loader._check_params()
    spec = loader._spec()
    if n_jobs is None:
        n_jobs = loader.n_jobs
    limits = (loader.max_pixels, loader.max_decoded_bytes)
    n_workers = min(effective_n_jobs(n_jobs), len(paths))
    if n_workers <= 1:
        bad = _check_chunk(paths, spec, limits)
    else:
        step = max(1, min(16, -(-len(paths) // (4 * n_workers))))
        results = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(_check_chunk)(paths[i : i + step], spec, limits)
            for i in range(0, len(paths), step)
        )
        bad = [item for chunk in results for item in chunk]
    return ScanReport(n_files=len(paths), bad=bad)

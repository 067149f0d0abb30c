"""`ImageLoader`: file paths in, float pixel arrays out, as a scikit-learn step.

Paths are the unit of data in cxrlearn pipelines: cheap to split, resample and
ship to workers. :class:`ImageLoader` turns them into pixels as late as
possible, in parallel (``n_jobs``), cached across folds and grid-search
candidates (``memory``), or on demand (``lazy=True`` returns
:class:`LazyImages`). Decoding itself lives in :mod:`cxrlearn._decoders`.
"""

import contextlib
import hashlib
import numbers
import os
import threading

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs, parallel_config
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import _check_feature_names_in, check_memory

from ._decoders import DECODER_VERSION, RESAMPLING, DecodeSpec, ImageLoadError, decode_file

__all__ = ["ImageLoadError", "ImageLoader", "LazyImages"]

#: Pillow's own hard limit (2 x PIL.Image.MAX_IMAGE_PIXELS at import time).
DEFAULT_MAX_PIXELS = 178_956_970

#: 256 MiB of decoded pixel data per file (a 16-bit grey image of 11585 x
#: 11585, an 8-bit colour one of 8192 x 8192 held by Pillow in 4 bytes a pixel).
DEFAULT_MAX_DECODED_BYTES = 256 * 2**20


def _check_paths(X):
    """Validate a path container; return a 1-D object array of ``str``.

    Accepts a list / tuple / 1-D array of ``str`` or :class:`os.PathLike`,
    an ``(n, 1)`` array (what imbalanced-learn samplers return) and a pandas
    Series or one-column DataFrame.
    """
    if isinstance(X, (str, bytes, os.PathLike)):
        raise TypeError(
            "ImageLoader expects a sequence of image paths, got a single path "
            f"{X!r}; wrap it in a list: [path]"
        )
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # pandas DataFrame
        if X.shape[1] != 1:
            raise ValueError(
                "ImageLoader expects a DataFrame with exactly one column of "
                f"paths, got {X.shape[1]} columns: {list(X.columns)}"
            )
        X = X.iloc[:, 0]
    if hasattr(X, "to_numpy"):  # pandas Series
        X = X.to_numpy(dtype=object)
    if isinstance(X, np.ndarray):
        arr = X
    elif isinstance(X, (list, tuple)):
        arr = np.empty(len(X), dtype=object)
        arr[:] = [os.fspath(p) if isinstance(p, os.PathLike) else p for p in X]
    else:
        raise TypeError(
            "ImageLoader expects image paths as a list, tuple, 1-D array, "
            f"(n, 1) array or pandas Series / one-column DataFrame; got {type(X)}"
        )
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            "ImageLoader expects a 1-D sequence of paths or an (n, 1) column, "
            f"got an array of shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError("ImageLoader got 0 paths; at least one is required")
    out = np.empty(arr.shape[0], dtype=object)
    for i, p in enumerate(arr):
        if isinstance(p, os.PathLike):
            p = os.fspath(p)
        if not isinstance(p, str):
            raise TypeError(
                f"ImageLoader expects paths (str or os.PathLike); element {i} "
                f"is {p!r} of type {type(p).__name__}"
            )
        out[i] = str(p)  # plain str (not np.str_): stable cache keys and pickles
    return out


def _cached_decode(path, size, mtime_ns, spec, version, max_pixels, max_decoded_bytes):
    """Cache target: the key is path + size + mtime + output spec + version.

    The limits are not part of the key (``ignore=`` in :meth:`ImageLoader._load`):
    they decide whether a file is decoded, not what it decodes to.
    """
    return decode_file(path, spec, max_pixels, max_decoded_bytes)


def _decode_one(path, spec, limits, cached, out=None):
    """Decode one file, through the cache when ``cached`` is given.

    ``limits`` is ``(max_pixels, max_decoded_bytes)``. Without the cache the
    image is written into ``out`` when given (see :func:`_decode_into`).
    """
    if cached is None:
        return decode_file(path, spec, *limits, out=out)
    try:
        st = os.stat(path)
    except OSError:  # let the decoder raise its ImageLoadError
        return decode_file(path, spec, *limits)
    args = (os.path.abspath(path), st.st_size, st.st_mtime_ns, spec, DECODER_VERSION, *limits)
    if cached.check_call_in_cache(*args):
        return cached(*args)
    with _decode_lock(cached.store_backend.location, repr(args[:5])):
        return cached(*args)  # a hit if another worker decoded it meanwhile


#: Per-process locks behind :func:`_decode_lock` (striped: a few files share one).
_THREAD_LOCKS = tuple(threading.Lock() for _ in range(64))


@contextlib.contextmanager
def _decode_lock(folder, key):
    """Hold the right to decode one file into the cache folder ``folder``.

    :class:`joblib.Memory` does not lock: workers that miss the same entry
    at the same time -- the first folds of a grid search -- would all decode
    the file. Under this lock the second one waits and reads the first one's
    result, so each file is decoded once per cache folder, by threads,
    processes or Dask workers sharing it. Threads take one of
    :data:`_THREAD_LOCKS`; processes an exclusive ``flock`` on a lock file in
    ``folder/cxrlearn-locks`` (file locks work on local disks and on NFS).
    Without ``fcntl`` (Windows) or a writable folder, only threads exclude
    each other.
    """
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()
    with _THREAD_LOCKS[int(digest[:8], 16) % len(_THREAD_LOCKS)]:
        try:
            import fcntl

            lock_dir = os.path.join(folder, "cxrlearn-locks")
            os.makedirs(lock_dir, exist_ok=True)
            handle = open(os.path.join(lock_dir, digest + ".lock"), "a")  # noqa: SIM115
        except (ImportError, OSError):
            yield
            return
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _local_backends():
    """joblib's own backends, which run their tasks on this machine."""
    from joblib._parallel_backends import (
        LokyBackend,
        MultiprocessingBackend,
        SequentialBackend,
        ThreadingBackend,
    )

    return LokyBackend, MultiprocessingBackend, SequentialBackend, ThreadingBackend


def _decode_here():
    """A joblib context that keeps the loader's decoding in this process.

    Inside ``joblib.parallel_backend("dask")`` (or Ray) -- which Dask's
    joblib backend also sets around every task it runs on a worker -- the
    loader's ``Parallel`` would otherwise send its files to the cluster
    (``n_jobs=None`` meaning all of the cluster's cores), have the pixels
    shipped back, and need every worker to see the files. Under such a
    backend the files are decoded by threads of the process that asked for
    them (``n_jobs=None`` meaning 1); joblib's own backends are left as they
    are.
    """
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    # the exact types: Ray's backend subclasses joblib's multiprocessing one
    if type(backend) in _local_backends():
        return contextlib.nullcontext()
    return parallel_config(backend="threading", n_jobs=1)


def _decode_into(out, path, spec, limits, cached):
    """Decode one file into ``out``, a row of a preallocated batch.

    Writing into the batch spares a fresh array per image, whose page
    faults cost about as much as resizing (mostly kernel time, worse with
    several threads).
    """
    image = _decode_one(path, spec, limits, cached, out=out)
    if image is not out:  # from the cache
        out[...] = image


class _SharedRows:
    """Rows of the output array, for a task to fill in place.

    A thread of the process that owns the array writes the images straight
    into it (no second array of the pixels, no copy). Pickled, for a worker
    process (loky, multiprocessing), it carries no pixels and arrives
    empty: the task then returns its images.
    """

    __slots__ = ("array",)

    def __init__(self, array=None):
        self.array = array

    def __reduce__(self):
        return type(self), ()


def _decode_chunk(paths, spec, limits, cached, rows=None):
    """Decode a few files (one parallel task).

    Into ``rows`` (:class:`_SharedRows`) when it holds the output rows,
    returning None; otherwise into one stacked array, returned.
    """
    block = None if rows is None else rows.array
    in_place = block is not None
    if not in_place:
        block = np.empty(spec.batch_shape(len(paths)), dtype=spec.dtype)
    for row, path in zip(block, paths):
        _decode_into(row, path, spec, limits, cached)
    return None if in_place else block


class ImageLoader(TransformerMixin, BaseEstimator):
    """Decode image files (PNG, JPEG, DICOM) into a float pixel array.

    A stateless transformer: ``X`` is a collection of file paths and
    :meth:`transform` returns an array of shape ``(n, height, width,
    channels)`` with values in ``[0, 1]``. Put it in front of a classifier in a
    :class:`~sklearn.pipeline.Pipeline` so that cross-validation, resampling
    and grid searches all work on cheap paths.

    Parameters
    ----------
    image_size : int or tuple of (int, int), default=(300, 300)
        Output ``(height, width)``; an int gives a square.
    color_mode : {"rgb", "grayscale"}, default="rgb"
        ``"rgb"`` gives 3 channels (grey images are repeated), ``"grayscale"``
        one channel (colour images go through ITU-R 601-2 luma).
    resize : {"stretch", "pad", "crop"}, default="stretch"
        ``"stretch"`` ignores the aspect ratio; ``"pad"`` keeps it and
        letterboxes with black (zero) bands; ``"crop"`` keeps it and takes the
        centre.
    interpolation : {"bilinear", "nearest", "bicubic", "lanczos", "hamming", \
"box", "area"}, default="bilinear"
        Pillow resampling filter (``"area"`` is an alias of ``"box"``).
        Downscaling is antialiased.
    dtype : {"float32", "float64", "float16"}, default="float32"
        Output dtype. 8-bit data is divided by 255 and 16-bit data by 65535.
    intensity : {"raw", "stretch", "equalize"}, default="raw"
        Per-image intensity normalisation, applied to the resized image.
        ``"raw"`` keeps the file's grey levels; ``"stretch"`` maps the 1st
        and 99th percentiles of each image to 0 and 1; ``"equalize"``
        equalises each image's histogram (256 levels), so that over- and
        under-exposed films, and films from other machines, reach the
        network with the same spread of grey levels. ``cxrlearn train`` uses
        ``"equalize"`` (see the recipe in the documentation).
    n_jobs : int, default=None
        Files decoded in parallel with :class:`joblib.Parallel`. Threads are
        preferred (Pillow releases the GIL while decoding and resizing); a
        process backend chosen with :func:`joblib.parallel_config` works too.
        ``None`` means 1 unless in a joblib context, ``-1`` all processors.
        In a worker of a grid search on joblib's loky backend or on Dask, at
        most the threads that worker is given (its ``nthreads``, or the
        ``OMP_NUM_THREADS``-style limit joblib sets): ``-1`` means that share.
    memory : str, os.PathLike or joblib.Memory, default=None
        Cache decoded, resized arrays on disk, keyed by the file (absolute
        path, size and modification time) and by the parameters that change
        the pixels, so the folds and candidates of a grid search decode each
        file once. ``None`` disables caching. The cache is a training-time
        convenience and does not travel with a fitted model: a loader fitted
        in another process (a pipeline unpickled by another application) does
        not use it, so it never writes decoded patient images where the model
        is used; :func:`cxrlearn.io.save_model` saves ``memory=None``.
    max_pixels : int or None, default=178_956_970
        Refuse images with more pixels than this (decompression bombs).
        ``None`` disables the check, but images that Pillow reads are still
        refused above twice ``PIL.Image.MAX_IMAGE_PIXELS``, Pillow's own hard
        limit. Pillow's ``DecompressionBombWarning`` is never emitted: this
        check and ``max_decoded_bytes`` take its place.
    max_decoded_bytes : int or None, default=268_435_456
        Refuse files whose decoded pixel data would take more than this many
        bytes (256 MiB by default), computed from the header before any pixel
        is decoded: width x height x bytes per pixel of the mode Pillow
        decodes to (1 for 8-bit grey, 2 for 16-bit grey, 4 for colour, with
        or without alpha), after a JPEG's reduced-scale decoding; for DICOM,
        rows x columns x samples per pixel x bytes allocated. Decoding one
        file needs about 3 to 5 times this much memory at its peak (8 times
        for a 16-bit DICOM, windowed in float64; see the loading guide), and
        ``n_jobs`` threads decode that many files at once. ``None`` disables
        the check.
    lazy : bool, default=False
        If True, :meth:`transform` returns a :class:`LazyImages` that decodes
        rows on demand, for training with batches that do not fit in memory.

    Attributes
    ----------
    n_features_in_ : int
        Always 1: the single column of paths.
    feature_names_in_ : ndarray of shape (1,)
        The column name, when ``X`` is a DataFrame with a string column name.

    See Also
    --------
    LazyImages : The on-demand array that ``lazy=True`` returns.
    cxrlearn.datasets.scan_images : Report every unreadable file at once.

    Notes
    -----
    Decoding applies the EXIF orientation, composites transparent images over
    black, reads 16-bit PNG and TIFF at full depth and lets libjpeg downscale
    big JPEGs by 1/2, 1/4 or 1/8 while decoding, keeping at least twice the
    output resolution for the final antialiased resize. DICOM files (``.dcm`` or
    the ``DICM`` magic) need the optional pydicom dependency (``pip install
    cxrlearn[dicom]``); the modality LUT (rescale slope / intercept) and the
    first VOI window or LUT are applied, MONOCHROME1 is inverted, and images
    without VOI data are stretched to their own min / max.

    A file that cannot be decoded completely (missing, empty, not an image,
    truncated, corrupt pixel data, a damaged EXIF block, too large,
    non-finite DICOM values, unsupported DICOM) raises
    :class:`ImageLoadError` naming the file and the cause; nothing is
    skipped or filled in silently.

    The output is a 4-D image array, not a table: ``set_output`` accepts only
    ``transform="default"`` (or None), and :meth:`get_feature_names_out`
    names the pixels of a flattened image.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from cxrlearn._loading import ImageLoader
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "xray.png")
    >>> Image.fromarray(np.full((40, 30), 255, dtype=np.uint8)).save(path)
    >>> X = ImageLoader(image_size=16, color_mode="grayscale").fit_transform([path])
    >>> X.shape, X.dtype, float(X.max())
    ((1, 16, 16, 1), dtype('float32'), 1.0)
    """

    _parameter_constraints = {
        "image_size": [Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "color_mode": [StrOptions({"rgb", "grayscale"})],
        "resize": [StrOptions({"stretch", "pad", "crop"})],
        "interpolation": [StrOptions(set(RESAMPLING))],
        "dtype": [StrOptions({"float16", "float32", "float64"})],
        "intensity": [StrOptions({"raw", "stretch", "equalize"})],
        "n_jobs": [numbers.Integral, None],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "max_pixels": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "max_decoded_bytes": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "lazy": ["boolean"],
    }

    def __init__(
        self,
        image_size=(300, 300),
        *,
        color_mode="rgb",
        resize="stretch",
        interpolation="bilinear",
        dtype="float32",
        intensity="raw",
        n_jobs=None,
        memory=None,
        max_pixels=DEFAULT_MAX_PIXELS,
        max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES,
        lazy=False,
    ):
        self.image_size = image_size
        self.color_mode = color_mode
        self.resize = resize
        self.interpolation = interpolation
        self.dtype = dtype
        self.intensity = intensity
        self.n_jobs = n_jobs
        self.memory = memory
        self.max_pixels = max_pixels
        self.max_decoded_bytes = max_decoded_bytes
        self.lazy = lazy

    def fit(self, X, y=None):
        """Validate the parameters and the path container; nothing is learnt.

        Parameters
        ----------
        X : list, tuple or array-like of shape (n_samples,) or (n_samples, 1)
            Image paths.
        y : None
            Ignored.

        Returns
        -------
        self : ImageLoader
            This estimator.
        """
        self._check_params()
        _check_paths(X)
        self.n_features_in_ = 1
        self._fitted_here = True  # not pickled: see __getstate__ and _memory
        if hasattr(X, "columns") and isinstance(X.columns[0], str):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def transform(self, X):
        """Decode the images.

        Parameters
        ----------
        X : list, tuple or array-like of shape (n_samples,) or (n_samples, 1)
            Image paths (``str`` or :class:`os.PathLike`), or a pandas Series
            or one-column DataFrame of them.

        Returns
        -------
        images : ndarray of shape (n_samples, height, width, channels) or \
LazyImages
            Pixels in ``[0, 1]``; a :class:`LazyImages` if ``lazy=True``.

        Raises
        ------
        ImageLoadError
            If any file cannot be decoded (the first failure is raised).
        ValueError
            If a table output (pandas, polars) was configured with
            ``set_output`` or ``sklearn.set_config(transform_output=...)``.
        """
        self._check_params()
        self._check_output_config(_get_output_config("transform", self)["dense"])
        paths = _check_paths(X)
        if self.lazy:
            return LazyImages(self, paths)
        return self._load(paths)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features, as if each image were flattened.

        The output of :meth:`transform` is a 4-D array ``(n_samples, height,
        width, channels)``; its features are the pixels of one image in the
        order of ``X.reshape(n_samples, -1)`` (row by row, channels last),
        named like the features of other scikit-learn transformers that
        make new features (``imageloader0``, ``imageloader1``, ...).

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against the single input column (``feature_names_in_``
            when fitted on a DataFrame); not used otherwise.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``height * width * channels`` names.

        Examples
        --------
        >>> from cxrlearn._loading import ImageLoader
        >>> ImageLoader(image_size=2, color_mode="grayscale").get_feature_names_out()
        array(['imageloader0', 'imageloader1', 'imageloader2', 'imageloader3'],
              dtype=object)
        """
        if input_features is not None and len(input_features) != 1:
            raise ValueError(
                "ImageLoader has a single input feature (the column of paths), "
                f"got input_features with {len(input_features)} names"
            )
        _check_feature_names_in(self, input_features, generate_names=False)
        self._check_params()
        n_out = int(np.prod(self._output_shape(1)[1:]))
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(n_out)], dtype=object)

    def set_output(self, *, transform=None):
        """Set the output container; only arrays are possible.

        :meth:`transform` returns a 4-D image array (or :class:`LazyImages`),
        which no DataFrame can hold, so ``"pandas"`` and ``"polars"`` raise a
        ``ValueError``. In a :class:`~sklearn.pipeline.Pipeline`, set the
        output of the steps after the loader instead (``pipe[1:].set_output(
        transform="pandas")``) once they produce a table.

        Parameters
        ----------
        transform : {"default"} or None, default=None
            ``"default"`` keeps the array output; None leaves the
            configuration unchanged.

        Returns
        -------
        self : ImageLoader
            This estimator.

        Raises
        ------
        ValueError
            If ``transform`` is ``"pandas"``, ``"polars"`` or any other
            table container.
        """
        self._check_output_config(transform)
        return super().set_output(transform=transform)

    @staticmethod
    def _check_output_config(transform):
        if transform not in (None, "default"):
            raise ValueError(
                f"ImageLoader cannot produce {transform!r} output: it returns a 4-D "
                "image array (n_samples, height, width, channels), which is not a "
                "table. Use set_output(transform='default') on the loader (it "
                "overrides sklearn.set_config(transform_output=...)), and set a table "
                "output only on later pipeline steps, e.g. "
                "pipe[1:].set_output(transform='pandas')."
            )

    def __getstate__(self):
        # The decode cache belongs to the process that fitted the loader:
        # after unpickling elsewhere it is off (see _memory).
        state = dict(super().__getstate__())
        state.pop("_fitted_here", None)
        return state

    def __setstate__(self, state):
        # A loader saved before ``max_decoded_bytes`` existed gets the default,
        # so that saved pipelines keep working.
        state = dict(state)
        state.setdefault("max_decoded_bytes", DEFAULT_MAX_DECODED_BYTES)
        super().__setstate__(state)

    def __sklearn_is_fitted__(self):
        return True  # stateless: transform works without fit

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    # ------------------------------------------------------------- helpers
    def _check_params(self):
        self._validate_params()
        self._output_size()

    def _output_size(self):
        size = self.image_size
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            return int(size), int(size)
        if (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                for s in size
            )
        ):
            return int(size[0]), int(size[1])
        raise ValueError(
            "image_size must be a positive int or a (height, width) pair of "
            f"positive ints, got {size!r}"
        )

    def _spec(self):
        height, width = self._output_size()
        return DecodeSpec(
            height,
            width,
            self.color_mode,
            self.resize,
            self.interpolation,
            self.dtype,
            self.intensity,
        )

    def _output_shape(self, n):
        return self._spec().batch_shape(n)

    def _memory(self):
        """The decode cache, or None: off when unset, and off in a loader that
        was fitted in another process and unpickled here."""
        if hasattr(self, "n_features_in_") and not getattr(self, "_fitted_here", False):
            return None
        memory = self.memory
        if isinstance(memory, os.PathLike):
            memory = os.fspath(memory)
        memory = check_memory(memory)
        return None if getattr(memory, "location", None) is None else memory

    def _load(self, paths):
        """Decode ``paths`` (a 1-D object array) here, into one output array.

        Not on a Dask / Ray cluster the caller runs under (:func:`_decode_here`).
        An error from a decoding thread names the worker that called.
        """
        with _decode_here():
            try:
                return self._decode_paths(paths)
            except ImageLoadError as err:
                if err.worker:
                    raise
                where = ImageLoadError(err.path, err.reason)  # names this thread's worker
                if not where.worker:
                    raise
                raise where.with_traceback(err.__traceback__) from err.__cause__

    def _decode_n_jobs(self):
        """``n_jobs``, at most the thread share of the joblib / Dask worker we run in.

        ``n_jobs=-1`` in a grid search's worker would otherwise decode with
        every core of the machine in every worker, as TensorFlow's own pools
        would without :func:`cxrlearn.utils.limit_tf_threads`.
        """
        if self.n_jobs is None:
            return None
        from .utils._threads import _worker_thread_share

        share = _worker_thread_share()
        if share is None:
            return self.n_jobs
        return min(effective_n_jobs(self.n_jobs), share)

    def _decode_paths(self, paths):
        """Decode ``paths`` (a 1-D object array) into one output array."""
        spec = self._spec()
        out = np.empty(self._output_shape(len(paths)), dtype=spec.dtype)
        if len(paths) == 0:
            return out
        memory = self._memory()
        cached = None
        if memory is not None:
            cached = memory.cache(_cached_decode, ignore=["max_pixels", "max_decoded_bytes"])
        limits = (self.max_pixels, self.max_decoded_bytes)
        n_jobs = self._decode_n_jobs()
        n_workers = min(effective_n_jobs(n_jobs), len(paths))
        if n_workers <= 1:
            for row, path in zip(out, paths):
                _decode_into(row, path, spec, limits, cached)
            return out
        # Several files per task: fewer round trips, still balanced. Threads
        # write into ``out`` directly; worker processes return their images,
        # written into ``out`` as they arrive, so the decoded images are never
        # held twice.
        step = max(1, min(16, -(-len(paths) // (4 * n_workers))))
        starts = range(0, len(paths), step)
        results = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
            delayed(_decode_chunk)(
                paths[i : i + step], spec, limits, cached, _SharedRows(out[i : i + step])
            )
            for i in starts
        )
        for start, block in zip(starts, results):
            if block is not None:  # decoded in another process
                out[start : start + len(block)] = block
        return out


class LazyImages:
    """Image paths that behave like a 4-D array and decode on demand.

    Returned by ``ImageLoader(lazy=True).transform(paths)``. Indexing selects
    rows without decoding anything; :meth:`load` (or :func:`numpy.asarray`)
    decodes them with the loader's settings, ``n_jobs`` and ``memory``.
    Pickling keeps the loader parameters and the paths, never pixels.

    Parameters
    ----------
    loader : ImageLoader
        Supplies the decoding parameters (its ``lazy`` flag is ignored).
    paths : array-like of str
        Image paths, one per row.

    Attributes
    ----------
    paths : ndarray of shape (n_samples,)
        Object array of ``str`` paths.
    shape : tuple of int
        ``(n_samples, height, width, channels)``, known without decoding.
    dtype : numpy.dtype
        Dtype of decoded batches (``float32`` by default).
    ndim : int
        Always 4.
    loader : ImageLoader
        A copy of the loader that decodes the rows (with ``lazy=False``).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from cxrlearn._loading import ImageLoader
    >>> folder = tempfile.mkdtemp()
    >>> paths = []
    >>> for i in range(3):
    ...     paths.append(os.path.join(folder, f"img{i}.png"))
    ...     Image.fromarray(np.full((8, 8), 60 * i, dtype=np.uint8)).save(paths[-1])
    >>> lazy = ImageLoader(image_size=4, lazy=True).transform(paths)
    >>> lazy.shape, len(lazy[1:])
    ((3, 4, 4, 3), 2)
    >>> batch = lazy.load([2, 0])
    >>> batch.shape, round(float(batch[0].max()), 3)
    ((2, 4, 4, 3), 0.471)
    """

    ndim = 4

    def __init__(self, loader, paths):
        params = {**loader.get_params(deep=False), "lazy": False}
        if loader._memory() is None:  # e.g. a loader unpickled from a model file
            params["memory"] = None
        self.loader = ImageLoader(**params)
        self.loader._check_params()
        paths = np.asarray(paths, dtype=object)
        if paths.ndim != 1:
            raise ValueError(f"paths must be 1-D, got shape {paths.shape}")
        self.paths = paths

    @property
    def shape(self):
        return self.loader._output_shape(len(self.paths))

    @property
    def dtype(self):
        return np.dtype(self.loader.dtype)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        """Select rows; never decodes.

        An int array, a slice or a boolean mask selects rows; a scalar int
        keeps the first axis (like ``X[[i]]``), so the result is always a
        :class:`LazyImages`.
        """
        n = len(self.paths)
        if isinstance(index, tuple):
            raise TypeError("LazyImages can only be indexed along the first axis")
        if isinstance(index, numbers.Integral) and not isinstance(index, (bool, np.bool_)):
            i = int(index)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for {n} images")
            return LazyImages(self.loader, self.paths[[i]])
        if isinstance(index, slice):
            return LazyImages(self.loader, self.paths[index])
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(
                    f"boolean mask of shape {idx.shape} does not match {n} images"
                )
        elif idx.size == 0:
            idx = idx.astype(np.intp)
        elif not np.issubdtype(idx.dtype, np.integer):
            raise IndexError(
                f"LazyImages indices must be integers, a slice or a boolean mask, "
                f"got dtype {idx.dtype}"
            )
        if idx.ndim != 1:
            raise IndexError(f"indices must be 1-D, got shape {idx.shape}")
        return LazyImages(self.loader, self.paths[idx])

    def load(self, indices=None):
        """Decode rows into an array.

        Parameters
        ----------
        indices : array-like of int, slice, boolean mask or None, default=None
            Rows to decode; all of them when None.

        Returns
        -------
        images : ndarray of shape (k, height, width, channels)
            Pixels in ``[0, 1]``.
        """
        rows = self if indices is None else self[indices]
        return self.loader._load(rows.paths)

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("LazyImages cannot be viewed as an array without a copy")
        arr = self.load()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __repr__(self):
        return f"LazyImages(shape={self.shape}, dtype={self.dtype}, loader={self.loader!r})"

"""The served model: uploads decoded in memory, one inference thread, micro-batches.

Nothing here imports the web framework: :class:`ServedModel` is what the
ASGI app (``_app.py``) calls, and what a test or another server can call
directly.

* **Decoding uploads.** An upload is bytes, never a file: :func:`decode_upload`
  runs the loader's own decoding steps (``cxrlearn._decoders``) on a
  :class:`io.BytesIO` with the model's :class:`~cxrlearn.ImageLoader`
  settings and limits, so it produces exactly the array the pipeline
  produces from the same file on disk (tests check the equality).
  ``_decoders`` has no public entry point for bytes; this module reuses its
  functions rather than write a file.
* **Decisions are the model's own.** At start-up a *serving copy* of the
  fitted model is built: the same objects, with the ImageLoader step set to
  ``"passthrough"`` (scikit-learn skips it) so that the model, meta-estimators
  included, takes decoded arrays. Its ``predict`` gives the labels at the
  model's own operating point and its ``predict_proba`` the probabilities.
  Inside the copy the :class:`~cxrlearn.PneumoniaCNN` is a view of the same
  fitted network (nothing is copied) whose ``predict_proba`` and
  ``decision_function`` remember their result for the batch being served,
  so that ``predict`` and ``predict_proba`` of one batch run the network
  once.
* **Concurrency.** One thread (:class:`InferenceWorker`) runs every model
  call; requests that arrive while it computes are queued and served
  together as one batch (micro-batching without any waiting: a lone request
  starts at once).
"""

import concurrent.futures
import functools
import hashlib
import os
import queue
import threading
from pathlib import Path

import numpy as np

__all__ = ["InferenceWorker", "ServedModel", "UploadError", "decode_upload",
           "model_file_version"]

#: What the server accepts, by content (the file name and the client's
#: Content-Type are never trusted).
ACCEPTED_FORMATS = ("PNG", "JPEG", "DICOM")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_DICOM_SUFFIXES = (".dcm", ".dicom")

#: Words in an ImageLoadError's reason that mean "refused by a size limit".
_LIMIT_WORDS = ("max_pixels", "max_decoded_bytes", "decompression bomb", "Pillow's limit")


class UploadError(Exception):
    """One uploaded file that cannot be served, with the HTTP status to report.

    Parameters
    ----------
    file : str
        The file name the client gave (never a server path).
    status : int
        415 (not PNG, JPEG or DICOM), 413 (too large for the limits) or
        422 (unreadable: empty, corrupt, truncated, unsupported content).
    code : str
        ``"wrong_type"``, ``"too_large"`` or ``"unreadable"``.
    detail : str
        The cause, in words.
    """

    def __init__(self, file, status, code, detail):
        self.file, self.status, self.code, self.detail = file, status, code, detail
        super().__init__(f"{file}: {detail}")

    def to_dict(self):
        return {"status": self.status, "code": self.code, "detail": self.detail}


def _image_format(data, name):
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(_JPEG_SIGNATURE):
        return "JPEG"
    if data[128:132] == b"DICM" or name.lower().endswith(_DICOM_SUFFIXES):
        return "DICOM"  # (a preamble-less DICOM is recognised by its name, as by the loader)
    return None


def decode_upload(data, name, loader):
    """Decode uploaded bytes exactly as ``loader`` decodes the same file.

    Parameters
    ----------
    data : bytes
        The file's content.
    name : str
        The client's file name, used in messages only.
    loader : ImageLoader
        Supplies the output size, colour mode, resize policy, interpolation,
        intensity normalisation, dtype and the ``max_pixels`` /
        ``max_decoded_bytes`` limits.

    Returns
    -------
    image : ndarray of shape (height, width, channels)

    Raises
    ------
    UploadError
        415 for content that is not PNG, JPEG or DICOM (whatever its name
        says), 413 for an image over the loader's limits, 422 for an empty,
        corrupt or truncated file, or a DICOM without ``pydicom``.
    """
    try:
        return _decode(data, name, loader)
    except ImportError as exc:  # a DICOM, and pydicom is not installed
        raise UploadError(name, 415, "wrong_type", str(exc)) from exc
    except Exception as exc:
        from .._decoders import ImageLoadError

        if not isinstance(exc, ImageLoadError):
            raise
        too_large = any(word in exc.reason for word in _LIMIT_WORDS)
        raise UploadError(name, 413 if too_large else 422,
                          "too_large" if too_large else "unreadable", exc.reason) from exc


def _decode(data, name, loader):
    """Decode an upload with the loader's settings and limits (no file is written)."""
    from .._decoders import ImageLoadError, decode_bytes

    if not data:
        raise ImageLoadError(name, "empty file (0 bytes)")
    kind = _image_format(data, name)
    if kind is None:
        raise UploadError(name, 415, "wrong_type",
                          "not a PNG, JPEG or DICOM file (judged by its content)")
    return decode_bytes(data, name, loader._spec(), loader.max_pixels,
                        loader.max_decoded_bytes, dicom=kind == "DICOM")


def model_file_version(path):
    """``"sha256:<16 hex digits>"`` of a model file: changes whenever the model does."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


# ------------------------------------------------------------ serving copy
def _shallow(obj):
    """A new object sharing ``obj``'s attributes (no ``__getstate__``: that of
    PneumoniaCNN would serialise the network)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    return new


@functools.lru_cache(maxsize=None)
def _one_pass_class():
    from .._classifier import PneumoniaCNN

    class _OnePassCNN(PneumoniaCNN):
        """A view of a fitted PneumoniaCNN whose scores are computed once per batch.

        ``predict_proba`` and ``decision_function`` remember their result for
        the array object they were last given (held until :meth:`forget`);
        ``predict`` is PneumoniaCNN's own, on those probabilities.
        """

        def _once(self, method, X):
            memo = self.__dict__.get("_served_batch")
            if memo is None or memo[0] is not X:
                memo = (X, {})
                self.__dict__["_served_batch"] = memo
            if method not in memo[1]:
                memo[1][method] = getattr(super(_OnePassCNN, self), method)(X)
            return memo[1][method]

        def predict_proba(self, X):
            return self._once("predict_proba", X)

        def decision_function(self, X):
            return self._once("decision_function", X)

        def forget(self):
            self.__dict__.pop("_served_batch", None)

    return _OnePassCNN


def serving_copy(model):
    """``(copy, loader, network, network_pipeline)``: ``model`` taking decoded arrays.

    The copy shares every fitted object with ``model`` (nothing is refitted
    or duplicated; ``model`` itself is not changed). The
    :class:`~cxrlearn.ImageLoader` step becomes ``"passthrough"``, which
    :class:`~sklearn.pipeline.Pipeline` skips; Pipelines,
    ``FrozenEstimator``, fitted meta-estimators (``estimator_``) and searches
    (``best_estimator_``) are followed. ``network`` is the copy's
    PneumoniaCNN (a one-pass view, see the module's notes), or None;
    ``network_pipeline`` the copy's Pipeline that ends in it (its earlier
    steps turn decoded images into the network's input), or None.

    Raises
    ------
    ValueError
        If the model has no ImageLoader (it does not read image files), more
        than one, or steps before it (they would transform file paths).
    """
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    from .._classifier import PneumoniaCNN
    from .._loading import ImageLoader

    one_pass = _one_pass_class()
    loaders, networks, network_pipelines = [], [], []

    def rebuild(obj):
        if isinstance(obj, ImageLoader):
            loaders.append(obj)
            return "passthrough"
        if isinstance(obj, PneumoniaCNN):
            view = object.__new__(one_pass)
            view.__dict__.update(obj.__dict__)
            networks.append(view)
            return view
        if isinstance(obj, Pipeline):
            new = _shallow(obj)
            steps = []
            for i, (name, step) in enumerate(obj.steps):
                if isinstance(step, ImageLoader) and any(
                    s is not None and s != "passthrough" for _, s in obj.steps[:i]
                ):
                    raise ValueError(
                        f"the pipeline has steps before its ImageLoader "
                        f"({[n for n, _ in obj.steps[:i]]}); they would act on file "
                        "paths, which the server does not have"
                    )
                steps.append((name, rebuild(step)))
            new.steps = steps
            if steps and isinstance(steps[-1][1], one_pass):
                network_pipelines.append(new)
            return new
        if isinstance(obj, FrozenEstimator):
            new = _shallow(obj)
            new.estimator = rebuild(obj.estimator)
            return new
        for attr in ("best_estimator_", "estimator_"):
            if hasattr(obj, attr):
                new = _shallow(obj)
                setattr(new, attr, rebuild(getattr(obj, attr)))
                return new
        return obj

    copy = rebuild(model)
    if len(loaders) != 1:
        raise ValueError(
            "the model must read image files through exactly one ImageLoader step "
            f"(a Pipeline such as cxrlearn train saves); found {len(loaders)}"
        )
    if len(networks) != 1:
        return copy, loaders[0], None, None
    return copy, loaders[0], networks[0], (network_pipelines or [None])[0]


# ------------------------------------------------------------ the model
class ServedModel:
    """A fitted model ready to serve: decoding, labels, probabilities, Grad-CAM.

    Parameters
    ----------
    model : estimator
        A fitted classifier that reads image files through one
        :class:`~cxrlearn.ImageLoader` (a Pipeline as ``cxrlearn train``
        saves it, possibly inside a meta-estimator such as
        :class:`~cxrlearn.OperatingPointClassifier`).
    model_id, model_version : str
        Reported with every prediction.
    gradcam_layer : str or None
        The layer Grad-CAM explains (None: the last convolution).
    warm_up : bool, default=True
        Run the network once on a blank image at start-up, so the first
        request does not pay for building its inference function.

    Notes
    -----
    :meth:`predict` and :meth:`explain` take a lock: they may be called from
    any thread, one at a time (the app calls them from one thread).
    """

    def __init__(self, model, *, model_id="model", model_version="unknown",
                 gradcam_layer=None, warm_up=True):
        for method in ("predict", "predict_proba"):
            if not hasattr(model, method):
                raise TypeError(f"the model has no {method} method")
        self.model = model
        self.model_id = str(model_id)
        self.model_version = str(model_version)
        self.gradcam_layer = gradcam_layer
        self._copy, self.loader, self._network, self._network_pipeline = serving_copy(model)
        self.classes = list(model.classes_)
        self._lock = threading.Lock()
        spec = self.loader._spec()
        self.input_shape = (spec.height, spec.width, 3 if spec.color_mode == "rgb" else 1)
        from ..evaluation import operating_point

        if len(self.classes) == 2:
            self.operating_point = operating_point(model)
        else:
            self.operating_point = {"pos_label": None, "threshold": None,
                                    "applies_to": "most probable class (argmax of "
                                                  "predict_proba)",
                                    "chosen_by": "none: the most probable class"}
        if warm_up:
            blank = np.zeros((1, *self.input_shape), dtype=spec.dtype)
            labels, _ = self.predict(blank)
            if gradcam_layer is not None and self.can_explain:
                self.explain(blank, labels)  # a wrong layer name fails here, not later

    @property
    def can_explain(self):
        """Whether Grad-CAM is available (the model ends in a PneumoniaCNN)."""
        return self._network is not None

    def trained_on(self, X):
        """Which decoded images the model was trained on, or None if it cannot tell.

        True for an image that is one of the network's training images, or
        the same film at another size or encoding
        (:meth:`cxrlearn.PneumoniaCNN.trained_on`): its prediction says
        nothing about how the model does on new patients. None when the
        model kept no record of its training images (saved by a cxrlearn
        older than the records) or its network is not in a Pipeline after
        the loader.
        """
        pipe = self._network_pipeline
        if pipe is None or getattr(pipe[-1], "training_fingerprints_", None) is None:
            return None
        X = np.asarray(X)
        return pipe[-1].trained_on(pipe[:-1].transform(X) if len(pipe) > 1 else X)

    def view(self, X):
        """Decoded images as the network sees them, to show beside a heatmap.

        The earlier steps of the network's Pipeline, then the network's own
        equalisation where it has one (``PneumoniaCNN(equalize=True)``);
        ``X`` itself where the model has no network to explain.
        """
        from ..explain._gradcam import _as_seen

        pipe = self._network_pipeline
        if pipe is None:
            return np.asarray(X)
        X = pipe[:-1].transform(X) if len(pipe) > 1 else X
        return _as_seen(pipe[-1], X)

    def decode(self, data, name):
        """The network's input for one upload (see :func:`decode_upload`)."""
        return decode_upload(data, name, self.loader)

    def predict(self, X):
        """``(labels, probabilities)`` of decoded images, from the model itself.

        ``labels`` come from the model's ``predict`` (its own operating
        point), ``probabilities`` from its ``predict_proba``; the network
        runs once for both.
        """
        X = np.asarray(X)
        with self._lock:
            try:
                labels = self._copy.predict(X)
                proba = self._copy.predict_proba(X)
            finally:
                if self._network is not None:
                    self._network.forget()
        return np.asarray(labels), np.asarray(proba, dtype=np.float64)

    def explain(self, X, labels):
        """Grad-CAM heatmaps of decoded images, each for its given label."""
        from ..explain import grad_cam

        if not self.can_explain:
            raise TypeError("Grad-CAM needs a model that ends in a PneumoniaCNN")
        X = np.asarray(X)
        labels = np.asarray(labels, dtype=object)
        maps = np.zeros(X.shape[:3], dtype=np.float32)
        with self._lock:
            for label in dict.fromkeys(labels.tolist()):  # each label once, in order
                rows = np.flatnonzero(labels == label)
                maps[rows] = grad_cam(self._copy, X[rows], target=label,
                                      layer=self.gradcam_layer)
        return maps

    def describe(self):
        """Parameters, classes, operating point and training summary (JSON-ready)."""
        from ..evaluation._report import _clean, _describe_model

        spec = self.loader._spec()
        return _clean({
            "id": self.model_id,
            "version": self.model_version,
            "classes": self.classes,
            "operating_point": self.operating_point,
            "input": {"height": spec.height, "width": spec.width,
                      "channels": self.input_shape[2], "color_mode": spec.color_mode,
                      "resize": spec.resize, "intensity": spec.intensity,
                      "formats": list(ACCEPTED_FORMATS),
                      "max_pixels": self.loader.max_pixels,
                      "max_decoded_bytes": self.loader.max_decoded_bytes},
            "gradcam": self.can_explain,
            "model": _describe_model(self.model, self.operating_point, None),
        })


# --------------------------------------------------------- the worker
class _Job:
    __slots__ = ("X", "fn", "future")

    def __init__(self, X=None, fn=None):
        self.X, self.fn = X, fn
        self.future = concurrent.futures.Future()


class InferenceWorker:
    """One thread that runs every model call, batching concurrent predictions.

    :meth:`submit_predict` queues images; the thread takes everything queued
    (up to ``max_batch`` images) and runs :meth:`ServedModel.predict` once on
    all of it, then hands each caller its rows. A request that finds the
    thread idle is computed at once: batching only happens when requests
    wait anyway. :meth:`submit` runs any other call (Grad-CAM) in the same
    thread, in turn.

    Parameters
    ----------
    served : ServedModel
    max_batch : int, default=32
        Most images computed in one call; 1 turns batching off.
    """

    def __init__(self, served, max_batch=32):
        self.served = served
        self.max_batch = max(1, int(max_batch))
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._start_lock = threading.Lock()
        self.batches = 0  # model calls made (for tests and measurements)

    def _ensure_thread(self):
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="cxrlearn-inference")
                self._thread.start()

    def submit_predict(self, X):
        """Queue decoded images; a Future of ``(labels, probabilities)``."""
        job = _Job(X=np.asarray(X))
        self._ensure_thread()
        self._queue.put(job)
        return job.future

    def submit(self, fn, *args):
        """Run ``fn(*args)`` in the inference thread; a Future of its result."""
        job = _Job(fn=lambda: fn(*args))
        self._ensure_thread()
        self._queue.put(job)
        return job.future

    def close(self):
        """Stop the thread once the queued work is done."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=60)

    def _run(self):
        carried = []  # a job taken from the queue but not fitting the batch: next
        while True:
            job = carried.pop() if carried else self._queue.get()
            if job is None:  # close()
                return
            if job.fn is not None:
                self._call(job, job.fn)
                job = None  # nothing of a request outlives it, here neither
                continue
            batch, n = [job], len(job.X)
            while n < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None or nxt.fn is not None or n + len(nxt.X) > self.max_batch:
                    carried.append(nxt)
                    break
                batch.append(nxt)
                n += len(nxt.X)
            self._predict(batch)
            batch = job = nxt = None  # the images go with the answers

    def _call(self, job, fn):
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(fn())
        except BaseException as exc:  # handed to the waiting request
            job.future.set_exception(exc)

    def _predict(self, batch):
        if len(batch) == 1:
            self.batches += 1
            self._call(batch[0], lambda: self.served.predict(batch[0].X))
            return
        try:
            self.batches += 1
            labels, proba = self.served.predict(np.concatenate([job.X for job in batch]))
        except Exception:  # one bad job must not fail the others: one by one
            for job in batch:
                self.batches += 1
                self._call(job, lambda job=job: self.served.predict(job.X))
            return
        start = 0
        for job in batch:
            stop = start + len(job.X)
            if job.future.set_running_or_notify_cancel():
                job.future.set_result((labels[start:stop], proba[start:stop]))
            start = stop


def default_model_id(path):
    """The model's name: its file name without the suffix."""
    return Path(os.fspath(path)).stem

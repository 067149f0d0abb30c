"""Which evaluation images a model was trained on."""

import numpy as np

__all__ = ["trained_on"]


def _network_pipeline(model):
    """The ``[ImageLoader, ..., PneumoniaCNN]`` pipeline inside ``model``, or None.

    Threshold wrappers are unwrapped through their ``estimator_`` (or
    ``estimator``) attribute, as in :func:`operating_point`.
    """
    from sklearn.pipeline import Pipeline

    from .._classifier import PneumoniaCNN

    for _ in range(8):  # wrappers of wrappers, never an endless chain
        if isinstance(model, Pipeline):
            return model if isinstance(model[-1], PneumoniaCNN) else None
        inner = getattr(model, "estimator_", None)
        model = inner if inner is not None else getattr(model, "estimator", None)
        if model is None:
            return None
    return None


def trained_on(model, paths, *, near=True):
    """Which image files the network of a fitted pipeline was trained on.

    A model scored on its own training images, or given a threshold chosen
    on them, looks better than it is -- without any error. The files are
    decoded by the pipeline's own steps and their pixels compared with the
    digests :class:`~cxrlearn.PneumoniaCNN` keeps of its training images
    (:meth:`cxrlearn.PneumoniaCNN.trained_on`), so a copy of a training
    image under another name or in another folder is found too -- and, by
    perceptual hash, the same film resized or re-encoded (the
    full-resolution original of a 224 px training image).
    Crops, rotations and flips of a training film are not found.

    Parameters
    ----------
    model : classifier
        A fitted ``[ImageLoader, PneumoniaCNN]`` pipeline, possibly inside a
        threshold wrapper such as :class:`~cxrlearn.OperatingPointClassifier`.
    paths : array-like of shape (n_files,)
        Image files.
    near : bool, default=True
        Also find the same films at other sizes or encodings; False:
        pixel-identical images only (see
        :meth:`cxrlearn.PneumoniaCNN.trained_on`).

    Returns
    -------
    mask : ndarray of shape (n_files,), dtype bool, or None
        True for the files that are training images (with `near`, or the
        same films); None when the model cannot tell (no such pipeline
        inside, or saved by a cxrlearn that did not keep the digests).

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from sklearn.pipeline import Pipeline
    >>> from cxrlearn import ImageLoader, PneumoniaCNN
    >>> from cxrlearn.datasets import write_synthetic_xray_directory
    >>> from cxrlearn.evaluation import trained_on
    >>> root = Path(tempfile.mkdtemp())
    >>> files, y = write_synthetic_xray_directory(root / "xrays", 24, image_size=48,
    ...                                           random_state=0)
    >>> model = Pipeline([("loader", ImageLoader(image_size=32, color_mode="grayscale")),
    ...                   ("cnn", PneumoniaCNN(conv_filters=(4,), dense_units=(8,),
    ...                                        epochs=1))]).fit(files[:16], y[:16])
    >>> copy = shutil.copy(files[0], root / "renamed_copy.png")  # found by its pixels
    >>> trained_on(model, [copy, *files[14:18]]).tolist()
    [True, True, True, False, False]
    >>> from PIL import Image
    >>> with Image.open(files[1]) as film:  # the same film, larger and as JPEG
    ...     film.resize((96, 96)).convert("RGB").save(root / "larger.jpeg", quality=85)
    >>> trained_on(model, [root / "larger.jpeg"]).tolist()
    [True]
    >>> trained_on(model, [root / "larger.jpeg"], near=False).tolist()
    [False]
    """
    pipe = _network_pipeline(model)
    if pipe is None or getattr(pipe[-1], "training_fingerprints_", None) is None:
        return None
    paths = np.asarray(paths, dtype=object)
    if len(paths) == 0:
        return np.zeros(0, dtype=bool)
    images, cnn = pipe[:-1].transform(paths), pipe[-1]
    from .._training import is_lazy

    if is_lazy(images):  # a streaming loader: decode a chunk at a time
        return np.concatenate([cnn.trained_on(images[i : i + 256].load(), near=near)
                               for i in range(0, len(images), 256)])
    return cnn.trained_on(images, near=near)

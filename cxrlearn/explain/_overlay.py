"""Heatmap overlays and annotated Grad-CAM figures.

matplotlib (the ``plot`` extra) is imported only inside the functions, and
only its object-oriented API is used (a :class:`~matplotlib.figure.Figure`
on an Agg canvas): no pyplot, no change of the global backend, no window.
"""

import hashlib
import os
from numbers import Real
from pathlib import Path

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params

from ._gradcam import (
    _as_images,
    _as_seen,
    _cam_model,
    _class_indices,
    _heatmaps,
    _layer_name,
    _plan,
)

__all__ = ["explain_files", "overlay"]

_PLOT_HINT = "pip install 'cxrlearn[plot]'"

#: Files explained per forward/backward pass in :func:`explain_files`.
_CHUNK = 32


def _colormap(cmap):
    """A callable colormap from a matplotlib name (or the callable itself)."""
    if callable(cmap):
        return cmap
    try:
        from matplotlib import colormaps
    except ImportError as exc:
        raise ImportError(
            f"overlay with a named colormap ({cmap!r}) needs matplotlib: {_PLOT_HINT}, "
            "or pass cmap as a function of the heatmap."
        ) from exc
    try:
        return colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown matplotlib colormap {cmap!r}.") from None


def _resize_heatmap(heatmap, height, width):
    """Bilinear resize of a float heatmap with Pillow (mode "F")."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32), mode="F")
    resized = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float64), 0.0, 1.0)


@validate_params(
    {
        "image": ["array-like"],
        "heatmap": ["array-like"],
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "cmap": [str, callable],
    },
    prefer_skip_nested_validation=True,
)
def overlay(image, heatmap, *, alpha=0.4, cmap="jet"):
    """Blend a colour-mapped heatmap with its image.

    Each pixel is ``(1 - alpha) * image + alpha * cmap(heatmap)``, in RGB (a
    grayscale image is repeated into the three channels).

    Parameters
    ----------
    image : array-like of shape (height, width), (height, width, 1) or (height, width, 3)
        The image, floats in [0, 1] (values outside are clipped) or uint8
        (0 to 255).
    heatmap : array-like of shape (h, w)
        Values in [0, 1] (clipped), e.g. one map of :func:`grad_cam`. A
        heatmap of another size than the image is resized to it
        (bilinear), e.g. to draw it over the full-resolution picture; that
        is only aligned if the image was resized without padding or
        cropping.
    alpha : float in [0, 1], default=0.4
        Weight of the heatmap's colours; 0 returns the image, 1 the colours.
    cmap : str or callable, default="jet"
        A matplotlib colormap name (needs matplotlib, the ``plot`` extra:
        ``pip install 'cxrlearn[plot]'``; an :class:`ImportError` says so
        otherwise), or any function mapping an ``(h, w)`` array in [0, 1]
        to ``(h, w, 3)`` or ``(h, w, 4)`` RGB(A) floats in [0, 1] -- for
        instance a :class:`matplotlib.colors.Colormap`; a function needs no
        matplotlib.

    Returns
    -------
    rgb : ndarray of shape (height, width, 3), dtype=uint8
        The blended picture.

    Raises
    ------
    ValueError
        If the shapes are not those of an image and a 2-D heatmap, or a
        value is NaN.
    ImportError
        If ``cmap`` is a name and matplotlib is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.explain import overlay
    >>> image = np.full((4, 4), 0.5)
    >>> heatmap = np.zeros((4, 4))
    >>> heatmap[0, 0] = 1.0
    >>> rgb = overlay(image, heatmap, alpha=0.5)
    >>> rgb.shape, rgb.dtype
    ((4, 4, 3), dtype('uint8'))
    >>> rgb[0, 0].tolist(), rgb[3, 3].tolist()  # jet: dark red at 1, dark blue at 0
    ([128, 64, 64], [64, 64, 128])
    >>> overlay(image, heatmap, alpha=0.0)[0, 0].tolist()
    [128, 128, 128]
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image / 255.0
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., np.newaxis], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must have shape (height, width), (height, width, 1) or "
            f"(height, width, 3), got {image.shape}."
        )
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (height, width), got shape {heatmap.shape}.")
    if np.isnan(image).any() or np.isnan(heatmap).any():
        raise ValueError("image and heatmap must not contain NaN.")
    heatmap = np.clip(heatmap, 0.0, 1.0)
    height, width = image.shape[:2]
    if heatmap.shape != (height, width):
        heatmap = _resize_heatmap(heatmap, height, width)
    colours = np.asarray(_colormap(cmap)(heatmap), dtype=np.float64)
    if colours.shape[:2] != (height, width) or colours.ndim != 3 \
            or colours.shape[2] not in (3, 4):
        raise ValueError(
            f"cmap must map a ({height}, {width}) heatmap to ({height}, {width}, 3 or 4) "
            f"colours, got shape {colours.shape}."
        )
    blend = (1.0 - alpha) * np.clip(image, 0.0, 1.0) + alpha * np.clip(colours[..., :3], 0, 1)
    return np.round(blend * 255.0).astype(np.uint8)


def _output_names(paths):
    """``<stem>.gradcam.png`` per path; paths whose stems collide get a hash.

    Two different files with the same stem (equal names in different
    folders, ``a.png`` and ``a.jpeg``, or names that differ only in case)
    get ``<stem>-<8 hex digits of the absolute path's SHA-1>.gradcam.png``,
    so no output overwrites another, on case-insensitive file systems too.
    """
    stems = [Path(p).stem or "image" for p in paths]
    absolute = [os.path.abspath(p) for p in paths]
    owners = {}
    for stem, full in zip(stems, absolute):
        owners.setdefault(stem.casefold(), set()).add(full)
    names = []
    for stem, full in zip(stems, absolute):
        if len(owners[stem.casefold()]) > 1:
            digest = hashlib.sha1(full.encode("utf-8", "surrogateescape")).hexdigest()
            stem = f"{stem}-{digest[:8]}"
        names.append(f"{stem}.gradcam.png")
    return names


def _figure(image, heatmap, title, layer="the last convolution"):
    """The side-by-side figure: the network's input, the Grad-CAM overlay."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.4, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    shown = np.clip(image, 0.0, 1.0)
    if shown.shape[2] == 1:
        left.imshow(shown[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        left.imshow(shown)
    left.set_title("input (as the network sees it)", fontsize=10)
    right.imshow(overlay(image, heatmap))
    right.set_title(f"Grad-CAM of {layer}", fontsize=10)
    for ax in (left, right):
        ax.set_axis_off()
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap="jet"), ax=right,
                 shrink=0.8, label="relative importance")
    fig.suptitle(title, fontsize=11)
    return fig


@validate_params(
    {
        "model": "no_validation",
        "paths": ["array-like"],
        "out_dir": [str, os.PathLike],
        "layer": [str, None],
    },
    prefer_skip_nested_validation=True,
)
def explain_files(model, paths, out_dir, *, layer=None):
    """Write one Grad-CAM figure (PNG) per image file.

    Each figure shows, side by side, the image as the network sees it
    (after the pipeline's loading, resizing and intensity normalisation,
    the network's own equalisation included, so that the heatmap is aligned
    with it) and the :func:`overlay` of its
    :func:`grad_cam` heatmap for the predicted label; the title gives the
    file name, the label ``model.predict`` gives (at the model's own
    operating point) and the probability ``model.predict_proba`` gives that
    label. Files are written atomically; existing files of the same name are
    replaced.

    Parameters
    ----------
    model : Pipeline or meta-estimator
        A fitted model that reads image files, as ``cxrlearn train`` saves
        it: a Pipeline whose steps before the
        :class:`~cxrlearn.PneumoniaCNN` load the files (e.g.
        :class:`~cxrlearn.ImageLoader`), possibly inside a meta-estimator
        (see :func:`grad_cam`).
    paths : array-like of str or path-like
        Image files.
    out_dir : str or path-like
        Folder for the figures, created if needed. The figure of
        ``dir/name.ext`` is ``name.gradcam.png``; when two different files
        share a name stem, each gets ``name-<hash>.gradcam.png``, the hash
        being of its absolute path.
    layer : str or None, default=None
        The layer whose feature maps Grad-CAM weighs (see :func:`grad_cam`);
        None: the last convolution (``"conv5"`` for the study's network,
        whose maps are 2x2 cells at 176 px; ``"conv4"``'s are 6x6). The
        figure names it.

    Returns
    -------
    written : list of str
        The figure of each path, in order.

    Raises
    ------
    ValueError
        If ``model`` does not load files itself, or a file cannot be
        decoded (:class:`~cxrlearn.ImageLoadError`).
    ImportError
        If matplotlib (``pip install 'cxrlearn[plot]'``) is missing.

    See Also
    --------
    grad_cam : The heatmaps themselves.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sklearn.pipeline import Pipeline
    >>> from cxrlearn import ImageLoader, PneumoniaCNN
    >>> from cxrlearn.datasets import write_synthetic_xray_directory
    >>> from cxrlearn.explain import explain_files
    >>> tmp = tempfile.TemporaryDirectory()
    >>> paths, labels = write_synthetic_xray_directory(
    ...     Path(tmp.name, "data"), n_samples=30, image_size=32, random_state=0)
    >>> pipe = Pipeline([
    ...     ("loader", ImageLoader(image_size=32, color_mode="grayscale")),
    ...     ("cnn", PneumoniaCNN(conv_filters=(4, 8), dense_units=(8,), epochs=1,
    ...                          random_state=0)),
    ... ]).fit(paths, labels)
    >>> written = explain_files(pipe, paths[:2], Path(tmp.name, "out"))
    >>> [Path(p).name for p in written] == [Path(p).stem + ".gradcam.png"
    ...                                     for p in paths[:2]]
    True
    >>> tmp.cleanup()
    """
    from ..io import atomic_write

    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"explain_files draws with matplotlib: {_PLOT_HINT}") from exc
    paths = [os.fspath(p) for p in np.asarray(paths, dtype=object).ravel()]
    plan = _plan(model)
    if not plan.has_transforms():
        raise ValueError(
            "explain_files needs a model that reads image files: a Pipeline whose "
            "steps before the PneumoniaCNN load them (e.g. ImageLoader); for "
            "arrays use grad_cam and overlay."
        )
    cnn = plan.cnn
    cam_model = _cam_model(cnn, layer)
    layer_name = _layer_name(cnn, layer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _output_names(paths)
    written = []
    for start in range(0, len(paths), _CHUNK):
        chunk = paths[start:start + _CHUNK]
        images, decider = plan.run(np.asarray(chunk, dtype=object))
        images = np.asarray(_as_images(cnn, images), dtype=np.float32)
        estimator, data = decider if decider is not None else (cnn, images)
        proba = estimator.predict_proba(data)
        labels = estimator.predict(data)
        maps = _heatmaps(cam_model, images, _class_indices(cnn, labels),
                            binary=len(cnn.classes_) == 2, batch_size=_CHUNK)
        seen = _as_seen(cnn, images)
        columns = {c: j for j, c in enumerate(np.asarray(estimator.classes_).tolist())}
        for i, (path, label) in enumerate(zip(chunk, labels)):
            label = label.item() if isinstance(label, np.generic) else label
            p = proba[i, columns[label]]
            title = f"{Path(path).name}\npredicted {label}, P({label}) = {p:.3f}"
            fig = _figure(seen[i], maps[i], title, layer_name)
            target = out_dir / names[start + i]
            atomic_write(target, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=100))
            written.append(str(target))
    return written

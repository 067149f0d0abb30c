"""Synthetic chest-radiograph-like images for tests, examples and benchmarks.

The images drawn here are **synthetic**: geometric cartoons of a frontal
chest radiograph (body silhouette, two radiolucent lung fields, mediastinum
and heart shadow, rib arcs, clavicles, diaphragm domes) with random pose,
exposure and noise.  The ``"PNEUMONIA"`` class adds one to three patchy,
blurred opacities ("infiltrates") inside a lung field.  They are **not**
medical data and carry no clinical meaning; they exist so that pipelines,
estimators and documentation can run in seconds without the real data set.

Only NumPy, SciPy (:mod:`scipy.ndimage` blurs and resizes) and Pillow
are used (no TensorFlow).
"""

import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    Options,
    StrOptions,
    validate_params,
)

__all__ = ["make_synthetic_xrays", "write_synthetic_xray_directory"]

CLASS_NAMES = ("NORMAL", "PNEUMONIA")

# Images are rendered in chunks to bound the memory of the float temporaries.
_CHUNK = 16
# Largest side rendered directly; larger images are upsampled from it.
_MAX_RENDER = 128
# Smallest side of an image.
_MIN_SIDE = 16

# Uniform ranges of the per-image parameters, in patient coordinates (u to
# the image right, v downwards, both about -1 to 1 across the image).
_POSE = {
    "shift_x": (-0.05, 0.05), "shift_y": (-0.05, 0.05),
    "scale_x": (0.90, 1.06), "scale_y": (0.90, 1.06), "angle": (-0.087, 0.087),
}
_ANATOMY = {
    "body_w": (0.88, 1.02), "tissue": (0.48, 0.60), "medi_w": (0.09, 0.13),
    "lung_cx": (0.42, 0.48), "lung_cy": (-0.06, 0.02),
    "lung_rx": (0.31, 0.37), "lung_ry": (0.66, 0.74), "lung_dark": (0.26, 0.38),
    # dome_tilt: the right hemidiaphragm (image left) sits higher
    "dome": (0.36, 0.50), "dome_tilt": (0.02, 0.09),
    "heart_cx": (0.12, 0.20), "heart_cy": (0.22, 0.32),
    "heart_rx": (0.30, 0.38), "heart_ry": (0.19, 0.25),
    "rib_spacing": (0.15, 0.18), "rib_phase": (0.0, 1.0),
    "rib_curv": (0.35, 0.60), "rib_amp": (0.08, 0.14), "clav_v": (-0.74, -0.64),
}
_EXPOSURE = {
    "contrast": (0.80, 1.20), "brightness": (-0.07, 0.07),
    "log_gamma": (-0.3, 0.3), "texture": (0.02, 0.05),
}
_BLOB_KEYS = ("blob_amp", "blob_u", "blob_v", "blob_su", "blob_sv")
# Pose and exposure of a patient's repeat image: the first one's +- these.
_REPEAT_JITTER = {
    "shift_x": 0.02, "shift_y": 0.02, "scale_x": 0.02, "scale_y": 0.02,
    "angle": 0.035, "contrast": 0.05, "brightness": 0.02, "log_gamma": 0.05,
}


def _check_side(value, name):
    if (isinstance(value, bool) or not isinstance(value, Integral)
            or value < _MIN_SIDE):
        raise ValueError(f"{name} must be an integer >= {_MIN_SIDE}, got {value!r}.")
    return int(value)


def _check_image_size(image_size):
    """``(height, width)`` from an int (already validated) or a pair."""
    if isinstance(image_size, Integral):
        return int(image_size), int(image_size)
    try:
        h, w = image_size
    except (TypeError, ValueError):
        raise ValueError("image_size must be an int or a (height, width) pair, "
                         f"got {image_size!r}.") from None
    return _check_side(h, "image_size (height)"), _check_side(w, "image_size (width)")


def _check_weights(weights):
    """Class proportions: what `validate_params` cannot check about `weights`."""
    if weights is None:
        return np.array([0.5, 0.5])
    try:
        w = np.asarray(weights, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"weights must be numbers, got {weights!r}.") from None
    if w.size == 1:  # like make_classification: the last one is inferred
        w = np.array([w[0], 1.0 - w[0]])
    if w.size != 2:
        raise ValueError(f"weights must hold the proportions of the 2 classes "
                         f"{CLASS_NAMES} (or of the first), got {w.size} values.")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be non-negative, got {w.tolist()}.")
    if not np.isclose(w.sum(), 1.0, atol=1e-6):
        raise ValueError(f"weights must sum to 1, got sum {w.sum():.6g}.")
    return w


# Parameters shared by make_synthetic_xrays and write_synthetic_xray_directory,
# checked by sklearn's validate_params. A finite bound closed on the left only
# excludes inf; an Interval of Integral excludes bools.
_COMMON_CONSTRAINTS = {
    "n_samples": [Interval(Integral, 2, None, closed="left")],
    "image_size": [Interval(Integral, _MIN_SIDE, None, closed="left"), "array-like"],
    "weights": ["array-like", None],
    "noise": [Interval(Real, 0, np.inf, closed="left")],
    "class_sep": [Interval(Real, 0, np.inf, closed="left")],
    "random_state": ["random_state"],
}


def _generator(random_state):
    """A NumPy ``Generator`` seeded from ``check_random_state(random_state)``."""
    seed = check_random_state(random_state).randint(0, 2**32, 4, dtype=np.uint32)
    return np.random.default_rng(seed)


def _make_labels(n_samples, weights, rng):
    """Class codes (0 NORMAL, 1 PNEUMONIA), exactly ``round(n * w0)`` zeros."""
    n_normal = min(max(int(round(n_samples * weights[0])), 0), n_samples)
    codes = np.r_[np.zeros(n_normal, int), np.ones(n_samples - n_normal, int)]
    rng.shuffle(codes)
    return codes


def _draw_params(codes, rng, class_sep):
    """Draw per-image pose, anatomy, exposure and infiltrate parameters.

    Arrays have shape ``(n,)``; the infiltrate ones ``(n, 3)`` (three blob
    slots, unused ones with zero amplitude).
    """
    n, u = codes.size, rng.uniform
    p = {k: u(lo, hi, n) for k, (lo, hi) in {**_POSE, **_ANATOMY, **_EXPOSURE}.items()}
    # Infiltrates: 1 to 3 blobs for PNEUMONIA, a quarter of them faint.
    n_blobs = rng.choice([1, 2, 3], size=n, p=[0.35, 0.40, 0.25])
    faint = u(size=n) < 0.25
    severity = np.where(faint, u(0.15, 0.35, n), u(0.55, 1.30, n))
    used = (np.arange(3)[None, :] < n_blobs[:, None]) & (codes == 1)[:, None]
    p["blob_amp"] = class_sep * severity[:, None] * u(0.6, 1.0, (n, 3)) * used
    # Centres inside a lung field, in lung-normalised polar coordinates,
    # favouring the lower zones.
    side = np.where(u(size=(n, 3)) < 0.5, -1.0, 1.0)
    radius = 0.75 * np.sqrt(u(0.0, 1.0, (n, 3)))
    theta = u(0.0, 2 * np.pi, (n, 3))
    du = radius * np.cos(theta) * p["lung_rx"][:, None]
    dv = np.abs(radius * np.sin(theta)) * u(-0.4, 1.0, (n, 3))
    p["blob_u"] = side * (p["lung_cx"][:, None] + du)
    p["blob_v"] = p["lung_cy"][:, None] + dv * p["lung_ry"][:, None]
    p["blob_su"] = u(0.15, 0.30, (n, 3))
    p["blob_sv"] = p["blob_su"] * u(0.7, 1.5, (n, 3))
    return p


def _ramp(d, width):
    """Soft step: 0 for ``d < -width``, 1 for ``d > width``, linear between.

    Cheap (the final blur rounds the corners off); works in place on ``d``.
    """
    d *= 0.5 / width
    d += 0.5
    return np.clip(d, 0.0, 1.0, out=d)


def _upsample(grid, h, w):
    """Bilinear resize of ``(n, gh, gw)`` arrays to ``(n, h, w)``.

    Corner-aligned (the first and last rows and columns map onto the
    grid's), as :func:`scipy.ndimage.zoom` does with ``grid_mode=False``.
    """
    gh, gw = grid.shape[1:]
    return ndimage.zoom(grid, (1, h / gh, w / gw), order=1, mode="nearest",
                        grid_mode=False)


def _blur(img, sigma):
    """Separable Gaussian blur of ``(n, h, w)`` images (edge padding).

    The kernel spans ``ceil(2.5 * sigma)`` pixels on each side.
    """
    radius = int(np.ceil(2.5 * sigma))
    if radius < 1:
        return img
    return ndimage.gaussian_filter(img, sigma, mode="nearest", radius=radius,
                                   axes=(1, 2))


def _render(p, h, w, rng, envelope=False):
    """Render the noiseless images described by ``p`` (float32, ~[0, 1]).

    With ``envelope=True`` also return, for each image, the smooth envelope
    of its infiltrates (``max_k g_k * lung_area``: each blob's Gaussian
    relative to its own peak, confined to the lungs as the opacity is;
    zero for NORMAL images). Computing it draws no random numbers, so the
    images are the same either way.
    """
    n = p["angle"].size
    f32 = np.float32
    c = {k: v.astype(f32)[:, None, None] for k, v in p.items() if v.ndim == 1}
    ys = ((np.arange(h, dtype=f32) + 0.5) / h * 2 - 1)[None, :, None]
    xs = ((np.arange(w, dtype=f32) + 0.5) / w * 2 - 1)[None, None, :]
    cos, sin = np.cos(c["angle"]), np.sin(c["angle"])
    dx, dy = xs - c["shift_x"], ys - c["shift_y"]
    # (u, v): patient coordinates, u to the image right, v downwards
    uu = (dx * cos + dy * sin) / c["scale_x"]
    vv = (dy * cos - dx * sin) / c["scale_y"]
    au = np.abs(uu)
    u2 = uu * uu
    edge = f32(1.5 / min(h, w))

    # body: trunk (super-ellipse) and neck
    t_u = (uu / c["body_w"]) ** 2
    t_v = ((vv - 0.2) / 1.05) ** 2
    trunk = _ramp(1 - t_u * t_u * t_u - t_v * t_v * t_v, 0.12)
    neck = _ramp(0.22 - au, edge) * _ramp(vv + 1.3, edge)
    body = np.maximum(trunk, neck)

    # diaphragm domes (image left = patient right, sits higher)
    dome = c["dome"] + 0.2 * ((au - c["lung_cx"]) / c["lung_rx"]) ** 2
    dome -= (uu < 0) * c["dome_tilt"]
    below = _ramp(vv - dome, edge)
    above = 1 - below

    # lung fields: egg-shaped ellipses, wider at the base, cut by the domes
    dv = (vv - c["lung_cy"]) / c["lung_ry"]
    rx = c["lung_rx"] * (1.0 + 0.22 * dv)
    lung = _ramp(1 - ((au - c["lung_cx"]) / rx) ** 2 - dv * dv, 0.15)

    # mediastinum, spine, heart
    medi = _ramp(c["medi_w"] - au, edge) * _ramp(vv + 0.9, edge)
    spine = _ramp(0.045 - au, edge)
    # heart: ellipse with its long axis tilted down to the image right
    du, dv = uu - c["heart_cx"], vv - c["heart_cy"]
    hu = (0.82 * du + 0.57 * dv) / c["heart_rx"]
    hv = (0.82 * dv - 0.57 * du) / c["heart_ry"]
    heart = _ramp(1 - hu * hu - hv * hv, 0.15)
    lung *= above * (1 - heart) * (1 - medi)

    # rib arcs (posterior ribs bend down laterally) and clavicles
    phase = (vv - c["rib_curv"] * u2) / c["rib_spacing"] + c["rib_phase"]
    ribs = np.maximum(np.cos(f32(2 * np.pi) * phase), 0.0)
    ribs = ribs * ribs
    ribs = ribs * ribs * ribs
    thorax = _ramp(0.85 - au / c["body_w"], 0.05) * above
    ribs *= thorax * _ramp(au - 0.08, edge) * _ramp(vv + 0.85, edge)
    clav = (vv - c["clav_v"] + 0.15 * (au - 0.1)) / 0.035
    clav = np.exp(-clav * clav)
    clav *= _ramp(0.6 - au, edge) * _ramp(au - 0.05, edge)

    # lung texture (a stand-in for vascular markings), both classes
    tex = _upsample(rng.uniform(-1, 1, (n, 10, 10)).astype(f32), h, w)

    img = 0.03 + c["tissue"] * body
    trachea = _ramp(0.035 - au, edge) * _ramp(-0.45 - vv, 0.1)
    dense = np.maximum(np.maximum(medi, heart), below)
    img += body * (0.12 * dense + 0.05 * spine - 0.08 * trachea)
    # hila: vessels make the lungs denser near the mediastinum
    hu = (au - 0.2) / 0.16
    hv = (vv - c["lung_cy"] - 0.05) / 0.3
    hila = 1 - 0.35 * np.exp(-(hu * hu + hv * hv))
    img -= lung * c["lung_dark"] * hila * (1 + 3 * c["texture"] * tex)
    img += body * (c["rib_amp"] * ribs * (0.6 + 0.4 * lung) + 0.14 * clav)

    # infiltrates: patchy blurred opacities filling the lung back in
    sick = np.flatnonzero(p["blob_amp"].max(axis=1) > 0)
    env = np.zeros((n, h, w), dtype=f32) if envelope else None
    if sick.size:
        su, sv = uu[sick], vv[sick]
        patch = _upsample(rng.random((sick.size, 14, 14), dtype=f32), h, w)
        blobs = np.zeros_like(su)
        for k in range(p["blob_amp"].shape[1]):
            b = {key: p[key][sick, k].astype(f32)[:, None, None]
                 for key in _BLOB_KEYS}
            gu = (su - b["blob_u"]) / b["blob_su"]
            gv = (sv - b["blob_v"]) / b["blob_sv"]
            g = np.exp(-0.5 * (gu * gu + gv * gv))
            np.maximum(blobs, b["blob_amp"] * g, out=blobs)
            if envelope:
                env[sick] = np.maximum(env[sick], g * (b["blob_amp"] > 0))
        lung_area = lung[sick] + 0.3 * (1 - lung[sick]) * thorax[sick]
        if envelope:
            env[sick] *= lung_area
        blobs *= (0.5 + 0.5 * patch) * lung_area
        img[sick] += blobs * (1.2 * c["lung_dark"][sick])

    img = _blur(img, 0.6 * min(h, w) / 64)
    img = (img - 0.35) * c["contrast"] + (0.35 + c["brightness"])
    np.clip(img, 0.0, 1.0, out=img)
    img = img ** np.exp(c["log_gamma"])
    return (img, env) if envelope else img


def _generate(codes, image_size, noise, class_sep, rng, share=None, masks=False):
    """Draw parameters, optionally share anatomy, render in chunks.

    Returns float32 images of shape ``(n, h, w, 1)``, and with
    ``masks=True`` also boolean infiltrate masks of shape ``(n, h, w)``:
    the pixels where an infiltrate's envelope (see :func:`_render`) is at
    least half its peak. Sides above ``_MAX_RENDER`` are rendered at that
    size and upsampled (the anatomy is smooth); the pixel noise is always
    drawn at full resolution.
    """
    h, w = image_size
    rh, rw = min(h, _MAX_RENDER), min(w, _MAX_RENDER)
    params = _draw_params(codes, rng, class_sep)
    if share is not None:  # share[i] = index of the image whose patient i is
        for key in (*_ANATOMY, *_BLOB_KEYS):
            params[key] = params[key][share]
        # a repeat image: same patient, slightly different pose and exposure
        for key, jitter in _REPEAT_JITTER.items():
            params[key] = params[key][share] + rng.uniform(
                -jitter, jitter, codes.size) * (share != np.arange(codes.size))
    X = np.empty((codes.size, h, w, 1), dtype=np.float32)
    M = np.zeros((codes.size, h, w), dtype=bool) if masks else None
    for start in range(0, codes.size, _CHUNK):
        sl = slice(start, start + _CHUNK)
        img = _render({k: v[sl] for k, v in params.items()}, rh, rw, rng, envelope=masks)
        if masks:
            img, env = img
            if (rh, rw) != (h, w):
                env = _upsample(env, h, w)
            M[sl] = env >= 0.5
        if (rh, rw) != (h, w):
            img = _upsample(img, h, w)
        if noise > 0:
            img += noise * rng.standard_normal(img.shape, dtype=np.float32)
        X[sl, :, :, 0] = np.clip(img, 0.0, 1.0)
    return (X, M) if masks else X


def _to_uint8(X):
    return np.round(X * 255.0).astype(np.uint8)


@validate_params(
    {
        **_COMMON_CONSTRAINTS,
        "n_channels": [Options(Integral, {1, 3})],
        "as_uint8": ["boolean"],
        "return_masks": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_synthetic_xrays(
    n_samples=200,
    image_size=64,
    *,
    n_channels=1,
    weights=None,
    noise=0.03,
    class_sep=1.0,
    random_state=None,
    as_uint8=False,
    return_masks=False,
):
    """Generate synthetic chest-X-ray-like images labelled NORMAL / PNEUMONIA.

    The images are **synthetic** cartoons of a frontal chest radiograph, not
    medical data: a dark background, a soft-tissue body silhouette, two
    darker (radiolucent) lung fields, the mediastinum and heart shadow, faint
    rib arcs and clavicles, and the diaphragm domes. Every image gets a random
    shift, scale, rotation, contrast, brightness, gamma and Gaussian noise.
    ``"PNEUMONIA"`` images add one to three patchy, blurred white opacities
    inside a lung field, at a random place, size and opacity; a quarter of
    them are faint. The task is learnable but not trivial: logistic
    regression on the raw pixels of 400 images of 32x32 (half for training)
    reaches a held-out ROC-AUC of about 0.8 (0.74 to 0.86 over seeds);
    ``class_sep`` makes it easier or harder.

    Use it for tests, examples and benchmarks that must run in seconds
    without the real Kermany data.

    Parameters
    ----------
    n_samples : int, default=200
        Number of images, at least 2.

    image_size : int or tuple of (int, int), default=64
        Image height and width (an int gives a square image); each side at
        least 16.

    n_channels : {1, 3}, default=1
        1 for grayscale; 3 replicates the gray image into RGB channels.

    weights : array-like of shape (2,) or (1,), default=None
        Proportions of ``"NORMAL"`` and ``"PNEUMONIA"``, summing to 1, like
        ``weights`` in :func:`sklearn.datasets.make_classification` (a single
        value gives the NORMAL proportion). Exactly
        ``round(n_samples * weights[0])`` images are NORMAL. ``None`` gives
        1:1.

    noise : float, default=0.03
        Standard deviation of the additive Gaussian pixel noise (intensities
        are in [0, 1]).

    class_sep : float, default=1.0
        Multiplier of the infiltrate opacity: larger values make PNEUMONIA
        easier to see, ``0`` makes both classes indistinguishable.

    random_state : int, RandomState instance or None, default=None
        Seed of the generator; an int gives reproducible images.

    as_uint8 : bool, default=False
        Return 8-bit images (0 to 255) instead of float32 in [0, 1].

    return_masks : bool, default=False
        Also return where the infiltrates are, e.g. to check where an
        explanation method (:func:`cxrlearn.explain.grad_cam`) looks. The
        images and labels are the same with or without masks.

    Returns
    -------
    X : ndarray of shape (n_samples, height, width, n_channels)
        The images, float32 in [0, 1] (or uint8 with ``as_uint8=True``).

    y : ndarray of shape (n_samples,), dtype=object
        String labels ``"NORMAL"`` or ``"PNEUMONIA"`` (the Kermany folder
        names), shuffled.

    masks : ndarray of shape (n_samples, height, width), dtype=bool
        Only with ``return_masks=True``: the infiltrate pixels of each
        image, where an infiltrate's smooth envelope (its Gaussian profile,
        confined to the lung fields as its opacity is) reaches at least half
        its peak -- roughly the visible opacity before the patchy texture,
        blur and noise. All ``False`` for NORMAL images.

    See Also
    --------
    write_synthetic_xray_directory : Write such images as a Kermany-style
        folder of files.

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.datasets import make_synthetic_xrays
    >>> X, y = make_synthetic_xrays(n_samples=10, image_size=32,
    ...                             weights=[0.2, 0.8], random_state=0)
    >>> X.shape, X.dtype
    ((10, 32, 32, 1), dtype('float32'))
    >>> bool(X.min() >= 0.0 and X.max() <= 1.0)
    True
    >>> sorted(np.unique(y).tolist())
    ['NORMAL', 'PNEUMONIA']
    >>> int((y == "NORMAL").sum())
    2
    >>> X_rgb, _ = make_synthetic_xrays(4, image_size=(24, 20), n_channels=3,
    ...                                 random_state=0, as_uint8=True)
    >>> X_rgb.shape, X_rgb.dtype
    ((4, 24, 20, 3), dtype('uint8'))
    >>> X, y, masks = make_synthetic_xrays(10, image_size=32, random_state=0,
    ...                                    return_masks=True)
    >>> masks.shape, masks.dtype
    ((10, 32, 32), dtype('bool'))
    >>> bool(masks[y == "NORMAL"].any()), bool(masks[y == "PNEUMONIA"].any(axis=(1, 2)).all())
    (False, True)
    """
    size = _check_image_size(image_size)
    w = _check_weights(weights)
    rng = _generator(random_state)

    codes = _make_labels(n_samples, w, rng)
    X = _generate(codes, size, noise, class_sep, rng, masks=return_masks)
    if return_masks:
        X, masks = X
    if n_channels == 3:
        X = np.repeat(X, 3, axis=-1)
    y = np.asarray(CLASS_NAMES, dtype=object)[codes]
    X = _to_uint8(X) if as_uint8 else X
    return (X, y, masks) if return_masks else (X, y)


def _patients(codes, rng, p_pair=0.35):
    """Kermany-like file stems, and for each image its patient's first image.

    Within each class, images are dealt to patients of one or two images;
    patient numbers increase, so no id is reused across or within classes.
    """
    stems, share = [None] * codes.size, np.arange(codes.size)
    patient, counter = int(rng.integers(1, 2000)), int(rng.integers(1, 3000))
    for code in (0, 1):
        idx = list(np.flatnonzero(codes == code))
        while idx:
            k = 2 if len(idx) >= 2 and rng.uniform() < p_pair else 1
            members, idx = idx[:k], idx[k:]
            share[members] = members[0]
            kind = "bacteria" if rng.uniform() < 0.65 else "virus"
            for j, i in enumerate(members):
                counter += 1
                stems[i] = (f"IM-{patient:04d}-{j + 1:04d}" if code == 0
                            else f"person{patient}_{kind}_{counter}")
            patient += int(rng.integers(1, 4))
    return stems, share


@validate_params(
    {
        **_COMMON_CONSTRAINTS,
        "root": [str, os.PathLike],
        "format": [StrOptions({"png", "jpeg"})],
    },
    prefer_skip_nested_validation=True,
)
def write_synthetic_xray_directory(
    root,
    n_samples=40,
    image_size=64,
    *,
    weights=None,
    format="png",
    noise=0.03,
    class_sep=1.0,
    random_state=None,
):
    """Write synthetic X-rays as a Kermany-style ``NORMAL/`` ``PNEUMONIA/`` tree.

    Images come from the same generator as :func:`make_synthetic_xrays`
    (**synthetic**, not medical data) and are saved as 8-bit grayscale files
    under ``root/NORMAL/`` and ``root/PNEUMONIA/``, with Kermany-like file
    names so that patient ids parse: ``IM-0007-0001.png`` (patient
    ``IM-0007``) for NORMAL, ``person12_bacteria_45.png`` or
    ``person13_virus_46.png`` (patient ``person13``) for PNEUMONIA. About a
    third of the patients have two images, which share their anatomy and
    infiltrates and differ only slightly in pose, exposure and noise, so
    splitting by image instead of by patient leaks information, as with the
    real data.

    Parameters
    ----------
    root : str or path-like
        Folder to write into; created if needed. Existing files with the same
        names are overwritten, other files are left alone.

    n_samples : int, default=40
        Number of images, at least 2.

    image_size : int or tuple of (int, int), default=64
        Image height and width; each side at least 16.

    weights : array-like of shape (2,) or (1,), default=None
        Proportions of NORMAL and PNEUMONIA images, see
        :func:`make_synthetic_xrays`.

    format : {"png", "jpeg"}, default="png"
        File format; JPEG files get the ``.jpeg`` extension like Kermany.

    noise : float, default=0.03
        Standard deviation of the pixel noise, see
        :func:`make_synthetic_xrays`.

    class_sep : float, default=1.0
        Infiltrate opacity multiplier, see :func:`make_synthetic_xrays`.

    random_state : int, RandomState instance or None, default=None
        Seed of the generator; an int gives reproducible files.

    Returns
    -------
    paths : list of str
        The written files, in generation order (shuffled classes).

    labels : list of str
        ``"NORMAL"`` or ``"PNEUMONIA"`` for each path (its folder name).

    See Also
    --------
    make_synthetic_xrays : The same images as in-memory arrays.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from cxrlearn.datasets import write_synthetic_xray_directory
    >>> tmp = tempfile.TemporaryDirectory()
    >>> paths, labels = write_synthetic_xray_directory(
    ...     tmp.name, n_samples=6, image_size=32, random_state=0)
    >>> len(paths), sorted(set(labels))
    (6, ['NORMAL', 'PNEUMONIA'])
    >>> all(Path(p).parent.name == lab for p, lab in zip(paths, labels))
    True
    >>> Path(paths[0]).name.startswith(("IM-", "person"))
    True
    >>> with Image.open(paths[0]) as im:
    ...     im.mode, im.size
    ('L', (32, 32))
    >>> tmp.cleanup()
    """
    from PIL import Image

    size = _check_image_size(image_size)
    w = _check_weights(weights)
    rng = _generator(random_state)

    codes = _make_labels(n_samples, w, rng)
    stems, share = _patients(codes, rng)
    X = _to_uint8(_generate(codes, size, noise, class_sep, rng, share=share))
    root = Path(os.fspath(root))
    for cls in CLASS_NAMES:
        (root / cls).mkdir(parents=True, exist_ok=True)
    save_options = {"quality": 95} if format == "jpeg" else {}
    paths, labels = [], []
    for i, stem in enumerate(stems):
        label = CLASS_NAMES[codes[i]]
        path = root / label / f"{stem}.{format}"
        Image.fromarray(X[i, :, :, 0]).save(path, format.upper(), **save_options)
        paths.append(str(path))
        labels.append(label)
    return paths, labels

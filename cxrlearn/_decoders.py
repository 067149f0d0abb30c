"""Decoders behind :class:`~cxrlearn.ImageLoader`: one file in, one array out.

Everything here is a pure function of a path and a :class:`DecodeSpec`, so it
can run in threads, in worker processes or behind :class:`joblib.Memory`.
Pillow reads PNG, JPEG and the other raster formats; DICOM goes through the
optional :mod:`pydicom` dependency, imported only when a DICOM file is met.
"""

import io
import math
import os
import stat
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageFile

__all__ = ["DecodeSpec", "ImageLoadError", "RESAMPLING", "decode_file"]

#: Bumped whenever the decoding output changes, so stale caches are not reused.
DECODER_VERSION = 1

#: Interpolation names accepted by ``ImageLoader(interpolation=...)``.
RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    # Keras / TensorFlow call the box filter "area".
    "area": Image.Resampling.BOX,
}

_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_DICOM_SUFFIXES = {".dcm", ".dicom"}


class ImageLoadError(ValueError):
    """Raised when an image file cannot be turned into pixels.

    The message names the offending file and the cause; the original
    exception, when there is one, is chained as ``__cause__``.

    Parameters
    ----------
    path : str
        The file that could not be loaded.
    reason : str
        Why, in a few words.

    Attributes
    ----------
    path : str
        The file that could not be loaded.
    reason : str
        Why it could not be loaded.

    Examples
    --------
    >>> from cxrlearn._decoders import ImageLoadError
    >>> err = ImageLoadError("scan.png", "empty file (0 bytes)")
    >>> print(err)
    cannot load image 'scan.png': empty file (0 bytes)
    >>> isinstance(err, ValueError)
    True
    """

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot load image '{self.path}': {reason}")

    def __reduce__(self):
        # Keeps the exception picklable, so it crosses process boundaries.
        return type(self), (self.path, self.reason)


class DecodeSpec(NamedTuple):
    """What to produce from a file (everything that changes the pixels)."""

    height: int
    width: int
    color_mode: str  # "rgb" or "grayscale"
    resize: str  # "stretch", "pad" or "crop"
    interpolation: str  # a key of RESAMPLING
    dtype: str  # a floating dtype name
    intensity: str = "raw"  # "raw", "stretch" or "equalize"


def decode_file(path, spec, max_pixels=None):
    """Decode one image file into a ``(height, width, channels)`` array.

    Parameters
    ----------
    path : str or os.PathLike
        PNG, JPEG (or another raster format Pillow reads) or DICOM file.
    spec : DecodeSpec
        Output size, colour mode, resize policy, interpolation and dtype.
    max_pixels : int or None, default=None
        Refuse images with more pixels than this (decompression bombs).

    Returns
    -------
    image : ndarray of shape (spec.height, spec.width, channels)
        Values in ``[0, 1]``; ``channels`` is 1 for grayscale, 3 for RGB.

    Raises
    ------
    ImageLoadError
        Whenever the file is missing, empty, not an image, corrupt,
        truncated, too large, or an unsupported DICOM.
    """
    path = os.fspath(path)
    _check_file(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        is_dicom = data[128:132] == b"DICM" or (
            os.path.splitext(path)[1].lower() in _DICOM_SUFFIXES
        )
        if is_dicom:
            image = _read_dicom(io.BytesIO(data), path, max_pixels)
        else:
            image = _read_pillow(data, path, spec, max_pixels)
        image = _fit(_to_working_mode(image, spec.color_mode), spec)
    except (ImageLoadError, ImportError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, f"possible decompression bomb: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageLoadError(
            path, "not a recognised image file (unknown format or not an image)"
        ) from exc
    except Exception as exc:  # every decoder failure must name the file
        raise ImageLoadError(
            path, f"corrupt or unreadable image data ({type(exc).__name__}: {exc})"
        ) from exc
    return _to_array(image, spec)


def _check_file(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageLoadError(path, "file not found") from None
    except OSError as exc:
        raise ImageLoadError(path, f"cannot access file ({exc})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")


def _check_pixels(path, width, height, max_pixels):
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            path,
            f"{width}x{height} = {width * height} pixels exceeds max_pixels="
            f"{max_pixels} (possible decompression bomb)",
        )


def _read_pillow(data, path, spec, max_pixels):
    """Open with Pillow, decode fully, orient; return an L, RGB or F image."""
    im = Image.open(io.BytesIO(data))
    _check_pixels(path, im.width, im.height, max_pixels)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone switched Pillow's truncation check off (it is on by
        # default and cxrlearn never changes it): check the structure here.
        _check_complete(data, im.format, path)
    try:
        orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a damaged EXIF block only loses the orientation
        orientation = 1
    method = _EXIF_TRANSPOSE.get(orientation)
    if im.format == "JPEG":
        # Let libjpeg downscale by 1/2, 1/4 or 1/8 while decoding, keeping at
        # least twice the output resolution so that the final antialiased
        # resize still does the filtering (mean |difference| from a full
        # decode ~0.0005 on the Kermany originals, ~1.4x faster).
        height, width = 2 * spec.height, 2 * spec.width
        if orientation in (5, 6, 7, 8):  # these swap the axes
            height, width = width, height
        needed = _needed_source_size(im.size, height, width, spec.resize)
        im.draft("L" if spec.color_mode == "grayscale" else None, needed)
    # Forces the full decode: with Pillow's default settings truncated data
    # raises here ("image file is truncated").
    im.load()
    if method is not None:
        im = im.transpose(method)
    return im


def _check_complete(data, fmt, path):
    """Detect a truncated JPEG or PNG from its markers."""
    if fmt == "JPEG":
        # Entropy-coded data never holds a marker (0xFF is stuffed), so the
        # last start-of-scan must be followed by the end-of-image marker.
        sos = data.rfind(b"\xff\xda")
        if sos < 0 or data.find(b"\xff\xd9", sos) < 0:
            raise ImageLoadError(path, "truncated JPEG (no end-of-image marker)")
    elif fmt == "PNG" and data.rfind(b"IEND") < 0:
        raise ImageLoadError(path, "truncated PNG (no IEND chunk)")


def _needed_source_size(size, height, width, policy):
    """Smallest full-image size that still covers the output grid."""
    src_w, src_h = size
    if policy == "stretch":
        return width, height
    if policy == "crop":
        scale = max(width / src_w, height / src_h)
    else:  # pad
        scale = min(width / src_w, height / src_h)
    return max(1, math.ceil(src_w * scale)), max(1, math.ceil(src_h * scale))


def _to_working_mode(im, color_mode):
    """Convert any Pillow mode to L / RGB (8-bit) or F (float in [0, 1])."""
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(np.asarray(im, dtype=np.float32) / 65535.0)
    if mode == "I":
        # 32-bit integer pixels: 16-bit data (PNG, TIFF) is the common case.
        arr = np.asarray(im, dtype=np.float64)
        if arr.size and arr.min() >= 0 and arr.max() <= 65535:
            return Image.fromarray((arr / 65535.0).astype(np.float32))
        return Image.fromarray(_min_max(arr))
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("floating-point image holds NaN or infinite values")
        if arr.size and arr.min() >= 0 and arr.max() <= 1:
            return im
        return Image.fromarray(_min_max(arr))
    if mode == "1":
        im = im.convert("L")
    elif "transparency" in im.info and mode in ("L", "RGB", "P"):
        im = im.convert("RGBA")
    elif mode == "P":
        im = im.convert("RGB")
    if im.mode in _ALPHA_MODES:
        im = _composite_over_black(im)
    elif im.mode not in ("L", "RGB"):  # CMYK, YCbCr, LAB, HSV, ...
        im = im.convert("RGB")
    if color_mode == "grayscale" and im.mode == "RGB":
        im = im.convert("L")
    return im


def _composite_over_black(im):
    """Drop alpha: the colour is blended over a black background."""
    if im.mode in ("PA", "RGBa"):
        im = im.convert("RGBA")
    elif im.mode == "La":
        im = im.convert("LA")
    base_mode = im.mode[:-1]
    canvas = Image.new(base_mode, im.size, 0)
    canvas.paste(im.convert(base_mode), mask=im.getchannel("A"))
    return canvas


def _min_max(arr):
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def _fit(im, spec):
    """Resize ``im`` to the output grid with the stretch / pad / crop policy."""
    width, height = spec.width, spec.height
    resample = RESAMPLING[spec.interpolation]
    src_w, src_h = im.size
    if spec.resize == "stretch":
        if (src_w, src_h) == (width, height):
            return im
        return im.resize((width, height), resample)
    if spec.resize == "crop":
        # Centre box of the source with the output's aspect ratio.
        if src_w * height > src_h * width:  # source is wider
            box_w = src_h * width / height
            box = ((src_w - box_w) / 2, 0, (src_w + box_w) / 2, src_h)
        else:
            box_h = src_w * height / width
            box = (0, (src_h - box_h) / 2, src_w, (src_h + box_h) / 2)
        return im.resize((width, height), resample, box=box)
    # pad: keep the aspect ratio, letterbox with zeros (black)
    scale = min(width / src_w, height / src_h)
    new_w = min(width, max(1, round(src_w * scale)))
    new_h = min(height, max(1, round(src_h * scale)))
    small = im if (new_w, new_h) == im.size else im.resize((new_w, new_h), resample)
    canvas = Image.new(im.mode, (width, height), 0)
    canvas.paste(small, ((width - new_w) // 2, (height - new_h) // 2))
    return canvas


#: Percentiles mapped to 0 and 1 by ``intensity="stretch"``.
STRETCH_PERCENTILES = (1.0, 99.0)

#: Grey levels of the histogram used by ``intensity="equalize"``.
EQUALIZE_LEVELS = 256


def _normalize_intensity(arr, mode):
    """Per-image intensity normalisation of a float image on [0, 1].

    ``"stretch"`` maps the 1st and 99th percentiles linearly to 0 and 1
    (clipping the tails); ``"equalize"`` applies histogram equalisation
    (each pixel goes to the fraction of pixels darker than it, over
    :data:`EQUALIZE_LEVELS` grey levels). Both use one mapping for all the
    channels, so grey stays grey; a constant image becomes all zeros.
    """
    if mode == "raw":
        return arr
    if mode == "stretch":
        low, high = np.percentile(arr, STRETCH_PERCENTILES)
        if high <= low:
            return np.zeros_like(arr)
        return np.clip((arr - low) / (high - low), 0.0, 1.0).astype(arr.dtype, copy=False)
    levels = EQUALIZE_LEVELS
    index = np.minimum((arr * levels).astype(np.intp), levels - 1)
    hist = np.bincount(index.ravel(), minlength=levels)
    cdf = np.cumsum(hist)
    darkest = cdf[np.flatnonzero(hist)[0]]  # pixels at the lowest level present
    span = cdf[-1] - darkest
    if span == 0:
        return np.zeros_like(arr)
    lut = np.clip((cdf - darkest) / span, 0.0, 1.0).astype(arr.dtype)
    return lut[index]


def _to_array(im, spec):
    arr = np.asarray(im)
    dtype = np.dtype(spec.dtype)
    if arr.dtype == np.uint8:
        out = arr.astype(dtype)
        out /= dtype.type(255)
    else:  # float (F) images are already on [0, 1]; interpolation may overshoot
        out = np.clip(arr, 0.0, 1.0).astype(dtype, copy=False)
    out = _normalize_intensity(out, spec.intensity)
    if out.ndim == 2:
        out = out[:, :, np.newaxis]
    if spec.color_mode == "rgb" and out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return out


# --------------------------------------------------------------------- DICOM
def _import_pydicom(path):
    try:
        import pydicom
    except ImportError as exc:
        raise ImportError(
            f"reading the DICOM file '{path}' needs the optional dependency "
            "pydicom: pip install cxrlearn[dicom]"
        ) from exc
    try:  # pydicom >= 3
        from pydicom.pixels import apply_modality_lut, apply_windowing
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_windowing
    return pydicom, apply_modality_lut, apply_windowing


def _read_dicom(fh, path, max_pixels):
    """Read a single-frame DICOM; return an F image in [0, 1] or an RGB one."""
    pydicom, modality_lut, windowing = _import_pydicom(path)
    try:
        ds = pydicom.dcmread(fh)
    except pydicom.errors.InvalidDicomError as exc:
        raise ImageLoadError(path, f"not a valid DICOM file ({exc})") from exc
    if "PixelData" not in ds:
        raise ImageLoadError(path, "DICOM file has no pixel data")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames > 1:
        raise ImageLoadError(
            path, f"multi-frame DICOM ({n_frames} frames) is not supported"
        )
    _check_pixels(path, int(ds.Columns), int(ds.Rows), max_pixels)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB"):
        raise ImageLoadError(
            path, f"unsupported DICOM PhotometricInterpretation '{photometric}'"
        )
    try:
        arr = ds.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax)
        raise ImageLoadError(
            path,
            f"cannot decode DICOM pixel data (transfer syntax {name}): {exc}",
        ) from exc
    if photometric == "RGB":
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ImageLoadError(
                path, "only 8-bit single-frame RGB DICOM colour images are supported"
            )
        return Image.fromarray(arr)
    if arr.ndim != 2:
        raise ImageLoadError(
            path, f"expected a 2-D DICOM image, got pixel data of shape {arr.shape}"
        )
    values = np.asarray(modality_lut(arr, ds))
    if "VOILUTSequence" in ds:
        values, lo, hi = _voi_lut_table(values, ds)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        values = np.asarray(windowing(values, ds, index=0), dtype=np.float64)
        # The window's output range, exactly as pydicom defines it.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            lo, hi = windowing(np.array([-np.inf, np.inf]), ds, index=0)
    else:  # no VOI: stretch the stored range of this image
        values = values.astype(np.float64)
        lo, hi = float(values.min()), float(values.max())
    if hi > lo:
        scaled = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    else:
        scaled = np.zeros_like(values)
    if photometric == "MONOCHROME1":  # low values are white
        scaled = 1.0 - scaled
    return Image.fromarray(scaled.astype(np.float32))


def _voi_lut_table(values, ds):
    """Apply the first VOI LUT table; return the values and their range.

    Done here rather than with ``pydicom.pixels.apply_voi_lut``, which (in
    pydicom 3.0) indexes 8-bit tables with 8-bit integers and so wraps any
    input value above 255.
    """
    item = ds.VOILUTSequence[0]
    n_entries, first_map, bits = (int(v) for v in item.LUTDescriptor)
    n_entries = n_entries or 65536
    elem = item["LUTData"]
    if elem.VR == "OW" or isinstance(elem.value, bytes):
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        little = getattr(syntax, "is_little_endian", True) is not False
        table = np.frombuffer(elem.value, dtype="<u2" if little else ">u2")
    else:
        table = np.asarray(elem.value)
    table = np.asarray(table[:n_entries], dtype=np.float64)
    index = np.clip(np.rint(values) - first_map, 0, len(table) - 1).astype(np.intp)
    return table[index], 0.0, 2.0**bits - 1

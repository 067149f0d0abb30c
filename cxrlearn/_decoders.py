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
import struct
import zlib
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageMode, ImageOps

__all__ = ["DecodeSpec", "ImageLoadError", "RESAMPLING", "decode_bytes", "decode_file"]

#: Bumped whenever the decoding output changes, so stale caches are not reused.
#: 2: damaged files that used to load partially now raise, so partial images
#: cached by version 1 must not be served (valid files decode as before).
#: 3: JPEGs are decoded at the smallest DCT scale that still covers the
#: output (not twice it) and resized from the exact area that scale holds;
#: pixels move by about 0.001 on average (see docs/loading.rst).
DECODER_VERSION = 3

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

#: EXIF orientations that swap width and height (transpose / rotate 90).
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_DICOM_SUFFIXES = {".dcm", ".dicom"}


class ImageLoadError(ValueError):
    """Raised when an image file cannot be turned into pixels.

    The message names the offending file and the cause, and -- when the
    file was read by a Dask or joblib worker -- that worker (its address,
    host and process id), since a path can be readable on one machine and
    not on another. The original exception, when there is one, is chained
    as ``__cause__``. The error pickles, worker included, so it reaches the
    caller of a distributed grid search unchanged.

    Parameters
    ----------
    path : str
        The file that could not be loaded.
    reason : str
        Why, in a few words.
    worker : str or None, default=None
        Where the file was read; found out when None (a Dask worker's
        address, a joblib worker process; nothing in any other process).
        ``""`` names no worker.

    Attributes
    ----------
    path : str
        The file that could not be loaded.
    reason : str
        Why it could not be loaded.
    worker : str or None
        The worker that could not load it, or None outside workers.

    Examples
    --------
    >>> from cxrlearn._decoders import ImageLoadError
    >>> err = ImageLoadError("scan.png", "empty file (0 bytes)")
    >>> print(err)
    cannot load image 'scan.png': empty file (0 bytes)
    >>> isinstance(err, ValueError)
    True
    >>> where = "Dask worker tcp://10.0.0.5:40123"
    >>> print(ImageLoadError("scan.png", "file not found", worker=where))
    cannot load image 'scan.png': file not found (on Dask worker tcp://10.0.0.5:40123)
    """

    def __init__(self, path, reason, worker=None):
        self.path = os.fspath(path)
        self.reason = reason
        if worker is None:
            from .utils._threads import worker_description

            worker = worker_description()
        self.worker = worker or None
        where = f" (on {self.worker})" if self.worker else ""
        super().__init__(f"cannot load image '{self.path}': {reason}{where}")

    def __reduce__(self):
        # Keeps the exception picklable, so it crosses process boundaries
        # naming the worker where it arose (not the one that unpickles it).
        return type(self), (self.path, self.reason, self.worker or "")


class DecodeSpec(NamedTuple):
    """What to produce from a file (everything that changes the pixels)."""

    height: int
    width: int
    color_mode: str  # "rgb" or "grayscale"
    resize: str  # "stretch", "pad" or "crop"
    interpolation: str  # a key of RESAMPLING
    dtype: str  # a floating dtype name
    intensity: str = "raw"  # "raw", "stretch" or "equalize"

    def batch_shape(self, n):
        """Shape of ``n`` decoded images stacked: ``(n, height, width, channels)``."""
        return (n, self.height, self.width, 3 if self.color_mode == "rgb" else 1)


def decode_file(path, spec, max_pixels=None, max_decoded_bytes=None, *, out=None):
    """Decode one image file into a ``(height, width, channels)`` array.

    The pixel data is decoded completely or not at all: a file whose data
    cannot be decoded to its end raises, it never yields a partial image.

    Parameters
    ----------
    path : str or os.PathLike
        PNG, JPEG (or another raster format Pillow reads) or DICOM file.
    spec : DecodeSpec
        Output size, colour mode, resize policy, interpolation and dtype.
    max_pixels : int or None, default=None
        Refuse images with more pixels than this (decompression bombs).
        Pillow's own hard limit, twice ``PIL.Image.MAX_IMAGE_PIXELS``, applies
        to the files Pillow reads in any case.
    max_decoded_bytes : int or None, default=None
        Refuse images whose decoded pixel data would take more bytes than
        this, computed from the header before any pixel is decoded: width x
        height x the bytes a pixel takes in Pillow's mode (4 for every
        multi-band mode), after JPEG's reduced-scale ``draft``; for DICOM
        rows x columns x samples per pixel x bytes allocated per sample.
    out : ndarray of shape (spec.height, spec.width, channels) or None, \
default=None
        Where to write the image (of dtype ``spec.dtype``), for example a
        row of a preallocated batch: 8-bit images are then converted to
        floats straight into it, with no temporary array of that size (the
        page faults of a fresh array per image cost about a fifth of the
        decoding time with two threads). Left in an unspecified state on
        error.

    Returns
    -------
    image : ndarray of shape (spec.height, spec.width, channels)
        Values in ``[0, 1]``; ``channels`` is 1 for grayscale, 3 for RGB.
        ``out`` when given.

    Raises
    ------
    ImageLoadError
        Whenever the file is missing, empty, not an image, corrupt or
        truncated (anywhere in its pixel data), has a damaged EXIF block,
        is too large, is a DICOM whose values become NaN or infinite, or an
        unsupported DICOM.
    """
    path = os.fspath(path)
    _check_file(path)

    def read():
        with open(path, "rb") as fh:
            is_dicom = fh.read(132)[128:132] == b"DICM" or (
                os.path.splitext(path)[1].lower() in _DICOM_SUFFIXES
            )
            fh.seek(0)
            if is_dicom:  # pydicom reads the file itself: no second copy of it
                return _read_dicom(fh, path, max_pixels, max_decoded_bytes), None
            data = fh.read()
        return _read_pillow(data, path, spec, max_pixels, max_decoded_bytes)

    return _decode_guarded(path, spec, read, out)


def decode_bytes(data, name, spec, max_pixels=None, max_decoded_bytes=None, *, dicom=False):
    """:func:`decode_file` on the bytes of a file already in memory (an upload).

    Parameters
    ----------
    data : bytes
        The file's content.
    name : str
        What errors call the file (e.g. an upload's name); never opened.
    spec : DecodeSpec
        Output size, colour mode, resize policy, interpolation and dtype.
    max_pixels, max_decoded_bytes : int or None, default=None
        As in :func:`decode_file`.
    dicom : bool, default=False
        Read ``data`` as DICOM (with pydicom) rather than with Pillow.

    Returns
    -------
    image : ndarray of shape (spec.height, spec.width, channels)
        Exactly what :func:`decode_file` gives for a file with these bytes.

    Raises
    ------
    ImageLoadError
        As :func:`decode_file` does.
    """
    if not data:
        raise ImageLoadError(name, "empty file (0 bytes)")

    def read():
        if dicom:
            return _read_dicom(io.BytesIO(data), name, max_pixels, max_decoded_bytes), None
        return _read_pillow(data, name, spec, max_pixels, max_decoded_bytes)

    return _decode_guarded(name, spec, read)


def _decode_guarded(name, spec, read, out=None):
    """``read()`` an image, fit it to ``spec``; every failure names the file.

    ``read()`` returns ``(image, box)``: ``box`` is the area of ``image`` that
    holds the whole picture (see :func:`_read_pillow`), None for all of it.
    """
    try:
        image, box = read()
        image = _fit(_to_working_mode(image, spec.color_mode), spec, box)
    except (ImageLoadError, ImportError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, f"possible decompression bomb: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageLoadError(
            name, "not a recognised image file (unknown format or not an image)"
        ) from exc
    except Exception as exc:  # every decoder failure must name the file
        raise ImageLoadError(
            name, f"corrupt or unreadable image data ({type(exc).__name__}: {exc})"
        ) from exc
    return _to_array(image, spec, out)


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


def _check_pixels(path, width, height, max_pixels, pillow_limit=False):
    pixels = width * height
    if max_pixels is not None and pixels > max_pixels:
        raise ImageLoadError(
            path,
            f"{width}x{height} = {pixels} pixels exceeds max_pixels="
            f"{max_pixels} (possible decompression bomb)",
        )
    # Pillow's own hard limit, which Image.open would enforce (see _open_image).
    hard = Image.MAX_IMAGE_PIXELS
    if pillow_limit and hard is not None and pixels > 2 * hard:
        raise ImageLoadError(
            path,
            f"{width}x{height} = {pixels} pixels exceeds Pillow's limit of "
            f"2 x PIL.Image.MAX_IMAGE_PIXELS = {2 * hard} (possible decompression bomb)",
        )


def _check_decoded_bytes(path, n_bytes, what, max_decoded_bytes):
    if max_decoded_bytes is not None and n_bytes > max_decoded_bytes:
        raise ImageLoadError(
            path,
            f"decoding needs about {n_bytes} bytes ({n_bytes / 2**20:.0f} MiB: {what}), "
            f"more than max_decoded_bytes={max_decoded_bytes} "
            f"({max_decoded_bytes / 2**20:.0f} MiB); raise ImageLoader(max_decoded_bytes=...) "
            "or set it to None to load such files",
        )


def _pillow_decoded_bytes(mode, width, height):
    """Bytes Pillow allocates for a decoded image of this mode and size.

    Pillow stores every multi-band mode (RGB and LA included) in 4 bytes a
    pixel, single-band modes in 1 (``L``, ``P``, ``1``), 2 (``I;16``) or 4
    (``I``, ``F``) bytes.
    """
    info = ImageMode.getmode(mode)
    per_pixel = 4 if len(info.bands) > 1 else np.dtype(info.typestr).itemsize
    return width * height * per_pixel


def _open_image(fh):
    """``Image.open`` without its ``DecompressionBombWarning``.

    ``Image.open`` warns through the process-wide :mod:`warnings` machinery
    for images above ``PIL.Image.MAX_IMAGE_PIXELS``; the warning cannot be
    silenced for one call in a thread-safe way, and changing Pillow's global
    would change it for the whole application. The caller's ``max_pixels`` /
    ``max_decoded_bytes`` checks (and Pillow's hard limit, re-checked in
    :func:`_check_pixels`) stand in for it. This is the identification loop
    of ``Image.open`` over Pillow's public format registry (``Image.ID``,
    ``Image.OPEN``), minus the bomb check.
    """
    prefix = fh.read(16)
    tried = set()
    for register in (Image.preinit, Image.init):  # common plugins first, as Pillow
        register()
        for fmt in tuple(Image.ID):
            if fmt in tried:
                continue
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            verdict = True if accept is None else accept(prefix)
            if not verdict or isinstance(verdict, str):  # a str: "no", with a reason
                continue
            fh.seek(0)
            try:
                return factory(fh, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue  # not this format after all (what Image.open does too)
    raise Image.UnidentifiedImageError("cannot identify image file")


def _orientation(im, path):
    """The EXIF orientation (1 to 8) of an opened image; never guesses.

    The raw EXIF block is parsed afresh: Pillow's ``getexif`` caches an empty
    result when parsing failed once (the JPEG plugin tries at open time to
    read the DPI and swallows the error). EXIF has no checksum, so damage is
    only visible when the block does not parse or the value is not an
    orientation; both raise rather than silently give a wrongly oriented
    image. 0 ("unspecified", written by some software) means no rotation.
    """
    try:
        raw = im.info.get("exif")
        if raw:
            Image.Exif().load(raw)  # raises on a block Pillow cannot parse
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception as exc:
        raise ImageLoadError(
            path,
            f"damaged EXIF block, the orientation cannot be read ({type(exc).__name__}: {exc})",
        ) from exc
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 8:
        raise ImageLoadError(
            path, f"invalid EXIF orientation {value!r} (expected 1 to 8): damaged EXIF block"
        )
    return value or 1


def _read_pillow(data, path, spec, max_pixels, max_decoded_bytes):
    """Open with Pillow, decode fully, orient; return ``(image, box)``.

    ``image`` is of any mode. ``box`` is None, or for a JPEG decoded at
    reduced scale the ``(left, top, right, bottom)`` area of ``image`` (in
    float pixels, after the EXIF orientation) that the whole picture maps
    to: libjpeg rounds the reduced size up, so the last row and column only
    partly belong to the picture. Resizing from ``box`` keeps the geometry
    of a full-resolution decode.

    Every decoding error propagates: the pixels are decoded completely before
    anything else reads the file (PNG keeps EXIF after the pixel data, and
    reading it first used to decode the pixels inside an error-swallowing
    ``try``, leaving a partial image behind).
    """
    im = _open_image(io.BytesIO(data))
    _check_pixels(path, im.width, im.height, max_pixels, pillow_limit=True)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone switched Pillow's truncation check off (it is on by
        # default and cxrlearn never changes it): check the structure here.
        _check_complete(data, im.format, path)
    orientation = box = None
    if im.format == "JPEG":
        # Let libjpeg downscale by 1/2, 1/4 or 1/8 while decoding: the
        # largest factor that still keeps at least the output resolution.
        # Its scaled inverse DCT low-passes the picture as it shrinks it,
        # and the final (antialiased) resize has less to do: an image costs
        # about a fifth less CPU than when twice the output resolution was
        # kept, and pixels differ from a full decode by ~0.001 on average
        # (docs/loading.rst gives the figures).
        # draft() must come before the decode and needs the orientation,
        # which JPEG keeps in a header segment: reading it decodes no pixel.
        height, width = spec.height, spec.width
        orientation = _orientation(im, path)
        if orientation in _SWAPPING_ORIENTATIONS:
            height, width = width, height
        needed = _needed_source_size(im.size, height, width, spec.resize)
        drafted = im.draft("L" if spec.color_mode == "grayscale" else None, needed)
        if drafted is not None and drafted[1][2:] != im.size:
            box = drafted[1]  # (0, 0, width / scale, height / scale)
    # After draft(), which shrinks what JPEG decodes; nothing is decoded yet.
    _check_decoded_bytes(
        path,
        _pillow_decoded_bytes(im.mode, im.width, im.height),
        f"{im.width}x{im.height} {im.format} pixels in mode {im.mode}",
        max_decoded_bytes,
    )
    if im.format == "PNG":  # after the limits: it inflates the whole stream
        _check_png_pixel_data(data, path)
    # The full decode: with Pillow's default settings truncated or corrupt
    # data raises here ("image file is truncated", "broken data stream").
    im.load()
    if orientation is None:  # other formats may keep EXIF after the pixels
        orientation = _orientation(im, path)
    if orientation != 1:  # validated above, applied by ImageOps
        if box is not None:
            box = _oriented_box(box, im.size, orientation)
        ImageOps.exif_transpose(im, in_place=True)
    return im, box


def _oriented_box(box, size, orientation):
    """Where the area ``box`` of an image of ``size`` goes after an EXIF
    orientation, as :func:`PIL.ImageOps.exif_transpose` applies it.

    Orientation 2 flips left-right, 3 rotates by 180 degrees, 4 flips
    top-bottom, 5 transposes, 6 rotates by 90 degrees clockwise, 7
    transverses and 8 rotates by 90 degrees counter-clockwise.
    """
    width, height = size
    left, top, right, bottom = box
    if orientation in (2, 3):  # mirrored left-right
        left, right = width - right, width - left
    if orientation in (3, 4):  # mirrored top-bottom
        top, bottom = height - bottom, height - top
    if orientation in _SWAPPING_ORIENTATIONS:
        if orientation in (6, 7):  # the old bottom row ends up on the left
            top, bottom = height - bottom, height - top
        if orientation in (7, 8):  # the old right column ends up at the top
            left, right = width - right, width - left
        left, top, right, bottom = top, left, bottom, right
    return left, top, right, bottom


def _check_complete(data, fmt, path):
    """Detect a truncated JPEG or PNG from its markers.

    Only needed when ``ImageFile.LOAD_TRUNCATED_IMAGES`` is on: Pillow then
    returns a partial image instead of raising. A JPEG's compressed data can
    only be checked by decoding it, so a JPEG is only checked for its end.
    """
    if fmt == "JPEG":
        # Entropy-coded data never holds a marker (0xFF is stuffed), so the
        # last start-of-scan must be followed by the end-of-image marker.
        sos = data.rfind(b"\xff\xda")
        if sos < 0 or data.find(b"\xff\xd9", sos) < 0:
            raise ImageLoadError(path, "truncated JPEG (no end-of-image marker)")
    elif fmt == "PNG" and data.rfind(b"IEND") < 0:
        # (damaged PNG pixel data is checked in any case: _check_png_pixel_data)
        raise ImageLoadError(path, "truncated PNG (no IEND chunk)")


#: Adam7 interlacing passes: first column, first row, column step, row step.
_ADAM7 = (
    (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
    (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2),
)
#: Samples per pixel of each PNG colour type.
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _check_png_pixel_data(data, path):
    """A PNG's IDAT data must inflate completely to the size the header implies.

    Pillow accepts a zlib stream that ends before the last row (the missing
    rows stay black) and stops reading once it has every row, often before
    the stream's Adler-32 checksum, the only check of the pixel data itself
    (chunk CRCs are easily rewritten); with ``LOAD_TRUNCATED_IMAGES`` on it
    also keeps an image whose stream breaks off. zlib verifies the checksum
    at the end of the stream, so requiring the end, with exactly the bytes
    IHDR announces, catches all three. Inflated in 1 MiB pieces, so the
    check holds little memory; it costs a second inflate of the file.
    (Written here because no dependency offers a strict PNG check: Pillow's
    ``verify()`` checks chunk CRCs only.)
    """
    inflater, view = zlib.decompressobj(), memoryview(data)
    expected, total, pos = None, 0, 8
    try:
        while pos + 8 <= len(data) and not inflater.eof:
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            ctype, body = data[pos + 4 : pos + 8], view[pos + 8 : pos + 8 + length]
            if ctype == b"IEND":
                break
            if ctype == b"IHDR":
                expected = _png_raw_size(*struct.unpack(">IIBBBBB", body[:13]))
            elif ctype == b"IDAT" and expected is not None:
                pending = body
                while True:
                    out = inflater.decompress(pending, 1 << 20)
                    total += len(out)
                    pending = inflater.unconsumed_tail
                    if total > expected:
                        raise ImageLoadError(
                            path,
                            f"corrupt PNG pixel data, longer than the {expected} bytes "
                            "its header announces",
                        )
                    if inflater.eof or not (pending or out):
                        break
            pos += 12 + length
    except zlib.error as exc:
        raise ImageLoadError(path, f"corrupt PNG pixel data (zlib: {exc})") from exc
    except struct.error as exc:
        raise ImageLoadError(path, "corrupt PNG header (malformed IHDR chunk)") from exc
    if not inflater.eof or total != expected:
        raise ImageLoadError(
            path,
            f"corrupt or truncated PNG pixel data ({total} bytes inflated, "
            f"{expected} expected{'' if inflater.eof else ', stream incomplete'})",
        )


def _png_raw_size(width, height, depth, color, _compression, _filter, interlace):
    """Bytes of a PNG's inflated IDAT data (a filter byte starts each row)."""
    bits = depth * _PNG_SAMPLES.get(color, 0)
    size = 0
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):
        cols, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if cols > 0 and rows > 0:
            size += rows * (1 + (cols * bits + 7) // 8)
    return size


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
        arr = np.asarray(im, dtype=np.float32)
        arr /= np.float32(65535.0)  # in place: one float copy of a big image, not two
        return Image.fromarray(arr)
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


def _fit(im, spec, box=None):
    """Resize ``im`` to the output grid with the stretch / pad / crop policy.

    ``box`` is the float area of ``im`` that holds the picture (a JPEG
    decoded at reduced scale, see :func:`_read_pillow`); None for all of it.
    """
    width, height = spec.width, spec.height
    resample = RESAMPLING[spec.interpolation]
    if box is None:
        src_w, src_h = im.size
    else:
        src_w, src_h = box[2] - box[0], box[3] - box[1]
    if spec.resize == "stretch":
        if box is None and (src_w, src_h) == (width, height):
            return im
        return im.resize((width, height), resample, box=box)
    if spec.resize == "crop":
        # Centre box of the source with the output's aspect ratio, resized
        # from the float box in one step.
        if box is None:
            return ImageOps.fit(im, (width, height), resample)
        # The same centre box as ImageOps.fit, taken inside ``box``.
        if src_w / src_h >= width / height:
            crop_w, crop_h = width / height * src_h, src_h
        else:
            crop_w, crop_h = src_w, src_w / (width / height)
        left = box[0] + (src_w - crop_w) * 0.5
        top = box[1] + (src_h - crop_h) * 0.5
        return im.resize((width, height), resample, box=(left, top, left + crop_w, top + crop_h))
    # pad: keep the aspect ratio, letterbox with zeros (black). Not
    # ImageOps.pad: it rounds the size and the offset differently (an odd
    # margin goes to the top / left one pixel in two), which would move the
    # image and change the output of existing pipelines.
    scale = min(width / src_w, height / src_h)
    new_w = min(width, max(1, round(src_w * scale)))
    new_h = min(height, max(1, round(src_h * scale)))
    if box is not None:
        small = im.resize((new_w, new_h), resample, box=box)
    else:
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


def _to_array(im, spec, out=None):
    """The pixels of ``im`` as floats in ``[0, 1]``, shaped and typed by ``spec``.

    With ``out`` the result is written there. An 8-bit image without
    intensity normalisation is then divided by 255 straight into ``out``
    (a grey image broadcast to the three RGB channels), which gives the
    same values as the steps below without their temporary arrays.
    """
    arr = np.asarray(im)
    dtype = np.dtype(spec.dtype)
    if out is not None:
        if arr.dtype == np.uint8 and spec.intensity == "raw":
            np.divide(arr if arr.ndim == 3 else arr[:, :, np.newaxis], dtype.type(255),
                      out=out, dtype=dtype)
        else:
            out[...] = _to_array(im, spec)
        return out
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


def _dicom_decoded_bytes(ds):
    """Bytes of a DICOM's decoded pixel data, from its header."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return int(ds.Rows) * int(ds.Columns) * samples * frames * math.ceil(bits / 8)


def _read_dicom(fh, path, max_pixels, max_decoded_bytes=None):
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
    _check_decoded_bytes(
        path,
        _dicom_decoded_bytes(ds),
        f"{int(ds.Columns)}x{int(ds.Rows)} DICOM pixels, "
        f"{ds.get('BitsAllocated', '?')} bits allocated",
        max_decoded_bytes,
    )
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
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(modality_lut(arr, ds))
    _check_finite(values, ds, path, "the modality LUT")
    if "VOILUTSequence" in ds:
        values, lo, hi = _voi_lut_table(values, ds)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        # The window and its output range, exactly as pydicom defines them
        # (a NaN or infinite window is refused below, without warnings).
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            values = np.asarray(windowing(values, ds, index=0), dtype=np.float64)
            lo, hi = windowing(np.array([-np.inf, np.inf]), ds, index=0)
    else:  # no VOI: stretch the stored range of this image
        values = values.astype(np.float64)
        lo, hi = float(values.min()), float(values.max())
    _check_finite(values, ds, path, "the VOI window / LUT")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageLoadError(
            path, f"non-finite VOI output range [{lo}, {hi}] ({_dicom_voi_attrs(ds)})"
        )
    # In place: ``values`` is always a fresh float64 array here, and a big
    # image then holds one float64 copy instead of three.
    if hi > lo:
        values -= lo
        values /= hi - lo
        scaled = np.clip(values, 0.0, 1.0, out=values)
    else:
        scaled = np.zeros_like(values)
    if photometric == "MONOCHROME1":  # low values are white
        np.subtract(1.0, scaled, out=scaled)
    scaled = scaled.astype(np.float32)
    del values
    return Image.fromarray(scaled)


def _dicom_voi_attrs(ds):
    keys = ("WindowCenter", "WindowWidth", "VOILUTFunction")
    return ", ".join(f"{k}={ds.get(k)}" for k in keys if k in ds) or "VOI LUT table"


def _check_finite(values, ds, path, step):
    """A DICOM whose rescale or window gives NaN / infinity is damaged.

    Scaling such values to [0, 1] would give an all-zero (or partly zero)
    image that looks valid downstream.
    """
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        attrs = ", ".join(
            f"{k}={ds.get(k)}" for k in ("RescaleSlope", "RescaleIntercept") if k in ds
        )
        if step != "the modality LUT":
            attrs = ", ".join(filter(None, [attrs, _dicom_voi_attrs(ds)]))
        raise ImageLoadError(
            path,
            f"non-finite pixel values after {step} ({attrs or 'Modality LUT Sequence'})",
        )


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

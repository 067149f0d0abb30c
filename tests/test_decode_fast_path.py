"""The reduced-scale JPEG path stays within its stated tolerance of a full decode.

JPEGs are decoded by libjpeg at the smallest 1/2, 1/4 or 1/8 scale that
still covers the output, then resized from the exact area of the reduced
image that the picture maps to (libjpeg rounds the reduced size up). The
reference here is the straightforward path: a full-resolution decode with
Pillow, the EXIF orientation applied, saved losslessly as PNG (which the
loader never decodes at reduced scale) and fitted by the same resize code.

Tolerance, per image, against that reference: mean absolute difference at
most 0.005 and every pixel within 0.06 on these smooth, noisy test images
(on the 400 Kermany originals the mean is 0.0012; see docs/loading.rst). A
resize from the whole reduced image, or an orientation applied to the
wrong area, misses it (means of 0.007 to 0.045 on the same images).
"""

import pickle

import numpy as np
import pytest
from PIL import Image, ImageOps

from cxrlearn._decoders import DECODER_VERSION, DecodeSpec, _oriented_box, decode_file
from cxrlearn._loading import _SharedRows

MEAN_TOLERANCE = 0.005
MAX_TOLERANCE = 0.06


def xray_like(height, width, rgb, seed):
    """Smooth anatomy-like shading, a bright disc, a dark film edge, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    disc = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (min(height, width) / 3) ** 2
    arr = (0.5 + 0.3 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + 0.15 * disc) * 255
    arr[:, : width // 9] = 20
    arr = np.clip(arr + rng.normal(0, 4, arr.shape), 0, 255).astype(np.uint8)
    if rgb:
        arr = np.stack([arr, (arr * 0.9).astype(np.uint8), arr], axis=-1)
    return arr


def write_jpeg(path, arr, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, quality=92, exif=exif.tobytes())
    return str(path)


def reference(path, spec, tmp_path):
    """Full decode, orientation applied, then the loader's resize of a PNG."""
    with Image.open(path) as im:
        im.load()
        upright = ImageOps.exif_transpose(im)
    png = tmp_path / "reference.png"
    upright.save(png)
    return decode_file(png, spec)


# (height, width) not multiples of 8 or of the scale; output (h, w); orientation
CASES = [
    ((203, 157), False, (24, 29), 1),  # 1/4 scale, no rotation
    ((250, 333), True, (40, 45), 6),  # colour, rotated 90 degrees clockwise
    ((261, 199), False, (30, 35), 3),  # rotated 180 degrees: the partial edge moves
    ((403, 301), False, (48, 53), 8),  # rotated 90 degrees counter-clockwise, 1/4
    ((333, 251), True, (16, 21), 5),  # transposed, 1/8 scale
]


@pytest.mark.parametrize("shape, rgb, size, orientation", CASES)
def test_reduced_scale_jpeg_is_within_tolerance_of_full_decode(
    tmp_path, shape, rgb, size, orientation
):
    path = write_jpeg(tmp_path / "x.jpeg", xray_like(*shape, rgb, seed=orientation), orientation)
    for resize in ("stretch", "pad", "crop"):
        for color_mode in ("rgb", "grayscale"):
            spec = DecodeSpec(*size, color_mode, resize, "bilinear", "float32")
            fast = decode_file(path, spec)
            ref = reference(path, spec, tmp_path)
            assert fast.shape == ref.shape == (*size, 3 if color_mode == "rgb" else 1)
            diff = np.abs(fast - ref)
            assert diff.mean() <= MEAN_TOLERANCE, (resize, color_mode, diff.mean())
            assert diff.max() <= MAX_TOLERANCE, (resize, color_mode, diff.max())


def test_reduced_scale_is_really_used(tmp_path, monkeypatch):
    """The cases above go through draft() with a partly filled edge."""
    seen = []
    original = Image.Image.resize

    def spy(self, size, resample=None, box=None, reducing_gap=None):
        seen.append((self.size, box))
        return original(self, size, resample, box, reducing_gap)

    monkeypatch.setattr(Image.Image, "resize", spy)
    path = write_jpeg(tmp_path / "x.jpeg", xray_like(203, 157, False, 0), 1)
    decode_file(path, DecodeSpec(24, 29, "grayscale", "stretch", "bilinear", "float32"))
    # 157 x 203 at 1/4 scale: 40 x 51 pixels, the picture fills 39.25 x 50.75
    assert seen == [((40, 51), (0, 0, 39.25, 50.75))]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_oriented_box_follows_exif_transpose(orientation):
    """The picture's area moves exactly as ImageOps.exif_transpose moves pixels."""
    arr = np.zeros((5, 7), np.uint8)  # 7 wide, 5 high
    arr[:3, :4] = 255  # the area (0, 0, 4, 3)
    im = Image.fromarray(arr)
    im.getexif()[0x0112] = orientation
    moved = np.asarray(ImageOps.exif_transpose(im))
    rows, cols = np.nonzero(moved)
    expected = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    assert _oriented_box((0, 0, 4, 3), (7, 5), orientation) == expected


def test_jpeg_no_bigger_than_the_output_is_decoded_at_full_scale(tmp_path):
    """No reduced scale, no resize: exactly Pillow's pixels."""
    arr = xray_like(40, 30, False, 1)
    spec = DecodeSpec(40, 30, "grayscale", "stretch", "bilinear", "float32")
    path = write_jpeg(tmp_path / "small.jpeg", arr, 1)
    with Image.open(path) as im:
        full = np.asarray(im, dtype=np.float32)[..., None] / np.float32(255)
    np.testing.assert_array_equal(decode_file(path, spec), full)


def test_decoder_version_was_bumped():
    """Pixels changed with the reduced-scale path: old cache entries are stale."""
    assert DECODER_VERSION >= 3


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("intensity", ["raw", "equalize"])
def test_decoding_into_a_buffer_gives_the_same_values(tmp_path, dtype, intensity):
    """``out=`` (a row of the batch) changes where pixels go, never their values."""
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (23, 31), dtype=np.uint8)
    files = [
        write_jpeg(tmp_path / "grey.jpeg", xray_like(90, 70, False, 0), 6),
        str(tmp_path / "grey.png"),
        str(tmp_path / "colour.png"),
        str(tmp_path / "grey16.png"),
    ]
    Image.fromarray(grey).save(files[1])
    Image.fromarray(np.stack([grey, grey[::-1], 255 - grey], axis=-1)).save(files[2])
    Image.fromarray(grey.astype(np.uint16) * 257).save(files[3])
    for color_mode, channels in (("rgb", 3), ("grayscale", 1)):
        spec = DecodeSpec(12, 17, color_mode, "stretch", "bilinear", dtype, intensity)
        for path in files:
            expected = decode_file(path, spec)
            buffer = np.full((12, 17, channels), np.nan, dtype=dtype)
            assert decode_file(path, spec, out=buffer) is buffer
            assert buffer.dtype == expected.dtype
            np.testing.assert_array_equal(buffer, expected)


def test_shared_rows_carry_no_pixels_to_worker_processes():
    """Threads fill the output in place; a pickled task ships no pixels."""
    rows = _SharedRows(np.zeros((16, 224, 224, 3), np.float32))
    blob = pickle.dumps(rows)
    assert len(blob) < 200 and pickle.loads(blob).array is None

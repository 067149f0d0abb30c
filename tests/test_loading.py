"""ImageLoader, LazyImages and the decoders: formats, geometry, errors, caching."""

import io
import os
import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from PIL import Image, ImageFile
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import cxrlearn._loading as loading
from cxrlearn._decoders import RESAMPLING
from cxrlearn._loading import ImageLoader, ImageLoadError, LazyImages


def save(path, image, **kwargs):
    """Save an array or PIL image to ``path`` and return it as a str."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(path, **kwargs)
    return str(path)


def gray(h, w, value):
    return np.full((h, w), value, dtype=np.uint8)


def halves(h, w, left=0, right=255):
    """Left half ``left``, right half ``right``."""
    arr = np.full((h, w), left, dtype=np.uint8)
    arr[:, w // 2 :] = right
    return arr


@pytest.fixture
def png_paths(tmp_path):
    """Six small PNGs of different sizes and intensities."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        arr = rng.integers(0, 256, size=(20 + 3 * i, 30 - 2 * i), dtype=np.uint8)
        paths.append(save(tmp_path / f"img{i}.png", arr))
    return paths


# ------------------------------------------------------------ modes / depths
@pytest.mark.parametrize("color_mode, channels", [("rgb", 3), ("grayscale", 1)])
def test_8bit_gray_png_scaled_by_255(tmp_path, color_mode, channels):
    path = save(tmp_path / "a.png", gray(6, 5, 51))
    X = ImageLoader((6, 5), color_mode=color_mode).transform([path])
    assert X.shape == (1, 6, 5, channels)
    assert X.dtype == np.float32
    np.testing.assert_allclose(X, 51 / 255)


def test_16bit_png_scaled_by_65535(tmp_path):
    arr = np.array([[0, 1000, 32768], [65535, 257, 12345]], dtype=np.uint16)
    path = save(tmp_path / "a16.png", arr)
    with Image.open(path) as im:
        assert im.mode.startswith("I;16")
    X = ImageLoader((2, 3), color_mode="grayscale", dtype="float64").transform([path])
    np.testing.assert_allclose(X[0, :, :, 0], arr / 65535.0, rtol=1e-7)


def test_16bit_and_8bit_of_same_picture_agree(tmp_path):
    arr8 = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    p8 = save(tmp_path / "a8.png", arr8)
    p16 = save(tmp_path / "a16.png", arr8.astype(np.uint16) * 257)
    X = ImageLoader((4, 6)).transform([p8, p16])
    np.testing.assert_allclose(X[0], X[1], atol=1e-6)


def test_rgb_to_grayscale_uses_luma(tmp_path):
    arr = np.zeros((4, 4, 3), dtype=np.uint8)
    arr[..., 0] = 255  # pure red
    path = save(tmp_path / "red.png", arr)
    X = ImageLoader(4, color_mode="grayscale").transform([path])
    np.testing.assert_allclose(X, 76 / 255)  # 0.299 * 255 -> 76
    X = ImageLoader(4, color_mode="rgb").transform([path])
    np.testing.assert_allclose(X[0, 0, 0], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_over_black(tmp_path, mode):
    n = 4 if mode == "RGBA" else 2
    arr = np.full((3, 3, n), 200, dtype=np.uint8)
    arr[..., -1] = 0
    arr[0, 0, -1] = 255  # one opaque pixel
    arr[1, 1, -1] = 128  # one half-transparent pixel
    path = save(tmp_path / f"{mode}.png", Image.fromarray(arr, mode))
    X = ImageLoader(3, color_mode="grayscale").transform([path])[0, :, :, 0]
    assert X[0, 0] == pytest.approx(200 / 255)
    assert X[1, 1] == pytest.approx(200 * 128 / 255 / 255, abs=1.5 / 255)
    assert X[2, 2] == 0.0


def test_palette_image_with_transparency(tmp_path):
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.putpixel((3, 3), 2)
    im.info["transparency"] = 2
    path = save(tmp_path / "p.png", im, transparency=2)
    X = ImageLoader(4, color_mode="rgb").transform([path])[0]
    np.testing.assert_allclose(X[1, 1], [1, 1, 1])
    np.testing.assert_allclose(X[0, 0], [0, 0, 0])
    np.testing.assert_allclose(X[3, 3], [0, 0, 0])  # transparent -> black


def test_cmyk_jpeg_and_bilevel(tmp_path):
    cmyk = save(tmp_path / "c.jpeg", Image.new("CMYK", (8, 8), (0, 0, 0, 0)))
    bilevel = Image.new("1", (8, 8), 0)
    bilevel.putpixel((2, 2), 1)
    one = save(tmp_path / "b.png", bilevel)
    X = ImageLoader(8).transform([cmyk, one])
    assert X[0].min() > 0.97  # CMYK no ink -> white
    assert X[1, 2, 2, 0] == 1.0 and X[1, 0, 0, 0] == 0.0


def test_int32_and_float_tiff(tmp_path):
    in_range = save(tmp_path / "i.tif", np.array([[0, 65535], [32768, 0]], np.int32))
    out_range = save(tmp_path / "j.tif", np.array([[-10, 90], [40, -10]], np.int32))
    unit = save(tmp_path / "f.tif", np.array([[0.0, 0.25], [0.5, 1.0]], np.float32))
    wide = save(tmp_path / "g.tif", np.array([[-1.0, 0.0], [1.0, 3.0]], np.float32))
    X = ImageLoader(2, color_mode="grayscale", dtype="float64").transform(
        [in_range, out_range, unit, wide]
    )[..., 0]
    np.testing.assert_allclose(X[0], [[0, 1], [32768 / 65535, 0]], rtol=1e-6)
    np.testing.assert_allclose(X[1], [[0, 1], [0.5, 0]])  # min-max
    np.testing.assert_allclose(X[2], [[0, 0.25], [0.5, 1]])
    np.testing.assert_allclose(X[3], [[0, 0.25], [0.5, 1]])  # min-max


def test_float_image_with_nan_is_an_error(tmp_path):
    path = save(tmp_path / "nan.tif", np.array([[np.nan, 0.5]], np.float32))
    with pytest.raises(ImageLoadError, match="NaN"):
        ImageLoader(2).transform([path])


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_output_dtype(png_paths, dtype):
    X = ImageLoader(8, dtype=dtype).transform(png_paths)
    assert X.dtype == np.dtype(dtype)
    assert 0.0 <= X.min() and X.max() <= 1.0


@pytest.mark.parametrize("interpolation", sorted(RESAMPLING))
def test_every_interpolation_stays_in_unit_range(tmp_path, interpolation):
    rng = np.random.default_rng(1)
    path = save(tmp_path / "n.png", rng.integers(0, 65536, (30, 40)).astype(np.uint16))
    X = ImageLoader(17, interpolation=interpolation).transform([path])
    assert X.shape == (1, 17, 17, 3)
    assert X.min() >= 0.0 and X.max() <= 1.0


def test_area_is_box(png_paths):
    a = ImageLoader(7, interpolation="area").transform(png_paths)
    b = ImageLoader(7, interpolation="box").transform(png_paths)
    np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------- orientation
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize(
    "orientation, expect",
    [
        (1, "top"),  # stored as is: top half white
        (3, "bottom"),  # rotated 180
        (6, "right"),  # rotate 90 clockwise to display: top goes right
        (8, "left"),  # rotate 90 counter-clockwise: top goes left
    ],
)
def test_exif_orientation_is_applied(tmp_path, fmt, orientation, expect):
    stored = np.zeros((20, 40), dtype=np.uint8)  # 40 wide, 20 high
    stored[:10] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path / f"o.{fmt}", stored, exif=exif.tobytes(), **(
        {"quality": 95} if fmt == "jpeg" else {}
    ))
    swapped = orientation in (6, 8)
    size = (40, 20) if swapped else (20, 40)  # displayed (height, width)
    X = ImageLoader(size, color_mode="grayscale").transform([path])[0, :, :, 0]
    h, w = X.shape
    parts = {
        "top": X[: h // 2].mean(),
        "bottom": X[h // 2 :].mean(),
        "left": X[:, : w // 2].mean(),
        "right": X[:, w // 2 :].mean(),
    }
    assert parts[expect] > 0.9
    opposite = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}
    assert parts[opposite[expect]] < 0.1


def test_large_rotated_jpeg_uses_swapped_draft_size(tmp_path):
    """A big JPEG decoded with draft still gives the right orientation."""
    stored = np.zeros((800, 1600), dtype=np.uint8)
    stored[:400] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(tmp_path / "big.jpeg", stored, exif=exif.tobytes(), quality=90)
    X = ImageLoader((64, 32), color_mode="grayscale").transform([path])[0, :, :, 0]
    assert X[:, 20:].mean() > 0.95 and X[:, :12].mean() < 0.05


def test_jpeg_draft_is_close_to_full_decode(tmp_path):
    yy, xx = np.mgrid[0:1200, 0:1000]
    arr = ((np.sin(xx / 40.0) * np.cos(yy / 55.0) + 1) * 127.5).astype(np.uint8)
    path = save(tmp_path / "smooth.jpeg", arr, quality=95)
    X = ImageLoader(64, color_mode="grayscale").transform([path])[0, :, :, 0]
    with Image.open(path) as im:
        ref = np.asarray(im.resize((64, 64), Image.Resampling.BILINEAR)) / 255.0
    assert np.abs(X - ref).mean() < 0.01


# ----------------------------------------------------------- resize policy
def test_stretch_ignores_aspect_ratio(tmp_path):
    path = save(tmp_path / "s.png", halves(10, 40))
    X = ImageLoader(20, color_mode="grayscale").transform([path])[0, :, :, 0]
    assert X.shape == (20, 20)
    assert X[:, :9].max() == 0.0 and X[:, 11:].min() == 1.0


def test_pad_letterboxes_with_black(tmp_path):
    wide = save(tmp_path / "w.png", gray(20, 40, 255))
    tall = save(tmp_path / "t.png", gray(40, 20, 255))
    X = ImageLoader(20, color_mode="grayscale", resize="pad").transform([wide, tall])
    wide_out, tall_out = X[0, :, :, 0], X[1, :, :, 0]
    # 40x20 -> 20x10 centred: rows 5..14 white, 5 black rows above and below
    np.testing.assert_array_equal(wide_out[:5], 0)
    np.testing.assert_array_equal(wide_out[15:], 0)
    np.testing.assert_allclose(wide_out[5:15], 1)
    np.testing.assert_array_equal(tall_out[:, :5], 0)
    np.testing.assert_array_equal(tall_out[:, 15:], 0)
    np.testing.assert_allclose(tall_out[:, 5:15], 1)


def test_crop_keeps_the_centre(tmp_path):
    arr = np.zeros((20, 40), dtype=np.uint8)
    arr[:, 10:30] = 255  # only the central square is white
    arr[5, 20] = 0  # a marker at (row 5, col 20) -> (5, 10) after the crop
    path = save(tmp_path / "c.png", arr)
    X = ImageLoader(20, resize="crop", color_mode="grayscale").transform([path])
    out = X[0, :, :, 0]
    assert out[5, 10] == 0.0
    out[5, 10] = 1.0
    np.testing.assert_allclose(out, 1.0)
    # A tall image keeps its vertical centre
    tall = np.zeros((40, 20), dtype=np.uint8)
    tall[10:30] = 255
    path = save(tmp_path / "ct.png", tall)
    out = ImageLoader(20, resize="crop", color_mode="grayscale").transform([path])
    np.testing.assert_allclose(out, 1.0)
    assert ImageLoader((10, 5), resize="crop").transform([path]).shape == (1, 10, 5, 3)


def test_rectangular_output_size(png_paths):
    X = ImageLoader((12, 7), resize="pad").transform(png_paths)
    assert X.shape == (6, 12, 7, 3)


# ---------------------------------------------------------------- inputs
def test_input_containers_give_the_same_result(png_paths):
    pd = pytest.importorskip("pandas")
    loader = ImageLoader(8, color_mode="grayscale")
    expected = loader.transform(png_paths)
    variants = [
        tuple(png_paths),
        [Path(p) for p in png_paths],
        np.array(png_paths),
        np.array(png_paths, dtype=object),
        np.array(png_paths, dtype=object).reshape(-1, 1),
        pd.Series(png_paths),
        pd.DataFrame({"path": png_paths}),
    ]
    for X in variants:
        np.testing.assert_array_equal(loader.transform(X), expected)


@pytest.mark.parametrize(
    "X, error, match",
    [
        ("one.png", TypeError, "single path"),
        (Path("one.png"), TypeError, "single path"),
        ({"a": "b"}, TypeError, "list, tuple"),
        (["a.png", 3], TypeError, "element 1"),
        ([], ValueError, "0 paths"),
        (np.array([["a", "b"], ["c", "d"]]), ValueError, "shape"),
    ],
)
def test_bad_containers(X, error, match):
    with pytest.raises(error, match=match):
        ImageLoader(8).transform(X)
    with pytest.raises(error, match=match):
        ImageLoader(8).fit(X)


def test_two_column_dataframe_is_refused():
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match="exactly one column"):
        ImageLoader(8).fit(pd.DataFrame({"a": ["x"], "b": ["y"]}))


# ------------------------------------------------------------- bad files
def _truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 160), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    path = tmp_path / "half.jpeg"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def _bad_files(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(gray(50, 50, 9)).save(buf, "PNG")
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not an image")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:60])
    (tmp_path / "folder.png").mkdir()
    return {
        str(tmp_path / "missing.png"): "file not found",
        str(tmp_path / "zero.png"): "empty file",
        str(tmp_path / "text.png"): "not a recognised image",
        str(tmp_path / "cut.png"): "truncated",
        _truncated_jpeg(tmp_path): "truncated",
        str(tmp_path / "folder.png"): "not a regular file",
    }


def test_each_bad_file_raises_naming_path_and_cause(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    for path, cause in _bad_files(tmp_path).items():
        with pytest.raises(ImageLoadError, match=cause) as info:
            ImageLoader(16).transform([path])
        assert info.value.path == path
        assert path in str(info.value)
        assert isinstance(info.value, ValueError)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bad_file_in_the_middle_of_a_parallel_batch(tmp_path, png_paths):
    bad = _truncated_jpeg(tmp_path)
    with pytest.raises(ImageLoadError, match="half.jpeg"):
        ImageLoader(8, n_jobs=2).transform(png_paths + [bad] + png_paths)


def test_image_load_error_pickles():
    err = pickle.loads(pickle.dumps(ImageLoadError("x.png", "empty file (0 bytes)")))
    assert (err.path, err.reason) == ("x.png", "empty file (0 bytes)")
    assert str(err) == "cannot load image 'x.png': empty file (0 bytes)"


def test_decompression_bomb_limit(tmp_path):
    path = save(tmp_path / "big.png", gray(100, 120, 0))
    with pytest.raises(ImageLoadError, match="exceeds max_pixels=11999") as info:
        ImageLoader(8, max_pixels=11_999).transform([path])
    assert info.value.path == path
    assert ImageLoader(8, max_pixels=12_000).transform([path]).shape == (1, 8, 8, 3)
    assert ImageLoader(8, max_pixels=None).transform([path]).shape == (1, 8, 8, 3)


# ------------------------------------------------------------------ DICOM
def write_dicom(
    path,
    pixels,
    *,
    photometric="MONOCHROME2",
    bits_stored=12,
    rescale=None,
    window=None,
    frames=None,
    transfer_syntax=None,
    encapsulated=None,
    with_pixels=True,
    voi_lut=None,
    voi_function=None,
):
    pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    rgb = photometric == "RGB"
    ds.Rows, ds.Columns = pixels.shape[:2] if rgb else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if rgb else 1
    if rgb:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if frames is not None:
        ds.NumberOfFrames = frames
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_function is not None:
        ds.VOILUTFunction = voi_function
    if voi_lut is not None:
        from pydicom.dataset import Dataset

        item = Dataset()
        item.add_new(0x00283002, "US", [len(voi_lut), 0, 8])  # LUT Descriptor
        item.add_new(0x00283006, "OW", voi_lut.astype("<u2").tobytes())  # LUT Data
        ds.VOILUTSequence = [item]
    if encapsulated is not None:
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([encapsulated])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    elif with_pixels:
        little = pixels if pixels.dtype == np.uint8 else pixels.astype("<u2")
        ds.PixelData = little.tobytes()
    try:
        ds.save_as(str(path), enforce_file_format=True)
    except TypeError:  # pydicom 2.x
        ds.save_as(str(path), write_like_original=False)
    return str(path)


STORED = np.array([[0, 100, 200], [300, 400, 4095]], dtype=np.uint16)


def dicom_gray(path, **kwargs):
    return ImageLoader(
        STORED.shape, color_mode="grayscale", dtype="float64", interpolation="nearest"
    ).transform([path])[0, :, :, 0]


def test_dicom_without_window_is_min_max_scaled(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED)
    np.testing.assert_allclose(dicom_gray(path), STORED / 4095.0, atol=1e-6)


def test_dicom_monochrome1_is_inverted(tmp_path):
    path = write_dicom(tmp_path / "m1.dcm", STORED, photometric="MONOCHROME1")
    np.testing.assert_allclose(dicom_gray(path), 1 - STORED / 4095.0, atol=1e-6)


def test_dicom_rescale_and_window(tmp_path):
    # modality LUT: 2 * stored - 100; linear window centre 300, width 401:
    # <= 99.5 -> 0, > 499.5 -> 1, else (x - 299.5) / 400 + 0.5
    path = write_dicom(tmp_path / "w.dcm", STORED, rescale=(2, -100), window=(300, 401))
    x = 2.0 * STORED - 100
    expected = np.clip((x - 299.5) / 400 + 0.5, 0, 1)
    expected[x <= 99.5] = 0
    np.testing.assert_allclose(dicom_gray(path), expected, atol=1e-6)
    assert expected[0, 2] == pytest.approx(0.50125)  # a value inside the window


def test_dicom_sigmoid_window(tmp_path):
    path = write_dicom(tmp_path / "s.dcm", STORED, window=(250, 200), voi_function="SIGMOID")
    expected = 1 / (1 + np.exp(-4 * (STORED - 250.0) / 200))
    np.testing.assert_allclose(dicom_gray(path), expected, atol=1e-6)


def test_dicom_window_then_monochrome1_and_rgb_output(tmp_path):
    path = write_dicom(
        tmp_path / "w1.dcm", STORED, photometric="MONOCHROME1", window=(200, 201)
    )
    out = dicom_gray(path)
    assert out[0, 0] == 1.0 and out[1, 2] == 0.0  # dark stored -> white
    X = ImageLoader(5).transform([path])
    assert X.shape == (1, 5, 5, 3)
    np.testing.assert_array_equal(X[..., 0], X[..., 2])


def test_dicom_voi_lut_sequence(tmp_path):
    lut = np.arange(4096) // 16  # 12 bits in, 8 bits out
    path = write_dicom(tmp_path / "lut.dcm", STORED, voi_lut=lut)
    np.testing.assert_allclose(dicom_gray(path), (STORED // 16) / 255.0, atol=1e-6)


def test_rgb_dicom(tmp_path):
    pixels = np.zeros((2, 3, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    path = write_dicom(tmp_path / "rgb.dcm", pixels, photometric="RGB", bits_stored=8)
    X = ImageLoader((2, 3), color_mode="rgb").transform([path])
    np.testing.assert_allclose(X[0, 1, 2], [1.0, 0.0, 0.0])
    X = ImageLoader((2, 3), color_mode="grayscale").transform([path])
    np.testing.assert_allclose(X, 76 / 255)


def test_dicom_detected_by_magic_without_suffix(tmp_path):
    path = write_dicom(tmp_path / "scan.img", STORED)
    np.testing.assert_allclose(dicom_gray(path), STORED / 4095.0, atol=1e-6)


def test_unsupported_dicoms(tmp_path):
    from pydicom.uid import JPEGLSLossless

    frames = np.zeros((2, 4, 4), dtype=np.uint16)
    cases = {
        write_dicom(tmp_path / "nopix.dcm", STORED, with_pixels=False): "no pixel data",
        write_dicom(tmp_path / "multi.dcm", frames, frames=2): "multi-frame",
        write_dicom(
            tmp_path / "jls.dcm",
            STORED,
            transfer_syntax=JPEGLSLossless,
            encapsulated=b"\xff\xd8\xff\xf7garbage",
        ): "cannot decode DICOM pixel data",
        write_dicom(tmp_path / "pal.dcm", STORED, photometric="PALETTE COLOR"): (
            "PhotometricInterpretation"
        ),
        write_dicom(
            tmp_path / "rgb16.dcm", np.zeros((2, 2, 3), np.uint16), photometric="RGB"
        ): "only 8-bit",
    }
    (tmp_path / "fake.dcm").write_text("not dicom at all")
    cases[str(tmp_path / "fake.dcm")] = "not a valid DICOM"
    for path, cause in cases.items():
        with pytest.raises(ImageLoadError, match=cause) as info:
            ImageLoader(4).transform([path])
        assert info.value.path == path


def test_dicom_bomb_limit(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED)
    with pytest.raises(ImageLoadError, match="max_pixels"):
        ImageLoader(4, max_pixels=5).transform([path])


def test_missing_pydicom_asks_for_the_extra(tmp_path, monkeypatch):
    path = write_dicom(tmp_path / "a.dcm", STORED)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImportError, match=r"pip install cxrlearn\[dicom\]"):
        ImageLoader(4).transform([path])


# ----------------------------------------------------------------- caching
@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    original = loading.decode_file

    def counting(path, *args, **kwargs):
        calls.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(loading, "decode_file", counting)
    return calls


def test_memory_cache_decodes_each_file_once(tmp_path, png_paths, count_decodes):
    loader = ImageLoader(8, memory=tmp_path / "cache")
    first = loader.transform(png_paths)
    assert len(count_decodes) == 6
    second = clone(loader).transform(png_paths[::-1])  # another fold / candidate
    assert len(count_decodes) == 6
    np.testing.assert_array_equal(second, first[::-1])
    # a parameter that changes the pixels is part of the key
    ImageLoader(9, memory=tmp_path / "cache").transform(png_paths[:2])
    assert len(count_decodes) == 8
    # ... one that does not change them (n_jobs) is not
    ImageLoader(8, memory=str(tmp_path / "cache"), n_jobs=2).transform(png_paths)
    assert len(count_decodes) == 8


def test_memory_cache_sees_changed_files(tmp_path, count_decodes):
    path = save(tmp_path / "a.png", gray(4, 4, 10))
    loader = ImageLoader(4, memory=joblib.Memory(tmp_path / "cache", verbose=0))
    assert loader.transform([path]).max() == pytest.approx(10 / 255)
    save(path, gray(4, 5, 200))  # new content, size and mtime
    os.utime(path, ns=(1, 1))
    assert loader.transform([path]).max() == pytest.approx(200 / 255)
    assert len(count_decodes) == 2


def test_memory_cache_does_not_hide_bad_files(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        ImageLoader(4, memory=tmp_path / "c").transform([str(tmp_path / "gone.png")])


# -------------------------------------------------------------- LazyImages
def test_lazy_images_api(png_paths, count_decodes):
    loader = ImageLoader(8, color_mode="grayscale")
    eager = loader.transform(png_paths)
    count_decodes.clear()
    lazy = clone(loader).set_params(lazy=True).transform(png_paths)
    assert isinstance(lazy, LazyImages)
    assert count_decodes == []  # nothing decoded yet
    assert len(lazy) == 6 and lazy.shape == (6, 8, 8, 1)
    assert lazy.ndim == 4 and lazy.dtype == np.float32
    assert list(lazy.paths) == png_paths and lazy.paths.dtype == object
    mask = np.array([True, False, True, False, False, True])
    subsets = {
        "ints": (lazy[np.array([4, 1])], [4, 1]),
        "list": (lazy[[0, 5]], [0, 5]),
        "slice": (lazy[1:4], [1, 2, 3]),
        "mask": (lazy[mask], [0, 2, 5]),
        "scalar": (lazy[-1], [5]),
        "nested": (lazy[1:][::2], [1, 3, 5]),
    }
    assert count_decodes == []
    for name, (subset, rows) in subsets.items():
        assert isinstance(subset, LazyImages), name
        assert subset.shape == (len(rows), 8, 8, 1)
        np.testing.assert_array_equal(subset.load(), eager[rows])
    np.testing.assert_array_equal(lazy.load([2, 3]), eager[[2, 3]])
    np.testing.assert_array_equal(np.asarray(lazy), eager)
    assert np.asarray(lazy, dtype=np.float64).dtype == np.float64
    assert lazy[[]].load().shape == (0, 8, 8, 1)


def test_lazy_images_bad_indices(png_paths):
    lazy = ImageLoader(8, lazy=True).transform(png_paths)
    for index, error in [
        (6, IndexError),
        (np.array([True, False]), IndexError),
        (np.array([0.5]), IndexError),
        ((0, 1), TypeError),
    ]:
        with pytest.raises(error):
            lazy[index]


def test_lazy_images_pickle_keeps_paths_not_pixels(tmp_path, png_paths):
    lazy = ImageLoader(64, lazy=True, memory=tmp_path / "c").transform(png_paths)
    blob = pickle.dumps(lazy)
    assert len(blob) < 5_000  # 6 x 64 x 64 x 3 floats would be ~300 kB
    restored = pickle.loads(blob)
    assert restored.shape == lazy.shape
    np.testing.assert_array_equal(restored.load(), lazy.load())


def test_lazy_errors_surface_on_load(tmp_path, png_paths):
    lazy = ImageLoader(8, lazy=True).transform(png_paths + [str(tmp_path / "gone.png")])
    assert lazy[:6].load().shape == (6, 8, 8, 3)
    with pytest.raises(ImageLoadError, match="gone.png"):
        lazy.load()


# ---------------------------------------------------- parallel / sklearn API
def test_parallel_threads_and_processes_match_sequential(png_paths):
    paths = png_paths * 3
    X1 = ImageLoader(9, n_jobs=1).transform(paths)
    np.testing.assert_array_equal(ImageLoader(9, n_jobs=2).transform(paths), X1)
    with joblib.parallel_config(backend="loky"):
        np.testing.assert_array_equal(ImageLoader(9, n_jobs=2).transform(paths), X1)


def test_process_backend_raises_image_load_error(tmp_path, png_paths):
    with joblib.parallel_config(backend="loky"):
        with pytest.raises(ImageLoadError, match="gone.png"):
            ImageLoader(9, n_jobs=2).transform(png_paths + [str(tmp_path / "gone.png")])


def test_sklearn_contract(png_paths):
    loader = ImageLoader(8, color_mode="grayscale", resize="pad")
    assert loader.fit(png_paths) is loader
    assert loader.n_features_in_ == 1
    copy = clone(loader)
    assert copy.get_params() == loader.get_params()
    copy.set_params(image_size=(4, 5), color_mode="rgb")
    assert copy.transform(png_paths).shape == (6, 4, 5, 3)
    # stateless: transform works without fit, fit_transform equals transform
    np.testing.assert_array_equal(
        ImageLoader(8).transform(png_paths), ImageLoader(8).fit_transform(png_paths)
    )
    tags = loader.__sklearn_tags__()
    assert tags.requires_fit is False and tags.input_tags.string
    pipe = make_pipeline(ImageLoader(8), FunctionTransformer(lambda X: X.mean(axis=(1, 2, 3))))
    assert pipe.fit_transform(png_paths).shape == (6,)


def test_feature_names_from_dataframe(png_paths):
    pd = pytest.importorskip("pandas")
    loader = ImageLoader(8).fit(pd.DataFrame({"file": png_paths}))
    assert list(loader.feature_names_in_) == ["file"]
    assert not hasattr(loader.fit(png_paths), "feature_names_in_")


def test_loader_saved_before_max_decoded_bytes_still_loads(png_paths):
    state = ImageLoader(8).__getstate__()
    del state["max_decoded_bytes"]  # what an older cxrlearn pickled
    old = ImageLoader.__new__(ImageLoader)
    old.__setstate__(state)
    assert old.get_params()["max_decoded_bytes"] == loading.DEFAULT_MAX_DECODED_BYTES
    assert old.transform(png_paths).shape == (6, 8, 8, 3)


def test_get_feature_names_out_names_the_flattened_pixels(png_paths):
    loader = ImageLoader((2, 3), color_mode="rgb")
    names = loader.get_feature_names_out()
    assert names.dtype == object and len(names) == 2 * 3 * 3
    assert list(names[:3]) == ["imageloader0", "imageloader1", "imageloader2"]
    assert list(loader.fit(png_paths).get_feature_names_out(["x0"])) == list(names)
    with pytest.raises(ValueError, match="single input feature"):
        loader.get_feature_names_out(["a", "b"])
    pipe = make_pipeline(ImageLoader((2, 2), color_mode="grayscale")).fit(png_paths)
    assert list(pipe.get_feature_names_out()) == [f"imageloader{i}" for i in range(4)]


def test_get_feature_names_out_checks_dataframe_column(png_paths):
    pd = pytest.importorskip("pandas")
    loader = ImageLoader(1, color_mode="grayscale").fit(pd.DataFrame({"file": png_paths}))
    assert list(loader.get_feature_names_out(["file"])) == ["imageloader0"]
    with pytest.raises(ValueError, match="input_features is not equal"):
        loader.get_feature_names_out(["other"])


def test_set_output_default_works_and_tables_fail_clearly(png_paths):
    import sklearn

    loader = ImageLoader(4, color_mode="grayscale")
    assert loader.set_output(transform="default") is loader
    assert loader.transform(png_paths).shape == (6, 4, 4, 1)
    pipe = make_pipeline(ImageLoader(4), FunctionTransformer(_flatten))
    assert pipe.set_output(transform="default").fit_transform(png_paths).shape == (6, 48)
    for kind in ["pandas", "polars"]:
        with pytest.raises(ValueError, match=r"4-D image array.*not a table"):
            ImageLoader(4).set_output(transform=kind)
        with pytest.raises(ValueError, match="cannot produce '%s' output" % kind):
            make_pipeline(ImageLoader(4), FunctionTransformer(_flatten)).set_output(
                transform=kind
            )
    # a global table output is refused the same way; the loader's own
    # "default" setting overrides it
    with sklearn.config_context(transform_output="pandas"):
        with pytest.raises(ValueError, match="4-D image array"):
            ImageLoader(4).transform(png_paths)
        with pytest.raises(ValueError, match="4-D image array"):
            ImageLoader(4, lazy=True).fit_transform(png_paths)
        X = ImageLoader(4).set_output(transform="default").transform(png_paths)
        assert isinstance(X, np.ndarray) and X.shape == (6, 4, 4, 3)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"color_mode": "bgr"}, "color_mode"),
        ({"resize": "squash"}, "resize"),
        ({"interpolation": "cubic"}, "interpolation"),
        ({"dtype": "uint8"}, "dtype"),
        ({"image_size": (0, 5)}, "image_size"),
        ({"image_size": (2, 3, 4)}, "image_size"),
        ({"image_size": 0}, "image_size"),
        ({"max_pixels": 0}, "max_pixels"),
        ({"max_decoded_bytes": 0}, "max_decoded_bytes"),
        ({"max_decoded_bytes": 1.5}, "max_decoded_bytes"),
        ({"memory": 3}, "memory"),
    ],
)
def test_invalid_parameters(png_paths, params, match):
    with pytest.raises(ValueError, match=match):
        ImageLoader(**params).fit(png_paths)
    with pytest.raises(ValueError, match=match):
        ImageLoader(**params).transform(png_paths)


# ---------------------------------------------------------------- real data
def test_real_kermany_originals_decode(data_dir, tmp_path):
    folder = data_dir / "kermany-originals"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    paths = sorted(str(p) for p in folder.glob("*/*.jpeg"))[::50]
    X = ImageLoader(64, n_jobs=2).transform(paths)
    assert X.shape == (len(paths), 64, 64, 3)
    assert 0.05 < X.mean() < 0.95 and X.std() > 0.05
    # the same real file cut in half is refused
    data = Path(paths[0]).read_bytes()
    cut = tmp_path / "cut.jpeg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated"):
        ImageLoader(64).transform([str(cut)])


def _flatten(X):
    return X.reshape(len(X), -1)


def test_grid_search_decodes_each_file_once(tmp_path, count_decodes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    rng = np.random.default_rng(0)
    paths = [
        save(tmp_path / f"g{i}.png", rng.integers(0, 256, (10, 10), dtype=np.uint8))
        for i in range(12)
    ]
    labels = ["NORMAL", "PNEUMONIA"] * 6
    pipe = make_pipeline(
        ImageLoader(6, color_mode="grayscale", memory=tmp_path / "cache"),
        FunctionTransformer(_flatten),
        LogisticRegression(),
    )
    grid = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0, 10.0]}, cv=3)
    grid.fit(np.array(paths, dtype=object), labels)
    assert sorted(count_decodes) == sorted(paths)  # 3 folds x 3 candidates + refit


def test_imblearn_sampler_on_paths_then_loader(png_paths):
    imblearn = pytest.importorskip("imblearn")
    from imblearn.over_sampling import RandomOverSampler

    labels = np.array(["NORMAL"] * 2 + ["PNEUMONIA"] * 4)
    column = np.array(png_paths, dtype=object).reshape(-1, 1)
    X_res, y_res = RandomOverSampler(random_state=0).fit_resample(column, labels)
    assert X_res.shape == (8, 1)
    images = ImageLoader(5).transform(X_res)
    assert images.shape == (8, 5, 5, 3)
    pipe = imblearn.pipeline.make_pipeline(
        RandomOverSampler(random_state=0), ImageLoader(5), FunctionTransformer(_flatten)
    )
    assert pipe.fit(column, labels).transform(column).shape == (6, 75)


def test_truncation_detected_even_if_pillow_check_is_off(tmp_path, monkeypatch, png_paths):
    """Another library may set LOAD_TRUNCATED_IMAGES=True; cxrlearn still refuses."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    jpeg = _truncated_jpeg(tmp_path)
    with Image.open(jpeg) as im:
        im.load()  # Pillow alone now accepts the half file, grey-filled
    rng = np.random.default_rng(0)
    full = save(tmp_path / "full.png", rng.integers(0, 256, (60, 60), dtype=np.uint8))
    data = Path(full).read_bytes()
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(data[: len(data) // 2])
    progressive = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(
        progressive, "JPEG", progressive=True
    )
    cut_progressive = tmp_path / "prog.jpeg"
    cut_progressive.write_bytes(progressive.getvalue()[: len(progressive.getvalue()) * 3 // 4])
    for path in [jpeg, str(cut_png), str(cut_progressive)]:
        with pytest.raises(ImageLoadError, match="truncated") as info:
            ImageLoader(8).transform([path])
        assert info.value.path == path
    # complete files (with an EXIF thumbnail-free JPEG and PNGs) still load
    whole = save(tmp_path / "whole.jpeg", gray(30, 30, 100))
    assert ImageLoader(8).transform(png_paths + [whole]).shape == (7, 8, 8, 3)


# ------------------------------------------------------------------ intensity
def _ramp(h=16, w=64, low=60, high=140):
    """A horizontal grey ramp using only levels in [low, high]: a dull film."""
    return np.tile(np.linspace(low, high, w).round().astype(np.uint8), (h, 1))


def test_intensity_raw_keeps_grey_levels(tmp_path):
    path = save(tmp_path / "a.png", _ramp())
    X = ImageLoader((16, 64), color_mode="grayscale").transform([path])
    assert X.min() == pytest.approx(60 / 255) and X.max() == pytest.approx(140 / 255)


def test_intensity_stretch_maps_percentiles_to_0_and_1(tmp_path):
    arr = _ramp()
    path = save(tmp_path / "a.png", arr)
    X = ImageLoader((16, 64), color_mode="grayscale", intensity="stretch").transform([path])
    raw = arr / 255
    low, high = np.percentile(raw, [1, 99])
    np.testing.assert_allclose(X[0, :, :, 0], np.clip((raw - low) / (high - low), 0, 1),
                               atol=1e-6)
    assert X.min() == 0.0 and X.max() == 1.0


def test_intensity_equalize_flattens_the_histogram_and_keeps_order(tmp_path):
    arr = _ramp()
    path = save(tmp_path / "a.png", arr)
    X = ImageLoader((16, 64), color_mode="grayscale", intensity="equalize").transform([path])
    out = X[0, :, :, 0]
    assert out.min() == 0.0 and out.max() == 1.0
    # monotone: a brighter input pixel never becomes darker
    order = np.argsort(arr[0], kind="stable")
    assert np.all(np.diff(out[0][order]) >= 0)
    # uniform output: each decile of [0, 1] holds about a tenth of the pixels
    counts, _ = np.histogram(out, bins=10, range=(0, 1))
    assert counts.min() > 0.05 * out.size and counts.max() < 0.15 * out.size


def test_intensity_equalize_undoes_an_exposure_change(tmp_path):
    """The same film, darker and with less contrast, equalises to the same image."""
    rng = np.random.default_rng(0)
    film = rng.integers(0, 256, size=(32, 32)).astype(np.uint8)
    dull = (40 + film.astype(float) * 0.5).round().astype(np.uint8)  # monotone remap
    paths = [save(tmp_path / "film.png", film), save(tmp_path / "dull.png", dull)]
    raw = ImageLoader((32, 32), color_mode="grayscale").transform(paths)
    eq = ImageLoader((32, 32), color_mode="grayscale", intensity="equalize").transform(paths)
    assert np.abs(raw[0] - raw[1]).mean() > 0.1
    # a 2:1 merge of grey levels moves each pixel by at most a few levels
    assert np.abs(eq[0] - eq[1]).mean() < 0.01


@pytest.mark.parametrize("intensity", ["stretch", "equalize"])
def test_intensity_constant_image_is_zero_and_rgb_stays_grey(tmp_path, intensity):
    flat = save(tmp_path / "flat.png", gray(8, 8, 90))
    X = ImageLoader((8, 8), color_mode="rgb", intensity=intensity).transform([flat])
    assert np.all(X == 0)
    ramp = save(tmp_path / "ramp.png", _ramp())
    X = ImageLoader((16, 64), color_mode="rgb", intensity=intensity).transform([ramp])
    np.testing.assert_array_equal(X[..., 0], X[..., 1])
    np.testing.assert_array_equal(X[..., 0], X[..., 2])


def test_intensity_is_part_of_the_cache_key(tmp_path):
    path = save(tmp_path / "a.png", _ramp())
    memory = joblib.Memory(tmp_path / "cache", verbose=0)
    raw = ImageLoader((16, 64), memory=memory).transform([path])
    eq = ImageLoader((16, 64), memory=memory, intensity="equalize").transform([path])
    assert not np.allclose(raw, eq)
    with pytest.raises(ValueError, match="intensity"):
        ImageLoader(intensity="clahe").fit([path])

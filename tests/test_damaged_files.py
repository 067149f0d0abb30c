"""Damaged image data never loads silently.

The rule checked here: a file that cxrlearn loads is a file whose pixel data
Pillow decodes completely (``Image.open(BytesIO(data)).load()``), and nothing
but :class:`~cxrlearn.ImageLoadError` escapes, whatever the damage. A seeded
set of mutants of small PNG, palette PNG, 16-bit PNG and JPEG files (bit
flips, truncations, corrupt pixel data behind a valid chunk CRC) goes through
``decode_file``, ``ImageLoader`` (eager, lazy, cached) and ``scan_images``.
The other tests cover damaged EXIF blocks, non-finite DICOM values, the
decoded-bytes limit and Pillow's decompression-bomb warning.
"""

import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from cxrlearn._decoders import DecodeSpec, decode_file
from cxrlearn._loading import (
    DEFAULT_MAX_DECODED_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageLoader,
    ImageLoadError,
    LazyImages,
)
from cxrlearn.datasets import scan_images

SEED = 11
ORIENTATION = 0x0112


# ------------------------------------------------------------------ helpers
def encode(image, fmt, **kwargs):
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def pillow_decodes(data):
    """The oracle: does Pillow alone open and fully decode these bytes?"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except Exception:
            return False
    return True


def png_chunk(ctype, body):
    """One PNG chunk: length, type, data, CRC."""
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def png_chunks(data):
    """``(type, start of chunk, start of data, length)`` of each PNG chunk."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], pos, pos + 8, length))
        pos += 12 + length
    return out


def flip_in_chunk(data, chunk, offset, xor):
    """XOR one byte of a chunk's data and write the chunk's correct CRC."""
    ctype, start, begin, length = chunk
    out = bytearray(data)
    out[begin + offset] ^= xor
    crc = zlib.crc32(bytes(out[start + 4 : begin + length])) & 0xFFFFFFFF
    out[begin + length : begin + length + 4] = struct.pack(">I", crc)
    return bytes(out)


def corrupt_idat(data, fraction, xor=0xFF):
    """XOR the byte ``fraction`` of the way into the IDAT data; fix its CRC."""
    idats = [c for c in png_chunks(data) if c[0] == b"IDAT"]
    target = int(sum(c[3] for c in idats) * fraction)
    for chunk in idats:
        if target < chunk[3]:
            return flip_in_chunk(data, chunk, target, xor)
        target -= chunk[3]
    raise AssertionError("no IDAT data")


def jpeg_entropy_span(data):
    """``(start, stop)`` of the compressed scan data (first SOS to EOI)."""
    sos = data.find(b"\xff\xda")
    (length,) = struct.unpack(">H", data[sos + 2 : sos + 4])
    return sos + 2 + length, data.rfind(b"\xff\xd9")


def base_images():
    """Small test files of each kind, made here (no fixture files)."""
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[0:40, 0:48]
    gray = ((xx * 4 + yy * 3) % 200 + rng.integers(0, 40, (40, 48))).astype(np.uint8)
    rgb = np.stack([gray, 255 - gray, gray // 2], axis=-1)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    L = Image.fromarray(gray)
    return {
        "gray.png": encode(L, "PNG"),
        "palette.png": encode(L.quantize(16), "PNG"),
        "16bit.png": encode(Image.fromarray(gray.astype(np.uint16) * 257), "PNG"),
        "exif.png": encode(L, "PNG", exif=exif.tobytes()),
        "rgb.jpeg": encode(Image.fromarray(rgb), "JPEG", quality=90),
        "gray.jpeg": encode(L, "JPEG", quality=90),
        "progressive.jpeg": encode(Image.fromarray(rgb), "JPEG", quality=90, progressive=True),
        "exif.jpeg": encode(L, "JPEG", quality=90, exif=exif.tobytes()),
    }


def mutate(data, name, kind, rng):
    """One seeded mutant of ``data``."""
    n = len(data)
    if kind == "xor1":  # one byte anywhere, the signature excepted
        out = bytearray(data)
        out[rng.integers(8, n)] ^= int(rng.integers(1, 256))
        return bytes(out)
    if kind == "xorN":  # a few bytes anywhere
        out = bytearray(data)
        for i in rng.choice(np.arange(8, n), size=int(rng.integers(2, 7)), replace=False):
            out[i] ^= int(rng.integers(1, 256))
        return bytes(out)
    if kind == "truncate":
        return data[: int(rng.integers(1, n))]
    png = name.endswith(".png")
    if kind == "payload":  # the pixel data, past every checksum
        if png:
            return corrupt_idat(data, rng.random(), int(rng.integers(1, 256)))
        out = bytearray(data)
        start, stop = jpeg_entropy_span(data)
        out[rng.integers(start, stop)] ^= int(rng.integers(1, 256))
        return bytes(out)
    assert kind == "header"  # a header chunk / segment, past every checksum
    if png:
        chunks = [c for c in png_chunks(data) if c[0] not in (b"IDAT", b"IEND")]
        chunk = chunks[rng.integers(len(chunks))]
        return flip_in_chunk(data, chunk, rng.integers(chunk[3]), int(rng.integers(1, 256)))
    out = bytearray(data)
    out[rng.integers(2, jpeg_entropy_span(data)[0])] ^= int(rng.integers(1, 256))
    return bytes(out)


#: Mutants of each base file, by kind (8 bases x 40 = 320 files).
KINDS = {"xor1": 10, "xorN": 6, "truncate": 10, "payload": 10, "header": 4}


def make_mutants(seed=SEED):
    """``[(file name, kind, bytes)]``, the same for every run."""
    rng = np.random.default_rng(seed)
    mutants = []
    for name, data in base_images().items():
        for kind, count in KINDS.items():
            for _ in range(count):
                mutant = mutate(data, name, kind, rng)
                mutants.append((f"{len(mutants):03d}_{kind}_{name}", kind, mutant))
    return mutants


SPECS = [
    DecodeSpec(8, 8, "grayscale", "stretch", "bilinear", "float32"),
    DecodeSpec(12, 10, "rgb", "crop", "bilinear", "float32"),
]


def cxrlearn_decodes(path, spec):
    """True / False, or the unexpected exception itself."""
    try:
        decode_file(path, spec, DEFAULT_MAX_PIXELS, DEFAULT_MAX_DECODED_BYTES)
    except ImageLoadError as exc:
        assert exc.path == path and path in str(exc)
        return False
    except Exception as exc:  # anything else breaks the contract
        return exc
    return True


# --------------------------------------------------------------- the fuzzing
@pytest.fixture(scope="module")
def mutant_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mutants")
    files = []
    for name, kind, data in make_mutants():
        path = str(folder / name)
        with open(path, "wb") as fh:
            fh.write(data)
        files.append((path, kind, data))
    return files


# Pillow parses a damaged EXIF block tag by tag and warns about those it skips.
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.filterwarnings("ignore:Possibly corrupt EXIF data:UserWarning")
def test_fuzzed_files_load_only_when_pillow_decodes_them(mutant_files, record_property):
    counts = {"mutants": len(mutant_files), "refused_by_pillow": 0, "refused_by_cxrlearn": 0}
    leaks, other_errors, bomb_warnings = [], [], []
    outcome = {}
    for path, kind, data in mutant_files:
        oracle = pillow_decodes(data)
        counts["refused_by_pillow"] += not oracle
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = [cxrlearn_decodes(path, spec) for spec in SPECS]
        bomb_warnings += [
            (path, w.message)
            for w in caught
            if issubclass(w.category, Image.DecompressionBombWarning)
        ]
        for result in results:
            if isinstance(result, Exception):
                other_errors.append((path, repr(result)))
            elif result and not oracle:
                leaks.append((path, kind))
        outcome[path] = results[0] is True
        counts["refused_by_cxrlearn"] += results[0] is not True
    record_property("fuzz_counts", counts)
    print("\nfuzzing:", counts)
    assert not other_errors, other_errors[:5]
    assert not leaks, f"{len(leaks)} damaged files loaded: {leaks[:5]}"
    assert not bomb_warnings, bomb_warnings[:3]
    # the corpus does exercise the rule: most mutants are refused by Pillow,
    # and undamaged-looking ones (e.g. a flipped JPEG pixel) still load;
    # cxrlearn refuses a few more (damaged EXIF, PNG checksum / length)
    assert counts["refused_by_pillow"] > counts["mutants"] // 3
    assert counts["refused_by_pillow"] <= counts["refused_by_cxrlearn"] < counts["mutants"]

    # scan_images finds exactly the files decode_file refuses, and its
    # default thumbnail check also obeys the rule
    paths = [p for p, _, _ in mutant_files]
    report = scan_images(paths, loader=ImageLoader(8, color_mode="grayscale"))
    assert set(report.bad_paths) == {p for p in paths if not outcome[p]}
    default = scan_images(paths, n_jobs=2)
    oracle_ok = {p for p, _, data in mutant_files if pillow_decodes(data)}
    assert set(paths) - set(default.bad_paths) <= oracle_ok


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.filterwarnings("ignore:Possibly corrupt EXIF data:UserWarning")
def test_fuzzed_files_with_pillows_truncation_check_off(mutant_files, monkeypatch):
    """Another library may set LOAD_TRUNCATED_IMAGES=True; Pillow then keeps
    partial images. cxrlearn still checks every PNG's pixel data and every
    file's end; a JPEG damaged inside (not cut short) can only be caught by
    Pillow's own decoding checks, which that setting turns off."""
    oracle = {path: pillow_decodes(data) for path, _, data in mutant_files}
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    leaks, other_errors = [], []
    for path, kind, _ in mutant_files:
        if not (path.endswith(".png") or kind == "truncate"):
            continue
        result = cxrlearn_decodes(path, SPECS[0])
        if isinstance(result, Exception):
            other_errors.append((path, repr(result)))
        elif result and not oracle[path]:
            leaks.append((path, kind))
    assert not other_errors, other_errors[:5]
    assert not leaks, leaks[:5]


def test_fuzzed_files_same_outcome_through_the_loader(mutant_files, tmp_path):
    """A sample through transform, n_jobs, the disk cache and lazy batches."""
    sample = mutant_files[::8]
    loaders = {
        "eager": ImageLoader(8, color_mode="grayscale"),
        "threads": ImageLoader(8, color_mode="grayscale", n_jobs=2),
        "memory": ImageLoader(8, color_mode="grayscale", memory=tmp_path / "cache"),
    }
    lazy = ImageLoader(8, color_mode="grayscale", lazy=True).transform([p for p, _, _ in sample])
    assert isinstance(lazy, LazyImages)
    for i, (path, _, _) in enumerate(sample):
        expected = cxrlearn_decodes(path, SPECS[0])
        assert isinstance(expected, bool)
        attempts = {name: (lambda ld=ld: ld.transform([path])) for name, ld in loaders.items()}
        attempts["lazy"] = lambda: lazy.load([i])
        attempts["memory again"] = attempts["memory"]  # errors are never cached
        for name, attempt in attempts.items():
            if expected:
                assert attempt().shape == (1, 8, 8, 1), (name, path)
            else:
                with pytest.raises(ImageLoadError) as info:
                    attempt()
                assert info.value.path == path, name


# ---------------------------------------------------- the reproduction
def _xray_like_png(h=240, w=200):
    """A PNG big enough that a third of its rows decode before the damage."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = 60 + 120 * np.exp(-(((xx - w / 2) / (w / 3)) ** 2)) + rng.normal(0, 8, (h, w))
    return encode(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), "PNG")


@pytest.fixture
def idat_damaged(tmp_path):
    """Issue 11: one IDAT byte XORed a third in, chunk CRC fixed."""
    path = tmp_path / "damaged.png"
    path.write_bytes(corrupt_idat(_xray_like_png(), 1 / 3))
    return str(path)


def test_idat_corruption_behind_a_valid_crc_is_refused_everywhere(idat_damaged, tmp_path):
    data = open(idat_damaged, "rb").read()
    with pytest.raises(OSError):  # Pillow refuses the file ...
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.open(io.BytesIO(data)).load()
    # ... and so does cxrlearn, in every path, naming the file and the cause
    attempts = {
        "transform": lambda: ImageLoader(64).transform([idat_damaged]),
        "n_jobs": lambda: ImageLoader(64, n_jobs=2).transform([idat_damaged] * 3),
        "lazy": lambda: ImageLoader(64, lazy=True).transform([idat_damaged]).load(),
        "memory": lambda: ImageLoader(64, memory=tmp_path / "c").transform([idat_damaged]),
        "memory again": lambda: ImageLoader(64, memory=tmp_path / "c").transform([idat_damaged]),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ImageLoadError, match="corrupt") as info:
            attempt()
        assert info.value.path == idat_damaged, name
        assert "damaged.png" in str(info.value)
    report = scan_images([idat_damaged])
    assert report.bad_paths == [idat_damaged]
    assert "corrupt" in report.bad[0][1]


def _png(width, height, raw, level=9, split_checksum=False):
    """An 8-bit grey PNG whose IDAT holds ``raw`` (filter bytes included).

    ``split_checksum`` puts the zlib stream's last 4 bytes (its Adler-32
    checksum) in an IDAT chunk of their own, as encoders that split IDAT at
    fixed sizes sometimes do.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(raw, level)
    parts = [idat[:-4], idat[-4:]] if split_checksum else [idat]
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + b"".join(png_chunk(b"IDAT", part) for part in parts)
        + png_chunk(b"IEND", b"")
    )


def test_png_whose_pixel_data_ends_early_is_refused(tmp_path):
    """Pillow fills the rows missing from a short zlib stream with black."""
    rows = np.full((10, 16), 200, np.uint8)
    data = _png(16, 30, b"".join(b"\0" + r.tobytes() for r in rows))  # IHDR says 30 rows
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert not np.asarray(im)[10:].any()  # Pillow alone: silently black
    path = tmp_path / "short.png"
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match="170 bytes inflated, 510 expected"):
        ImageLoader(8).transform([str(path)])
    assert scan_images([str(path)]).bad_paths == [str(path)]
    # more data than the header announces is refused too (a corrupted height)
    longer = tmp_path / "long.png"
    longer.write_bytes(_png(16, 5, b"".join(b"\0" + r.tobytes() for r in rows)))
    with pytest.raises(ImageLoadError, match="longer than the 85 bytes its header announces"):
        ImageLoader(8).transform([str(longer)])


def test_png_pixel_damage_caught_by_the_zlib_checksum(tmp_path):
    """In a stored (uncompressed) block a flipped byte is a wrong pixel; when
    the checksum sits in a later IDAT chunk Pillow stops before reading it
    and accepts the image. zlib's Adler-32 checksum sees the damage."""
    rows = np.full((12, 16), 100, np.uint8)
    raw = b"".join(b"\0" + r.tobytes() for r in rows)
    data = _png(16, 12, raw, level=0, split_checksum=True)
    damaged = corrupt_idat(data, 0.5, xor=0x40)
    with Image.open(io.BytesIO(damaged)) as im:
        im.load()
        assert (np.asarray(im) != 100).sum() == 1  # Pillow alone: one wrong pixel
    path = tmp_path / "checksum.png"
    path.write_bytes(damaged)
    with pytest.raises(ImageLoadError, match="incorrect data check"):
        ImageLoader(8).transform([str(path)])
    ok = tmp_path / "stored.png"
    ok.write_bytes(data)
    np.testing.assert_allclose(ImageLoader(4).transform([str(ok)]), 100 / 255)


def _move_exif_after_idat(data):
    """Pillow writes eXIf before the pixels; the PNG spec allows it after."""
    chunks = png_chunks(data)
    exif = next(c for c in chunks if c[0] == b"eXIf")
    exif_bytes = data[exif[1] : exif[2] + exif[3] + 4]
    rest = data[: exif[1]] + data[exif[2] + exif[3] + 4 :]
    iend = rest.rfind(b"IEND") - 4
    return rest[:iend] + exif_bytes + rest[iend:]


def test_png_exif_after_the_pixels_is_read_after_a_full_decode(tmp_path):
    """Reading EXIF that follows IDAT decodes the pixels; errors must surface."""
    stored = np.zeros((20, 40), dtype=np.uint8)
    stored[:10] = 255  # top half white
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    data = _move_exif_after_idat(encode(Image.fromarray(stored), "PNG", exif=exif.tobytes()))
    assert data.find(b"eXIf") > data.find(b"IDAT")
    good = tmp_path / "late_exif.png"
    good.write_bytes(data)
    X = ImageLoader((40, 20), color_mode="grayscale").transform([str(good)])[0, :, :, 0]
    assert X[:, 12:].mean() > 0.9 and X[:, :8].mean() < 0.1  # rotated: top went right
    bad = tmp_path / "late_exif_damaged.png"
    bad.write_bytes(corrupt_idat(data, 1 / 3))
    with pytest.raises(ImageLoadError, match="corrupt"):
        ImageLoader(8).transform([str(bad)])


def _interlaced_png(arr):
    """An 8-bit grey Adam7-interlaced PNG (Pillow reads but cannot write them)."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
              (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]  # x0, y0, dx, dy
    subimages = [arr[y0::dy, x0::dx] for x0, y0, dx, dy in passes]
    # an empty pass is left out whole, filter bytes included
    raw = b"".join(b"\0" + row.tobytes() for sub in subimages if sub.size for row in sub)
    h, w = arr.shape
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def test_damaged_png_data_detected_even_if_pillow_check_is_off(tmp_path, monkeypatch):
    """With LOAD_TRUNCATED_IMAGES on, Pillow keeps partial PNGs; cxrlearn does not."""
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (37, 29), dtype=np.uint8)
    images = {
        "1": Image.fromarray(arr > 127),
        "L": Image.fromarray(arr),
        "P4": Image.fromarray(arr).quantize(16),
        "LA": Image.fromarray(arr).convert("LA"),
        "RGB": Image.fromarray(np.dstack([arr, arr[::-1], 255 - arr])),
        "RGBA": Image.fromarray(arr).convert("RGBA"),
        "I;16": Image.fromarray(arr.astype(np.uint16) * 257),
    }
    files = {}
    for name, im in images.items():
        buf = io.BytesIO()
        im.save(buf, "PNG", **({"bits": 4} if name == "P4" else {}))
        files[name] = buf.getvalue()
    files["interlaced"] = _interlaced_png(arr)
    with Image.open(io.BytesIO(files["interlaced"])) as im:
        np.testing.assert_array_equal(np.asarray(im), arr)  # a valid interlaced PNG
    strict = {}
    for name, data in files.items():
        (tmp_path / f"{name}.png").write_bytes(data)
        (tmp_path / f"bad_{name}.png").write_bytes(corrupt_idat(data, 1 / 3))
        strict[name] = ImageLoader(8).transform([str(tmp_path / f"{name}.png")])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with Image.open(tmp_path / "bad_L.png") as im:
        im.load()  # Pillow alone now accepts the damaged file
    for name in files:
        # complete files load exactly as with Pillow's check on ...
        good = ImageLoader(8).transform([str(tmp_path / f"{name}.png")])
        np.testing.assert_array_equal(good, strict[name])
        # ... damaged pixel data is refused
        bad = str(tmp_path / f"bad_{name}.png")
        with pytest.raises(ImageLoadError, match="PNG pixel data") as info:
            ImageLoader(8).transform([bad])
        assert info.value.path == bad


# --------------------------------------------------------------------- EXIF
def _with_exif(tmp_path, fmt, raw_exif, name):
    stored = np.zeros((20, 40), dtype=np.uint8)
    stored[:10] = 255
    path = tmp_path / f"{name}.{fmt}"
    path.write_bytes(encode(Image.fromarray(stored), fmt.upper(), exif=raw_exif))
    return str(path)


def _exif_bytes(orientation):
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_damaged_exif_block_raises(tmp_path, fmt):
    """A block Pillow cannot parse: the orientation is unknown, so refuse."""
    raw = bytearray(_exif_bytes(6))
    raw[raw.find(b"MM") : raw.find(b"MM") + 2] = b"XY"  # not a TIFF header
    path = _with_exif(tmp_path, fmt, bytes(raw), "bad_header")
    assert pillow_decodes(open(path, "rb").read())  # the pixels are fine
    with pytest.raises(ImageLoadError, match="damaged EXIF block") as info:
        ImageLoader(8).transform([path])
    assert info.value.path == path


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
@pytest.mark.parametrize("value", [9, 300])
def test_invalid_exif_orientation_raises(tmp_path, fmt, value):
    path = _with_exif(tmp_path, fmt, _exif_bytes(value), f"o{value}")
    with pytest.raises(ImageLoadError, match=f"invalid EXIF orientation {value}"):
        ImageLoader(8).transform([path])


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_exif_orientation_zero_means_unrotated(tmp_path, fmt):
    path = _with_exif(tmp_path, fmt, _exif_bytes(0), "o0")
    X = ImageLoader((20, 40), color_mode="grayscale").transform([path])[0, :, :, 0]
    assert X[:8].mean() > 0.9 and X[12:].mean() < 0.1


# -------------------------------------------------------------------- DICOM
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rescale": (float("nan"), 0)}, r"non-finite pixel values after the modality LUT "
                                         r"\(RescaleSlope=nan"),
        ({"rescale": (1e308, 0)}, "non-finite pixel values after the modality LUT"),
        ({"rescale": (1, float("inf"))}, "non-finite pixel values"),
        ({"window": (float("nan"), 400)}, "non-finite"),
        ({"window": (200, float("nan"))}, "non-finite"),
    ],
)
def test_dicom_with_non_finite_values_raises(tmp_path, kwargs, match):
    from test_loading import STORED, write_dicom

    path = write_dicom(tmp_path / "nan.dcm", STORED, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no RuntimeWarning on the way
        with pytest.raises(ImageLoadError, match=match) as info:
            ImageLoader(4).transform([path])
    assert info.value.path == path
    report = scan_images([path])
    assert report.bad_paths == [path]


# -------------------------------------------------------- decoded-bytes limit
def _png_16bit_rgba(path, width, height):
    """A 16-bit RGBA PNG (Pillow cannot write one): decodes to mode RGBA."""

    row = b"\x00" + struct.pack(">4H", 30000, 40000, 50000, 65535) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(row * height, 9))
        + png_chunk(b"IEND", b"")
    )
    return str(path)


def test_max_decoded_bytes_counts_bytes_not_pixels(tmp_path):
    path = _png_16bit_rgba(tmp_path / "rgba16.png", 100, 60)  # 6000 px x 4 bytes
    with pytest.raises(ImageLoadError) as info:
        ImageLoader(8, max_decoded_bytes=23_999).transform([path])
    message = str(info.value)
    assert info.value.path == path and path in message
    for part in ["24000 bytes", "max_decoded_bytes=23999", "100x60", "RGBA"]:
        assert part in message
    assert ImageLoader(8, max_decoded_bytes=24_000).transform([path]).shape == (1, 8, 8, 3)
    assert ImageLoader(8, max_decoded_bytes=None).transform([path]).shape == (1, 8, 8, 3)
    # 16-bit grey: 2 bytes a pixel; 8-bit grey: 1
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.zeros((60, 100), np.uint16)).save(grey16)
    ImageLoader(8, max_decoded_bytes=12_000).transform([str(grey16)])
    with pytest.raises(ImageLoadError, match="12000 bytes"):
        ImageLoader(8, max_decoded_bytes=11_999).transform([str(grey16)])


def test_max_decoded_bytes_after_jpeg_draft(tmp_path):
    """libjpeg decodes a big JPEG at reduced scale: that is what is counted."""
    path = tmp_path / "big.jpeg"
    Image.fromarray(np.full((800, 800), 90, np.uint8)).save(path, quality=90)
    limit = 200 * 200  # far below the full decode (640,000 bytes)
    assert ImageLoader(50, color_mode="grayscale", max_decoded_bytes=limit).transform(
        [str(path)]
    ).shape == (1, 50, 50, 1)
    with pytest.raises(ImageLoadError, match="max_decoded_bytes"):
        ImageLoader(400, color_mode="grayscale", max_decoded_bytes=limit).transform([str(path)])


def test_max_decoded_bytes_for_dicom(tmp_path):
    from test_loading import STORED, write_dicom

    path = write_dicom(tmp_path / "a.dcm", STORED)  # 2 x 3 pixels, 16 bits allocated
    ImageLoader(4, max_decoded_bytes=12).transform([path])
    with pytest.raises(ImageLoadError, match="needs about 12 bytes.*max_decoded_bytes=11"):
        ImageLoader(4, max_decoded_bytes=11).transform([path])


def test_max_decoded_bytes_in_every_path(tmp_path, monkeypatch):
    import cxrlearn._loading as loading

    path = _png_16bit_rgba(tmp_path / "rgba16.png", 100, 60)
    small = ImageLoader(8, max_decoded_bytes=1000)
    with pytest.raises(ImageLoadError, match="max_decoded_bytes=1000"):
        small.set_params(lazy=True).transform([path]).load()
    with pytest.raises(ImageLoadError, match="max_decoded_bytes=1000"):
        ImageLoader(8, max_decoded_bytes=1000, n_jobs=2).transform([path, path])
    report = scan_images([path], max_decoded_bytes=1000)
    assert "max_decoded_bytes=1000" in report.bad[0][1]
    assert scan_images([path]).ok
    # the cache key does not depend on the limit (like max_pixels)
    calls = []
    original = loading.decode_file
    monkeypatch.setattr(loading, "decode_file", lambda *a: calls.append(a) or original(*a))
    ImageLoader(8, memory=tmp_path / "c").transform([path])
    ImageLoader(8, memory=tmp_path / "c", max_decoded_bytes=10**9).transform([path])
    assert len(calls) == 1
    with pytest.raises(ValueError, match="max_decoded_bytes"):
        ImageLoader(8, max_decoded_bytes=0).transform([path])


# ------------------------------------------------ decompression-bomb warning
def test_no_decompression_bomb_warning_below_the_limits(tmp_path, monkeypatch):
    """Pillow warns above MAX_IMAGE_PIXELS; cxrlearn's own limits replace it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so a tiny image is "large"
    allowed = tmp_path / "allowed.png"  # 1500 px: above 1000, below Pillow's hard 2000
    Image.fromarray(np.full((30, 50), 7, np.uint8)).save(allowed)
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(allowed)  # what Pillow alone does
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ImageLoader(8).transform([str(allowed)]).shape == (1, 8, 8, 3)
        assert scan_images([str(allowed)]).ok
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    # above Pillow's hard limit, or above max_pixels: a clear ImageLoadError
    too_big = tmp_path / "too_big.png"
    Image.fromarray(np.full((50, 50), 7, np.uint8)).save(too_big)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageLoadError, match=r"2 x PIL.Image.MAX_IMAGE_PIXELS = 2000"):
            ImageLoader(8, max_pixels=None).transform([str(too_big)])
        with pytest.raises(ImageLoadError, match="exceeds max_pixels=1499"):
            ImageLoader(8, max_pixels=1499).transform([str(allowed)])
    assert not caught


def test_formats_outside_the_common_plugins_still_open(tmp_path):
    """Opening through Pillow's registry finds every plugin, as Image.open does."""
    for fmt, suffix in [("TIFF", "tif"), ("BMP", "bmp"), ("WEBP", "webp"), ("GIF", "gif")]:
        path = tmp_path / f"a.{suffix}"
        try:
            Image.fromarray(np.full((6, 7), 200, np.uint8)).save(path, fmt)
        except (KeyError, OSError):  # format not built into this Pillow
            continue
        X = ImageLoader((6, 7), color_mode="grayscale").transform([str(path)])
        assert abs(float(X.mean()) - 200 / 255) < 0.02, fmt
    text = tmp_path / "text.png"
    text.write_text("not an image")
    with pytest.raises(ImageLoadError, match="not a recognised image file"):
        ImageLoader(8).transform([str(text)])


def test_image_load_error_is_the_only_exception(tmp_path):
    """Odd inputs around the decoders still raise ImageLoadError."""
    cases = {
        "png_signature_only.png": b"\x89PNG\r\n\x1a\n",
        "jpeg_soi_only.jpeg": b"\xff\xd8",
        "huge_declared.png": b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + struct.pack(">IIBBBBB", 2**31 - 1, 2**31 - 1, 8, 0, 0, 0, 0)
        + b"\0\0\0\0",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ImageLoadError) as info:
            ImageLoader(8).transform([str(path)])
        assert os.path.basename(info.value.path) == name

"""Tests for facemend.data.io: formats, orientation, alpha, grey, 16-bit, bad files, arrays, lists, writes."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facemend.data import io as fio
from facemend.data.io import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    Photo,
    decode_image,
    encode_image,
    iter_images,
    list_images,
    photo_from_array,
    photo_to_array,
    photo_to_pil,
    read_image,
    write_bytes_atomic,
    write_image,
)
from facemend.errors import FacemendError

# ------------------------------------------------------------------------------------------------ helpers


def _rgb8(height: int = 12, width: int = 17, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _smooth8(height: int = 32, width: int = 48) -> np.ndarray:
    """A smooth colour gradient: JPEG keeps it within a few levels."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height - 2)]).astype(
        np.uint8
    )


def _blocks8() -> np.ndarray:
    """16×24, six flat 8×8 blocks of distinct colours: asymmetric, and JPEG-friendly."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
    image = np.zeros((16, 24, 3), np.uint8)
    for k, colour in enumerate(colours):
        row, col = divmod(k, 3)
        image[row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] = colour
    return image


def _save(path: Path, image: Image.Image, **options: object) -> Path:
    image.save(path, **options)
    return path


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_exif(png: bytes, orientation: int) -> bytes:
    """Insert an eXIf chunk carrying `orientation` right after IHDR."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    payload = payload[6:] if payload.startswith(b"Exif\x00\x00") else payload
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + _png_chunk(b"eXIf", payload) + png[ihdr_end:]


def _zero_png(width: int, height: int, bit_depth: int = 1, colour_type: int = 0, rows: int | None = None) -> bytes:
    """A real PNG of zeros, built row by row (cheap even when huge); `rows` < height truncates it."""
    row = bytes(1 + (width * bit_depth * {0: 1, 2: 3, 4: 2, 6: 4}[colour_type] + 7) // 8)
    compressor = zlib.compressobj(6)
    body = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _png16(array: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG from an H×W×C big-endian-able array, for layouts OpenCV cannot write (grey + alpha)."""
    height, width = array.shape[:2]
    samples = np.ascontiguousarray(array.astype(">u2"))
    raw = b"".join(b"\x00" + samples[r].tobytes() for r in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _cv2_bytes(suffix: str, array: np.ndarray) -> bytes:
    """Encode an RGB(A) or grey array with OpenCV (which wants BGR(A))."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, encoded = cv2.imencode(suffix, array)
    assert ok
    return encoded.tobytes()


def _cv2_read(path: Path) -> np.ndarray:
    """A file decoded by OpenCV as stored (depth and channels), in RGB(A) order."""
    array = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    assert array is not None
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB if array.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return array


def _expect_error(excinfo: pytest.ExceptionInfo[FacemendError], name: str | Path) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and "\r" not in message
    assert str(name) in message
    return message


# Orientation by the EXIF definition: how the stored pixels must be turned for display.
_ORIENTED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored horizontally
    3: lambda a: a[::-1, ::-1],  # rotated 180°
    4: lambda a: a[::-1],  # mirrored vertically
    5: lambda a: np.rot90(a[:, ::-1], 1),  # mirrored horizontally, then rotated 90° counter-clockwise
    6: lambda a: np.rot90(a, -1),  # rotated 90° clockwise
    7: lambda a: np.rot90(a[:, ::-1], -1),  # mirrored horizontally, then rotated 90° clockwise
    8: lambda a: np.rot90(a, 1),  # rotated 90° counter-clockwise
}


# ------------------------------------------------------------------------------------ formats, round trips


@pytest.mark.parametrize("suffix", [".png", ".webp", ".bmp", ".tif", ".tiff"])
def test_lossless_round_trip(tmp_path: Path, suffix: str) -> None:
    original = _rgb8()
    photo = photo_from_array(original)
    write_image(tmp_path / f"out{suffix}", photo)
    back = read_image(tmp_path / f"out{suffix}")
    assert (back.gray, back.alpha, back.bit_depth) == (False, None, 8)
    np.testing.assert_array_equal(back.to_uint8(), original)
    assert back.rgb.dtype == np.float32 and back.rgb.flags["C_CONTIGUOUS"]
    assert back.rgb.min() >= 0.0 and back.rgb.max() <= 1.0


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_round_trip_is_close(tmp_path: Path, suffix: str) -> None:
    original = _smooth8()
    write_image(tmp_path / f"out{suffix}", photo_from_array(original))
    back = read_image(tmp_path / f"out{suffix}").to_uint8().astype(int)
    assert np.abs(back - original).mean() < 1.5
    assert np.abs(back - original).max() <= 12


@pytest.mark.parametrize(
    ("fmt", "suffix", "options", "tolerance"),
    [
        ("JPEG", ".jpg", {"quality": 95}, 12),
        ("PNG", ".png", {}, 0),
        ("WEBP", ".webp", {"lossless": True}, 0),
        ("BMP", ".bmp", {}, 0),
        ("TIFF", ".tif", {}, 0),
    ],
)
def test_decodes_files_written_by_pillow(
    tmp_path: Path, fmt: str, suffix: str, options: dict[str, object], tolerance: int
) -> None:
    original = _smooth8()
    path = _save(tmp_path / f"in{suffix}", Image.fromarray(original), format=fmt, **options)
    photo = read_image(str(path))  # str paths work too
    assert (photo.height, photo.width) == original.shape[:2]
    assert np.abs(photo.to_uint8().astype(int) - original).max() <= tolerance


def test_decode_image_from_bytes_uses_name_in_errors() -> None:
    data = _cv2_bytes(".png", _rgb8())
    np.testing.assert_array_equal(decode_image(data, "x.png").to_uint8(), _rgb8())
    with pytest.raises(FacemendError, match="not an image") as excinfo:
        decode_image(b"hello", "memory/thing.png")
    _expect_error(excinfo, "memory/thing.png")


# ---------------------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation(tmp_path: Path, orientation: int) -> None:
    stored = _blocks8()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(tmp_path / "o.jpg", Image.fromarray(stored), quality=95, subsampling=0, exif=exif.tobytes())
    photo = read_image(path)
    expected = _ORIENTED[orientation](stored).astype(int)
    assert photo.to_uint8().shape == expected.shape
    assert np.abs(photo.to_uint8().astype(int) - expected).max() <= 16


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_png_exif_orientation(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 65536, (5, 8, 3), dtype=np.uint16)
    data = _png_with_exif(_cv2_bytes(".png", stored), orientation)
    photo = decode_image(data, "o16.png")
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(photo_to_array(photo, stored), _ORIENTED[orientation](stored))


@pytest.mark.parametrize("orientation", [2, 3, 5, 6, 7, 8])
def test_16bit_gray_exif_orientation_png_and_tiff(tmp_path: Path, orientation: int) -> None:
    stored = (np.arange(5 * 8, dtype=np.uint16).reshape(5, 8) * 1601 + 7).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = orientation
    png = _save(tmp_path / "o.png", Image.fromarray(stored), exif=exif.tobytes())
    tif = _save(tmp_path / "o.tif", Image.fromarray(stored), tiffinfo={0x0112: orientation})
    for path in (png, tif):
        photo = read_image(path)
        assert (photo.gray, photo.bit_depth) == (True, 16)
        np.testing.assert_array_equal(photo_to_array(photo, stored), _ORIENTED[orientation](stored))


def test_broken_exif_is_ignored(tmp_path: Path) -> None:
    original = _smooth8()
    path = _save(tmp_path / "b.jpg", Image.fromarray(original), quality=95, exif=b"Exif\x00\x00garbage-here")
    assert read_image(path).to_uint8().shape == original.shape


# ------------------------------------------------------------------------------------ grey, alpha, palette


@pytest.mark.parametrize(("suffix", "tolerance"), [(".png", 0), (".jpg", 6), (".bmp", 0), (".tif", 0)])
def test_gray_source_stays_gray(tmp_path: Path, suffix: str, tolerance: int) -> None:
    gray = _smooth8()[..., 0]
    photo = read_image(_save(tmp_path / f"g{suffix}", Image.fromarray(gray, "L")))
    assert photo.gray and photo.alpha is None and photo.bit_depth == 8
    np.testing.assert_array_equal(photo.rgb[..., 0], photo.rgb[..., 2])
    write_image(tmp_path / f"out{suffix}", photo)
    with Image.open(tmp_path / f"out{suffix}") as written:
        assert written.mode == "L"
        assert np.abs(np.asarray(written).astype(int) - gray).max() <= tolerance


def test_gray_output_is_the_luma_of_colour_pixels(tmp_path: Path) -> None:
    photo = read_image(_save(tmp_path / "g.png", Image.fromarray(_smooth8()[..., 1], "L")))
    colour = _rgb8(photo.height, photo.width)
    write_image(tmp_path / "out.png", photo.with_rgb(colour / 255.0))
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "L"
        expected = np.rint(colour.astype(float) @ [0.299, 0.587, 0.114])
        assert np.abs(np.asarray(written).astype(int) - expected).max() <= 1


def test_mode_1_is_gray(tmp_path: Path) -> None:
    bits = Image.fromarray(np.eye(6, 9, dtype=bool))
    photo = read_image(_save(tmp_path / "bits.png", bits))
    assert photo.gray
    np.testing.assert_array_equal(photo.to_uint8()[..., 0], np.eye(6, 9) * 255)


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_rgba_alpha_survives_read_write_read(tmp_path: Path, suffix: str) -> None:
    rgba = np.dstack([_rgb8(9, 11), np.random.default_rng(5).integers(0, 256, (9, 11), dtype=np.uint8)])
    rgba[..., 3][0, :] = 0  # fully transparent pixels keep their colour too (lossless encoders)
    first = read_image(_save(tmp_path / f"in{suffix}", Image.fromarray(rgba, "RGBA"), lossless=True, exact=True))
    assert first.alpha is not None and not first.gray
    write_image(tmp_path / f"out{suffix}", first)
    with Image.open(tmp_path / f"out{suffix}") as written:
        assert written.mode == "RGBA"
    second = read_image(tmp_path / f"out{suffix}")
    assert second.alpha is not None
    np.testing.assert_array_equal(np.rint(second.alpha * 255), rgba[..., 3])
    np.testing.assert_array_equal(photo_to_array(second, rgba), rgba)


def test_la_png_keeps_alpha_and_stays_gray(tmp_path: Path) -> None:
    la = np.dstack([_smooth8()[..., 0], _smooth8()[..., 1]])
    photo = read_image(_save(tmp_path / "la.png", Image.fromarray(la, "LA")))
    assert photo.gray and photo.alpha is not None
    write_image(tmp_path / "out.png", photo)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "LA"
        np.testing.assert_array_equal(np.asarray(written), la)


def test_gray_png_with_transparent_value_gets_alpha(tmp_path: Path) -> None:
    gray = np.full((4, 5), 9, np.uint8)
    gray[1, 2] = 200
    photo = read_image(_save(tmp_path / "t.png", Image.fromarray(gray, "L"), transparency=200))
    assert photo.gray and photo.alpha is not None
    assert photo.alpha[1, 2] == 0 and photo.alpha.sum() == gray.size - 1


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_transparency(tmp_path: Path, suffix: str) -> None:
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    photo = read_image(_save(tmp_path / f"p{suffix}", image, transparency=1))
    assert photo.alpha is not None and not photo.gray
    np.testing.assert_array_equal(photo.alpha, indices != 1)
    opaque = indices != 1
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    np.testing.assert_array_equal(photo.to_uint8()[opaque], palette[indices][opaque])
    write_image(tmp_path / "out.png", photo)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(written)[..., 3], opaque * 255)


def test_palette_without_transparency_is_rgb(tmp_path: Path) -> None:
    image = Image.fromarray(_rgb8()).quantize(16)
    photo = read_image(_save(tmp_path / "p.png", image))
    assert photo.alpha is None and not photo.gray
    np.testing.assert_array_equal(photo.to_uint8(), np.asarray(image.convert("RGB")))


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    reference = _smooth8()
    path = _save(tmp_path / "cmyk.jpg", Image.fromarray(reference).convert("CMYK"), quality=95)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    photo = read_image(path)
    assert not photo.gray and photo.alpha is None
    difference = np.abs(photo.to_uint8().astype(int) - reference)
    assert difference.mean() < 2 and difference.max() <= 16


def test_cmyk_with_unusable_icc_profile_falls_back(tmp_path: Path) -> None:
    reference = _smooth8()
    cmyk = Image.fromarray(reference).convert("CMYK")
    path = _save(tmp_path / "cmyk.jpg", cmyk, quality=95, icc_profile=b"not a real profile" * 10)
    difference = np.abs(read_image(path).to_uint8().astype(int) - reference)
    assert difference.mean() < 2 and difference.max() <= 16


# -------------------------------------------------------------------------------------------------- 16-bit


def test_16bit_gray_png_round_trip(tmp_path: Path) -> None:
    gray = (np.arange(6 * 7, dtype=np.uint32).reshape(6, 7) * 1543 % 65536).astype(np.uint16)
    gray[0, 0] = 12345
    (tmp_path / "g16.png").write_bytes(_cv2_bytes(".png", gray))
    photo = read_image(tmp_path / "g16.png")
    assert (photo.gray, photo.bit_depth, photo.alpha) == (True, 16, None)
    assert round(float(photo.rgb[0, 0, 0]) * 65535) == 12345
    write_image(tmp_path / "out.png", photo)
    written = _cv2_read(tmp_path / "out.png")
    assert written.dtype == np.uint16 and written.ndim == 2
    np.testing.assert_array_equal(written, gray)
    assert photo_to_pil(photo).mode == "I;16"


def test_16bit_colour_png_round_trip(tmp_path: Path) -> None:
    rgb = np.random.default_rng(3).integers(0, 65536, (6, 9, 3), dtype=np.uint16)
    rgb[0, 0] = (12345, 54321, 1)
    (tmp_path / "c16.png").write_bytes(_cv2_bytes(".png", rgb))
    photo = read_image(tmp_path / "c16.png")
    assert (photo.gray, photo.bit_depth, photo.alpha) == (False, 16, None)
    np.testing.assert_array_equal(photo_to_array(photo, rgb), rgb)
    write_image(tmp_path / "out.png", photo)
    written = _cv2_read(tmp_path / "out.png")
    assert written.dtype == np.uint16 and written.shape == rgb.shape
    np.testing.assert_array_equal(written, rgb)


def test_16bit_rgba_png_keeps_16bit_alpha(tmp_path: Path) -> None:
    rgba = np.random.default_rng(4).integers(0, 65536, (5, 6, 4), dtype=np.uint16)
    rgba[0, 0, 3] = 12345
    photo = decode_image(_cv2_bytes(".png", rgba), "a16.png")
    assert photo.alpha is not None and photo.bit_depth == 16
    write_image(tmp_path / "out.png", photo)
    np.testing.assert_array_equal(_cv2_read(tmp_path / "out.png"), rgba)


def test_16bit_gray_alpha_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    gray_alpha = rng.integers(0, 65536, (4, 5, 2), dtype=np.uint16)
    photo = decode_image(_png16(gray_alpha, colour_type=4), "la16.png")
    assert (photo.gray, photo.bit_depth) == (True, 16)
    np.testing.assert_array_equal(photo_to_array(photo, gray_alpha), gray_alpha)
    write_image(tmp_path / "out.png", photo)  # written as 16-bit RGBA (OpenCV has no 2-channel PNG)
    written = _cv2_read(tmp_path / "out.png")
    np.testing.assert_array_equal(written[..., 0], gray_alpha[..., 0])
    np.testing.assert_array_equal(written[..., 3], gray_alpha[..., 1])


@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_tiff_round_trip(tmp_path: Path, channels: int) -> None:
    shape = (5, 7) if channels == 1 else (5, 7, 3)
    values = np.random.default_rng(channels).integers(0, 65536, shape, dtype=np.uint16)
    values.flat[0] = 12345
    (tmp_path / "in.tif").write_bytes(_cv2_bytes(".tiff", values))
    photo = read_image(tmp_path / "in.tif")
    assert (photo.gray, photo.bit_depth) == (channels == 1, 16)
    np.testing.assert_array_equal(photo_to_array(photo, values), values)
    for name in ("out.tif", "out.tiff"):
        write_image(tmp_path / name, photo)
        written = _cv2_read(tmp_path / name)
        assert written.dtype == np.uint16
        np.testing.assert_array_equal(written, values)


@pytest.mark.parametrize(("suffix", "mode"), [(".jpg", "L"), (".webp", "RGB"), (".bmp", "L")])
def test_16bit_falls_back_to_8bit_in_other_formats(tmp_path: Path, suffix: str, mode: str) -> None:
    gray = np.linspace(0, 65535, 6 * 8).reshape(6, 8).astype(np.uint16)
    photo = decode_image(_cv2_bytes(".png", gray), "g16.png")
    write_image(tmp_path / f"out{suffix}", photo)
    with Image.open(tmp_path / f"out{suffix}") as written:
        assert written.mode == mode
        eight = np.asarray(written.convert("L")).astype(int)
    assert np.abs(eight - np.rint(gray / 257.0)).max() <= 3


def test_16bit_colour_photo_as_jpeg_is_8bit_rgb(tmp_path: Path) -> None:
    photo = decode_image(_cv2_bytes(".png", (_smooth8().astype(np.uint16) * 257)), "c16.png")
    write_image(tmp_path / "out.jpg", photo)
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.mode == "RGB"
        assert np.abs(np.asarray(written).astype(int) - _smooth8()).max() <= 12


# --------------------------------------------------------------------------------- decompression bombs


def test_bomb_limit_per_call(tmp_path: Path) -> None:
    path = _save(tmp_path / "small.png", Image.fromarray(_rgb8(10, 20)))
    assert read_image(path, max_pixels=200).width == 20
    with pytest.raises(FacemendError, match=r"image too large \(20x10 = .* megapixels, limit .*\)") as excinfo:
        read_image(path, max_pixels=199)
    _expect_error(excinfo, path)


def test_bomb_header_checked_before_decoding() -> None:
    # A 30000×30000 header with the pixel data cut short: decoding would fail as truncated, so the
    # "too large" message proves that the size was checked first (past Pillow's own hard limit too).
    data = _zero_png(30000, 30000, rows=3)
    with pytest.raises(FacemendError, match=r"30000x30000 = 900\.0 megapixels, limit 100\.0") as excinfo:
        decode_image(data, "claims/huge.png")
    _expect_error(excinfo, "claims/huge.png")


def test_genuine_huge_1bit_png_is_rejected_with_the_default_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(_zero_png(20000, 20000))  # valid, ~50 kB, 400 megapixels once decoded
    with pytest.raises(FacemendError, match=r"20000x20000 = 400\.0 megapixels") as excinfo:
        read_image(path)
    _expect_error(excinfo, path)


def test_between_pillow_warning_and_our_limit_no_warning_leaks() -> None:
    data = _zero_png(12000, 10000)  # 120 MP: above Pillow's warning level (89 MP) and our default limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FacemendError, match=r"12000x10000 = 120\.0 megapixels, limit 100\.0"):
            decode_image(data, "big.png")
        assert MAX_PIXELS == 100_000_000


# ----------------------------------------------------------------------------------------------- bad files


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(FacemendError, match="empty file") as excinfo:
        read_image(path)
    _expect_error(excinfo, path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\nsecond line\n")
    with pytest.raises(FacemendError, match=r"not an image \(cannot identify image file\)") as excinfo:
        read_image(path)
    _expect_error(excinfo, path)


@pytest.mark.parametrize("kind", ["jpeg", "png", "png16"])
def test_truncated_file(tmp_path: Path, kind: str) -> None:
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(_rgb8(64, 64)).save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
    elif kind == "png":
        data = _cv2_bytes(".png", _rgb8(64, 64))
    else:
        data = _cv2_bytes(".png", _rgb8(64, 64).astype(np.uint16) * 257)
    path = tmp_path / f"cut.{kind}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FacemendError, match="corrupt or truncated") as excinfo:
        read_image(path)
    _expect_error(excinfo, path)


def test_corrupt_data_after_valid_header(tmp_path: Path) -> None:
    data = bytearray(_cv2_bytes(".png", _rgb8(32, 32)))
    data[60:120] = bytes(range(60))
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(FacemendError) as excinfo:
        read_image(path)
    _expect_error(excinfo, path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "missing.png"
    with pytest.raises(FacemendError, match="no such file") as excinfo:
        read_image(missing)
    _expect_error(excinfo, missing)
    with pytest.raises(FacemendError, match="is a directory") as excinfo:
        read_image(tmp_path)
    _expect_error(excinfo, tmp_path)


def test_zero_size_image(tmp_path: Path) -> None:
    path = tmp_path / "zero.png"
    path.write_bytes(_zero_png(0, 5, bit_depth=8))
    with pytest.raises(FacemendError) as excinfo:
        read_image(path)
    _expect_error(excinfo, path)


@pytest.mark.skipif(os.name != "posix", reason="newlines in file names are POSIX-only")
def test_file_name_with_newline_keeps_message_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.png"
    path.write_bytes(b"")
    with pytest.raises(FacemendError, match=r"two\\nlines\.png: empty file") as excinfo:
        read_image(path)
    assert "\n" not in str(excinfo.value)


# -------------------------------------------------------------------------------------------- multi-frame


def test_animated_gif_takes_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (6, 4), colour) for colour in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    path = _save(tmp_path / "anim.gif", frames[0], save_all=True, append_images=frames[1:], duration=50)
    photo = read_image(path)
    assert (photo.height, photo.width) == (4, 6)
    assert (photo.to_uint8() == (255, 0, 0)).all()


@pytest.mark.parametrize(("suffix", "options"), [(".tif", {}), (".webp", {"lossless": True})])
def test_multi_frame_takes_first_frame(tmp_path: Path, suffix: str, options: dict[str, object]) -> None:
    first, second = _rgb8(5, 7, seed=1), _rgb8(5, 7, seed=2)
    path = _save(
        tmp_path / f"multi{suffix}",
        Image.fromarray(first),
        save_all=True,
        append_images=[Image.fromarray(second)],
        **options,
    )
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 2
    np.testing.assert_array_equal(read_image(path).to_uint8(), first)


# ------------------------------------------------------------------------------------- arrays and Pillow


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 1), (7, 9, 2), (7, 9, 3), (7, 9, 4)])
def test_array_round_trip(dtype: type, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape) * 10 + shape[-1])
    if dtype is np.float32:
        array = rng.random(shape, dtype=np.float32)
    else:
        array = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    photo = photo_from_array(array)
    channels = 1 if len(shape) == 2 else shape[2]
    assert photo.gray == (channels <= 2)
    assert (photo.alpha is not None) == (channels in (2, 4))
    assert photo.bit_depth == (16 if dtype is np.uint16 else 8)
    assert photo.rgb.shape == (7, 9, 3) and photo.rgb.dtype == np.float32
    back = photo_to_array(photo, array)
    assert back.shape == array.shape and back.dtype == array.dtype
    if dtype is np.float32:
        np.testing.assert_allclose(back, array, atol=1e-6)
    else:
        np.testing.assert_array_equal(back, array)


def test_photo_to_array_changes_layout() -> None:
    rgba = np.dstack([_rgb8(4, 5), np.full((4, 5), 128, np.uint8)])
    photo = photo_from_array(rgba)
    gray = photo_to_array(photo, np.zeros((1, 1), np.uint16))
    assert gray.shape == (4, 5) and gray.dtype == np.uint16
    expected = np.rint(rgba[..., :3].astype(float) @ [0.299, 0.587, 0.114] * 257)
    assert np.abs(gray.astype(float) - expected).max() <= 257 * 0.51
    rgb = photo_to_array(photo, np.zeros((1, 1, 3), np.float64))
    assert rgb.dtype == np.float64 and rgb.shape == (4, 5, 3)
    opaque = photo_to_array(photo_from_array(_rgb8(4, 5)), np.zeros((1, 1, 4), np.uint8))
    assert (opaque[..., 3] == 255).all()


def test_photo_from_array_does_not_alias_input() -> None:
    array = np.random.default_rng(1).random((4, 4, 3), dtype=np.float32)
    photo = photo_from_array(array)
    photo.rgb[:] = 0
    assert array.max() > 0


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((4,), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((4, 4, 3), np.int32),
        np.full((4, 4, 3), 255.0, np.float32),
        np.full((4, 4, 3), np.nan, np.float32),
    ],
)
def test_photo_from_array_rejects_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(FacemendError) as excinfo:
        photo_from_array(bad)
    assert "\n" not in str(excinfo.value)


def test_photo_from_array_clips_tiny_float_excursions() -> None:
    photo = photo_from_array(np.full((2, 2, 3), 1.0004, np.float32))
    assert photo.rgb.max() == 1.0


@pytest.mark.parametrize(
    ("mode", "gray", "has_alpha", "bit_depth"),
    [
        ("1", True, False, 8),
        ("L", True, False, 8),
        ("LA", True, True, 8),
        ("P", False, False, 8),
        ("RGB", False, False, 8),
        ("RGBA", False, True, 8),
        ("CMYK", False, False, 8),
        ("YCbCr", False, False, 8),
        ("LAB", False, False, 8),
        ("HSV", False, False, 8),
        ("RGBa", False, True, 8),
        ("I;16", True, False, 16),
        ("I", True, False, 16),
        ("F", True, False, 16),
    ],
)
def test_photo_from_pil_modes(mode: str, gray: bool, has_alpha: bool, bit_depth: int) -> None:
    image = Image.fromarray(_smooth8(6, 8)).convert(mode) if mode not in ("I;16", "I", "F") else None
    if mode == "I;16":
        image = Image.fromarray(np.full((6, 8), 12345, np.uint16))
    elif mode == "I":
        image = Image.fromarray(np.full((6, 8), 12345, np.int32))
    elif mode == "F":
        image = Image.fromarray(np.full((6, 8), 0.25, np.float32))
    assert image is not None and image.mode == mode
    photo = photo_from_array(image)
    assert (photo.gray, photo.alpha is not None, photo.bit_depth) == (gray, has_alpha, bit_depth)
    assert (photo.height, photo.width) == (6, 8)
    if mode in ("I;16", "I"):
        assert round(float(photo.rgb[0, 0, 0]) * 65535) == 12345
    if mode == "F":
        assert photo.rgb[0, 0, 0] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("gray", "alpha", "bit_depth", "mode"),
    [
        (False, False, 8, "RGB"),
        (False, True, 8, "RGBA"),
        (True, False, 8, "L"),
        (True, True, 8, "LA"),
        (True, False, 16, "I;16"),
        (False, False, 16, "RGB"),
    ],
)
def test_photo_to_pil_modes(gray: bool, alpha: bool, bit_depth: int, mode: str) -> None:
    rgb = np.random.default_rng(2).random((3, 4, 3), dtype=np.float32)
    photo = Photo(rgb, np.full((3, 4), 0.5, np.float32) if alpha else None, gray=gray, bit_depth=bit_depth)
    image = photo_to_pil(photo)
    assert image.mode == mode and image.size == (4, 3)


# ---------------------------------------------------------------------------------------------- Photo


def test_to_uint8_rounds() -> None:
    photo = Photo(np.full((1, 2, 3), 100.6 / 255, np.float32), None)
    assert (photo.to_uint8() == 101).all() and photo.to_uint8().dtype == np.uint8
    assert (Photo(np.full((1, 1, 3), 1.2, np.float32), None).to_uint8() == 255).all()


def test_with_rgb_keeps_flags_and_resizes_alpha() -> None:
    alpha = np.zeros((4, 6), np.float32)
    alpha[:, 3:] = 1.0
    photo = Photo(np.zeros((4, 6, 3), np.float32), alpha, gray=True, bit_depth=16)
    same = photo.with_rgb(np.ones((4, 6, 3), np.float32))
    assert (same.gray, same.bit_depth) == (True, 16)
    np.testing.assert_array_equal(same.alpha, alpha)
    bigger = photo.with_rgb(np.full((8, 12, 3), 1.5, np.float64))
    assert (bigger.height, bigger.width) == (8, 12) and bigger.rgb.dtype == np.float32
    assert bigger.rgb.max() == 1.0  # clipped back into [0, 1]
    assert bigger.alpha is not None and bigger.alpha.shape == (8, 12)
    assert (bigger.alpha[:, :5] == 0).all() and (bigger.alpha[:, 7:] == 1).all()
    with pytest.raises(ValueError):
        photo.with_rgb(np.zeros((4, 6), np.float32))


def test_photo_validates_shapes() -> None:
    with pytest.raises(ValueError):
        Photo(np.zeros((4, 6), np.float32), None)
    with pytest.raises(ValueError):
        Photo(np.zeros((4, 6, 3), np.float32), np.zeros((4, 5), np.float32))
    assert Photo(np.zeros((2, 3, 3), np.float64), None).rgb.dtype == np.float32


# ------------------------------------------------------------------------------------------------ encoding


def test_encode_default_is_png_and_jpeg_drops_alpha() -> None:
    photo = photo_from_array(np.dstack([_rgb8(4, 5), np.full((4, 5), 7, np.uint8)]))
    assert encode_image(photo).startswith(b"\x89PNG")
    with Image.open(io.BytesIO(encode_image(photo, ".jpg"))) as jpeg:
        assert jpeg.format == "JPEG" and jpeg.mode == "RGB"
    with Image.open(io.BytesIO(encode_image(photo, "webp"))) as webp:
        assert webp.format == "WEBP" and webp.mode == "RGBA"
    with pytest.raises(FacemendError, match="cannot write '.gif' images"):
        encode_image(photo, ".gif")


def test_write_image_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(FacemendError, match="cannot write") as excinfo:
        write_image(tmp_path / "out.gif", photo_from_array(_rgb8()))
    _expect_error(excinfo, tmp_path / "out.gif")
    assert not (tmp_path / "out.gif").exists()


# --------------------------------------------------------------------------------------------- listing


def test_list_images_filters_and_orders(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for relative in [
        "b.jpg",
        "a.PNG",
        "c.txt",
        ".hidden.jpg",
        "sub/d.webp",
        "sub/deeper/e.TIFF",
        ".cache/f.jpg",
        "z.bmp",
        "noext",
    ]:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(b"x")
    (folder / "dir.jpg").mkdir()  # a folder with an image-like name is not a file
    explicit = tmp_path / "notes.txt"
    explicit.write_text("kept because it was named")
    result = list_images([explicit, folder, str(folder / "b.jpg")])
    relative = [p.relative_to(tmp_path).as_posix() for p in result]
    assert relative == [
        "notes.txt",
        "photos/a.PNG",
        "photos/b.jpg",
        "photos/sub/d.webp",
        "photos/sub/deeper/e.TIFF",
        "photos/z.bmp",
    ]
    flat = [p.name for p in list_images([folder], recursive=False)]
    assert flat == ["a.PNG", "b.jpg", "z.bmp"]
    assert list_images([folder / ".hidden.jpg"]) == [folder / ".hidden.jpg"]
    assert set(IMAGE_SUFFIXES) >= {".jpg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".jpeg"}


def _walked_and_sorted(paths, suffixes) -> list[Path]:
    """The listing as it was before it became lazy: os.walk everything, then sort (the reference)."""
    found = set()
    for path in map(Path, paths):
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = [name for name in dirs if not name.startswith(".")]
                found |= {
                    Path(folder, name)
                    for name in files
                    if not name.startswith(".")
                    and Path(name).suffix.lower() in suffixes
                    and Path(folder, name).is_file()
                }
        else:
            found.add(path)
    return sorted(found)


def test_lazy_listing_keeps_the_sorted_order_across_folders_and_sources(tmp_path: Path) -> None:
    # names whose order differs between "sort each folder, descend in place" done naively and sorting whole
    # paths: a folder "a" beside "a.png", "a-b.png" and "a0.png" ('-' and '.' sort before '/', '0' after)
    root = tmp_path / "scans"
    for relative in ["a/x.png", "a/b/y.jpg", "a.png", "a-b.png", "a0.png", "B.jpg", "b.jpg", "a/.h/z.png", "c/.k.png"]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"x")
    (root / "linked").symlink_to(root / "a", target_is_directory=True)  # links to folders are not followed
    (root / "link.png").symlink_to(root / "a.png")  # links to files are listed
    other = tmp_path / "other"
    (other / "a").mkdir(parents=True)
    (other / "a" / "m.png").write_bytes(b"x")
    sources = [str(root / "b.jpg"), other, root, root / "a", str(tmp_path / "scans" / "a-b.png")]
    expected = _walked_and_sorted(sources, set(IMAGE_SUFFIXES))
    listed = iter_images(sources)
    assert next(listed) == expected[0]  # yields before the walk is over
    assert [expected[0], *listed] == expected == list_images(sources)
    assert len(expected) == len(set(expected)) == 9  # the folder named twice and the files named again: once


def test_list_images_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(FacemendError, match="no such file or directory") as excinfo:
        list_images([tmp_path, missing])
    _expect_error(excinfo, missing)


# ----------------------------------------------------------------------------------------- atomic writes


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_bytes_atomic_creates_parents_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.bin"
    write_bytes_atomic(target, b"first")
    write_bytes_atomic(str(target), b"second")
    assert target.read_bytes() == b"second"
    assert _leftovers(target.parent) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_write_bytes_atomic_uses_the_umask(tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "perm.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "perm.bin").stat().st_mode & 0o777 == 0o644


def test_failed_replace_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"old content")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fio.os, "replace", broken_replace)
    with pytest.raises(FacemendError, match="cannot write") as excinfo:
        write_image(target, photo_from_array(_rgb8()))
    _expect_error(excinfo, target)
    assert target.read_bytes() == b"old content"
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.bin"
    target.write_bytes(b"old content")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fio.os, "fsync", broken_fsync)
    with pytest.raises(FacemendError, match="Input/output error"):
        write_bytes_atomic(target, b"new content")
    assert target.read_bytes() == b"old content"
    assert _leftovers(tmp_path) == []


def test_interrupted_write_removes_temp_and_reraises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.bin"
    target.write_bytes(b"old content")

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fio.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomic(target, b"new content")
    assert target.read_bytes() == b"old content"
    assert _leftovers(tmp_path) == []


def test_failed_encode_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"old content")

    def broken_encode(photo: Photo, suffix: str = ".png") -> bytes:
        raise OSError("encoder exploded")

    monkeypatch.setattr(fio, "encode_image", broken_encode)
    with pytest.raises(FacemendError, match="encoder exploded") as excinfo:
        write_image(target, photo_from_array(_rgb8()))
    _expect_error(excinfo, target)
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_write_into_a_file_path_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"a file, not a folder")
    with pytest.raises(FacemendError, match="cannot write") as excinfo:
        write_bytes_atomic(blocker / "out.png", b"data")
    _expect_error(excinfo, blocker / "out.png")

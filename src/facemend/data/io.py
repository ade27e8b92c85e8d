"""Image I/O for real photos: any common format, EXIF orientation, alpha, grey, 16-bit, safe writes."""

from __future__ import annotations

import contextlib
import heapq
import io
import os
import secrets
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms

from facemend.errors import FacemendError

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
MAX_PIXELS = 100_000_000

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_FLOAT_SLACK = 1e-3  # float inputs may overshoot [0, 1] by rounding noise; they are clipped
_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "PNG": {"compress_level": 3},  # 3× faster than Pillow's default 6 for files ~10% larger
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"lossless": True, "exact": True},
    "TIFF": {"compression": "tiff_lzw"},
}


class ImageTooLargeError(FacemendError):
    """An image with more pixels than the caller's limit (raised before its pixels are decoded)."""


# What decoders raise on damaged data (Pillow's own UnidentifiedImageError is an OSError, caught first).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, cv2.error)


@dataclass
class Photo:
    """An image as float32 RGB in [0, 1], optional alpha, and how the source stored it (grey, bit depth)."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    gray: bool = False
    bit_depth: int = 8

    def __post_init__(self) -> None:
        self.rgb = _float32(self.rgb, "rgb")
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"rgb must be H×W×3, got shape {self.rgb.shape}")
        if self.alpha is not None:
            self.alpha = _float32(self.alpha, "alpha")
            if self.alpha.shape != self.rgb.shape[:2]:
                raise ValueError(f"alpha must be {self.rgb.shape[:2]}, got shape {self.alpha.shape}")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    def to_uint8(self) -> np.ndarray:
        """The RGB pixels as H×W×3 uint8."""
        return np.clip(np.rint(self.rgb * 255), 0, 255).astype(np.uint8)

    def with_rgb(self, rgb: np.ndarray) -> Photo:
        """A photo with new pixels (clipped to [0, 1]) and the same flags; alpha follows a change of size."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"rgb must be H×W×3, got shape {rgb.shape}")
        alpha = self.alpha
        if alpha is not None and alpha.shape != rgb.shape[:2]:
            alpha = cv2.resize(alpha, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        return replace(self, rgb=np.clip(rgb, 0, 1), alpha=alpha)


def _float32(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{what} must be a float array in [0, 1], got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Photo:
    """Read an image file (first frame, turned upright); errors are FacemendErrors that name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FacemendError(f"{_show(path)}: no such file") from None
    except IsADirectoryError:
        raise FacemendError(f"{_show(path)}: is a directory") from None
    except OSError as error:
        raise FacemendError(f"{_show(path)}: cannot read ({_reason(error)})") from error
    return decode_image(data, path, max_pixels)


def decode_image(data: bytes, name: str | Path, max_pixels: int = MAX_PIXELS) -> Photo:
    """Decode the bytes of an image file; `name` is what error messages call it."""
    shown = _show(name)
    if not data:
        raise FacemendError(f"{shown}: empty file")
    with _pillow_size_check_off:
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageTooLargeError(
                        f"{shown}: image too large ({width}x{height} = {width * height / 1e6:.1f} "
                        f"megapixels, limit {max_pixels / 1e6:.1f})"
                    )
                if image.format == "PNG":  # Pillow decodes damaged pixel data silently: check the CRCs
                    with Image.open(io.BytesIO(data)) as check:
                        check.verify()
                array, bit_depth = _upright_pixels(image, data)
        except Image.UnidentifiedImageError:
            raise FacemendError(f"{shown}: not an image (cannot identify image file)") from None
        except _DECODE_ERRORS as error:
            raise FacemendError(f"{shown}: corrupt or truncated ({_reason(error)})") from error
    return _from_array(array, bit_depth)


class _PillowSizeCheckOff:
    """Switches Pillow's own size check off while decodes run: ours comes first, with its own limit.

    Pillow reads its limit from a module global: the decodes in flight are counted, and the last restores it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved: int | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            self._active += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                Image.MAX_IMAGE_PIXELS = self._saved


_pillow_size_check_off = _PillowSizeCheckOff()


def _upright_pixels(image: Image.Image, data: bytes) -> tuple[np.ndarray, int]:
    """The pixels turned upright as EXIF says, and their bit depth."""
    array = _decode_16bit(image, data)
    if array is None:
        array, bit_depth = _pil_array(image)
    elif image.format == "TIFF":
        return array, 16  # OpenCV turns TIFFs upright itself, even with IMREAD_UNCHANGED
    else:
        bit_depth = 16
    # Orientation last: finding an eXIf chunk after a PNG's pixels loads it, and load errors must not be lost.
    return _orient(array, _orientation(image)), bit_depth


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8), 1 when absent or unreadable."""
    try:
        value = image.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        return 1
    return int(value) if value in range(1, 9) else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels as EXIF `orientation` says: 5-8 are 1-4 after swapping rows and columns."""
    if orientation > 4:
        array, orientation = array.swapaxes(0, 1), orientation - 4
    rows = -1 if orientation in (3, 4) else 1
    cols = -1 if orientation in (2, 3) else 1
    return array[::rows, ::cols]


def _decode_16bit(image: Image.Image, data: bytes) -> np.ndarray | None:
    """A 16-bit PNG or TIFF as a uint16 array (H×W grey, H×W×2/3/4); None for anything else.

    Pillow reduces 16-bit colour to 8 bits, so OpenCV decodes these; the header says whether it is grey.
    """
    if image.format == "PNG":
        sixteen, gray = data[24] == 16, data[25] in (0, 4)  # IHDR bit depth and colour type
    elif image.format == "TIFF":
        bits = image.tag_v2.get(258, 8)  # BitsPerSample
        sixteen = 16 in (bits if isinstance(bits, tuple) else (bits,))
        gray = image.tag_v2.get(262) in (0, 1)  # PhotometricInterpretation: white or black is zero
    else:
        return None
    if not sixteen:
        return None
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16:
        return None  # Pillow decodes it, or says what is wrong with it
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[..., [2, 1, 0, 3][: array.shape[2]]]  # OpenCV's BGR(A) to RGB(A)
        if gray:
            array = array[..., [0, 3]] if array.shape[2] == 4 else array[..., 0]
    return array


def _pil_array(image: Image.Image) -> tuple[np.ndarray, int]:
    """A Pillow image as L/LA/RGB/RGBA uint8, or 16-bit grey (uint16, or float for mode F), and its depth."""
    if image.mode == "F":
        return np.clip(np.nan_to_num(np.asarray(image)), 0.0, 1.0), 16
    if image.mode.startswith("I"):  # I;16 variants, and I (32-bit integers) holding 16-bit values
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16), 16
    if image.mode == "CMYK":
        image = _cmyk_to_rgb(image)
    base = "L" if Image.getmodebase(image.mode) == "L" else "RGB"
    return np.asarray(image.convert(base + "A" if image.has_transparency_data else base)), 8


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """CMYK to sRGB through the embedded ICC profile when it is usable, else by the plain formula."""
    profile = image.info.get("icc_profile")
    if profile:
        with contextlib.suppress(ImageCms.PyCMSError):
            return ImageCms.profileToProfile(
                image, io.BytesIO(profile), ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
    return image.convert("RGB")


def photo_from_array(image: np.ndarray | Image.Image) -> Photo:
    """A Photo from a PIL image or an H×W or H×W×C array (C = 1-4; uint8, uint16, or float in [0, 1])."""
    if isinstance(image, Image.Image):
        return _from_array(*_pil_array(image))
    return _from_array(np.asarray(image))


def _from_array(array: np.ndarray, bit_depth: int | None = None) -> Photo:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4) or array.size == 0:
        raise FacemendError(f"an image must be a non-empty H×W or H×W×C array, C in 1-4, got {array.shape}")
    if array.dtype == np.uint8:
        values, depth = array.astype(np.float32) / 255, 8
    elif array.dtype == np.uint16:
        values, depth = array.astype(np.float32) / 65535, 16
    elif np.issubdtype(array.dtype, np.floating):
        values, depth = array.astype(np.float32), 8
        if not np.isfinite(values).all():
            raise FacemendError("an image array must not contain NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < -_FLOAT_SLACK or high > 1 + _FLOAT_SLACK:
            raise FacemendError(f"float image values must lie in [0, 1], got [{low:.4g}, {high:.4g}]")
        values = np.clip(values, 0, 1)
    else:
        raise FacemendError(f"unsupported image dtype {array.dtype}: use uint8, uint16 or float in [0, 1]")
    channels = array.shape[2]
    rgb = values[..., :3] if channels >= 3 else np.repeat(values[..., :1], 3, axis=2)
    alpha = values[..., -1] if channels in (2, 4) else None
    return Photo(rgb, alpha, gray=channels <= 2, bit_depth=bit_depth or depth)


def photo_to_array(photo: Photo, like: np.ndarray) -> np.ndarray:
    """The photo with the layout (H×W, H×W×1/2/3/4) and dtype of `like`; grey is the luma."""
    if like.ndim == 2:
        return _planes(photo, 1, like.dtype)
    if like.ndim == 3 and like.shape[2] in (1, 2, 3, 4):
        return _planes(photo, like.shape[2], like.dtype).reshape(photo.height, photo.width, like.shape[2])
    raise FacemendError(f"an image must be an H×W or H×W×C array with C in 1-4, got {like.shape}")


def photo_to_pil(photo: Photo) -> Image.Image:
    """The photo as a PIL image: L, LA, RGB or RGBA, or I;16 for 16-bit grey without alpha."""
    channels = (1 if photo.gray else 3) + (photo.alpha is not None)
    if photo.bit_depth == 16 and channels == 1:
        return Image.fromarray(_planes(photo, 1, np.dtype(np.uint16)))
    return Image.fromarray(_planes(photo, channels, np.dtype(np.uint8)))


def _planes(photo: Photo, channels: int, dtype: np.dtype) -> np.ndarray:
    """H×W (grey) or H×W×C: 2 is grey + alpha, 3 RGB, 4 RGBA; a missing alpha is opaque."""
    values = photo.rgb if channels >= 3 else (photo.rgb @ _LUMA)[..., None]
    if channels in (2, 4):
        alpha = np.ones(photo.rgb.shape[:2], np.float32) if photo.alpha is None else photo.alpha
        values = np.concatenate([values, alpha[..., None]], axis=2)
    values = np.clip(values if channels > 1 else values[..., 0], 0, 1)
    if dtype in (np.uint8, np.uint16):
        top = np.iinfo(dtype).max
        return np.rint(values * top).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    raise FacemendError(f"unsupported image dtype {dtype}: use uint8, uint16 or float")


def encode_image(photo: Photo, suffix: str = ".png") -> bytes:
    """The photo as a file in the format `suffix` names: grey stays grey, 16 bits stay in PNG and TIFF,
    JPEG and BMP drop the alpha."""
    suffix = "." + suffix.lower().lstrip(".") if suffix else ""
    fmt = _WRITE_FORMATS.get(suffix)
    if fmt is None:
        raise FacemendError(f"cannot write {suffix!r} images (use one of {', '.join(_WRITE_FORMATS)})")
    sixteen = photo.bit_depth == 16 and fmt in ("PNG", "TIFF")
    channels = (1 if photo.gray else 3) + (photo.alpha is not None and fmt not in ("JPEG", "BMP"))
    if channels == 2 and (sixteen or fmt not in ("PNG", "TIFF")):
        channels = 4  # grey + alpha as RGBA where the format or OpenCV has no grey + alpha
    if sixteen:
        array = _planes(photo, channels, np.dtype(np.uint16))
        if channels >= 3:
            array = array[..., [2, 1, 0, 3][:channels]]  # OpenCV wants BGR(A)
        ok, encoded = cv2.imencode(suffix, array)
        if not ok:
            raise OSError(f"OpenCV could not encode a 16-bit {fmt} image")
        return encoded.tobytes()
    buffer = io.BytesIO()
    image = Image.fromarray(_planes(photo, channels, np.dtype(np.uint8)))
    image.save(buffer, fmt, **_SAVE_OPTIONS.get(fmt, {}))
    return buffer.getvalue()


def write_image(path: str | Path, photo: Photo) -> None:
    """Encode the photo in the format of the path's suffix and write it atomically."""
    path = Path(path)
    try:
        data = encode_image(photo, path.suffix)
    except FacemendError as error:
        raise FacemendError(f"{_show(path)}: {error}") from None
    except (OSError, ValueError) as error:
        raise FacemendError(f"{_show(path)}: cannot write ({_reason(error)})") from error
    write_bytes_atomic(path, data)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, so `path` is never seen half-written."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = f"cannot make folder {_show(error.filename or path.parent)}: {_reason(error)}"
        raise FacemendError(f"{_show(path)}: cannot write ({reason})") from error
    try:
        # Permissions 0o666 less the umask, as for any new file (mkstemp would make it 0o600).
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
    except OSError as error:
        raise FacemendError(f"{_show(path)}: cannot write ({_reason(error)})") from error


def list_images(
    paths: Iterable[str | Path], recursive: bool = True, suffixes: Iterable[str] = IMAGE_SUFFIXES
) -> list[Path]:
    """Files named in `paths` (whatever their suffix) and the files with one of `suffixes` (images by default)
    in folders named there, skipping hidden files and folders inside those; sorted, without duplicates."""
    return list(iter_images(paths, recursive, suffixes))


def iter_images(
    paths: Iterable[str | Path], recursive: bool = True, suffixes: Iterable[str] = IMAGE_SUFFIXES
) -> Iterator[Path]:
    """`list_images`' files in its order, listed lazily: one folder's entries at a time, so a tree of millions of
    files starts yielding at once and is never held whole. A path that does not exist raises before the first."""
    wanted = {suffix.lower() for suffix in suffixes}
    streams = []
    for path in map(Path, paths):
        if path.is_dir():
            streams.append(_walk_sorted(path, recursive, wanted))
        elif path.exists():
            streams.append(iter([path]))
        else:
            raise FacemendError(f"{_show(path)}: no such file or directory")
    previous = None
    for path in heapq.merge(*streams):  # each stream is sorted as Paths sort: the merge is the sorted whole
        if path != previous:
            yield path
        previous = path


def _walk_sorted(folder: Path, recursive: bool, wanted: set[str]) -> Iterator[Path]:
    """The wanted files under `folder` in Path order (a sub-folder's files at its name's place), as `os.walk`
    finds them: hidden names skipped, links to folders not followed, unreadable folders passed over."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted((entry for entry in listing if not entry.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            is_folder = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        path = Path(folder, entry.name)
        if is_folder:
            if recursive:
                yield from _walk_sorted(path, recursive, wanted)
        elif path.suffix.lower() in wanted and path.is_file():
            yield path


def _show(name: object) -> str:
    """`name` on one line: control characters, such as a newline in a file name, are escaped."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(name))


def _reason(error: BaseException) -> str:
    return _show(getattr(error, "strerror", None) or str(error) or type(error).__name__)

"""Video I/O through the ffmpeg of the `imageio-ffmpeg` wheel: RGB frames in, H.264 MP4 out, written atomically,
with the source's frame rate and audio."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Generator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType, TracebackType

import numpy as np

from facemend.data.io import _reason, _show
from facemend.errors import FacemendError
from facemend.extras import require

VIDEO_SUFFIXES = (".avi", ".m4v", ".mkv", ".mov", ".mp4", ".webm")
MP4_AUDIO_CODECS = ("aac", "mp3", "ac3", "eac3", "alac")  # copied as they are; other audio is re-encoded to AAC
CRF = 18  # x264 constant rate factor: visually near-lossless, so the restoration is not lost to compression
# Read errors of the header parser in imageio-ffmpeg: what it raises on output it does not understand.
_HEADER_ERRORS = (OSError, RuntimeError, ValueError, IndexError, AttributeError, StopIteration)
# imageio-ffmpeg warns when decoded frames differ in size from the stored ones: rotated videos, turned upright.
logging.getLogger("imageio_ffmpeg").addFilter(lambda record: "different from the source frame" not in str(record.msg))


def _ffmpeg() -> ModuleType:
    """imageio-ffmpeg, which only the [video] extra installs."""
    return require("imageio_ffmpeg", "video", "reading and writing videos")


def is_video(path: str | Path) -> bool:
    """Whether the file's suffix is one of `VIDEO_SUFFIXES`."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What the source video's header says."""

    path: Path
    width: int  # of the decoded frames (after rotation metadata is applied)
    height: int
    fps: Fraction
    duration: float  # seconds; 0 when unknown
    audio_codec: str | None  # of the first audio stream; None without audio

    @property
    def frame_estimate(self) -> int:
        """Frames the duration and rate imply (0 when the duration is unknown); the decoder may give a few more
        or fewer."""
        return round(self.duration * self.fps)


def frame_rate(fps: float) -> Fraction:
    """The exact rate behind ffmpeg's rounded one: 29.97 is 30000/1001 (NTSC rates), 25.0 is 25."""
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if not fps.is_integer() and abs(float(ntsc) - fps) < 0.006:  # ffmpeg prints two decimals
        return ntsc
    return Fraction(fps).limit_denominator(1000)


def read_video(path: str | Path) -> tuple[VideoInfo, Generator[np.ndarray, None, None]]:
    """The video's header and its frames (H×W×3 uint8 RGB; close the generator to stop ffmpeg early); errors,
    when opening or while decoding, are FacemendErrors that name the file."""
    path = Path(path)
    shown = _show(path)
    if not path.is_file():
        raise FacemendError(f"{shown}: no such file")
    if path.stat().st_size == 0:
        raise FacemendError(f"{shown}: empty file")
    reader = _ffmpeg().read_frames(str(path))
    try:
        meta = next(reader)
    except _HEADER_ERRORS as error:
        reader.close()
        raise FacemendError(f"{shown}: not a readable video ({_open_failure(error)})") from None
    if not meta["fps"]:
        reader.close()
        raise FacemendError(f"{shown}: the video's frame rate is unknown")
    width, height = meta["size"]
    info = VideoInfo(path, width, height, frame_rate(meta["fps"]), meta["duration"], meta.get("audio_codec"))
    return info, _frames(reader, info)


def _frames(reader: Generator[bytes, None, None], info: VideoInfo) -> Generator[np.ndarray, None, None]:
    try:
        for data in reader:
            yield np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)
    except RuntimeError as error:
        raise FacemendError(f"{_show(info.path)}: cannot decode ({_ffmpeg_reason(error)})") from None
    finally:
        reader.close()


def _open_failure(error: BaseException) -> str:
    """Why a video did not open: ffmpeg's reason, or that it has streams but none of video (imageio-ffmpeg's
    header parser fails on those without an OSError)."""
    text = str(error) if isinstance(error, OSError) else ""
    if not text or ("Stream #" in text and " Video: " not in text):
        return "no video stream"
    if "Conversion failed!" in text:  # ffmpeg's last words when it decoded nothing
        return "no frame could be decoded"
    return _ffmpeg_reason(error)


def _ffmpeg_reason(error: BaseException) -> str:
    """The last line ffmpeg printed, without its prefixes: the reason it gave up."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith("===")]
    return _show(lines[-1].rsplit(": ", 1)[-1]) if lines else type(error).__name__


class VideoWriter:
    """Writes H×W×3 uint8 RGB frames into an H.264 MP4 (yuv420p, BT.709) at `fps`, with the audio of
    `audio_from` when it has any.

    Use it as a context manager. Frames go to a temporary file beside `path`, renamed to `path` once the context
    ends without an error and ffmpeg has written every frame; otherwise the temporary file is removed and an
    earlier `path` is left as it was. Odd sizes are padded by one black pixel (4:2:0 needs even ones).
    """

    def __init__(
        self, path: str | Path, size: tuple[int, int], fps: Fraction, audio_from: VideoInfo | None = None
    ) -> None:
        self.path = Path(path)
        self.size = size  # (w, h)
        self.fps = fps
        self.audio_from = audio_from if audio_from is not None and audio_from.audio_codec else None
        self.frames = 0
        self._temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        self._encoder: Generator[None, np.ndarray | None, None] | None = None

    def __enter__(self) -> VideoWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FacemendError(f"{_show(self.path)}: cannot write ({_reason(error)})") from error
        return self

    def _start_encoder(self) -> Generator[None, np.ndarray | None, None]:
        width, height = self.size
        # RGB → BT.709 YUV, tagged as such (the -colorspace options alone leave primaries and transfer unset)
        filters = "scale=out_color_matrix=bt709:out_range=tv,setparams=colorspace=bt709:color_primaries=bt709"
        filters += ":color_trc=bt709"
        if width % 2 or height % 2:
            filters = "pad=ceil(iw/2)*2:ceil(ih/2)*2," + filters
        output_params = ["-crf", str(CRF), "-vf", filters, "-movflags", "+faststart", "-f", "mp4"]
        audio_path = audio_codec = None
        if self.audio_from is not None:
            audio_path = str(self.audio_from.path)
            audio_codec = "copy" if self.audio_from.audio_codec in MP4_AUDIO_CODECS else "aac"
        encoder = _ffmpeg().write_frames(
            str(self._temp),
            self.size,
            fps=self.fps,
            codec="libx264",
            quality=None,  # the rate is set by the CRF above
            macro_block_size=1,  # no rescaling: odd sizes are padded instead
            ffmpeg_log_level="error",
            output_params=output_params,
            audio_path=audio_path,
            audio_codec=audio_codec,
        )
        encoder.send(None)
        return encoder

    def write(self, frame: np.ndarray) -> None:
        """Append one H×W×3 uint8 RGB frame of the writer's size."""
        width, height = self.size
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frames must be {height}×{width}×3 uint8, got {frame.shape} {frame.dtype}")
        if self._encoder is None:
            self._encoder = self._start_encoder()  # on the first frame: no ffmpeg run for a video without any
        try:
            self._encoder.send(np.ascontiguousarray(frame))
        except OSError:
            raise FacemendError(f"{_show(self.path)}: cannot write (ffmpeg stopped; its message is above)") from None
        self.frames += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if self._encoder is not None:
                self._encoder.close()  # waits for ffmpeg to finish the file
            if exc_type is None:
                if not self.frames:
                    raise FacemendError(f"{_show(self.path)}: no frames to write")
                self._check_complete()
                _fsync(self._temp)
                os.replace(self._temp, self.path)
        except OSError as error:
            raise FacemendError(f"{_show(self.path)}: cannot write ({_reason(error)})") from error
        finally:
            with contextlib.suppress(OSError):
                self._temp.unlink(missing_ok=True)

    def _check_complete(self) -> None:
        """ffmpeg reports its errors on the terminal but not to its caller: count what it wrote."""
        try:
            written, _ = _ffmpeg().count_frames_and_secs(str(self._temp))
        except (OSError, RuntimeError, ValueError):
            written = 0
        if written != self.frames:
            raise FacemendError(f"{_show(self.path)}: ffmpeg wrote {written} of {self.frames} frames")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

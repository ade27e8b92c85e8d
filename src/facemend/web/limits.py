"""What one request to `facemend serve` may send (kept apart from the app, so the CLI reads the defaults
without importing the web framework)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from facemend.errors import FacemendError

MB = 1_000_000


@dataclass(frozen=True)
class Limits:
    """What one request may send; uploads beyond these are refused with 413."""

    file_bytes: int = 20 * MB  # per uploaded file
    request_bytes: int = 60 * MB  # the whole request body
    pixels: int = 40_000_000  # per photo, checked before its pixels are decoded
    photos: int = 32  # files per request

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise FacemendError(f"limit {name} must be >= 1, got {value}")

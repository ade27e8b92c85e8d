"""facemend's optional parts and the pip extra that installs each, so that a missing one is named in one line.

`pip install facemend` restores photos; `[video]`, `[serve]`, `[onnx]`, `[eval]`, `[train]` and `[cluster]` add the
rest (pyproject.toml). Modules of an extra are imported where they are used, never by the photo path.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from facemend.errors import FacemendError

# The top-level module → the extra that installs it (for `onnx`, also part of [eval] and [train]: the extra named is
# the one that needs least).
MODULE_EXTRAS = {
    "imageio_ffmpeg": "video",
    "fastapi": "serve",
    "starlette": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "python_multipart": "serve",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "onnx": "onnx",
    "kornia": "eval",
    "scipy": "eval",
    "matplotlib": "eval",
    "lightning_fabric": "train",
    "tensorboardX": "train",
    "ray": "cluster",
}


class MissingExtraError(FacemendError):
    """A module of an optional extra is not installed."""


def install_hint(extra: str) -> str:
    """The one command that installs `extra`."""
    return f"pip install 'facemend[{extra}]'"


def missing_extra(error: ModuleNotFoundError, extra: str | None = None, needed_by: str = "this") -> MissingExtraError:
    """`error` as a one-line MissingExtraError naming the extra to install, or `error` itself (re-raised by the
    caller) when the missing module belongs to no extra: then facemend's installation is broken, not partial."""
    module = (error.name or "").split(".")[0]
    extra = extra or MODULE_EXTRAS.get(module)
    if extra is None:
        raise error
    return MissingExtraError(f"{needed_by} needs facemend[{extra}] ({module} is not installed): {install_hint(extra)}")


def require(module: str, extra: str, needed_by: str) -> ModuleType:
    """`import module`, or a MissingExtraError naming `extra` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise missing_extra(error, extra, needed_by) from None

"""facemend: blind face restoration for real photographs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Imported on first use, so `import facemend.cli` (and `facemend --help`) stays fast.
_LAZY = {
    "restore": "facemend.api",
    "evaluate": "facemend.pipelines.evaluate",
    "FacemendError": "facemend.errors",
    "Knob": "facemend.methods.base",
    "Restorer": "facemend.methods.base",
}

if TYPE_CHECKING:
    from facemend.api import restore
    from facemend.errors import FacemendError
    from facemend.methods.base import Knob, Restorer
    from facemend.pipelines.evaluate import evaluate


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'facemend' has no attribute {name!r}")


__all__ = ["FacemendError", "Knob", "Restorer", "__version__", "evaluate", "restore"]

"""Data files shipped inside installed packages (dlib models, MobileNetV2 weights, NIQE and BRISQUE parameters),
found without importing the package: several of them break on import with current numpy or setuptools."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from facemend.errors import FacemendError


def package_file(package: str, *parts: str, install: str | None = None) -> Path:
    """The file `parts` inside the installed `package`; `install` is the hint shown when it is missing."""
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location, *parts)
        if path.is_file():
            return path
    hint = install or f"pip install {package}"
    raise FacemendError(f"{'/'.join(parts)} not found in the installed {package} package ({hint})")

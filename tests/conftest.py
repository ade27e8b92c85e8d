from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; tests that need it skip when it is absent."""
    if not (SHARED_DATA / "lfw").is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's public-domain astronaut photo (NASA): 512×512×3 uint8 RGB, one face."""
    from skimage import data

    return data.astronaut()


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of float images in [0, 1], optionally over the pixels where `mask` is true."""
    error = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if mask is not None:
        error = error[mask]
    return float(10 * np.log10(1.0 / max(error.mean(), 1e-12)))

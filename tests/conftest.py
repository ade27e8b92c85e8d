from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def config_path(run: str) -> Path:
    """The committed training config of the run called `run`: configs/METHOD/[experiments/]NAME.yaml trains the
    run METHOD-NAME."""
    for path in (REPO / "configs").rglob("*.yaml"):
        if f"{path.relative_to(REPO / 'configs').parts[0]}-{path.stem}" == run:
            return path
    raise FileNotFoundError(f"no config under configs/ trains the run {run!r}")


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


def aligned_crop(image: np.ndarray, size: int, jitter: float = 0.0) -> np.ndarray | None:
    """The most central face of an RGB uint8 photo as an aligned `size` crop (uint8), or None without a face;
    `jitter` shifts the landmarks by that many crop pixels, for slightly different crops of one face."""
    from facemend.faces import FaceDetector, alignment_matrix, find_faces, warp_to_crop

    faces = find_faces(image, FaceDetector("hog"), only_center_face=True)
    if not faces:
        return None
    matrix = alignment_matrix(faces[0].landmarks5 + jitter * faces[0].size / size, size)
    crop = warp_to_crop(image.astype(np.float32) / 255, matrix, size)
    return np.clip(np.rint(crop * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def astronaut_face(astronaut) -> np.ndarray:
    """The astronaut's face, aligned, 128 px."""
    return aligned_crop(astronaut, 128)


@pytest.fixture(scope="session")
def lfw_faces(shared_data) -> dict[str, list[np.ndarray]]:
    """Aligned 128-px LFW faces of 100 people with ≥ 2 photos (their first two) and 100 more people (one each)."""
    from PIL import Image

    pairs: dict[str, list[np.ndarray]] = {}
    singles: dict[str, list[np.ndarray]] = {}
    for person in sorted(p for p in (shared_data / "lfw").iterdir() if p.is_dir()):
        files = sorted(person.glob("*.jpg"))
        wanted, into = (2, pairs) if len(pairs) < 100 else (1, singles)
        if len(files) < wanted:
            continue
        crops = [aligned_crop(np.asarray(Image.open(f).convert("RGB")), 128) for f in files[:wanted]]
        if all(c is not None for c in crops):
            into[person.name] = crops
        if len(singles) == 100:
            break
    return {**pairs, **singles}


@pytest.fixture(scope="session")
def prepared_faces(tmp_path_factory, astronaut) -> Path:
    """A small `facemend prepare`-style folder (train: 8, val: 4 aligned 128-px faces), made from the
    astronaut photo with shifted landmarks and colour changes, for training tests without ../shared/data."""
    from PIL import Image

    root = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        (root / split).mkdir()
        for i in range(count):
            crop = aligned_crop(astronaut, 128, jitter=float(rng.uniform(-3, 3))).astype(np.float32)
            crop = np.clip(crop * rng.uniform(0.8, 1.2, size=3) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
            Image.fromarray(crop).save(root / split / f"face_{i:02d}.png")
    return root

"""The blind degradation model of BFR practice, `y = JPEG_q((x ⊛ k_σ)↓_r + n_δ)↑_r`, and `facemend degrade`.

Presets give ranges for 512-px faces; at face size S, the blur σ and the down-sampling factor r scale by S/512
(r never below 1), so a preset means the same physical damage at every size. Every image draws its parameters,
then its noise, from its own generator seeded by (seed, stem): a subset of a folder keeps its degradation.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from facemend.data.io import list_images, photo_from_array, read_image, write_bytes_atomic, write_image
from facemend.data.parallel import check_workers, parallel_map
from facemend.errors import FacemendError

REFERENCE_SIZE = 512  # the face size the preset ranges are stated for
MIN_SIZE = 16
ANISOTROPIC_PROB = 0.5


@dataclass(frozen=True)
class Preset:
    """Ranges, for 512-px faces, of each degradation parameter."""

    blur_sigma: tuple[float, float]  # σ of the Gaussian blur kernel, pixels
    scale: tuple[float, float]  # down-sampling factor r
    noise_sigma: tuple[float, float]  # δ, std of additive Gaussian noise on the 0–255 scale
    jpeg_quality: tuple[int, int]  # q, inclusive


PRESETS = {
    "mild": Preset((0.1, 5.0), (1.0, 4.0), (0.0, 5.0), (70, 100)),
    "medium": Preset((0.1, 10.0), (1.0, 12.0), (0.0, 15.0), (60, 100)),
    "heavy": Preset((1.0, 15.0), (4.0, 30.0), (0.0, 20.0), (30, 80)),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise FacemendError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass(frozen=True)
class DegradationParams:
    """The parameters one LQ face was made with (the values of `params.json`)."""

    blur_sigma_x: float
    blur_sigma_y: float
    blur_angle: float  # radians in [0, π): direction of the x axis of the kernel
    scale: float
    noise_sigma: float
    jpeg_quality: int
    gray: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def image_rng(seed: int, stem: str) -> np.random.Generator:
    """The generator of one image: a function of (seed, stem) only, the same in every process."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise FacemendError(f"seed must be an integer >= 0, got {seed!r}")
    digest = hashlib.sha256(stem.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([seed, *words])


def sample_params(
    rng: np.random.Generator,
    preset: Preset,
    size: int,
    gray_prob: float = 0.0,
    anisotropic_prob: float = ANISOTROPIC_PROB,
) -> DegradationParams:
    """Draw one face's parameters for a face of `size` pixels.

    Always draws the same number of values in the same order, so the knobs (gray_prob, anisotropic_prob)
    change only what they control, and the noise drawn next from `rng` does not depend on them.
    """
    factor = size / REFERENCE_SIZE
    anisotropic_u, sigma_u, sigma_v, angle_u, scale_u, noise_u, gray_u = rng.random(7).tolist()
    quality = int(rng.integers(preset.jpeg_quality[0], preset.jpeg_quality[1] + 1))
    anisotropic = anisotropic_u < anisotropic_prob
    sigma_x = _between(preset.blur_sigma, sigma_u) * factor
    sigma_y = _between(preset.blur_sigma, sigma_v) * factor if anisotropic else sigma_x
    angle = round(angle_u * math.pi, 4) if anisotropic else 0.0
    return DegradationParams(
        blur_sigma_x=round(sigma_x, 4),
        blur_sigma_y=round(sigma_y, 4),
        blur_angle=angle if angle < math.pi else 0.0,
        scale=round(max(1.0, _between(preset.scale, scale_u) * factor), 4),
        noise_sigma=round(_between(preset.noise_sigma, noise_u), 4),
        jpeg_quality=quality,
        gray=bool(gray_u < gray_prob),
    )


def _between(bounds: tuple[float, float], u: float) -> float:
    low, high = bounds
    return float(low + (high - low) * u)


def gaussian_kernel(sigma_x: float, sigma_y: float, angle: float) -> np.ndarray:
    """Normalised `k k` float32 Gaussian with std `sigma_x` along direction `angle` and `sigma_y` across it."""
    radius = max(1, math.ceil(3.0 * max(sigma_x, sigma_y)))
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    cos, sin = math.cos(angle), math.sin(angle)
    along, across = x * cos + y * sin, -x * sin + y * cos
    kernel = np.exp(-0.5 * ((along / sigma_x) ** 2 + (across / sigma_y) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def degrade(image: np.ndarray, params: DegradationParams, rng: np.random.Generator) -> np.ndarray:
    """H×W×3 uint8 RGB → its LQ version at the same size; the noise comes from `rng`."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
        raise ValueError(f"expected a non-empty H×W×3 uint8 image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    kernel = gaussian_kernel(params.blur_sigma_x, params.blur_sigma_y, params.blur_angle)
    lq = cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    if params.scale > 1.0:
        small = (max(1, round(width / params.scale)), max(1, round(height / params.scale)))
        lq = cv2.resize(lq, small, interpolation=cv2.INTER_LINEAR)
    if params.gray:
        lq = cv2.cvtColor(lq, cv2.COLOR_RGB2GRAY)
    lq = lq + rng.normal(0.0, params.noise_sigma, lq.shape).astype(np.float32)
    lq = np.clip(np.rint(lq), 0, 255).astype(np.uint8)
    quality = [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality]
    ok, encoded = cv2.imencode(".jpg", lq if params.gray else lq[..., ::-1], quality)  # OpenCV wants BGR
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    lq = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE if params.gray else cv2.IMREAD_COLOR)
    lq = np.repeat(lq[..., None], 3, axis=2) if params.gray else lq[..., ::-1]
    if lq.shape[:2] != (height, width):
        lq = cv2.resize(lq, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(lq)


def resize_face(image: np.ndarray, size: int) -> np.ndarray:
    """`image` resized to `size`×`size`: area averaging when shrinking, bicubic when enlarging."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    shrinking = size * size < height * width
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def degrade_file(
    path: Path,
    out: Path,
    preset: Preset,
    seed: int,
    size: int | None = None,
    gray_prob: float = 0.0,
) -> tuple[str, dict | str]:
    """Write `out/hq/<stem>.png` and `out/lq/<stem>.png`; returns (stem, params dict) or (stem, error)."""
    try:
        hq = read_image(path).to_uint8()
    except FacemendError as error:
        return path.stem, str(error)
    if size is not None:
        hq = resize_face(hq, size)
    rng = image_rng(seed, path.stem)
    params = sample_params(rng, preset, min(hq.shape[:2]), gray_prob)
    lq = degrade(hq, params, rng)
    try:
        write_image(out / "hq" / f"{path.stem}.png", photo_from_array(hq))
        write_image(out / "lq" / f"{path.stem}.png", photo_from_array(lq))
    except FacemendError as error:
        return path.stem, str(error)
    return path.stem, params.to_dict()


@dataclass
class DegradeSummary:
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, one-line message)


def degrade_folder(
    source: str | Path | list[Path],
    out: str | Path,
    preset: str,
    seed: int,
    size: int | None = None,
    gray_prob: float = 0.0,
    workers: int | None = None,
    progress: bool = True,
) -> DegradeSummary:
    """`facemend degrade`: LQ/HQ pairs of every image in `source` (a folder or a list of files) in `out`.

    `out/params.json` keeps the entries of earlier runs into the same folder; this run's entries replace them.
    """
    chosen = get_preset(preset)
    image_rng(seed, "")  # validates the seed
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE):
        raise FacemendError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")
    if not 0.0 <= gray_prob <= 1.0:  # also false for NaN
        raise FacemendError(f"gray_prob must be in [0, 1], got {gray_prob!r}")
    workers = check_workers(workers)
    sources = [Path(source)] if isinstance(source, str | Path) else [Path(p) for p in source]
    files = list_images(sources)
    if not files:
        raise FacemendError(f"no images found in {', '.join(map(str, sources))}")
    _check_unique_stems(files)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FacemendError(f"{out}: output exists and is not a folder")
    params_path = out / "params.json"
    params = _read_params(params_path)

    work = partial(degrade_file, out=out, preset=chosen, seed=seed, size=size, gray_prob=gray_prob)
    summary = DegradeSummary()
    results = parallel_map(work, files, workers, desc="degrade" if progress else None, chunksize=8)
    for path, (stem, result) in zip(files, results, strict=True):
        if isinstance(result, str):
            summary.failed.append((str(path), result))
            print(f"error: {result}", file=sys.stderr)
        else:
            params[stem] = result
            summary.written += 1
    if summary.written:
        text = json.dumps(params, sort_keys=True, indent=2) + "\n"
        write_bytes_atomic(params_path, text.encode("utf-8"))
    return summary


def _check_unique_stems(files: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise FacemendError(
                f"two images share the stem {path.stem!r} ({seen[path.stem]}, {path}): outputs are named by stem"
            )
        seen[path.stem] = path


def _read_params(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    try:
        params = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FacemendError(f"{path}: cannot read the existing params.json ({error})") from None
    if not isinstance(params, dict):
        raise FacemendError(f"{path}: the existing params.json is not a JSON object")
    return params

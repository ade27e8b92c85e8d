"""`facemend score DIR -o OUT`: IQPFR's quality prior (`quality/prior.py`) on every image of a folder.

Writes `OUT/scores.jsonl` (one line per image: file, its path under DIR; niqe (or brisque), the prior's metric
value; score, in [0, 1]), `OUT/summary.json` (count, quantiles of the metric and of the score, the calibration
used and whether it was fitted here, the face size) and `OUT/histogram.png`. Without `--calibration`, the
calibration is fitted to these images (a training folder: the one a config's `quality_conditioning.prior` and
`data.scores` then use).
`--face-size S` first resizes every image to S × S as training loads faces (area when shrinking, bicubic when
enlarging), so that the scores are those of the faces a model of that size sees. Nothing is written until
every image has been read and scored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facemend.config import ConfigError, build, load_yaml, to_dict
from facemend.data.degradation import resize_face
from facemend.data.io import list_images, read_image, write_bytes_atomic
from facemend.errors import FacemendError
from facemend.quality.prior import (
    DEFAULT_SIZES,
    QUANTILES,
    QualityPrior,
    QualityPriorConfig,
    calibrated_score,
    fit_calibration,
    resize_for_prior,
)


def read_calibration(path: str | Path) -> QualityPriorConfig:
    """A calibration from a JSON/YAML file: a `summary.json` of `facemend score` (its `calibration`) or the
    calibration itself ({size, centre, scale})."""
    data = load_yaml(path)
    try:
        return build(QualityPriorConfig, data.get("calibration", data), "calibration")
    except ConfigError as error:
        raise FacemendError(f"{path}: {error}") from None


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES), strict=True)}


def score_folder(
    folder: str | Path,
    out: str | Path,
    calibration: QualityPriorConfig | None = None,
    metric: str | None = None,
    size: int | None = None,
    face_size: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
    report: Callable[[str], None] = print,
) -> dict:
    """Score every image under `folder` with the calibration's metric and size, else `metric` (default NIQE) at
    `size` (default: the metric's, `DEFAULT_SIZES`), and write the three files to `out`; returns the summary."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacemendError(f"{folder}: not a folder")
    if calibration is not None and (size, metric) != (None, None):
        raise FacemendError("--size and --metric are the calibration's: drop them")
    if batch_size < 1 or (face_size is not None and face_size < 1):
        raise FacemendError("--batch and --face-size must be >= 1")
    files = list_images([folder])
    if not files:
        raise FacemendError(f"{folder}: no images")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FacemendError(f"{out}: exists and is not a folder")
    if calibration is None:
        metric = metric or "niqe"
        try:
            config = QualityPriorConfig(metric=metric, size=size or DEFAULT_SIZES.get(metric))
        except ValueError as error:
            raise FacemendError(f"--metric/--size: {error}") from None
    else:
        config = calibration
    prior = QualityPrior(config)
    values = np.empty(len(files))
    with tqdm(total=len(files), desc="score", unit="face", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(files), batch_size):
            batch = [_face(path, face_size) for path in files[start : start + batch_size]]
            sizes = {face.shape[-2:] for face in batch}
            if config.size is None and len(sizes) > 1:
                raise FacemendError(f"{folder}: faces of several sizes; pass --face-size or --size to score them")
            with torch.no_grad():
                faces = torch.cat([resize_for_prior(face, config.size) for face in batch])
                values[start : start + len(batch)] = prior.values(faces).double().numpy()
            bar.update(len(batch))
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise FacemendError(f"{files[bad[0]]}: {config.metric} is not finite ({len(bad)} such images; flat?)")
    fitted = calibration is None
    calibration = fit_calibration(values, config.metric, config.size) if fitted else calibration
    scores = calibrated_score(torch.from_numpy(values), calibration).numpy()
    summary = {
        "folder": str(folder),
        "count": len(files),
        "face_size": face_size,
        config.metric: {"mean": float(values.mean()), **_quantiles(values)},
        "score": {"mean": float(scores.mean()), **_quantiles(scores)},
        "calibration": to_dict(calibration),
        "calibration_fitted": fitted,
    }
    names = [path.relative_to(folder).as_posix() for path in files]
    lines = [
        json.dumps({"file": name, config.metric: round(float(v), 6), "score": round(float(s), 6)})
        for name, v, s in zip(names, values, scores, strict=True)
    ]
    histogram = score_histogram(values, scores, f"{folder} ({len(files)} faces)", calibration)
    write_bytes_atomic(out / "histogram.png", histogram)
    write_bytes_atomic(out / "summary.json", (json.dumps(summary, indent=1) + "\n").encode())
    write_bytes_atomic(out / "scores.jsonl", ("\n".join(lines) + "\n").encode())
    return summary


def _face(path: Path, face_size: int | None) -> torch.Tensor:
    """An image as `1 3 h w` float in [0, 1], resized to `face_size` first when given."""
    image = read_image(path).to_uint8()
    if face_size is not None:
        image = resize_face(image, face_size)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


def score_histogram(values: np.ndarray, scores: np.ndarray, title: str, calibration: QualityPriorConfig) -> bytes:
    """PNG bytes: histograms of the metric (with the calibration's centre) and of the scores (with quartiles)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.hist(values, bins=50, color="tab:gray")
    left.axvline(calibration.centre, color="tab:red", label=f"centre {calibration.centre:.3g} (score 0.5)")
    at = f"at {calibration.size} px" if calibration.size else "at the faces' size"
    left.set_xlabel(f"{calibration.metric.upper()} {at} ↓")
    left.legend(fontsize=8)
    right.hist(scores, bins=50, range=(0, 1), color="tab:blue")
    for q, value in zip((0.25, 0.5, 0.75), np.quantile(scores, (0.25, 0.5, 0.75)), strict=True):
        right.axvline(value, color="black", linestyle=":", linewidth=1)
        right.annotate(f"q{round(q * 100)}", (value, 0), xytext=(2, 2), textcoords="offset points", fontsize=7)
    right.set_xlabel("prior score ↑")
    for axis in (left, right):
        axis.set_ylabel("faces")
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()

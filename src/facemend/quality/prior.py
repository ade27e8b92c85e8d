"""IQPFR's image-quality prior: a differentiable score in [0, 1] (higher = better) from one of facemend's torch
no-reference metrics.

Choices (the method leaves the scorer to us):

- Scorer (`metric`): NIQE by default, so that BRISQUE stays the no-reference metric the IQPFR models never trained
  against (docs/design.md's independence rule); `brisque` is the alternative (then NIQE is the independent one). NIQE's
  AGGD shape is solved exactly (`NIQE(smooth=True)`), so the gradient reaches the pixels through every feature;
  its values differ from the NIQE metric's grid fit by ~0.01 on average. BRISQUE is differentiable as it is.
- Size (`size`): faces are resized (bicubic, antialiased, as the metric suite resizes) to `size` px first; NIQE
  defaults to 512, the size of the NIQE metric, so the prior and the `niqe` column measure the same thing. NIQE
  cannot run at the tiny models' face size (128 px): its 96-px patches need > 193 px. `size: null` scores faces
  at their own size (BRISQUE's default: the training face size, where it is cheapest). Cost of NIQE at 512, one
  thread: 0.28 s forward, 0.47 s backward per 8 faces, small beside a training step of 3–5 s.
- Caution: NIQE upsampled from 128 to 512 px is blind to blur. On the astronaut face (3 crops × blur σ 0–2.1,
  noise σ 0–20, 6 medium/heavy degradations) NIQE at 512 *fell* with blur (Spearman ρ −0.91) while BRISQUE at
  128 px rose with all three (blur +0.97, noise +0.73, presets +0.94); on 100 facemend-test faces
  (`scripts/nr_metric_sanity.py`) a σ = 1 px Gaussian blur scored worse than the sharp face for 41% of faces
  under NIQE at 512, for 100% under BRISQUE at 128. The tiny (128-px) configs therefore use `metric: brisque,
  size: null`; NIQE stays the default for faces that are ≥ 512 px themselves (the base configs).
- Calibration: score = σ((centre − value) / scale), a logistic fitted to the training faces' distribution of the
  metric: centre = its median, scale = its inter-quartile range / (2 ln 3), so that the median scores 0.5 and
  values half that range from it 0.75 and 0.25 — 1 − the empirical CDF at the median and (for a symmetric
  distribution) at the quartiles; monotone and smooth everywhere, and only two numbers, kept in
  `QualityPriorConfig` and saved with the weights of every model that uses the prior (models never read
  files). `fit_calibration` fits it; `facemend score` writes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facemend.quality import brisque, niqe

METRICS = {"niqe": niqe.MIN_SIZE, "brisque": brisque.MIN_SIZE}  # the scorers, and the least size each takes
DEFAULT_SIZES = {"niqe": 512, "brisque": None}  # NIQE: the metric's size; BRISQUE: the faces' own
MIN_SCALE = 0.01  # metric units: the floor of a fitted scale (a set of identical values has no spread)
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass
class QualityPriorConfig:
    metric: str = "niqe"  # the no-reference metric scored: "niqe" or "brisque" (lower = better for both)
    size: int | None = DEFAULT_SIZES["niqe"]  # px: faces are resized to size × size first (null: as they are)
    centre: float | None = None  # metric value that scores 0.5 (fitted: the median of the training faces');
    # None: not calibrated yet (`facemend score` prints the fit), and training refuses to start
    scale: float | None = None  # metric units per logit (fitted: inter-quartile range / (2 ln 3))

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.size is not None and self.size < METRICS[self.metric]:
            raise ValueError(f"size must be >= {METRICS[self.metric]} for {self.metric}, got {self.size}")
        if (self.centre is None) != (self.scale is None):
            raise ValueError("centre and scale are fitted together: set both or neither")
        if self.centre is not None and not math.isfinite(self.centre):
            raise ValueError(f"centre must be a finite number, got {self.centre}")
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be > 0, got {self.scale}")

    @property
    def calibrated(self) -> bool:
        return self.centre is not None


def calibrated_score(values: Tensor, config: QualityPriorConfig) -> Tensor:
    """Metric values (any shape; lower = better) → scores in [0, 1], higher = better: σ((centre − v) / scale)."""
    if not config.calibrated:
        raise ValueError("the quality prior is not calibrated (centre, scale): run `facemend score` on the faces")
    return torch.sigmoid((config.centre - values) / config.scale)


def fit_calibration(values: np.ndarray | list[float], metric: str = "niqe", size: int | None = 512):
    """The `QualityPriorConfig` whose logistic has the median and quartiles of `values` (the metric's values of
    faces at `size` px)."""
    values = np.asarray(values, np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("fitting a calibration needs at least one value, all finite")
    low, median, high = np.quantile(values, [0.25, 0.5, 0.75])
    scale = max(float(high - low) / (2.0 * math.log(3.0)), MIN_SCALE)
    return QualityPriorConfig(metric=metric, size=size, centre=float(median), scale=scale)


def resize_for_prior(images: Tensor, size: int | None) -> Tensor:
    """`b c h w` in [0, 1] → `b c size size` (None: unchanged), bicubic and antialiased like the metric suite."""
    if size is None or images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


class QualityPrior(nn.Module):
    """`forward(images)`: `b 3 h w` RGB in [0, 1] → `b` scores in [0, 1], higher = better, differentiable with
    respect to the images. Runs in float32 outside autocast (the metrics' arithmetic is their references';
    bf16 would change it). Building it reads the metric's parameters from their packages: models may not, so
    recipes and tools build it."""

    def __init__(self, config: QualityPriorConfig):
        super().__init__()
        self.config = config
        self.metric = niqe.NIQE(smooth=True) if config.metric == "niqe" else brisque.BRISQUE()

    def values(self, images: Tensor) -> Tensor:
        """`b 3 h w` → `b` values of the metric (lower = better) at the prior's size."""
        with torch.autocast(images.device.type, enabled=False):
            return self.metric(resize_for_prior(images.float(), self.config.size)).float()

    def forward(self, images: Tensor) -> Tensor:
        with torch.autocast(images.device.type, enabled=False):
            return calibrated_score(self.values(images), self.config)

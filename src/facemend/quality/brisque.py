"""BRISQUE (Mittal, Moorthy & Bovik 2012) as the `brisque` package 0.2.0 computes it, batched and differentiable."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from facemend.package_files import package_file
from facemend.quality.natural_scene import (
    SKIMAGE_GREY,
    aggd_constants,
    aggd_moments,
    cropped_products,
    grey,
    mscn_brisque,
    opencv_half,
    safe_sqrt,
    shape_by_root,
)

N_FEATURES = 36
MIN_SIZE = 14  # so that the half-size scale still covers the 7×7 MSCN window


def default_model_paths() -> tuple[Path, Path]:
    """The `brisque` package's SVR (`models/svm.txt`) and feature ranges (`models/normalize.pickle`), found
    without importing the package."""
    return package_file("brisque", "models", "svm.txt"), package_file("brisque", "models", "normalize.pickle")


class _NoGlobals(pickle.Unpickler):
    """normalize.pickle is a dict of two lists of Python floats, which unpickle without any class, so this
    unpickler refuses every class (or function) a pickle asks for: a tampered file cannot run code."""

    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"refusing {module}.{name}: the feature ranges hold plain floats only")


def load_feature_ranges(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The per-feature (min, max) that the SVR's inputs are scaled to [−1, 1] with."""
    with open(path, "rb") as file:
        ranges = _NoGlobals(file).load()
    if not isinstance(ranges, dict) or not {"min_", "max_"} <= ranges.keys():
        raise ValueError(f"{path}: expected a dict with 'min_' and 'max_'")
    low, high = (np.asarray(ranges[k], np.float64) for k in ("min_", "max_"))
    if low.shape != (N_FEATURES,) or high.shape != (N_FEATURES,) or not np.all(high > low):
        raise ValueError(f"{path}: expected {N_FEATURES} ranges with max > min")
    return low, high


def load_svr(path: str | Path) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(gamma, rho, support vectors `n 36`, coefficients `n`) of a libsvm epsilon-SVR model file with an RBF kernel."""
    header: dict[str, str] = {}
    vectors: list[np.ndarray] = []
    coefficients: list[float] = []
    with open(path, encoding="ascii") as file:
        lines = iter(file)
        for line in lines:
            if line.strip() == "SV":
                break
            key, _, value = line.strip().partition(" ")
            header[key] = value
        for line in lines:
            if not line.strip():
                continue
            coefficient, *entries = line.split()
            vector = np.zeros(N_FEATURES)
            for entry in entries:  # sparse "index:value", 1-based; absent features are 0
                index, _, value = entry.partition(":")
                vector[int(index) - 1] = float(value)
            coefficients.append(float(coefficient))
            vectors.append(vector)
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError(f"{path}: expected an epsilon_svr model with an rbf kernel, got {header}")
    if len(vectors) != int(header.get("total_sv", -1)):
        raise ValueError(f"{path}: {len(vectors)} support vectors, the header says {header.get('total_sv')}")
    return float(header["gamma"]), float(header["rho"]), np.stack(vectors), np.array(coefficients)


class BRISQUE(torch.nn.Module):
    """Blind/Referenceless Image Spatial Quality Evaluator: an RBF SVR on natural-scene statistics at two scales.

    `forward(images)`: float `b 3 h w` RGB or `b 1 h w` grey in [0, 1] → `b` scores, lower is better (mostly
    0–100). Images are not resized and must be at least 14 px on each side. RGB becomes grey with
    skimage.color.rgb2gray's weights (0.2125 R + 0.7154 G + 0.0721 B), as the reference package converts it.

    Given the same grey pixels (e.g. `rgb2gray`'s output as `b 1 h w`), scores agree with the package to ~1e-9.
    In flat areas the reference's I − μ is rounding noise whose sign decides which side of the AGGD fit a sample
    falls on; it is reproduced for the same input bits, but one-ulp changes of the grey (our RGB conversion versus
    skimage's BLAS product, float32 versus float64 input) move scores by up to ~3e-3 from float64 RGB and ~0.03
    from float32 RGB (62 test faces).

    The AGGD shape is the exact root of the moment equation (as the reference solves it), made differentiable
    through the implicit function theorem, so the gradient reaches the input through every feature.
    """

    def __init__(self, svm_path: str | Path | None = None, ranges_path: str | Path | None = None):
        super().__init__()
        if svm_path is None or ranges_path is None:
            default_svm, default_ranges = default_model_paths()
            svm_path = default_svm if svm_path is None else svm_path
            ranges_path = default_ranges if ranges_path is None else ranges_path
        gamma, rho, vectors, coefficients = load_svr(svm_path)
        low, high = load_feature_ranges(ranges_path)
        self.gamma, self.rho = gamma, rho
        self.register_buffer("support_vectors", torch.from_numpy(vectors))
        self.register_buffer("coefficients", torch.from_numpy(coefficients))
        self.register_buffer("low", torch.from_numpy(low))
        self.register_buffer("high", torch.from_numpy(high))

    def forward(self, images: Tensor) -> Tensor:
        image = grey(images, SKIMAGE_GREY, "BRISQUE")
        height, width = image.shape[-2:]
        if height < MIN_SIZE or width < MIN_SIZE:
            raise ValueError(f"BRISQUE needs images of at least {MIN_SIZE}×{MIN_SIZE} px, got {height}×{width}")
        features = torch.cat([self._features(image), self._features(opencv_half(image))], dim=-1)

        f64 = torch.float64
        low, high = self.low.to(f64), self.high.to(f64)
        scaled = -1 + 2 * (features - low) / (high - low)
        distances = (scaled[:, None, :] - self.support_vectors.to(f64)).pow(2).sum(-1)
        score = torch.exp(-self.gamma * distances) @ self.coefficients.to(f64) - self.rho
        return score.to(images.dtype)

    @staticmethod
    def _features(image: Tensor) -> Tensor:
        """`b h w` grey → `b 18`: AGGD fits of the MSCN coefficients and of their four neighbour products."""
        coefficients = mscn_brisque(image)
        b = image.shape[0]
        moments = [aggd_moments(s.reshape(b, -1)) for s in [coefficients, *cropped_products(coefficients)]]
        left, right, ratio = (torch.stack(m, dim=-1) for m in zip(*moments, strict=True))  # b 5
        alpha = shape_by_root(ratio)
        scale, mean_factor = aggd_constants(alpha)
        mean = scale * (safe_sqrt(right) - safe_sqrt(left)) * mean_factor
        columns = [alpha[:, 0], (left[:, 0] + right[:, 0]) / 2]
        for k in range(1, 5):
            columns += [alpha[:, k], mean[:, k], left[:, k], right[:, k]]
        return torch.stack(columns, dim=-1)

"""Fréchet distance between two sets of feature vectors (Gaussian fit of each set)."""

from __future__ import annotations

import numpy as np


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """‖μa − μb‖² + tr Σa + tr Σb − 2 tr (Σa Σb)^½ of `n d` and `m d` features (n, m ≥ 2).

    tr (Σa Σb)^½ is the sum of the square roots of the eigenvalues of Σa Σb. With centred features A, B these are
    the squared singular values of A Bᵀ / √((n−1)(m−1)), so when the sets are smaller than the dimension the trace
    is a nuclear norm of an `n m` matrix; otherwise it comes from the `d d` symmetric form Σa^½ Σb Σa^½. Both are
    exact and stay real, unlike a general matrix square root.
    """
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two sets of ≥ 2 vectors of one dimension, got {a.shape} and {b.shape}")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    centred_a, centred_b = a - mean_a, b - mean_b
    dof_a, dof_b = len(a) - 1, len(b) - 1
    trace_a = float((centred_a**2).sum()) / dof_a
    trace_b = float((centred_b**2).sum()) / dof_b
    if min(len(a), len(b)) <= a.shape[1]:
        singular = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False)
        cross = float(singular.sum()) / np.sqrt(dof_a * dof_b)
    else:
        values, vectors = np.linalg.eigh(centred_a.T @ centred_a / dof_a)
        root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
        inner = root_a @ (centred_b.T @ centred_b / dof_b) @ root_a
        cross = float(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0, None)).sum())
    distance = float(((mean_a - mean_b) ** 2).sum() + trace_a + trace_b - 2 * cross)
    return max(distance, 0.0)  # rounding can make identical sets come out a hair below zero

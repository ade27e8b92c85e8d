"""Single-tone faces (grey, sepia, any one hue): found from their chroma, restored in luminance only.

A restorer trained on colour faces paints colour into a black-and-white or sepia face. For such faces only the
change of luminance is pasted back: the same value added to R, G and B keeps the input's chroma exactly, so a grey
face stays grey to the last level and a sepia face keeps its hue, with no colour edge where the paste fades out.
"""

from __future__ import annotations

import numpy as np

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601, as YCbCr and the metrics' PSNR-Y
# Chroma (Cb, Cr distances from neutral, levels of 255) below which a pixel counts as neutral grey.
NEUTRAL_LEVELS = 3.0
# A face is single-toned when at most this share of its pixels is off the one hue line by more than
# OFF_HUE_LEVELS: colour faces put lips, eyes and background well off the skin's hue; scans keep to one line.
OFF_HUE_LEVELS = 4.0
OFF_HUE_SHARE = 0.005
_TO_CHROMA = np.array([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)  # RGB → (Cb, Cr)


def chroma(image: np.ndarray) -> np.ndarray:
    """`… 2` chroma (Cb, Cr, 0 = neutral grey) of `… 3` float RGB in [0, 1], in levels of 255."""
    return (image.astype(np.float32) @ _TO_CHROMA.T) * 255.0


def is_single_tone(image: np.ndarray) -> bool:
    """Whether the H×W×3 float RGB image (a face crop) is grey or holds one hue only (sepia, cyanotype, a tint)."""
    points = chroma(image).reshape(-1, 2).astype(np.float64)
    strength = np.linalg.norm(points, axis=1)
    if np.quantile(strength, 1.0 - OFF_HUE_SHARE) <= NEUTRAL_LEVELS:
        return True
    # the hue line through neutral grey that fits the chroma best (least squares through the origin)
    _, _, axes = np.linalg.svd(points, full_matrices=False)
    hue = axes[0]
    off_hue = np.abs(points @ np.array([-hue[1], hue[0]]))
    return bool(np.mean(off_hue > OFF_HUE_LEVELS) <= OFF_HUE_SHARE)


def luminance_only(change: np.ndarray) -> np.ndarray:
    """A `… 3` RGB change reduced to its luminance, added equally to the three channels (chroma unchanged)."""
    luma = change.astype(np.float32) @ LUMA_WEIGHTS
    return np.repeat(luma[..., None], 3, axis=-1)

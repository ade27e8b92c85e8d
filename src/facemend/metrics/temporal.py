"""Temporal stability of a video's faces when the true motion between frames is known.

- **Warping error**: frame t−1 is warped into frame t by the known relative motion (a 2×3 affine); the mean
  absolute difference from frame t inside the face mask, on the 0–255 scale and averaged over the RGB channels,
  is the error of that pair. A clip's value is the mean over its consecutive pairs. What the motion explains
  cancels, so what is left is flicker: fresh noise, JPEG blocks and detail that change from frame to frame.
  Resampling alone leaves a floor well below 1 grey level on a smooth face.
- **Descriptor jitter**: the mean Euclidean distance of each frame's dlib face descriptor to the clip's mean
  descriptor, in IDD's units (dlib's same-person threshold is 0.6): how much the identity a recogniser sees
  wanders along the clip, whatever its distance to the ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facemend.faces.template import compose

COVERED = 0.999  # a pixel of frame t counts as seen in frame t−1 when its warped coverage reaches this


def relative_motion(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """2×3 affine from frame t−1 to frame t, given each frame's motion from one common reference (2×3 each)."""
    return compose(current, cv2.invertAffineTransform(previous))


def warping_error(previous: np.ndarray, current: np.ndarray, motion: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute difference (0–255, RGB mean) between H×W×3 uint8 `current` and `previous` warped into it by
    `motion` (2×3, `previous`'s pixel coordinates → `current`'s), over the pixels of `mask` (H×W bool, in
    `current`) that `previous` covers; NaN when there are none."""
    height, width = current.shape[:2]
    warped = cv2.warpAffine(
        previous.astype(np.float32), motion, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )
    coverage = cv2.warpAffine(
        np.ones(previous.shape[:2], np.float32), motion, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0
    )
    region = mask & (coverage >= COVERED)
    if not region.any():
        return float("nan")
    difference = np.abs(np.clip(warped, 0.0, 255.0) - current.astype(np.float32))
    return float(difference[region].mean())


def pair_warping_errors(
    frames: Sequence[np.ndarray], motions: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> list[float]:
    """The warping error of each consecutive pair (t − 1, t) of a clip: `frames` (H×W×3 uint8), each frame's
    motion from a common reference (2×3) and its face mask (H×W bool); NaN for a pair with no pixel to compare."""
    if not len(frames) == len(motions) == len(masks):
        raise ValueError(f"{len(frames)} frames, {len(motions)} motions and {len(masks)} masks")
    return [
        warping_error(frames[t - 1], frames[t], relative_motion(motions[t - 1], motions[t]), masks[t])
        for t in range(1, len(frames))
    ]


def clip_warping_error(
    frames: Sequence[np.ndarray], motions: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> float:
    """The mean of `pair_warping_errors` over the pairs that have pixels to compare; NaN when none has."""
    finite = [error for error in pair_warping_errors(frames, motions, masks) if np.isfinite(error)]
    return float(np.mean(finite)) if finite else float("nan")


def descriptor_jitter(descriptors: np.ndarray) -> float:
    """The mean distance of each frame's descriptor (rows of `n d`; NaN rows: no face found, left out) to the
    clip's mean descriptor; NaN when fewer than 2 frames have one."""
    found = descriptors[~np.isnan(descriptors).any(axis=1)]
    if len(found) < 2:
        return float("nan")
    return float(np.linalg.norm(found - found.mean(axis=0), axis=1).mean())

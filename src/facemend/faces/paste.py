"""Inverse warp of restored crops back into the photo, blended through a feathered mask."""

from __future__ import annotations

import math

import cv2
import numpy as np

from facemend.faces.template import compose, resize_matrix


def feather_mask(size: int, margin: float = 0.02, feather: float = 0.12) -> np.ndarray:
    """`size`×`size` float32 mask: 0 within `margin`·size of the crop's edge, rising smoothly over the next
    `feather`·size to 1, so a pasted face leaves no visible box edge."""
    centres = np.arange(size) + 0.5
    to_edge = np.minimum(centres, size - centres)
    distance = np.minimum.outer(to_edge, to_edge)
    ramp = np.clip((distance - margin * size) / (feather * size), 0.0, 1.0)
    return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)  # smoothstep: no kink where the ramp ends


def upscale_background(image: np.ndarray, upscale: int) -> np.ndarray:
    """The photo `upscale` times larger (bicubic, clipped to [0, 1])."""
    if upscale == 1:
        return image.copy()
    height, width = image.shape[:2]
    size = (width * upscale, height * upscale)
    return np.clip(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def paste_face(canvas: np.ndarray, face: np.ndarray, matrix: np.ndarray, upscale: int = 1) -> None:
    """Blend `face` (S×S×3 float32) into `canvas` (H·k × W·k × 3 float32, modified in place), replacing it.

    `matrix` maps photo coordinates to the coordinates of the crop the face was restored from, at the face's
    own size S; `upscale` k is the canvas's scale relative to that photo.
    """
    placed = _warp_onto(canvas, face, matrix, upscale)
    if placed is not None:
        roi, warped, mask = placed
        roi[...] = roi * (1.0 - mask) + np.clip(warped, 0.0, 1.0) * mask


def paste_change(
    canvas: np.ndarray,
    change: np.ndarray,
    matrix: np.ndarray,
    upscale: int = 1,
    crop: np.ndarray | None = None,
    drop_fine: float = 0.0,
) -> None:
    """Add `change` (S×S×3 float32: restored face − the crop it was restored from) to `canvas` (H·k × W·k × 3
    float32, modified in place) through the feathered mask, clipped to [0, 1]; `matrix` and `upscale` as for
    `paste_face`.

    The change is interpolated up to the canvas's own resolution and added there, so what the restorer did at its
    scale is applied while the canvas keeps every finer detail of its own: a face larger than S keeps its skin,
    hair and eyelashes; a face smaller than S gets the restoration whole. A zero change leaves the canvas as it was.
    With `crop` (the S×S crop the face was restored from), `drop_fine` ∈ [0, 1] of the canvas's detail finer than
    S (the canvas minus the crop brought back up) is dropped too: for noise and JPEG blocks, which are not detail.
    """
    placed = _warp_onto(canvas, change, matrix, upscale)
    if placed is None:
        return
    roi, warped, mask = placed
    if crop is not None and drop_fine > 0.0:
        _, base, _ = _warp_onto(canvas, crop, matrix, upscale)
        warped = warped + np.float32(drop_fine) * (base - roi)
    np.clip(roi + warped * mask, 0.0, 1.0, out=roi)


def _warp_onto(
    canvas: np.ndarray, crop: np.ndarray, matrix: np.ndarray, upscale: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The canvas window an S×S×3 crop lands on (a view), the crop warped onto it (bicubic) and the feathered
    mask warped likewise (`h w 1`); None when the crop lands outside the canvas."""
    size = crop.shape[0]
    # canvas → crop: undo the canvas upscale, then the photo → crop alignment
    to_crop = compose(matrix, resize_matrix((1, 1), (upscale, upscale))) if upscale != 1 else matrix
    to_canvas = cv2.invertAffineTransform(to_crop)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64)
    xs, ys = (corners @ to_canvas.T).T
    height, width = canvas.shape[:2]
    x0, y0 = max(0, math.floor(xs.min()) - 1), max(0, math.floor(ys.min()) - 1)
    x1, y1 = min(width, math.ceil(xs.max()) + 2), min(height, math.ceil(ys.max()) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    to_roi = to_canvas.copy()
    to_roi[:, 2] -= (x0, y0)
    roi_size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(crop, to_roi, roi_size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(feather_mask(size), to_roi, roi_size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    return canvas[y0:y1, x0:x1], warped.reshape(y1 - y0, x1 - x0, -1), mask[..., None]

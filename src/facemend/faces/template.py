"""The FFHQ-style 5-point template and the similarity transform that puts a face onto it.

Aligned crops are square at any size; the template is defined at 512 px (the exchange size of aligned photos
such as `real-lq/cropped`) and scaled linearly.
"""

from __future__ import annotations

import cv2
import numpy as np

from facemend.errors import FacemendError

TEMPLATE_SIZE = 512
# Eye centres, nose tip, mouth corners of an aligned 512-px FFHQ face (the alignment GFPGAN and CodeFormer use).
TEMPLATE_POINTS_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)


def template_points(size: int) -> np.ndarray:
    """The template's 5 points, `5 2`, for a square crop of `size` pixels."""
    return TEMPLATE_POINTS_512 * (size / TEMPLATE_SIZE)


def alignment_matrix(points5: np.ndarray, size: int) -> np.ndarray:
    """2×3 similarity transform (rotation, uniform scale, translation) from photo to crop coordinates that maps
    the face's 5 points onto the template at `size`, least median of squares."""
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(points5, np.float64), template_points(size), method=cv2.LMEDS)
    if matrix is None:
        raise FacemendError("cannot align face: degenerate landmarks")
    return matrix


def matrix_scale(matrix: np.ndarray) -> float:
    """Uniform scale of a 2×3 similarity transform."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def native_size(points5: np.ndarray) -> int:
    """Crop size at which aligning the face neither enlarges nor shrinks it."""
    return max(8, round(TEMPLATE_SIZE / matrix_scale(alignment_matrix(points5, TEMPLATE_SIZE))))


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2×3 matrix of `outer ∘ inner` (apply `inner` first)."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


def resize_matrix(from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """2×3 matrix taking pixel coordinates of an image resized to `to_size` (w, h) back to `from_size`
    (pixel centres aligned, as `cv2.resize` samples)."""
    sx, sy = from_size[0] / to_size[0], from_size[1] / to_size[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Crop `size`×`size` pixels from `image` (H×W×C, any dtype OpenCV warps) through `matrix`.

    When the face shrinks by more than 2×, the image is first reduced with area averaging so the crop does not
    alias; the borders are mirrored, as in FFHQ's own alignment.
    """
    scale = matrix_scale(matrix)
    if scale < 0.5:
        height, width = image.shape[:2]
        reduced = (max(1, round(width * 2.0 * scale)), max(1, round(height * 2.0 * scale)))
        image = cv2.resize(image, reduced, interpolation=cv2.INTER_AREA)
        matrix = compose(matrix, resize_matrix((width, height), reduced))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)

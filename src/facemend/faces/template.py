"""The FFHQ-style 5-point template and the similarity transform that puts a face onto it.

Aligned crops are square at any size; the template is defined at 512 px (the exchange size of aligned photos
such as `real-lq/cropped`) and scaled linearly.
"""

from __future__ import annotations

import cv2
import numpy as np

from facemend.errors import FacemendError
from facemend.faces.boxes import FaceBox

TEMPLATE_SIZE = 512
FILL_BLUR = 0.03  # σ of the blur outside the source image, as a share of the crop size (FFHQ: 0.02 of the face)
FILL_FADE = 0.25  # distance past the image, as a share of the crop size, over which it fades to the median
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

# Where dlib's HOG detector puts the face in an aligned 512-px crop: the mean box over 397 aligned test faces
# (std 8–19 px). Metrics run the landmark model in this box instead of detecting, so degraded faces get one too.
TEMPLATE_FACE_BOX_512 = (98.4, 145.5, 401.5, 448.6)


def template_points(size: int) -> np.ndarray:
    """The template's 5 points, `5 2`, for a square crop of `size` pixels."""
    return TEMPLATE_POINTS_512 * (size / TEMPLATE_SIZE)


def template_face_box(size: int) -> FaceBox:
    """The face box of an aligned square crop of `size` pixels (see `TEMPLATE_FACE_BOX_512`)."""
    return FaceBox(*(v * size / TEMPLATE_SIZE for v in TEMPLATE_FACE_BOX_512))


def face_box_in_photo(matrix: np.ndarray, size: int) -> np.ndarray:
    """`4 2` corners (clockwise from the top left) of the template face box of the crop that `matrix` (photo → crop)
    makes at `size`, in photo coordinates."""
    box = template_face_box(size)
    corners = np.array([[box.left, box.top], [box.right, box.top], [box.right, box.bottom], [box.left, box.bottom]])
    return cv2.transform(corners[None], cv2.invertAffineTransform(matrix))[0]


def dlib_style_box(points5: np.ndarray) -> FaceBox:
    """The upright box in which dlib's HOG detector would find the face whose 5 points these are: the template face
    box (`TEMPLATE_FACE_BOX_512`) taken into the photo, as an axis-aligned square of the same centre and size."""
    matrix = alignment_matrix(points5, TEMPLATE_SIZE)
    (cx, cy), scale = face_box_in_photo(matrix, TEMPLATE_SIZE).mean(axis=0), matrix_scale(matrix)
    half = (TEMPLATE_FACE_BOX_512[2] - TEMPLATE_FACE_BOX_512[0]) / scale / 2
    return FaceBox(cx - half, cy - half, cx + half, cy + half)


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


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`n 2` points through a 2×3 matrix."""
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2×3 matrix of `outer ∘ inner` (apply `inner` first)."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


def resize_matrix(from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """2×3 matrix taking pixel coordinates of an image resized to `to_size` (w, h) back to `from_size`
    (pixel centres aligned, as `cv2.resize` samples)."""
    sx, sy = from_size[0] / to_size[0], from_size[1] / to_size[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Crop `size`×`size` pixels from `image` (H×W×C, float32 in [0, 1] or uint8) through `matrix`.

    When the face shrinks by more than 2×, the image is first reduced with area averaging so the crop does not
    alias. Where the crop reaches past the image (tight source crops, faces at a photo's edge), it is filled as
    FFHQ's alignment does: mirrored, blurred, and faded towards the image's median colour with the distance.
    """
    height, width = image.shape[:2]
    scale = matrix_scale(matrix)
    if scale < 0.5:
        reduced = (max(1, round(width * 2.0 * scale)), max(1, round(height * 2.0 * scale)))
        image = cv2.resize(image, reduced, interpolation=cv2.INTER_AREA)
        matrix = compose(matrix, resize_matrix((width, height), reduced))
        height, width = image.shape[:2]
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    if crop.dtype.kind == "f":
        np.clip(crop, 0.0, 1.0, out=crop)  # bicubic overshoots at strong edges (integer types saturate)
    inside = _inside_source(matrix, size, width, height)
    if inside.all():
        return crop
    return _fill_outside(crop, inside)


def _inside_source(matrix: np.ndarray, size: int, width: int, height: int) -> np.ndarray:
    """`size size` bool: which crop pixels sample the `width`×`height` source rather than its mirrored border."""
    inverse = cv2.invertAffineTransform(matrix)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    source_x = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
    source_y = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    return (source_x > -0.5) & (source_x < width - 0.5) & (source_y > -0.5) & (source_y < height - 0.5)


def _fill_outside(crop: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Replace the mirrored pixels outside the source image by a blurred copy, faded over a quarter of the crop
    towards the median colour: mirrored eyes and mouths must not look like faces."""
    size = crop.shape[0]
    outside = ~inside[..., None]
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    fade = np.clip(distance / (FILL_FADE * size), 0.0, 1.0)[..., None]
    blurred = cv2.GaussianBlur(crop, (0, 0), FILL_BLUR * size).reshape(crop.shape)
    median = np.median(crop[inside], axis=0) if inside.any() else crop.mean(axis=(0, 1))
    filled = np.where(outside, blurred, crop)
    return (filled + (median - filled) * fade).astype(crop.dtype)

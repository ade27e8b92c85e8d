"""Face boxes and detections (a box with, from a learned detector, its 5 landmarks), and the clean-up every
detector's output goes through: non-finite, empty or degenerate boxes are dropped, and near-duplicates are
suppressed (OpenCV's non-maximum suppression, plus boxes lying mostly inside a better-scoring one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

MIN_BOX_SIDE = 2.0  # px: a box thinner than this holds no face (and would divide by ~0 in the alignment)
MAX_ASPECT = 3.0  # height / width (or width / height) beyond this is not a face box
DUPLICATE_IOU = 0.3  # two boxes overlapping more than this are the same face
DUPLICATE_INSIDE = 0.8  # …and so is a box with this share of its area inside a better one


@dataclass(frozen=True)
class FaceBox:
    left: float
    top: float
    right: float
    bottom: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    def scaled(self, factor: float, offset: tuple[float, float] = (0.0, 0.0)) -> FaceBox:
        """The box in another frame: `(x + offset) * factor`."""
        dx, dy = offset
        return FaceBox(
            (self.left + dx) * factor,
            (self.top + dy) * factor,
            (self.right + dx) * factor,
            (self.bottom + dy) * factor,
            self.score,
        )

    def to_dlib(self) -> dlib.rectangle:
        return dlib.rectangle(
            int(round(self.left)), int(round(self.top)), int(round(self.right)), int(round(self.bottom))
        )

    def as_list(self) -> list[float]:
        return [round(v, 2) for v in (self.left, self.top, self.right, self.bottom)]


@dataclass(frozen=True, eq=False)
class Detection:
    """A detector's face: its box and, when the detector gives them, its 5 landmarks (`5 2`: eye centres,
    nose tip, mouth corners, image-left first), in the coordinates of the image it was given."""

    box: FaceBox
    points5: np.ndarray | None = None

    def scaled(self, factor: float) -> Detection:
        points = None if self.points5 is None else self.points5 * factor
        return Detection(self.box.scaled(factor), points)


def is_valid(detection: Detection) -> bool:
    """Whether the detection can be a face: finite, not empty, not a sliver, landmarks (if any) finite."""
    box = detection.box
    values = np.array([box.left, box.top, box.right, box.bottom, box.score])
    if not np.isfinite(values).all() or min(box.width, box.height) < MIN_BOX_SIDE:
        return False
    if max(box.width / box.height, box.height / box.width) > MAX_ASPECT:
        return False
    return detection.points5 is None or bool(np.isfinite(detection.points5).all())


def suppress_duplicates(detections: Sequence[Detection]) -> list[Detection]:
    """The valid detections, best score first, without near-duplicates: of boxes overlapping by more than
    `DUPLICATE_IOU` (IoU) or lying mostly (`DUPLICATE_INSIDE` of their area) inside a better one, only the best."""
    valid = [d for d in detections if is_valid(d)]
    if not valid:
        return []
    rects = [[d.box.left, d.box.top, d.box.width, d.box.height] for d in valid]
    scores = [d.box.score for d in valid]
    ranks = (np.argsort(np.argsort(scores)) + 1.0).tolist()  # NMSBoxes wants scores > 0: any order-keeping map
    kept = np.ravel(cv2.dnn.NMSBoxes(rects, ranks, score_threshold=0.0, nms_threshold=DUPLICATE_IOU))
    survivors: list[Detection] = []
    for index in sorted(kept.tolist(), key=lambda i: -scores[i]):
        if all(_share_inside(valid[index].box, better.box) <= DUPLICATE_INSIDE for better in survivors):
            survivors.append(valid[index])
    return survivors


def box_iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    intersection = _intersection(a, b)
    if intersection == 0.0:
        return 0.0
    return intersection / (a.width * a.height + b.width * b.height - intersection)


def _share_inside(box: FaceBox, other: FaceBox) -> float:
    """Share of `box`'s area inside `other`."""
    return _intersection(box, other) / (box.width * box.height)


def _intersection(a: FaceBox, b: FaceBox) -> float:
    """Area of the overlap of two boxes."""
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    return width * height if width > 0 and height > 0 else 0.0

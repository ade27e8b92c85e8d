"""Detect → landmarks: the faces of a photo, each with its box and its 5 template points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemend.faces.detection import FaceBox, FaceDetector
from facemend.faces.landmarks import landmarks_68, reduce_to_5


@dataclass(frozen=True)
class Face:
    box: FaceBox
    landmarks68: np.ndarray  # `68 2`, photo coordinates
    landmarks5: np.ndarray  # `5 2`: eye centres, nose tip, mouth corners

    @property
    def size(self) -> float:
        """The detector box's side, in photo pixels: what the minimum face size is compared with."""
        return min(self.box.width, self.box.height)


def find_faces(image: np.ndarray, detector: FaceDetector, only_center_face: bool = False) -> list[Face]:
    """Faces of an H×W×3 uint8 RGB image, left to right (or only the one nearest the centre)."""
    boxes = detector(image)
    if only_center_face and boxes:
        height, width = image.shape[:2]
        boxes = [min(boxes, key=lambda b: (b.center[0] - width / 2) ** 2 + (b.center[1] - height / 2) ** 2)]
    faces = []
    for box in sorted(boxes, key=lambda b: (b.left, b.top)):
        points = landmarks_68(image, box)
        faces.append(Face(box, points, reduce_to_5(points)))
    return faces

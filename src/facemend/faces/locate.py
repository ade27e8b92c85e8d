"""Detect → landmarks: the faces of a photo, each with its box and its 5 template points (the detector's own
when it gives them, as YuNet does; else reduced from dlib's 68-point model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemend.faces.detection import FaceBox, FaceDetector
from facemend.faces.landmarks import landmarks_68, reduce_to_5


@dataclass(frozen=True)
class Face:
    box: FaceBox
    landmarks68: np.ndarray | None  # `68 2`, photo coordinates; None when the detector gave the 5 points
    landmarks5: np.ndarray  # `5 2`: eye centres, nose tip, mouth corners

    @property
    def size(self) -> float:
        """The detector box's side, in photo pixels: what the minimum face size is compared with."""
        return min(self.box.width, self.box.height)


def find_faces(image: np.ndarray, detector: FaceDetector, only_center_face: bool = False) -> list[Face]:
    """Faces of an H×W×3 uint8 RGB image, left to right (or only the one nearest the centre)."""
    found = detector.detect(image)
    if only_center_face and found:
        height, width = image.shape[:2]
        found = [min(found, key=lambda d: (d.box.center[0] - width / 2) ** 2 + (d.box.center[1] - height / 2) ** 2)]
    faces = []
    for detection in sorted(found, key=lambda d: (d.box.left, d.box.top)):
        if detection.points5 is not None:
            faces.append(Face(detection.box, None, detection.points5))
            continue
        points = landmarks_68(image, detection.box)
        faces.append(Face(detection.box, points, reduce_to_5(points)))
    return faces

"""Detect → landmarks: the faces of a photo, each with its box and its 5 template points.

The 5 points come from dlib's 68-point model (`landmarks="dlib68"`, the default): in the detector's box, or, for a
detector that gives 5 points of its own (YuNet), in the box dlib's HOG detector would give for those points, so
that every face is aligned as the training faces were (by dlib's points). `landmarks="detector"` takes YuNet's own
points instead (moved by their mean offset from dlib's), with no 68-point step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemend.errors import FacemendError
from facemend.faces.detection import FaceBox, FaceDetector
from facemend.faces.landmarks import landmarks_68, reduce_to_5
from facemend.faces.template import dlib_style_box

LANDMARKS = ("dlib68", "detector")
DEFAULT_LANDMARKS = "dlib68"


@dataclass(frozen=True)
class Face:
    box: FaceBox
    landmarks68: np.ndarray | None  # `68 2`, photo coordinates; None when the detector gave the 5 points
    landmarks5: np.ndarray  # `5 2`: eye centres, nose tip, mouth corners
    track: int | None = None  # in a video, the id of the face's track (`FaceTracker`); a new id is a new face

    @property
    def size(self) -> float:
        """The detector box's side, in photo pixels: what the minimum face size is compared with."""
        return min(self.box.width, self.box.height)


def find_faces(
    image: np.ndarray, detector: FaceDetector, only_center_face: bool = False, landmarks: str = DEFAULT_LANDMARKS
) -> list[Face]:
    """Faces of an H×W×3 uint8 RGB image, left to right (or only the one nearest the centre)."""
    if landmarks not in LANDMARKS:
        raise FacemendError(f"unknown landmarks {landmarks!r}; choose one of: {', '.join(LANDMARKS)}")
    found = detector.detect(image)
    if only_center_face and found:
        height, width = image.shape[:2]
        found = [min(found, key=lambda d: (d.box.center[0] - width / 2) ** 2 + (d.box.center[1] - height / 2) ** 2)]
    faces = []
    for detection in sorted(found, key=lambda d: (d.box.left, d.box.top)):
        if detection.points5 is not None and landmarks == "detector":
            faces.append(Face(detection.box, None, detection.points5))
            continue
        box = detection.box if detection.points5 is None else dlib_style_box(detection.points5)
        points = landmarks_68(image, box)
        faces.append(Face(detection.box, points, reduce_to_5(points)))
    return faces

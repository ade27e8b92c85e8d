"""Faces carried from one video frame to the next by optical flow, so the detector need not run on every frame.

Each face's 5 landmarks and a grid of points over its box are followed with pyramidal Lucas–Kanade
(`cv2.calcOpticalFlowPyrLK`); a similarity transform fitted to the points that were followed (RANSAC,
`cv2.estimateAffinePartial2D`) moves the face's box and landmarks. A face whose points are mostly lost (it left
the frame, a cut) is dropped, and the caller detects again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import cv2
import numpy as np

from facemend.errors import FacemendError
from facemend.faces.boxes import FaceBox
from facemend.faces.locate import Face
from facemend.faces.template import transform_points

GRID = 5  # points per side of the grid over a face's box
MIN_FOLLOWED = 0.6  # share of a face's points that must be followed for the face to be kept
MAX_BACK_ERROR = 1.0  # px: a point followed forward then back must land this near where it started
WINDOW = 21  # px: Lucas–Kanade window


def follow_faces(previous: np.ndarray, current: np.ndarray, faces: Sequence[Face]) -> list[Face]:
    """`faces` of the grey uint8 frame `previous`, moved to where they are in `current` (same size); faces that
    cannot be followed are left out."""
    followed = []
    for face in faces:
        box = face.box
        xs, ys = np.meshgrid(
            np.linspace(box.left, box.right, GRID + 2)[1:-1], np.linspace(box.top, box.bottom, GRID + 2)[1:-1]
        )
        start = np.vstack([face.landmarks5, np.column_stack([xs.ravel(), ys.ravel()])]).astype(np.float32)
        end, ok, _ = cv2.calcOpticalFlowPyrLK(previous, current, start, None, winSize=(WINDOW, WINDOW), maxLevel=3)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, end, None, winSize=(WINDOW, WINDOW), maxLevel=3)
        good = (ok.ravel() == 1) & (ok_back.ravel() == 1) & (np.linalg.norm(back - start, axis=1) < MAX_BACK_ERROR)
        if good.mean() < MIN_FOLLOWED:
            continue
        matrix, _ = cv2.estimateAffinePartial2D(start[good], end[good], method=cv2.RANSAC, ransacReprojThreshold=2.0)
        if matrix is None:
            continue
        corners = transform_points(matrix, np.array([[box.left, box.top], [box.right, box.bottom]]))
        moved = FaceBox(*corners.ravel().tolist(), box.score)
        followed.append(
            replace(face, box=moved, landmarks5=transform_points(matrix, face.landmarks5), landmarks68=None)
        )
    return followed


class StridedDetection:
    """The faces of consecutive frames: detected on every `stride`-th frame (and on any frame after a face was
    lost), followed by optical flow in between."""

    def __init__(self, stride: int) -> None:
        if stride < 1:
            raise FacemendError(f"detection stride must be >= 1, got {stride}")
        self.stride = stride
        self.since_detection = 0
        self.previous: np.ndarray | None = None
        self.faces: list[Face] = []

    def __call__(self, frame: np.ndarray, detect: Callable[[], list[Face]]) -> list[Face]:
        """The faces of the next H×W×3 uint8 RGB `frame`; `detect` finds them in it."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        followed = None
        if self.previous is not None and self.since_detection < self.stride - 1:
            followed = follow_faces(self.previous, grey, self.faces)
            if len(followed) < len(self.faces):  # a face was lost: look again
                followed = None
        if followed is None:
            self.faces, self.since_detection = detect(), 0
        else:
            self.faces, self.since_detection = followed, self.since_detection + 1
        self.previous = grey
        return self.faces

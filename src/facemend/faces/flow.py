"""Faces carried from one video frame to the next by optical flow, so the detector need not run on every frame.

Each face's 5 landmarks and a grid of points over its box are followed with pyramidal Lucas–Kanade
(`cv2.calcOpticalFlowPyrLK`); a similarity transform fitted to the points that were followed (RANSAC,
`cv2.estimateAffinePartial2D`) moves the face's box and landmarks. A face whose points are mostly lost (it left
the frame, a cut) is dropped, and the caller detects again; so is a face whose points move in two ways (a quarter
or more of them agree on a second motion that puts the box elsewhere: something sliding across the face, which
would otherwise carry the face's box along with it).

On a frame where the detector runs, a face it misses but the flow still follows is kept, for at most
`MAX_UNCONFIRMED` detections in a row: heavily degraded faces are missed now and then (a quarter of the frames of
the heavy video benchmark), and a face restored in some frames and not in others flickers more than the input.
With `weak_below`, the detector is asked for weaker faces too: those scoring under `weak_below` are taken only
where they overlap a face of the previous frame (a weak score alone does not start a face).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import cv2
import numpy as np

from facemend.errors import FacemendError
from facemend.faces.boxes import FaceBox, box_iou
from facemend.faces.locate import Face
from facemend.faces.template import transform_points

GRID = 5  # points per side of the grid over a face's box
MIN_FOLLOWED = 0.4  # share of a face's points that must be followed for the face to be kept
RANSAC_PX = 2.0  # px: a followed point agrees with a fitted motion when it lands this near where the motion puts it
SECOND_MOTION = 0.25  # share of the followed points that, agreeing on a motion of their own, make a second motion
SECOND_MOTION_APART = 0.05  # … when it puts the box's centre this far (a share of the box's width) from the first
MAX_BACK_ERROR = 2.0  # px: a point followed forward then back must land this near where it started
WINDOW = 21  # px: Lucas–Kanade window
MAX_UNCONFIRMED = 3  # detections in a row that may miss a face the flow still follows before it is let go
SAME_FACE_IOU = 0.3  # a detection and a followed face overlapping this much are the same face


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
        matrix, inliers = _fit_motion(start[good], end[good])
        if matrix is None or _second_motion(start[good], end[good], inliers.ravel() == 1, matrix, box):
            continue
        corners = transform_points(matrix, np.array([[box.left, box.top], [box.right, box.bottom]]))
        moved = FaceBox(*corners.ravel().tolist(), box.score)
        followed.append(
            replace(face, box=moved, landmarks5=transform_points(matrix, face.landmarks5), landmarks68=None)
        )
    return followed


def _fit_motion(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """The similarity transform most of the points agree on (RANSAC), and which points agree (≥ 3 points: the
    callers ask for at least that many)."""
    return cv2.estimateAffinePartial2D(start, end, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX)


def _second_motion(start: np.ndarray, end: np.ndarray, agree: np.ndarray, matrix: np.ndarray, box: FaceBox) -> bool:
    """Whether the points that disagree with `matrix` agree on a motion of their own that puts the box elsewhere:
    two things moving inside the box, e.g. something passing in front of the face. (Points scattered by noise,
    as on a heavily degraded face, agree on no motion.)"""
    enough = SECOND_MOTION * len(start)
    if (~agree).sum() < max(enough, 3):
        return False
    other, other_agree = _fit_motion(start[~agree], end[~agree])
    if other is None or other_agree.sum() < enough:
        return False
    centre = np.array([box.center])
    apart = np.linalg.norm(transform_points(other, centre) - transform_points(matrix, centre))
    return bool(apart > SECOND_MOTION_APART * box.width)


class StridedDetection:
    """The faces of consecutive frames: detected on every `stride`-th frame (and on any frame after a face was
    lost), followed by optical flow in between; a face the detector misses but the flow follows is kept for up
    to `MAX_UNCONFIRMED` detections. Detections scoring under `weak_below` (None: none are weak) only confirm a
    face of the previous frame."""

    def __init__(self, stride: int, weak_below: float | None = None) -> None:
        if stride < 1:
            raise FacemendError(f"detection stride must be >= 1, got {stride}")
        self.stride = stride
        self.weak_below = weak_below
        self.since_detection = 0
        self.previous: np.ndarray | None = None
        self.faces: list[Face] = []
        self.missed: list[int] = []  # per face: detections in a row that did not find it

    def __call__(self, frame: np.ndarray, detect: Callable[[], list[Face]]) -> list[Face]:
        """The faces of the next H×W×3 uint8 RGB `frame`; `detect` finds them in it."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        followed, missed = [], []
        if self.previous is not None:
            for face, count in zip(self.faces, self.missed, strict=True):
                moved = follow_faces(self.previous, grey, [face])
                if moved:
                    followed.append(moved[0])
                    missed.append(count)
        self.previous = grey
        if self.since_detection < self.stride - 1 and self.faces and len(followed) == len(self.faces):
            self.faces, self.missed, self.since_detection = followed, missed, self.since_detection + 1
            return self.faces
        detected = [
            found
            for found in detect()
            if self.weak_below is None
            or found.box.score >= self.weak_below
            or any(box_iou(face.box, found.box) >= SAME_FACE_IOU for face in followed + self.faces)
        ]
        kept = [
            (face, count + 1)
            for face, count in zip(followed, missed, strict=True)
            if count < MAX_UNCONFIRMED and all(box_iou(face.box, found.box) < SAME_FACE_IOU for found in detected)
        ]
        self.faces = detected + [face for face, _ in kept]
        self.missed = [0] * len(detected) + [count for _, count in kept]
        self.since_detection = 0
        return self.faces

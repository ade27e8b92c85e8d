"""Faces followed through the frames of a video, with their boxes and 5 landmarks smoothed so that restored faces
pasted back do not jitter.

Detections are matched to tracks by box overlap (IoU). Each track runs a one-euro filter (Casiez, Roussel and
Vogel, CHI 2012): an exponential smoother whose cut-off frequency rises with the face's speed, so a still face is
smoothed strongly (detector noise averages out) and a moving one lightly (it does not lag behind). Speeds are
measured in face sizes per second, so the same settings suit any resolution; cut-offs are in Hz, so they suit
any frame rate.

A detector misses a face now and then (blur, a turned head); pasting that frame's face unrestored between
restored ones flickers. So a track seen in at least two frames is held, at its last smoothed place, for up to
`hold_frames` frames without a detection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from facemend.errors import FacemendError
from facemend.faces.boxes import FaceBox, box_iou
from facemend.faces.locate import Face


@dataclass(frozen=True)
class SmoothingOptions:
    """How faces are matched between frames and how strongly their positions are smoothed."""

    min_cutoff: float = 0.5  # Hz: cut-off of a still face; lower = steadier, but slower to follow a start
    beta: float = 10.0  # Hz per (face size per second): how fast the cut-off rises with the face's speed
    derivative_cutoff: float = 1.0  # Hz: smoothing of the speed estimate itself
    min_iou: float = 0.3  # a detection continues a track when their boxes overlap at least this much
    max_missed: int = 5  # frames a track is kept without a detection before it ends
    hold_frames: int = 2  # frames a missed face is still restored at its last place (0: never)

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "beta", "derivative_cutoff"):
            if not getattr(self, name) > 0:
                raise FacemendError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.min_iou <= 1:
            raise FacemendError(f"min_iou must be in (0, 1], got {self.min_iou}")
        if self.max_missed < 0 or self.hold_frames < 0:
            raise FacemendError(f"max_missed and hold_frames must be >= 0, got {self.max_missed}, {self.hold_frames}")


def smoothing_factor(cutoff: float, period: float) -> float:
    """Weight of a new sample in an exponential smoother with cut-off `cutoff` Hz, sampled every `period` s."""
    time_constant = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + time_constant / period)


class OneEuroFilter:
    """One-euro filter of a set of points (`n 2`) that move together: one speed-adaptive cut-off for all of them,
    so the face's shape is smoothed as a whole. Starts at `first`, unsmoothed."""

    def __init__(self, first: np.ndarray, options: SmoothingOptions) -> None:
        self.options = options
        self.value = np.array(first, np.float64)
        self.velocity = np.zeros_like(self.value)  # smoothed, pixels per second

    def __call__(self, points: np.ndarray, scale: float, period: float) -> np.ndarray:
        """The smoothed points after observing `points` `period` seconds after the last ones; `scale` (pixels)
        is the face size that speeds are measured in."""
        points = np.asarray(points, np.float64)
        velocity = (points - self.value) / period
        self.velocity += smoothing_factor(self.options.derivative_cutoff, period) * (velocity - self.velocity)
        speed = float(np.sqrt(np.mean(np.sum(self.velocity**2, axis=1)))) / max(scale, 1.0)
        cutoff = self.options.min_cutoff + self.options.beta * speed
        self.value += smoothing_factor(cutoff, period) * (points - self.value)
        return self.value.copy()


@dataclass
class _Track:
    id: int
    filter: OneEuroFilter
    face: Face  # smoothed, in the frame it was last seen
    last_frame: int
    seen: int = 1  # frames with a detection

    @property
    def box(self) -> FaceBox:
        return self.face.box


class FaceTracker:
    """Follows the faces of consecutive frames of one video (`fps` frames per second) and smooths them."""

    def __init__(self, fps: float, options: SmoothingOptions | None = None) -> None:
        if not fps > 0:
            raise FacemendError(f"fps must be > 0, got {fps}")
        self.period = 1.0 / fps
        self.options = options or SmoothingOptions()
        self.tracks: list[_Track] = []
        self.frame = -1
        self.started = 0  # tracks started so far: the next track's id

    def update(self, faces: Sequence[Face]) -> list[Face]:
        """The faces detected in the next frame, in the order given, with their boxes and 5 landmarks smoothed
        along their tracks (68-point landmarks stay as detected) and their track ids set; a face that starts a
        track is returned as is. Then the held faces: established tracks missed in this frame, at their last
        place."""
        self.frame += 1
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= self.options.max_missed + 1]
        matches = self._match(faces)
        smoothed = []
        for index, face in enumerate(faces):
            points = np.vstack([face.landmarks5, [[face.box.left, face.box.top], [face.box.right, face.box.bottom]]])
            track = matches.get(index)
            if track is None:
                track = _Track(self.started, OneEuroFilter(points, self.options), face, self.frame)
                self.started += 1
                self.tracks.append(track)
            else:
                period = (self.frame - track.last_frame) * self.period
                points = track.filter(points, face.size, period)
                track.seen += 1
            (left, top), (right, bottom) = points[5:]
            box = FaceBox(left, top, right, bottom, face.box.score)
            track.face = replace(face, box=box, landmarks5=points[:5], track=track.id)
            track.last_frame = self.frame
            smoothed.append(track.face)
        held = [
            track.face
            for track in self.tracks
            if track.seen >= 2 and 0 < self.frame - track.last_frame <= self.options.hold_frames
        ]
        return smoothed + held

    def _match(self, faces: Sequence[Face]) -> dict[int, _Track]:
        """Detection index → track, pairing the most overlapping boxes first."""
        pairs = sorted(
            (
                (overlap, index, track_index)
                for index, face in enumerate(faces)
                for track_index, track in enumerate(self.tracks)
                if (overlap := box_iou(face.box, track.box)) >= self.options.min_iou
            ),
            reverse=True,
        )
        matches: dict[int, _Track] = {}
        taken: set[int] = set()
        for _, index, track_index in pairs:
            if index not in matches and track_index not in taken:
                matches[index] = self.tracks[track_index]
                taken.add(track_index)
        return matches

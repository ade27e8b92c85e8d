"""Steady restorations along a video's face tracks: each face's restoration is blended with its track's previous
(already blended) one wherever the input face did not change between the frames.

Restoring every frame on its own makes the restored content flicker: fresh noise and JPEG blocks in each input
frame give a slightly different face each time. The blend is a first-order recursive filter in the aligned frame
(in the spirit of KEEP's Kalman-style propagation, Feng et al., ECCV 2024, but on the restored images, so it
works with any restorer): `fused_t = restored_t + w · (fused_{t-1} − restored_t)`. The aligned crops are the
motion compensation: each frame's crop puts the face's points on the same template (after the tracker's
smoothing), so a pixel of one frame's crop and the same pixel of the next show the same point of the face.
The weight `w` is `carry` where the input is unchanged and falls to 0 where it changed (a blink, a mouth
opening, a turn), measured as the low-passed difference of the two aligned inputs, so that real motion is not
smeared. A new track starts afresh: the tracker's track ids reset the state at cuts and when a face enters.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facemend.errors import FacemendError


@dataclass(frozen=True)
class TemporalOptions:
    """How strongly a track's previous restoration carries into the next frame."""

    carry: float = 0.6  # weight of the previous (fused) restoration where the input is unchanged; 0: off
    change_scale: float = 0.06  # low-passed input change (0–1 scale) at which the current frame takes over fully
    change_sigma: float = 2.0  # px at the model's face size: the low-pass that keeps per-frame noise out of it

    def __post_init__(self) -> None:
        if not 0.0 <= self.carry < 1.0:
            raise FacemendError(f"carry must be in [0, 1), got {self.carry}")
        if not self.change_scale > 0 or not self.change_sigma > 0:
            raise FacemendError(
                f"change_scale and change_sigma must be > 0, got {self.change_scale}, {self.change_sigma}"
            )


@dataclass
class _TrackState:
    crop: np.ndarray  # the last aligned input, S×S×3 float32
    fused: np.ndarray  # the last blended restoration, S×S×3 float32
    frame: int


class TrackFusion:
    """Blends each restored face with its track's previous one; call once per face, frames in order."""

    def __init__(self, options: TemporalOptions | None = None) -> None:
        self.options = options or TemporalOptions()
        self.states: dict[int, _TrackState] = {}
        self.frame = -1

    def next_frame(self) -> None:
        """Start the next frame; tracks not seen in the previous one are forgotten (their face left or was lost)."""
        self.states = {track: state for track, state in self.states.items() if state.frame >= self.frame}
        self.frame += 1

    def __call__(self, track: int | None, crop: np.ndarray, restored: np.ndarray) -> np.ndarray:
        """The blended restoration of the face of track `track` (None: no track, returned as is), from its aligned
        input `crop`, restored as `restored` (S×S×3 float32 in [0, 1])."""
        if track is None or self.options.carry == 0.0:
            return restored
        state = self.states.get(track)
        if state is not None and state.crop.shape == crop.shape:
            change = np.abs(cv2.GaussianBlur(crop - state.crop, (0, 0), self.options.change_sigma)).max(axis=2)
            weight = self.options.carry * np.clip(1.0 - change / self.options.change_scale, 0.0, 1.0)
            restored = (restored + weight[..., None] * (state.fused - restored)).astype(np.float32)
        self.states[track] = _TrackState(crop, restored, self.frame)
        return restored

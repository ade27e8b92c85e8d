"""Steady restorations along a video's face tracks: each face's restoration is blended with its track's previous
(already blended) one wherever the face did not change between the frames.

Restoring every frame on its own makes the restored content flicker: fresh noise and JPEG blocks in each input
frame give a slightly different face each time. The blend is a first-order recursive filter in the aligned frame
(in the spirit of KEEP's Kalman-style propagation, Feng et al., ECCV 2024, but on the restored images, so it
works with any restorer): `fused_t = restored_t + w · (fused_{t-1} − restored_t)`.

- **Motion compensation**: each frame's aligned crop puts the face's 5 points on the same template, but the
  points of a degraded face jitter by several pixels from frame to frame. So the previous fused restoration is
  first registered onto the current restoration (OpenCV's ECC, an affine, on their blurred luminance): what the
  two alignments disagree on is corrected before a pixel of one is blended with the same pixel of the other.
- **Change gate**: `w` is `carry` where the face is unchanged and falls to 0 where it changed (a blink, a mouth
  opening, a turn). The change is the smaller of two low-passed differences: the current restoration against
  the carried one, and the current aligned input against the carried input (blended with the same weights).
  Fresh noise changes the input but hardly the restoration; the restorer's own flicker changes the restoration
  but not the input; a real change shows in both.
- A new track starts afresh (the tracker's track ids reset the state at cuts and when a face enters), and so
  does a track whose registration fails or needs more than a small correction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from facemend.errors import FacemendError


@dataclass(frozen=True)
class TemporalOptions:
    """How strongly a track's previous restoration carries into the next frame."""

    carry: float = 0.9  # weight of the previous (fused) restoration where the face is unchanged; 0: off
    change_scale: float = 0.1  # low-passed change (0–1 scale) at which the current frame takes over fully
    change_sigma: float = 2.0  # px at the model's face size: the low-pass that keeps per-frame noise out of it
    register: bool = True  # re-align the previous restoration to the current one (ECC, affine) before blending

    def __post_init__(self) -> None:
        if not 0.0 <= self.carry < 1.0:
            raise FacemendError(f"carry must be in [0, 1), got {self.carry}")
        if not self.change_scale > 0 or not self.change_sigma > 0:
            raise FacemendError(
                f"change_scale and change_sigma must be > 0, got {self.change_scale}, {self.change_sigma}"
            )


@dataclass
class _TrackState:
    crop: np.ndarray  # the carried aligned input (blended as the restoration is), S×S×3 float32
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
        if state is not None and state.crop.shape != crop.shape:
            state = None
        if state is not None and self.options.register:
            scale = self.options.change_scale
            state = _registered(state, restored, lambda fused: self._change(restored, fused) >= scale)
        if state is not None:
            change = np.minimum(self._change(restored, state.fused), self._change(crop, state.crop))
            weight = (self.options.carry * np.clip(1.0 - change / self.options.change_scale, 0.0, 1.0))[..., None]
            restored = (restored + weight * (state.fused - restored)).astype(np.float32)
            crop = (crop + weight * (state.crop - crop)).astype(np.float32)
        self.states[track] = _TrackState(crop, restored, self.frame)
        return restored

    def _change(self, current: np.ndarray, carried: np.ndarray) -> np.ndarray:
        """S×S: the largest channel of the low-passed absolute difference."""
        return np.abs(cv2.GaussianBlur(current - carried, (0, 0), self.options.change_sigma)).max(axis=2)


REGISTRATION_SIZE = 64  # px: the restorations are registered at this size (area-averaged, which also smooths)
REGISTRATION_STEPS = 50
REGISTRATION_LARGEST_SHIFT = 0.15  # share of the face size: a larger correction is a failed registration
REGISTRATION_LEAST_UNCHANGED = 0.25  # share of the crop that must be unchanged to register on


def _registered(
    state: _TrackState, restored: np.ndarray, changed: Callable[[np.ndarray], np.ndarray]
) -> _TrackState | None:
    """`state` moved onto `restored`'s crop: the affine that best maps the previous restoration onto the current
    one (OpenCV's ECC, on the blurred luminance at `REGISTRATION_SIZE`) corrects what the two frames' alignments
    disagree on. Where the first run leaves changed pixels (`changed`: S×S bool, of a moved restoration), ECC is
    run again on the others only, so that a blink or an opening mouth does not pull the whole face. None (a
    fresh start) when a registration fails, finds more than a small correction, or most of the face changed."""
    size = restored.shape[0]
    scale = min(1.0, REGISTRATION_SIZE / size)
    target, source = _grey(restored, scale), _grey(state.fused, scale)
    identity = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, REGISTRATION_STEPS, 1e-4)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float32)

    def moved(image: np.ndarray, warp: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(
            image, warp, (size, size), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101
        )

    mask = None  # the second run: only the pixels the first found unchanged (in the source, nearly the same)
    for _ in range(2):
        try:
            _, small = cv2.findTransformECC(target, source, identity.copy(), cv2.MOTION_AFFINE, criteria, mask, 5)
        except cv2.error:
            return None
        warp = small.copy()
        warp[:, 2] /= scale  # the same affine in the crop's pixels
        if np.abs(corners @ (warp - identity).T).max() > REGISTRATION_LARGEST_SHIFT * size:
            return None
        fused = moved(state.fused, warp)
        unchanged = ~changed(fused)
        if unchanged.mean() < REGISTRATION_LEAST_UNCHANGED:
            return None
        if unchanged.all():
            break  # nothing changed: the second run would repeat the first
        mask = cv2.resize(unchanged.astype(np.uint8), target.shape[::-1], interpolation=cv2.INTER_NEAREST)
    return _TrackState(moved(state.crop, warp), fused, state.frame)


def _grey(image: np.ndarray, scale: float) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey

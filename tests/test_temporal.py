"""Restorations blended along face tracks (`facemend.faces.temporal`), track ids, and `--temporal` on a video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facemend.errors import FacemendError
from facemend.faces import FaceTracker
from facemend.faces.temporal import TemporalOptions, TrackFusion
from test_video import astronaut_frames, face_at, make_clip, read_frames, run

SIZE = 64


def pattern(shift: float = 0.0) -> np.ndarray:
    """A smooth S×S×3 image, moved right by `shift` px."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    x = x - shift
    channels = [0.5 + 0.3 * np.sin(x / 5 + c) * np.cos(y / 7) for c in range(3)]
    return np.stack(channels, axis=2).astype(np.float32)


def test_a_still_face_flickers_less_and_keeps_its_mean():
    rng = np.random.default_rng(0)
    fusion, crop = TrackFusion(), pattern()
    raw, fused = [], []
    for _ in range(40):
        fusion.next_frame()
        restored = crop + rng.normal(0, 0.02, crop.shape).astype(np.float32)  # a restorer that flickers
        raw.append(restored)
        fused.append(fusion(7, crop, restored))
    raw_flicker = np.abs(np.diff(raw[10:], axis=0)).mean()
    fused_flicker = np.abs(np.diff(fused[10:], axis=0)).mean()
    assert fused_flicker < 0.6 * raw_flicker, (raw_flicker, fused_flicker)
    assert np.abs(np.mean(fused[10:], axis=0) - crop).mean() < 0.005  # no drift: the blend is unbiased


def test_a_changed_face_takes_the_current_frame():
    fusion = TrackFusion()
    fusion.next_frame()
    fusion(0, pattern(), pattern())
    fusion.next_frame()
    changed = pattern()
    changed[20:44, 20:44] += 0.3  # the input changed there (a mouth opening, say)
    out = fusion(0, changed, changed)
    np.testing.assert_allclose(out[26:38, 26:38], changed[26:38, 26:38], atol=1e-6)  # not smeared
    np.testing.assert_allclose(out[:10], changed[:10], atol=1e-5)  # unchanged and equal: the same


def test_a_jittering_alignment_is_registered_before_blending():
    """The crops of a degraded face move by a pixel from frame to frame (its landmarks jitter): registered, the
    blend keeps the current frame's geometry and averages the restorer's flicker away; unregistered, it mixes
    shifted faces (or, where the gate sees the shift, lets the flicker through)."""
    errors = {}
    for register in (True, False):
        rng = np.random.default_rng(1)
        fusion = TrackFusion(TemporalOptions(register=register))
        per_frame = []
        for t in range(30):
            fusion.next_frame()
            crop = pattern(shift=0.8 * (t % 2))
            restored = crop + rng.normal(0, 0.01, crop.shape).astype(np.float32)
            per_frame.append(np.abs(fusion(0, crop, restored) - crop)[8:-8, 8:-8].mean())
        errors[register] = float(np.mean(per_frame[10:]))
    assert errors[True] < 0.004, errors  # half the restorer's own flicker (0.008 on average)
    assert errors[False] > 2 * errors[True], errors


def test_a_slow_change_is_followed_without_lagging_behind():
    fusion = TrackFusion()
    for t in range(60):
        fusion.next_frame()
        crop = pattern() + np.float32(0.004 * t)  # the light slowly brightens, 0.24 in all
        out = fusion(0, crop, crop)
    assert np.abs(out - crop).max() < 0.02  # steady lag behind the current frame, well under the change itself


def test_new_tracks_and_faces_without_a_track_start_afresh():
    fusion = TrackFusion(TemporalOptions(carry=0.9))
    fusion.next_frame()
    fusion(0, pattern(), pattern())
    fusion.next_frame()
    dark = pattern() * 0.5
    assert np.array_equal(fusion(1, pattern(), dark), dark)  # another face: nothing carried over
    assert np.array_equal(fusion(None, pattern(), dark), dark)
    fusion.next_frame()
    fusion.next_frame()  # track 0 was not seen for a frame: forgotten
    assert np.array_equal(fusion(0, pattern(), dark), dark)
    assert np.array_equal(TrackFusion(TemporalOptions(carry=0.0))(0, pattern(), dark), dark)


@pytest.mark.parametrize("field", ["carry", "change_scale", "change_sigma"])
def test_bad_options_are_named(field):
    with pytest.raises(FacemendError, match=field):
        TemporalOptions(**{field: -1.0})


def test_tracker_gives_each_face_its_track_id():
    tracker = FaceTracker(30)
    first = tracker.update([face_at(100, 100), face_at(300, 100)])
    second = tracker.update([face_at(302, 101), face_at(101, 100)])
    assert [face.track for face in first] == [0, 1] and [face.track for face in second] == [1, 0]
    assert tracker.update([face_at(600, 400)])[0].track == 2  # a newcomer gets a new id; the others are held
    assert {face.track for face in tracker.update([])} == {0, 1}


def test_temporal_video_of_a_still_face_flickers_less_than_frame_by_frame(tmp_path, astronaut, capsys):
    rng = np.random.default_rng(3)
    frames = []
    still = astronaut_frames(astronaut, count=1, size=256)[0]
    for _ in range(16):
        noisy = np.clip(still + rng.normal(0, 12, still.shape), 0, 255).astype(np.uint8)
        frames.append(cv2.GaussianBlur(noisy, (0, 0), 1.2))  # fresh noise each frame, then blur
    clip = make_clip(tmp_path / "clip.mp4", frames, audio=False)
    outputs = {}
    for flag in ("--temporal", "--no-temporal"):
        code, err = run(capsys, str(clip), "-o", str(tmp_path / flag), flag)
        assert code == 0, err
        outputs[flag] = np.stack(read_frames(tmp_path / flag / "clip.mp4")).astype(np.float32)
    face = np.s_[:, 70:140, 70:140]  # the astronaut's face
    flicker = {flag: np.abs(np.diff(video[face], axis=0)).mean() for flag, video in outputs.items()}
    assert flicker["--temporal"] < 0.9 * flicker["--no-temporal"], flicker
    assert np.abs(outputs["--temporal"] - outputs["--no-temporal"])[face].mean() < 6  # the same face, steadier

"""`facemend restore` on videos: frames, rate and audio kept, faces restored, atomic output; face tracking."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image

from facemend.cli import main
from facemend.data.video import frame_rate
from facemend.errors import FacemendError
from facemend.faces import Face, FaceBox, FaceTracker
from facemend.pipelines.photo import PhotoPipeline

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(path: Path, frames: list[np.ndarray], fps: int = 12, audio: bool = True) -> Path:
    """Encode RGB uint8 frames as H.264 with the bundled ffmpeg, with a 440 Hz tone when `audio`."""
    height, width = frames[0].shape[:2]
    command = [FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
    command += ["-r", str(fps), "-i", "-"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={len(frames) / fps}", "-c:a", "aac"]
    command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", str(path)]
    subprocess.run(command, input=b"".join(frame.tobytes() for frame in frames), check=True)
    return path


def astronaut_frames(astronaut: np.ndarray, count: int = 12, size: int = 256) -> list[np.ndarray]:
    """The astronaut's head and shoulders, `size` px square, drifting by about a pixel a frame."""
    head = astronaut[:320, 100:420]
    frames = []
    for k in range(count):
        shift = np.float32([[1, 0, -1.2 * k], [0, 1, -0.6 * k]])
        moved = cv2.warpAffine(head, shift, (320, 320), borderMode=cv2.BORDER_REFLECT)
        frames.append(cv2.resize(moved, (size, size), interpolation=cv2.INTER_AREA))
    return frames


def texture_frames(count: int = 8, width: int = 96, height: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (height, width + count, 3), dtype=np.uint8), (0, 0), 3)
    return [np.ascontiguousarray(base[:, k : k + width]) for k in range(count)]


def read_frames(path: Path) -> list[np.ndarray]:
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return [np.frombuffer(data, np.uint8).reshape(height, width, 3) for data in reader]


def streams(path: Path) -> list[str]:
    """The stream lines of `ffmpeg -i` (ffprobe is not bundled)."""
    result = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("Stream #")]


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["restore", *args, "--quiet"])
    return code, capsys.readouterr().err


def test_video_keeps_frames_rate_and_audio_and_its_face_is_restored(tmp_path, astronaut, capsys):
    frames = astronaut_frames(astronaut)
    clip = make_clip(tmp_path / "clip.mp4", frames)
    code, err = run(capsys, str(clip), "-o", str(tmp_path / "out"))
    assert code == 0, err
    output = tmp_path / "out" / "clip.mp4"
    video, audio = (next(line for line in streams(output) if kind in line) for kind in ("Video:", "Audio:"))
    assert "h264" in video and "yuv420p" in video and " 256x256" in video and re.search(r"\b12 fps\b", video)
    assert "aac" in audio
    restored, original = read_frames(output), read_frames(clip)
    assert len(restored) == len(frames) == len(original)
    face = np.s_[60:150, 60:150]  # the astronaut's face, as it drifts
    background = np.s_[200:, :40]
    for before, after in zip(original, restored, strict=True):
        change = np.abs(after.astype(int) - before)
        assert change[face].mean() > 2.5 > 2.0 > change[background].mean()  # elsewhere: re-encoding only
    assert f"1 videos written ({len(frames)} frames, {len(frames)} faces restored" in err
    assert [p.name for p in output.parent.iterdir()] == ["clip.mp4"]  # no temporary file left


def test_folder_gives_its_photos_and_videos_and_a_silent_video_stays_silent(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    frames = texture_frames()
    make_clip(folder / "scenery.mov", frames, audio=False)
    Image.fromarray(frames[0]).save(folder / "still.png")
    (folder / "notes.txt").write_text("not a photo")
    code, err = run(capsys, str(folder), "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scenery.mp4", "still.png"]
    output = tmp_path / "out" / "scenery.mp4"
    assert not any("Audio:" in line for line in streams(output))
    restored = read_frames(output)
    assert len(restored) == len(frames)
    assert np.abs(restored[3].astype(int) - read_frames(folder / "scenery.mov")[3]).mean() < 1.5  # re-encoded only
    assert "no face found in any frame" in err
    assert "1 photos written" in err and "1 videos written (8 frames, 0 faces restored" in err


def test_aligned_video_frames_are_restored_whole_and_upscaled(tmp_path, astronaut_face, capsys):
    frames = [np.roll(astronaut_face, k, axis=1) for k in range(4)]  # a face crop, sliding
    clip = make_clip(tmp_path / "faces.mp4", frames, audio=False)
    code, err = run(capsys, str(clip), "-o", str(tmp_path / "out"), "--aligned", "--upscale", "2")
    assert code == 0, err
    restored = read_frames(tmp_path / "out" / "faces.mp4")
    assert len(restored) == 4 and restored[0].shape == (256, 256, 3)
    assert "4 faces restored" in err


def test_bad_videos_are_named_and_fail_alone_and_earlier_outputs_stay(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20000, np.uint8).tobytes())
    (folder / "empty.webm").write_bytes(b"")
    tone = [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(folder / "tone.m4v")]
    subprocess.run(tone, check=True)
    make_clip(folder / "good.mkv", texture_frames(4), audio=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "broken.mp4").write_bytes(b"earlier result")
    code, err = run(capsys, str(folder), "-o", str(out))
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, err
    assert "broken.mp4" in errors[0] and "not a readable video" in errors[0]
    assert "empty.webm" in errors[1] and "empty file" in errors[1]
    assert "tone.m4v" in errors[2] and "no video stream" in errors[2]
    assert (out / "broken.mp4").read_bytes() == b"earlier result"
    assert sorted(p.name for p in out.iterdir()) == ["broken.mp4", "good.mp4"]  # nothing partial, no temp files
    assert "1 videos written" in err and "3 failed" in err


def test_truncated_video_is_written_as_far_as_it_goes_with_a_warning(tmp_path, capsys):
    noise = np.random.default_rng(0).integers(0, 256, (24, 64, 96, 3), np.uint8)  # frames that compress badly
    clip = make_clip(tmp_path / "whole.mp4", list(noise), audio=False)
    cut = tmp_path / "cut.mp4"  # moov atom in front, so what remains still decodes
    subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(clip), "-c", "copy", "-movflags", "+faststart", str(cut)], check=True
    )
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    code, err = run(capsys, str(cut), "-o", str(tmp_path / "out"))
    assert code == 0, err
    frames = len(read_frames(tmp_path / "out" / "cut.mp4"))
    assert 0 < frames < 24
    assert f"cut.mp4: {frames} frames decoded where its header promises 24: the file may be truncated" in err


def test_video_failing_midway_leaves_nothing_partial(tmp_path, capsys, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4", texture_frames(8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.mp4").write_bytes(b"earlier result")
    finish, calls = PhotoPipeline.finish, []

    def failing_finish(self, job):
        calls.append(1)
        if len(calls) == 5:
            raise FacemendError("disk on fire")
        return finish(self, job)

    monkeypatch.setattr(PhotoPipeline, "finish", failing_finish)
    code, err = run(capsys, str(clip), "-o", str(out))
    assert code == 1 and "error: disk on fire" in err
    assert [p.name for p in out.iterdir()] == ["clip.mp4"]
    assert (out / "clip.mp4").read_bytes() == b"earlier result"


def test_frame_rate_recovers_ntsc_rates():
    assert frame_rate(29.97) == Fraction(30000, 1001)
    assert frame_rate(23.98) == Fraction(24000, 1001)
    assert frame_rate(25.0) == 25 and frame_rate(1.0) == 1 and frame_rate(12.5) == Fraction(25, 2)


# Face tracking and smoothing, on synthetic detections: 100-px faces at 30 fps.
SHAPE = np.array([[35.0, 40.0], [65.0, 40.0], [50.0, 58.0], [38.0, 75.0], [62.0, 75.0]])  # 5 points in a box


def face_at(x: float, y: float, noise: np.ndarray | None = None) -> Face:
    points = SHAPE + (x, y) + (0 if noise is None else noise)
    return Face(FaceBox(x, y, x + 100, y + 100), np.zeros((68, 2)), points)


def test_smoothing_steadies_a_still_face():
    rng = np.random.default_rng(0)
    tracker = FaceTracker(30)
    raw, smoothed = [], []
    for _ in range(150):
        face = face_at(200, 100, rng.normal(0, 1.0, (5, 2)))
        raw.append(face.landmarks5)
        smoothed.append(tracker.update([face])[0].landmarks5)
    raw_jitter, smoothed_jitter = np.std(raw[30:], axis=0).mean(), np.std(smoothed[30:], axis=0).mean()
    assert smoothed_jitter < 0.5 * raw_jitter, (raw_jitter, smoothed_jitter)


def test_smoothing_follows_a_moving_face_closely():
    rng = np.random.default_rng(1)
    tracker = FaceTracker(30)
    step = np.array([3.0, 1.0])  # px per frame: about a face size per second
    lags = []
    for k in range(90):
        x, y = (100, 100) + k * step
        smoothed = tracker.update([face_at(x, y, rng.normal(0, 0.5, (5, 2)))])[0]
        lags.append(np.mean((SHAPE + (x, y) - smoothed.landmarks5) @ step) / np.linalg.norm(step))
    assert abs(np.mean(lags[15:])) < 0.5 * np.linalg.norm(step)  # behind by less than half a frame's motion


def test_tracks_keep_two_faces_apart_and_new_faces_start_unsmoothed():
    rng = np.random.default_rng(2)
    tracker = FaceTracker(30)
    for k in range(20):
        faces = [face_at(100 + k, 100, rng.normal(0, 1.0, (5, 2))), face_at(230 - k, 110, rng.normal(0, 1.0, (5, 2)))]
        if k % 2:
            faces.reverse()  # the order of detections must not matter
        smoothed = tracker.update(faces)
        if k == 0:
            assert all(np.array_equal(s.landmarks5, f.landmarks5) for s, f in zip(smoothed, faces, strict=True))
        for detected, result in zip(faces, smoothed, strict=True):
            assert np.abs(result.landmarks5 - detected.landmarks5).max() < 5  # never pulled towards the other face
    assert len(tracker.tracks) == 2
    newcomer = face_at(400, 300)
    assert np.array_equal(tracker.update([newcomer])[0].landmarks5, newcomer.landmarks5)


def test_a_missed_face_is_held_for_a_frame_or_two_not_longer():
    tracker = FaceTracker(30)
    for k in range(5):
        tracker.update([face_at(100 + k, 100)])
    last = tracker.update([face_at(105, 100)])[0]
    held = [tracker.update([]) for _ in range(3)]  # the detector misses it three times
    assert [len(faces) for faces in held] == [1, 1, 0]  # held for hold_frames = 2, then let go
    assert np.array_equal(held[0][0].landmarks5, last.landmarks5)
    assert len(tracker.update([face_at(106, 100)])) == 1  # back: the track continues, nothing held twice
    assert FaceTracker(30).update([]) == []
    newcomer = FaceTracker(30)
    newcomer.update([face_at(0, 0)])
    assert newcomer.update([]) == []  # a face seen once (a false detection, perhaps) is not held


def test_rotated_video_is_restored_upright(tmp_path, astronaut, capsys):
    frames = astronaut_frames(astronaut, count=6)
    stored = make_clip(tmp_path / "sideways.mp4", [np.ascontiguousarray(np.rot90(f, -1)) for f in frames], audio=False)
    rotated = tmp_path / "rotated.mp4"  # the same pixels, with a display matrix that turns them upright
    subprocess.run([FFMPEG, "-v", "error", "-display_rotation", "90", "-i", str(stored), "-c", "copy", str(rotated)])
    assert any("rotation of 90" in line for line in _side_data(rotated))
    code, err = run(capsys, str(rotated), "-o", str(tmp_path / "out"))
    assert code == 0, err
    restored = read_frames(tmp_path / "out" / "rotated.mp4")
    assert len(restored) == 6 and restored[0].shape == frames[0].shape
    assert np.abs(restored[0].astype(int) - frames[0]).mean() < 8  # upright, face restored in place
    assert "6 frames, 6 faces" in err


def test_variable_frame_rate_one_frame_and_faces_entering_and_leaving(tmp_path, astronaut, capsys):
    frames = astronaut_frames(astronaut, count=10)
    height, width = frames[0].shape[:2]
    vfr = tmp_path / "vfr.mp4"  # 5 frames 50 ms apart, then 5 frames 200 ms apart
    command = [FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
    command += ["-r", "12", "-i", "-", "-vf", "setpts='if(lt(N,5),N*0.05,0.25+(N-5)*0.2)/TB'", "-fps_mode", "vfr"]
    command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(vfr)]
    subprocess.run(command, input=b"".join(frame.tobytes() for frame in frames), check=True)
    single = make_clip(tmp_path / "single.mp4", frames[:1], audio=False)
    head = astronaut[:320, 100:420]
    passing = []  # the face slides in from the left, crosses, and leaves on the right
    for x in np.linspace(-300, 300, 12):
        shift = np.float32([[1, 0, x], [0, 1, 0]])
        passing.append(cv2.resize(cv2.warpAffine(head, shift, (320, 320)), (256, 256), interpolation=cv2.INTER_AREA))
    crossing = make_clip(tmp_path / "crossing.mp4", passing, audio=False)
    code, err = run(capsys, str(vfr), str(single), str(crossing), "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert "Traceback" not in err and "3 videos written" in err
    # variable rate: read at the average rate (10.8 fps over 1.25 s, frames repeated where they were far apart),
    # so the timing is kept; every frame gets its face
    count = len(read_frames(tmp_path / "out" / "vfr.mp4"))
    assert 13 <= count <= 15 and f"vfr.mp4: {count} frames, {count} faces" in err
    assert len(read_frames(tmp_path / "out" / "single.mp4")) == 1 and "single.mp4: 1 frames, 1 faces" in err
    faces = int(re.search(r"crossing\.mp4: 12 frames, (\d+) faces", err).group(1))
    assert 3 <= faces < 12  # only while it is in the picture
    assert len(read_frames(tmp_path / "out" / "crossing.mp4")) == 12


def _side_data(path: Path) -> list[str]:
    result = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return result.stderr.splitlines()

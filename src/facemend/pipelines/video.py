"""Video → frames → tracked, smoothed faces → restorer (faces of several frames batched) → frames → video."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facemend.data.io import Photo
from facemend.data.video import VideoWriter, read_video
from facemend.errors import FacemendError
from facemend.faces import FaceTracker, SmoothingOptions
from facemend.faces.flow import StridedDetection
from facemend.faces.temporal import TemporalOptions, TrackFusion
from facemend.faces.yunet import SCORE_THRESHOLD
from facemend.pipelines.files import output_stems, refuse_overwriting_inputs
from facemend.pipelines.photo import PhotoJob, PhotoPipeline

# Frames held back while their faces wait for a full batch: bounds memory when faces are few and far apart.
MAX_PENDING_FRAMES = 32
DETECT_EVERY = 3  # frames: the detector runs on one frame in this many; faces are followed by optical flow between
# YuNet's score for a face that overlaps one being followed (a new face needs yunet.SCORE_THRESHOLD): on the heavy
# video benchmark's val clips the faces scored under 0.75 in a quarter of the frames, and 0.5 found most of them
FOLLOWED_MIN_SCORE = 0.5
DEFAULT_TEMPORAL = TemporalOptions()  # videos: restorations blended along each face track
TRUNCATED_SHARE = 0.9  # fewer frames than this share of the header's count: warn that the file may be cut short


@dataclass
class VideoResult:
    expected_frames: int  # as the header's duration and rate say (0 when unknown)
    frames: int = 0  # frames written
    faces: int = 0  # faces restored, summed over frames
    frames_without_face: int = 0
    frames_with_small_faces: int = 0  # frames with faces below the minimum size, left as they are


@dataclass
class VideoRunSummary:
    videos: int = 0  # videos written
    frames: int = 0
    faces: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.frames / self.seconds if self.seconds else 0.0
        return (
            f"{self.videos} videos written ({self.frames} frames, {self.faces} faces restored, "
            f"{rate:.1f} frames/s), {len(self.failures)} failed, {self.seconds:.1f} s"
        )


def restore_videos(
    pipeline: PhotoPipeline,
    paths: Sequence[Path],
    outdir: Path,
    smoothing: SmoothingOptions | None = None,
    report: Callable[[str], None] = print,
    progress: bool = True,
    detect_every: int = DETECT_EVERY,
    temporal: TemporalOptions | None = DEFAULT_TEMPORAL,
) -> VideoRunSummary:
    """Restore every video in `paths` into `outdir/<stem>.mp4`; bad videos are reported and skipped."""
    outputs = [outdir / f"{stem}.mp4" for stem in output_stems(paths)]
    refuse_overwriting_inputs(paths, outputs)
    summary = VideoRunSummary()
    started = time.perf_counter()
    for path, output in zip(paths, outputs, strict=True):
        try:
            result = restore_video(pipeline, path, output, smoothing, progress, detect_every, temporal)
        except FacemendError as error:
            summary.failures.append((str(path), str(error)))
            report(f"error: {error}")
            continue
        summary.videos += 1
        summary.frames += result.frames
        summary.faces += result.faces
        if result.frames < TRUNCATED_SHARE * result.expected_frames:
            report(
                f"warning: {path}: {result.frames} frames decoded where its header promises "
                f"{result.expected_frames}: the file may be truncated"
            )
        if result.frames_with_small_faces:
            minimum = pipeline.options.min_face_size
            report(
                f"warning: {path}: faces smaller than {minimum} px left unrestored in "
                f"{result.frames_with_small_faces} frame(s)"
            )
        if result.frames_without_face == result.frames:
            report(f"warning: {path}: no face found in any frame; frames written unchanged")
        else:
            report(f"{path}: {result.frames} frames, {result.faces} faces")
    summary.seconds = time.perf_counter() - started
    return summary


def restore_video(
    pipeline: PhotoPipeline,
    source: Path,
    output: Path,
    smoothing: SmoothingOptions | None = None,
    progress: bool = True,
    detect_every: int = DETECT_EVERY,
    temporal: TemporalOptions | None = DEFAULT_TEMPORAL,
) -> VideoResult:
    """Restore the faces of every frame of `source` into the MP4 `output`, with the source's frame rate and audio.

    Faces are tracked from frame to frame and their landmarks smoothed (see `facemend.faces.tracking`) before
    they are aligned, so pasted faces hold still. The detector runs on every `detect_every`-th frame (and after a
    face is lost); optical flow follows the faces in between. With `temporal` (the default; None: every frame
    restored on its own), each restored face is blended with its track's previous one where the input face did
    not change (see `facemend.faces.temporal`). `output` appears only once it is complete.
    """
    info, frames = read_video(source)
    result = VideoResult(info.frame_estimate)
    bar = tqdm(
        total=info.frame_estimate or None, desc=source.name, unit="frame", disable=not progress, dynamic_ncols=True
    )
    size = (info.width * pipeline.options.upscale, info.height * pipeline.options.upscale)
    with bar, closing(frames), VideoWriter(output, size, info.fps, audio_from=info) as writer:
        for restored in restore_frames(pipeline, frames, float(info.fps), result, smoothing, detect_every, temporal):
            writer.write(restored)
            bar.update()
            bar.set_postfix(faces=result.faces, refresh=False)
        if not result.frames:
            raise FacemendError(f"{source}: the video has no frames")
    return result


def finish_frames(pipeline: PhotoPipeline, jobs: Sequence[PhotoJob], fusion: TrackFusion | None) -> list[np.ndarray]:
    """The output frames (H×W×3 uint8 RGB) of consecutive frames' `jobs`: their faces restored in one go, blended
    along their tracks by `fusion` (None: not), and pasted back."""
    restored = iter(pipeline.restore_crops([crop for job in jobs for crop in job.crops]))
    outputs = []
    for job in jobs:
        job.restored = [next(restored) for _ in job.crops]
        if fusion is not None:
            fusion.next_frame()
            job.restored = [
                fusion(face.track, crop, face_restored)
                for face, crop, face_restored in zip(job.faces, job.crops, job.restored, strict=True)
            ]
        outputs.append(pipeline.finish(job).to_uint8())
    return outputs


def restore_frames(
    pipeline: PhotoPipeline,
    frames: Iterable[np.ndarray],
    fps: float,
    result: VideoResult,
    smoothing: SmoothingOptions | None = None,
    detect_every: int = DETECT_EVERY,
    temporal: TemporalOptions | None = DEFAULT_TEMPORAL,
) -> Iterator[np.ndarray]:
    """The restored H×W×3 uint8 RGB frames of consecutive `frames` (same layout) of one video shot at `fps`, in
    order; the counts of frames and faces go into `result`.

    This is the frame loop of `restore_video`, on frames in memory: faces are detected on every `detect_every`-th
    frame (and after one is lost), followed by optical flow in between, tracked and smoothed, and the faces of
    several frames are restored in one batch; with `temporal`, each restored face is blended with its track's
    previous one (see `facemend.faces.temporal`).
    """
    tracker = None if pipeline.options.aligned else FaceTracker(fps, smoothing)
    yunet = pipeline.options.detector == "yunet"
    strided = StridedDetection(detect_every, weak_below=SCORE_THRESHOLD if yunet else None)
    min_score = FOLLOWED_MIN_SCORE if yunet else None
    fusion = None if temporal is None or tracker is None else TrackFusion(temporal)
    pending: list[PhotoJob] = []

    def flush() -> list[np.ndarray]:
        outputs = finish_frames(pipeline, pending, fusion)
        pending.clear()
        return outputs

    for frame in frames:
        photo = Photo(frame.astype(np.float32) / 255)
        if tracker is None:
            job = pipeline.prepare(photo)
        else:
            faces = strided(frame, partial(pipeline.detect, photo, min_score))
            job = pipeline.crop_faces(photo, tracker.update(faces))
        result.frames += 1
        result.faces += len(job.crops)
        result.frames_without_face += 0 if job.crops else 1
        result.frames_with_small_faces += 1 if job.too_small else 0
        pending.append(job)
        waiting = sum(len(job.crops) for job in pending)
        if waiting == 0 or waiting >= pipeline.batch_size or len(pending) >= MAX_PENDING_FRAMES:
            yield from flush()
    yield from flush()

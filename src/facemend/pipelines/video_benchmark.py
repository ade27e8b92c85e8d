"""`facemend benchmark-video`: short clips with ground truth, restored through the video path, measured per frame
and over time.

Each clip is made from one aligned HQ face (e.g. facemend-test's `hq/`): the face is enlarged to a
`FRAME_SIZE`-px frame and moved by a seeded, smooth pan, zoom and small rotation (a known 2×3 affine per frame,
rendered with `cv2.warpAffine`, the border mirrored). Every frame is then degraded on its own with a preset of
`facemend.data.degradation`: the blur, down-sampling, noise level and JPEG quality are drawn once per clip (one
camera), the noise and the JPEG encoding are fresh in every frame, as in real footage.

Rows: the ground truth, the LQ input, the ground truth pasted (`PastedTruth`: a perfect restorer in the product's
path), and each model, restored frame by frame by the product's video loop
(`facemend.pipelines.video.restore_frames`: detection every few frames, optical flow, tracking, smoothing,
paste-back) or, with `alignment="known"`, aligned by the known motion (no detector: the restorer's own
flicker, without the tracker's). Each row is measured on the aligned face cut from its frames by the known
motion, against the ground truth's cut the same way: PSNR-Y, IDD and FD-dlib per frame (averaged over
frames); the warping error and descriptor jitter of `facemend.metrics.temporal` per clip (averaged over clips).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from facemend.data.degradation import Preset, degrade, get_preset, image_rng, resize_face, sample_params
from facemend.data.io import Photo, photo_from_array, read_image, write_bytes_atomic, write_image
from facemend.errors import FacemendError
from facemend.faces import Face, FaceBox, template_points
from facemend.faces.template import compose, resize_matrix, template_face_box, transform_points, warp_to_crop
from facemend.faces.temporal import TemporalOptions, TrackFusion
from facemend.methods.registry import resolve_model
from facemend.metrics.pixel import PSNR_CAP
from facemend.metrics.report import format_value, heading
from facemend.metrics.suite import FacePair, MetricSuite
from facemend.metrics.temporal import clip_warping_error, descriptor_jitter
from facemend.pipelines.evaluate import faces_in, spread
from facemend.pipelines.photo import FaceOptions, PhotoJob, PhotoPipeline
from facemend.pipelines.video import DEFAULT_TEMPORAL, VideoResult, finish_frames, restore_frames
from facemend.precision import resolve_precision

FRAME_SIZE = 256  # px, square frames; the face's aligned crop fills the frame at zoom 1
FACE_SIZE = 128  # px, the aligned crops every row is measured on (facemend-test's size)
CLIP_FPS = 25.0
MIN_FRAMES = 2
MAX_SHIFT = 0.06  # share of the frame side: largest pan amplitude
MAX_LOG_ZOOM = 0.08  # largest zoom amplitude, as a log factor (±8 %)
MAX_ROTATION = 4.0  # degrees: largest rotation amplitude
FREQUENCIES = (0.15, 0.5)  # Hz: each motion parameter is a sine of a frequency in this range
ALIGNMENTS = ("detector", "known")
TEMPORAL_MODES = ("both", "on", "off")  # rows per model: with and without the temporal blend, or one of them
TEMPORAL_SUFFIX = ", temporal"  # the row of a model restored with the temporal blend
GROUND_TRUTH = "ground-truth"
PASTED_TRUTH = "ground-truth, pasted"  # a perfect restorer in the product's path: what the path alone leaves
LQ_INPUT = "lq-input"
FRAME_KEYS = ("psnr_y", "idd", "fd_dlib")
COLUMNS = (*FRAME_KEYS, "warp_error", "id_jitter", "face_frames", "s_per_frame")
LABELS = {
    "warp_error": "warp err. ↓",
    "id_jitter": "ID jitter ↓",
    "face_frames": "frames with a face",
    "s_per_frame": "s/frame",
}
SAMPLE_FRAMES = 4  # frames of the first clip shown in each preset's sample sheet


@dataclass(frozen=True)
class Clip:
    """A ground-truth clip: its frames and, per frame, the aligned crop's place in it."""

    stem: str
    frames: list[np.ndarray]  # FRAME_SIZE² × 3 uint8 RGB
    crop_to_frame: np.ndarray  # `n 2 3`: the FACE_SIZE aligned crop's coordinates → the frame's


def clip_motion(rng: np.random.Generator, frame_count: int, size: int = FRAME_SIZE) -> np.ndarray:
    """`n 2 3` affines from the still frame to each frame: pan, zoom and rotation about the centre, each a sine
    with a seeded amplitude, frequency and phase (smooth, and as fast at any clip length)."""
    seconds = np.arange(frame_count) / CLIP_FPS

    def wave(largest: float) -> np.ndarray:
        amplitude, frequency, phase = rng.uniform(0.5, 1.0), rng.uniform(*FREQUENCIES), rng.uniform(0.0, 2 * math.pi)
        return largest * amplitude * np.sin(2 * math.pi * frequency * seconds + phase)

    dx, dy = wave(MAX_SHIFT * size), wave(MAX_SHIFT * size)
    zoom, angle = np.exp(wave(MAX_LOG_ZOOM)), wave(MAX_ROTATION)
    centre = ((size - 1) / 2, (size - 1) / 2)
    motion = np.stack([cv2.getRotationMatrix2D(centre, float(a), float(z)) for a, z in zip(angle, zoom, strict=True)])
    motion[:, :, 2] += np.stack([dx, dy], axis=1)
    return motion


def make_clip(stem: str, face: np.ndarray, frame_count: int, seed: int) -> Clip:
    """The clip of one aligned H×W×3 uint8 face: enlarged to the frame and moved by `clip_motion`."""
    still = resize_face(face, FRAME_SIZE).astype(np.float32)
    motion = clip_motion(image_rng(seed, f"motion/{stem}"), frame_count)
    frames = [
        np.clip(
            np.rint(
                cv2.warpAffine(
                    still, m, (FRAME_SIZE, FRAME_SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
                )
            ),
            0,
            255,
        ).astype(np.uint8)
        for m in motion
    ]
    crop_to_still = cv2.invertAffineTransform(resize_matrix((FACE_SIZE, FACE_SIZE), (FRAME_SIZE, FRAME_SIZE)))
    return Clip(stem, frames, np.stack([compose(m, crop_to_still) for m in motion]))


def degrade_clip(clip: Clip, preset_name: str, seed: int) -> list[np.ndarray]:
    """The clip's frames degraded by the preset: parameters drawn once for the clip, for a face of FRAME_SIZE
    px (its aligned crop's size in the frame); noise and JPEG fresh in each frame."""
    preset: Preset = get_preset(preset_name)
    rng = image_rng(seed, f"{preset_name}/{clip.stem}")
    params = sample_params(rng, preset, FRAME_SIZE)
    return [degrade(frame, params, rng) for frame in clip.frames]


def face_crops(frames: Sequence[np.ndarray], clip: Clip) -> list[np.ndarray]:
    """The FACE_SIZE aligned crops cut from `frames` (the clip's, or a row made from them) by the known motion:
    each frame halved by area averaging, then warped (bicubic, mirrored border) by the rest of the motion."""
    half = resize_matrix((FRAME_SIZE, FRAME_SIZE), (FACE_SIZE, FACE_SIZE))  # halved frame → frame
    crops = []
    for frame, crop_to_frame in zip(frames, clip.crop_to_frame, strict=True):
        halved = cv2.resize(frame, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
        matrix = compose(cv2.invertAffineTransform(crop_to_frame), half)
        crops.append(
            cv2.warpAffine(
                halved, matrix, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
            )
        )
    return crops


def face_masks(clip: Clip) -> list[np.ndarray]:
    """Per frame, the face region (the ellipse in the template's face box) in the frame, H×W bool."""
    box = template_face_box(FACE_SIZE)
    mask = np.zeros((FACE_SIZE, FACE_SIZE), np.float32)
    centre = (round(box.center[0]), round(box.center[1]))
    cv2.ellipse(mask, centre, (round(box.width / 2), round(box.height / 2)), 0, 0, 360, 1.0, -1)
    size = (FRAME_SIZE, FRAME_SIZE)
    return [cv2.warpAffine(mask, m, size, flags=cv2.INTER_LINEAR) > 0.5 for m in clip.crop_to_frame]


def known_face(crop_to_frame: np.ndarray) -> Face:
    """The face of one frame where the known motion puts it: the template's 5 points and face box."""
    box = template_face_box(FACE_SIZE)
    corners = transform_points(
        crop_to_frame,
        np.array([[box.left, box.top], [box.right, box.top], [box.right, box.bottom], [box.left, box.bottom]]),
    )
    (left, top), (right, bottom) = corners.min(axis=0), corners.max(axis=0)
    points = transform_points(crop_to_frame, template_points(FACE_SIZE))
    return Face(FaceBox(left, top, right, bottom), None, points, track=0)  # one face per clip: one track


class PastedTruth(PhotoPipeline):
    """The video path of `like` (its detector, tracker, strength and paste-back) with a perfect restorer: each
    face's restoration is the ground truth's frame cut by that face's own alignment. What this row keeps of the
    flicker and of the distance to the ground truth comes from the path alone: the frames where no face is found,
    the input's fine band kept, each crop's two resamplings. (A restorer whose faces are softer than the truth
    can flicker less than this row: its resampling leaves less.)"""

    def __init__(self, like: PhotoPipeline) -> None:
        super().__init__(like.restorer, like.knobs, like.options, like.batch_size, like.precision)
        self.truth: Iterator[np.ndarray] = iter(())
        self.waiting: deque[np.ndarray] = deque()  # the true crops of the faces cut so far and not yet "restored"

    def start(self, clip: Clip) -> None:
        """Take the true faces from `clip`'s frames, in order, from now on."""
        self.truth = (frame.astype(np.float32) / 255 for frame in clip.frames)
        self.waiting.clear()

    def crop_faces(self, photo: Photo, faces: Sequence[Face]) -> PhotoJob:
        job = super().crop_faces(photo, faces)
        truth = next(self.truth)
        self.waiting.extend(warp_to_crop(truth, matrix, self.restorer.face_size) for matrix in job.matrices)
        return job

    def restore_crops(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.waiting.popleft() for _ in crops]


def restore_clip(
    pipeline: PhotoPipeline,
    frames: Sequence[np.ndarray],
    clip: Clip,
    alignment: str,
    temporal: TemporalOptions | None = None,
) -> tuple[list[np.ndarray], VideoResult]:
    """The clip's LQ `frames` restored (with the temporal blend when `temporal` is given), and the counts of frames
    and faces."""
    result = VideoResult(len(frames))
    if alignment == "detector":
        return list(restore_frames(pipeline, frames, CLIP_FPS, result, temporal=temporal)), result
    fusion = TrackFusion(temporal) if temporal is not None else None
    jobs = [
        pipeline.crop_faces(Photo(frame.astype(np.float32) / 255), [known_face(m)])
        for frame, m in zip(frames, clip.crop_to_frame, strict=True)
    ]
    outputs = finish_frames(pipeline, jobs, fusion)
    for job in jobs:
        result.frames += 1
        result.faces += len(job.crops)
        result.frames_without_face += 0 if job.crops else 1
    return outputs, result


def measure_row(
    rows: dict[str, list[np.ndarray]],
    clips: Sequence[Clip],
    truth: dict[str, list[np.ndarray]],
    masks: dict[str, list[np.ndarray]],
    suite: MetricSuite,
) -> tuple[dict, dict]:
    """One row's means over the clips and its values per clip. `rows`: each clip's frames (by stem); `truth`:
    each clip's ground-truth crops; `masks`: each clip's face masks."""
    crops = {clip.stem: face_crops(rows[clip.stem], clip) for clip in clips}
    pairs = (
        FacePair(f"{clip.stem}/{t}", crop, truth[clip.stem][t], reference_id=f"{clip.stem}/{t}")
        for clip in clips
        for t, crop in enumerate(crops[clip.stem])
    )
    measured = suite.measure(pairs)
    descriptors = measured.set_features["fd_dlib"][0]
    per_clip, start = {}, 0
    for clip in clips:
        stop = start + len(clip.frames)
        per_clip[clip.stem] = {
            "psnr_y": _mean(measured.per_image["psnr_y"][start:stop]),
            "idd": _mean(measured.per_image["idd"][start:stop]),
            "warp_error": _number(clip_warping_error(rows[clip.stem], clip.crop_to_frame, masks[clip.stem])),
            "id_jitter": _number(descriptor_jitter(descriptors[start:stop])),
        }
        start = stop
    means = {
        "psnr_y": _mean(measured.per_image["psnr_y"]),
        "idd": _mean(measured.per_image["idd"]),
        "fd_dlib": _number(measured.set_value("fd_dlib")),
        "warp_error": _mean([values["warp_error"] for values in per_clip.values()]),
        "id_jitter": _mean([values["id_jitter"] for values in per_clip.values()]),
        "missing_idd": measured.missing("idd"),
    }
    return means, per_clip


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _mean(values) -> float | None:
    finite = np.array([v for v in values if v is not None], np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if len(finite) else None


def hq_faces(data: str | Path) -> dict[str, Path]:
    """The aligned HQ faces of `data`: `data/hq/`, else the `hq/` of its first preset folder (a facemend-test
    folder), else the images in `data` itself."""
    root = Path(data)
    if not root.is_dir():
        raise FacemendError(f"{root}: not a folder")
    if (root / "hq").is_dir():
        return faces_in(root / "hq")
    presets = sorted(p for p in root.iterdir() if (p / "hq").is_dir())
    return faces_in(presets[0] / "hq" if presets else root)


def check_settings(
    clips: int, frames: int, presets: Sequence[str], alignment: str, seed: int, temporal: str = "both"
) -> None:
    if clips < 1:
        raise FacemendError(f"--clips must be >= 1, got {clips}")
    if frames < MIN_FRAMES:
        raise FacemendError(
            f"--frames must be >= {MIN_FRAMES} (temporal metrics compare consecutive frames), got {frames}"
        )
    if not presets:
        raise FacemendError("no preset given: e.g. --presets medium,heavy")
    for name in presets:
        get_preset(name)
    if alignment not in ALIGNMENTS:
        raise FacemendError(f"unknown alignment {alignment!r}; choose one of: {', '.join(ALIGNMENTS)}")
    if temporal not in TEMPORAL_MODES:
        raise FacemendError(f"unknown temporal mode {temporal!r}; choose one of: {', '.join(TEMPORAL_MODES)}")
    image_rng(seed, "")  # validates the seed


def run_video_benchmark(
    data: str | Path,
    specs: Sequence[str],
    out: str | Path,
    clips: int = 10,
    frames: int = 48,
    presets: Sequence[str] = ("medium", "heavy"),
    seed: int = 0,
    alignment: str = "detector",
    strength: float | None = 1.0,
    batch_size: int = 8,
    precision: str = "auto",
    progress: bool = True,
    warn: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    temporal: str = "both",
) -> dict:
    """Run the benchmark and write `out/video_benchmark.{json,md}` and a sample sheet per preset. Each model gives
    a row restored frame by frame (`temporal` "off") and one with the temporal blend, `SPEC, temporal` ("on"),
    or both."""
    check_settings(clips, frames, presets, alignment, seed, temporal)
    specs = list(dict.fromkeys(s.strip() for s in specs if s.strip()))
    if not specs:
        raise FacemendError("no model given: e.g. --models residual-unet")
    options = FaceOptions(strength=strength)
    pipelines = {spec: PhotoPipeline(*resolve_model(spec), options, batch_size, precision) for spec in specs}
    modes = {"both": (None, DEFAULT_TEMPORAL), "on": (DEFAULT_TEMPORAL,), "off": (None,)}[temporal]
    variants = [(PASTED_TRUTH, PastedTruth(next(iter(pipelines.values()))), None)] + [
        (spec + ("" if mode is None else TEMPORAL_SUFFIX), pipeline, mode)
        for spec, pipeline in pipelines.items()
        for mode in modes
    ]
    faces = hq_faces(data)
    stems = spread(sorted(faces), clips)
    if len(stems) < clips:
        warn(f"warning: {data} has {len(stems)} faces: {len(stems)} clips instead of {clips}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FacemendError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    made = [make_clip(stem, read_image(faces[stem]).to_uint8(), frames, seed) for stem in stems]
    truth = {clip.stem: face_crops(clip.frames, clip) for clip in made}
    masks = {clip.stem: face_masks(clip) for clip in made}
    suite = MetricSuite(FRAME_KEYS, batch_size=16)
    suite.load()
    result: dict = {
        "data": str(data),
        "clips": len(made),
        "frames": frames,
        "presets": list(presets),
        "seed": seed,
        "alignment": alignment,
        "temporal": temporal,
        "strength": "auto" if strength is None else strength,
        "frame_size": FRAME_SIZE,
        "face_size": FACE_SIZE,
        "fps": CLIP_FPS,
        "timing": f"s_per_frame: the whole video loop per frame ({alignment} alignment, restoration, paste-back), "
        f"batch {batch_size}, {torch.get_num_threads()} torch threads, {resolve_precision(precision)}",
        "stems": stems,
        "rows": {},
        "per_clip": {},
    }
    for preset in presets:
        lq = {clip.stem: degrade_clip(clip, preset, seed) for clip in made}
        rows: dict[str, dict[str, list[np.ndarray]]] = {
            GROUND_TRUTH: {clip.stem: clip.frames for clip in made},
            LQ_INPUT: lq,
        }
        result["rows"][preset], result["per_clip"][preset] = {}, {}
        timing: dict[str, tuple[float, float]] = {}
        for spec, pipeline, mode in variants:
            restored, seconds, face_frames = {}, 0.0, 0
            for clip in tqdm(made, desc=f"{preset} {spec}", unit="clip", disable=not progress, dynamic_ncols=True):
                if isinstance(pipeline, PastedTruth):
                    pipeline.start(clip)
                began = time.perf_counter()
                restored[clip.stem], counts = restore_clip(pipeline, lq[clip.stem], clip, alignment, mode)
                seconds += time.perf_counter() - began
                face_frames += counts.frames - counts.frames_without_face
            rows[spec] = restored
            total = len(made) * frames
            timing[spec] = (None if isinstance(pipeline, PastedTruth) else seconds / total, face_frames / total)
        for name, row in rows.items():
            if progress:
                print(f"measuring {preset} {name}", file=sys.stderr)
            means, per_clip = measure_row(row, made, truth, masks, suite)
            seconds, share = timing.get(name, (None, None))
            result["rows"][preset][name] = {**means, "face_frames": share, "s_per_frame": seconds}
            result["per_clip"][preset][name] = per_clip
        write_sample_sheet(out / f"sample_{preset}.png", rows, made[0])
    write_bytes_atomic(out / "video_benchmark.json", (json.dumps(result, indent=1) + "\n").encode())
    write_bytes_atomic(out / "video_benchmark.md", video_benchmark_markdown(result).encode())
    return result


def write_sample_sheet(path: Path, rows: dict[str, dict[str, list[np.ndarray]]], clip: Clip) -> None:
    """One line of frames of `clip` per row (ground truth, LQ input, models), `SAMPLE_FRAMES` spread over it."""
    count = len(clip.frames)
    picks = sorted(set(np.linspace(0, count - 1, min(SAMPLE_FRAMES, count)).round().astype(int).tolist()))
    lines = [np.concatenate([row[clip.stem][t] for t in picks], axis=1) for row in rows.values()]
    write_image(path, photo_from_array(np.concatenate(lines, axis=0)))


def video_benchmark_markdown(result: dict) -> str:
    """One table: per preset, the ground truth, the LQ input and each model."""
    headers = [heading(key) if key in FRAME_KEYS else LABELS[key] for key in COLUMNS]
    lines = [
        f"# Video benchmark: {result['data']}",
        "",
        f"{result['clips']} clips of {result['frames']} frames ({result['frame_size']} px, {result['fps']:g} fps, "
        f"seed {result['seed']}); faces aligned by {result['alignment']}, strength {result['strength']}; "
        f"measured on {result['face_size']}-px crops cut by the known motion. "
        "PSNR-Y, IDD: mean over frames; FD-dlib: over all frames; warp err. (0–255, in the face mask) and "
        f"ID jitter (dlib descriptor's mean distance to its clip mean): mean over clips. {result['timing']}.",
        "",
        "| preset | row | " + " | ".join(headers) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for preset, rows in result["rows"].items():
        for name, row in rows.items():
            lines.append(f"| {preset} | {name} | " + " | ".join(_cell(key, row.get(key)) for key in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key == "psnr_y" and value >= PSNR_CAP:
        return "∞"
    if key in FRAME_KEYS:
        return format_value(key, value)
    if key == "face_frames":
        return f"{100 * value:.0f} %"
    return f"{value:.3f}" if key == "s_per_frame" else f"{value:.2f}" if key == "warp_error" else f"{value:.4f}"

"""Choose the temporal mode's settings on facemend-val: the benchmark-video clips restored with several
`TemporalOptions`, scored by what needs no dlib (warping error and PSNR-Y of the aligned face), so that one
setting takes under a minute. The full benchmark (`facemend benchmark-video`) then checks the chosen one.

    python scripts/temporal_sweep.py --data data/facemend-val-128 --set carry=0.6 --set carry=0.8,change_scale=0.1

Two more sets of clips check that the blend does not lag on real change: halfway through each clip, a part of
the face becomes the next clip's, the motion going on: its lower part (from 62 % of its height down: mouth and
chin), or a band across the eyes (40–54 %: the size of a blink). The columns "after a change" give the PSNR-Y of
the `CHANGE_FRAMES` frames from that point, against their ground truth.

Each `--set` is one row: `field=value` pairs of `facemend.faces.temporal.TemporalOptions` (`off`: frame by frame).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import cv2
import numpy as np
import torch

from facemend.data.io import read_image
from facemend.faces.temporal import TemporalOptions
from facemend.methods.registry import resolve_model
from facemend.metrics.pixel import psnr
from facemend.metrics.temporal import clip_warping_error
from facemend.pipelines.evaluate import spread
from facemend.pipelines.photo import FaceOptions, PhotoPipeline, parse_strength
from facemend.pipelines.video_benchmark import (
    Clip,
    degrade_clip,
    face_crops,
    face_masks,
    hq_faces,
    make_clip,
    restore_clip,
)


def parse_setting(text: str) -> TemporalOptions | None:
    if text == "off":
        return None
    fields = {field.name: field.type for field in dataclasses.fields(TemporalOptions)}
    values = {}
    for pair in text.split(","):
        name, value = pair.split("=")
        values[name] = {"float": float, "bool": lambda text: text in ("1", "true", "on")}[fields[name]](value)
    return TemporalOptions(**values)


CHANGE_FRAMES = 4
CHANGES = {"mouth": (0.62, 1.0), "eyes": (0.40, 0.54)}  # the changed rows, as shares of the aligned face's height


def changed_clip(clip: Clip, face: np.ndarray, other: np.ndarray, rows: tuple[float, float]) -> Clip:
    """`clip` (made from `face`) whose `rows` become `other`'s from its middle frame on."""
    size = face.shape[0]
    weight = np.zeros((size, size, 1), np.float32)
    weight[round(rows[0] * size) : round(rows[1] * size)] = 1.0
    weight = cv2.GaussianBlur(weight, (0, 0), size / 64)[..., None]
    mixed = np.rint(face + weight * (other.astype(np.float32) - face)).astype(np.uint8)
    later = make_clip(clip.stem, mixed, len(clip.frames), 0)
    middle = len(clip.frames) // 2
    return Clip(clip.stem, clip.frames[:middle] + later.frames[middle:], clip.crop_to_frame)


def after_change_psnr_y(
    pipeline: PhotoPipeline,
    clips: list[Clip],
    preset: str,
    alignment: str,
    temporal: TemporalOptions | None,
    frames: slice,
) -> float:
    """Mean PSNR-Y of the aligned faces of `frames` of the `clips`, degraded by `preset` and restored."""
    crops, targets = [], []
    for clip in clips:
        restored = restore_clip(pipeline, degrade_clip(clip, preset, 0), clip, alignment, temporal)[0]
        part = clip_part(clip, frames)
        crops += face_crops(restored[frames], part)
        targets += face_crops(part.frames, part)
    return mean_psnr_y(crops, targets)


def clip_part(clip: Clip, frames: slice) -> Clip:
    """The part `frames` of `clip`."""
    return Clip(clip.stem, clip.frames[frames], clip.crop_to_frame[frames])


def mean_psnr_y(images: list[np.ndarray], targets: list[np.ndarray]) -> float:
    return float(psnr(as_tensor(images), as_tensor(targets), y_only=True).mean())


def as_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="residual-unet")
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--presets", default="medium,heavy")
    parser.add_argument("--strength", default="auto")
    parser.add_argument("--align", default="detector", choices=("detector", "known"))
    parser.add_argument("--set", action="append", dest="settings", default=[])
    args = parser.parse_args()

    pipeline = PhotoPipeline(*resolve_model(args.model), FaceOptions(strength=parse_strength(args.strength)), 8)
    faces = hq_faces(args.data)
    stems = spread(sorted(faces), args.clips)
    stills = [read_image(faces[stem]).to_uint8() for stem in stems]
    clips = [make_clip(stem, still, args.frames, 0) for stem, still in zip(stems, stills, strict=True)]
    changed = {
        kind: [
            changed_clip(clip, still, stills[(i + 1) % len(stills)], rows)
            for i, (clip, still) in enumerate(zip(clips, stills, strict=True))
        ]
        for kind, rows in CHANGES.items()
    }
    middle = args.frames // 2
    after = slice(middle, middle + CHANGE_FRAMES)
    truth = {clip.stem: face_crops(clip.frames, clip) for clip in clips}
    masks = {clip.stem: face_masks(clip) for clip in clips}
    print(f"| preset | setting | PSNR-Y | warp err. | frames with a face | {' | '.join(CHANGES)} | s |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(CHANGES) + "---:|")
    for preset in args.presets.split(","):
        lq = {clip.stem: degrade_clip(clip, preset, 0) for clip in clips}
        rows = {"lq-input": lq, "ground-truth": {clip.stem: clip.frames for clip in clips}}
        for text in args.settings:
            began = time.perf_counter()
            restored = {
                clip.stem: restore_clip(pipeline, lq[clip.stem], clip, args.align, parse_setting(text))
                for clip in clips
            }
            rows[text] = {stem: frames for stem, (frames, _) in restored.items()}
            counts = [result for _, result in restored.values()]
            face_frames = sum(c.frames - c.frames_without_face for c in counts) / sum(c.frames for c in counts)
            seconds = time.perf_counter() - began
            crops = [crop for clip in clips for crop in face_crops(rows[text][clip.stem], clip)]
            targets = [crop for clip in clips for crop in truth[clip.stem]]
            psnr_mean = mean_psnr_y(crops, targets)
            after_change = [
                after_change_psnr_y(pipeline, changed_clips, preset, args.align, parse_setting(text), after)
                for changed_clips in changed.values()
            ]
            warp = np.nanmean(
                [clip_warping_error(rows[text][clip.stem], clip.crop_to_frame, masks[clip.stem]) for clip in clips]
            )
            print(
                f"| {preset} | {text} | {psnr_mean:.2f} | {warp:.2f} | {face_frames:.0%} | "
                + " | ".join(f"{value:.2f}" for value in after_change)
                + f" | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""What the video path alone leaves: the benchmark-video clips "restored" by a perfect restorer (the ground truth
cut by each face's own alignment, `facemend.pipelines.video_benchmark.PastedTruth`), scored by warping error,
with the parts of the path switched off one at a time.

    python scripts/paste_floor.py --data data/facemend-test-128 --preset medium --align detector --strength auto
    python scripts/paste_floor.py --data data/facemend-test-128 --align known --strength 1 --drop-all-fine

`--strength 1`: none of the input is kept (auto keeps 1 − strength of it); `--drop-all-fine`: the input's detail
finer than the restorer's face size is dropped whatever the damage (a one-off override of
`facemend.quality.damage.fine_band_damage`, not a product option); `--align known`: no detector or tracker. What
is left with all three is the resampling: each crop cut from its frame and pasted back.
"""

from __future__ import annotations

import argparse

import numpy as np

import facemend.pipelines.photo
from facemend.data.io import read_image
from facemend.methods.registry import resolve_model
from facemend.metrics.temporal import clip_warping_error
from facemend.pipelines.evaluate import spread
from facemend.pipelines.photo import FaceOptions, PhotoPipeline, parse_strength
from facemend.pipelines.video_benchmark import (
    ALIGNMENTS,
    PastedTruth,
    degrade_clip,
    face_masks,
    hq_faces,
    make_clip,
    restore_clip,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="residual-unet", help="the crops are cut at its face size")
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--align", default="detector", choices=ALIGNMENTS)
    parser.add_argument("--strength", default="auto")
    parser.add_argument("--drop-all-fine", action="store_true")
    args = parser.parse_args()

    if args.drop_all_fine:
        facemend.pipelines.photo.fine_band_damage = lambda damage: 1.0
    options = FaceOptions(strength=parse_strength(args.strength))
    pipeline = PastedTruth(PhotoPipeline(*resolve_model(args.model), options, 8))
    faces = hq_faces(args.data)
    errors, face_frames = [], 0
    for stem in spread(sorted(faces), args.clips):
        clip = make_clip(stem, read_image(faces[stem]).to_uint8(), args.frames, 0)
        pipeline.start(clip)
        frames, counts = restore_clip(pipeline, degrade_clip(clip, args.preset, 0), clip, args.align)
        errors.append(clip_warping_error(frames, clip.crop_to_frame, face_masks(clip)))
        face_frames += counts.frames - counts.frames_without_face
    share = face_frames / (len(errors) * args.frames)
    print(
        f"{args.preset}, {args.align} alignment, strength {args.strength}"
        f"{', all fine band dropped' if args.drop_all_fine else ''}: warp err. {np.nanmean(errors):.2f} "
        f"(per clip {', '.join(f'{e:.2f}' for e in errors)}), frames with a face {share:.0%}"
    )


if __name__ == "__main__":
    main()

"""Make the video figures of docs/video-benchmark.md from scikit-image's public-domain astronaut (NASA).

    python scripts/make_video_strip.py [--preset medium] [--frames 48] [--seed 0]

The astronaut's face, aligned at 128 px, becomes one `facemend benchmark-video` clip (seeded pan, zoom and
rotation; every frame degraded on its own with the preset: fresh noise and JPEG per frame). The clip is restored
through the product's video loop at its defaults (detector alignment, strength auto, the default model), frame by
frame and with the temporal blend, and cut back to the aligned face by the known motion. Writes:

- docs/video_strip_PRESET.jpg: rows ground truth, LQ input, frame by frame, temporal; six consecutive frames,
  then the absolute difference between the last two of them (the flicker the warping error averages), 4× brighter;
- docs/video_warp_error_PRESET.png: the warping error of every consecutive pair along the clip, one line per row;
- the clip's means (warping error, ID jitter, PSNR-Y) on stdout, for the text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
from skimage import data

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from facemend.data.io import photo_from_array, write_image  # noqa: E402
from facemend.faces import FaceDetector, find_faces  # noqa: E402
from facemend.faces.template import alignment_matrix, warp_to_crop  # noqa: E402
from facemend.methods.registry import resolve_model  # noqa: E402
from facemend.metrics.suite import FacePair, MetricSuite  # noqa: E402
from facemend.metrics.temporal import descriptor_jitter, pair_warping_errors  # noqa: E402
from facemend.pipelines.photo import FaceOptions, PhotoPipeline  # noqa: E402
from facemend.pipelines.video import DEFAULT_TEMPORAL  # noqa: E402
from facemend.pipelines.video_benchmark import (  # noqa: E402
    FACE_SIZE,
    degrade_clip,
    face_crops,
    face_masks,
    make_clip,
    restore_clip,
)

REPO = Path(__file__).resolve().parents[1]
SHOWN = 6  # consecutive frames in the strip
DIFFERENCE_GAIN = 4.0


def astronaut_face() -> np.ndarray:
    photo = data.astronaut()
    face = find_faces(photo, FaceDetector("hog"))[0]
    return warp_to_crop(photo, alignment_matrix(face.landmarks5, FACE_SIZE), FACE_SIZE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=20, help="first frame shown in the strip")
    args = parser.parse_args()

    clip = make_clip("astronaut", astronaut_face(), args.frames, args.seed)
    lq = degrade_clip(clip, args.preset, args.seed)
    pipeline = PhotoPipeline(*resolve_model("residual-unet"), FaceOptions())  # the product defaults
    rows = {
        "ground truth": clip.frames,
        "LQ input": lq,
        "frame by frame": restore_clip(pipeline, lq, clip, "detector")[0],
        "temporal (default)": restore_clip(pipeline, lq, clip, "detector", DEFAULT_TEMPORAL)[0],
    }
    masks = face_masks(clip)
    truth = face_crops(clip.frames, clip)
    suite = MetricSuite(("psnr_y", "idd", "fd_dlib"), batch_size=16)
    suite.load()
    errors, lines = {}, []
    for name, frames in rows.items():
        crops = face_crops(frames, clip)
        errors[name] = np.array(pair_warping_errors(frames, clip.crop_to_frame, masks))
        measured = suite.measure(FacePair(f"{t}", c, truth[t], reference_id=f"{t}") for t, c in enumerate(crops))
        jitter = descriptor_jitter(measured.set_features["fd_dlib"][0])
        print(
            f"{name}: warp error {np.nanmean(errors[name]):.2f}, ID jitter {jitter:.4f}, "
            f"IDD {np.nanmean(measured.per_image['idd']):.4f}, PSNR-Y {np.mean(measured.per_image['psnr_y']):.2f} dB"
        )
        shown = crops[args.start : args.start + SHOWN]
        difference = np.abs(shown[-1].astype(np.float32) - shown[-2].astype(np.float32)) * DIFFERENCE_GAIN
        gap = np.full((FACE_SIZE, 6, 3), 255, np.uint8)
        line = [item for crop in shown for item in (crop, gap)]
        lines.append(np.concatenate([*line, np.clip(difference, 0, 255).astype(np.uint8)], axis=1))
    spacer = np.full((6, lines[0].shape[1], 3), 255, np.uint8)
    strip = np.concatenate([item for line in lines for item in (line, spacer)][:-1], axis=0)
    write_image(REPO / "docs" / f"video_strip_{args.preset}.jpg", photo_from_array(strip))

    figure, axes = plt.subplots(figsize=(7.5, 3.2), dpi=120)
    for name, values in errors.items():
        axes.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1.4)
    axes.axvspan(args.start + SHOWN - 1, args.start + SHOWN, color="0.85", zorder=0)
    axes.set_xlabel("frame pair (t − 1, t)")
    axes.set_ylabel("warping error (0–255)")
    axes.set_title(f"astronaut clip, {args.preset}: flicker inside the face, consecutive frames", fontsize=10)
    axes.legend(fontsize=8, ncol=2)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(REPO / "docs" / f"video_warp_error_{args.preset}.png")


if __name__ == "__main__":
    main()

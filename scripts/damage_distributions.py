"""Where do degraded and sharp faces fall on the damage measurements behind `--strength auto`? The evidence for
the ramps in `facemend.quality.damage`, in one command:

    python scripts/damage_distributions.py --val data/facemend-val-128 --mild data/facemend-val-128-mild \
        --ffhq ../shared/data/hq-ref/ffhq

Run it again on facemend-val made at 256 px (`facemend testset … --size 256`, and its `mild` version) for the
faces' `native_detail` one octave finer than the 128-px analysis.

`--val` is a facemend-val folder (`facemend testset … --split val`: `medium/{lq,hq}`, `heavy/lq`); `--mild` the same
HQ faces degraded with the `mild` preset (`facemend degrade data/facemend-val-128/medium/hq -o DIR --preset mild
--seed 2`); `--ffhq` sharp FFHQ photos, measured whole-photo (detected, aligned) at 1/4, 1/2 and full size, so
their faces are about 150, 300 and 600 px. Prints, per set, the 5/25/50/75/95th percentiles of each measurement
and of the automatic strength, as a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facemend.data.io import Photo, list_images, read_image
from facemend.pipelines.photo import FaceCropper, FaceOptions

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MEASUREMENTS = ("detail", "noise", "blockiness", "resolution", "native_detail", "strength")
FACE_SIZE = 128
SCALES = (0.25, 0.5, 1.0)


def aligned_rows(folder: Path, limit: int) -> list[list[float]]:
    cropper = FaceCropper(FACE_SIZE, FaceOptions(aligned=True))
    return [_rows(cropper.prepare(read_image(path))) for path in list_images([folder])[:limit]]


def photo_rows(folder: Path, scale: float) -> list[list[float]]:
    cropper = FaceCropper(FACE_SIZE, FaceOptions())
    rows = []
    for path in list_images([folder]):
        rgb = read_image(path).rgb
        if scale != 1.0:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rows += _face_rows(cropper.prepare(Photo(rgb)))
    return rows


def _rows(job) -> list[float]:
    (row,) = _face_rows(job)
    return row


def _face_rows(job) -> list[list[float]]:
    return [
        [damage.detail, damage.noise, damage.blockiness, damage.resolution, damage.native_detail, strength]
        for damage, strength in zip(job.damages, job.strengths, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val", type=Path, required=True, help="facemend-val folder (medium/, heavy/)")
    parser.add_argument("--mild", type=Path, required=True, help="val HQ faces degraded with the mild preset")
    parser.add_argument("--ffhq", type=Path, required=True, help="sharp FFHQ photos (hq-ref/ffhq)")
    parser.add_argument("--limit", type=int, default=200, help="faces per val set")
    args = parser.parse_args()
    sets = {
        "val HQ": aligned_rows(args.val / "medium" / "hq", args.limit),
        "val mild LQ": aligned_rows(args.mild / "lq", args.limit),
        "val medium LQ": aligned_rows(args.val / "medium" / "lq", args.limit),
        "val heavy LQ": aligned_rows(args.val / "heavy" / "lq", args.limit),
        **{f"FFHQ ×{scale:g} (faces ~{round(600 * scale)} px)": photo_rows(args.ffhq, scale) for scale in SCALES},
    }
    print("| set | faces | " + " | ".join(MEASUREMENTS) + " |")
    print("|---|---|" + "---|" * len(MEASUREMENTS))
    for name, rows in sets.items():
        values = np.quantile(np.array(rows), QUANTILES, axis=0)
        cells = [" / ".join(f"{v:.2f}" for v in values[:, i]) for i in range(len(MEASUREMENTS))]
        print(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
    print(f"\npercentiles {' / '.join(f'{round(100 * q)}' for q in QUANTILES)}")


if __name__ == "__main__":
    main()

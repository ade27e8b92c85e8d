"""Alignment and restoration through each detector (benchmark, not a test); see
`facemend.pipelines.alignment_check`:

1. LFW: the detector's 5 points against dlib's 68 → 5 points (error as a share of the face's width);
2. facemend-test `heavy`: the LQ faces pasted at 1× (128-px crops) into scenes; each detector's 5 points against
   the true ones (the template's), then (unless --points-only) each scene restored whole with the default model
   and each detector, the faces cut back out and measured against their ground truth (IDD, LMD, PSNR-Y), over
   all faces and over the faces every detector found.

    OMP_NUM_THREADS=1 python scripts/detection_quality.py --testset data/facemend-test-128 -o reports/detection

A row is a detector, or DETECTOR+LANDMARKS (e.g. `yunet+detector`: YuNet's own 5 points; a bare name uses the
default landmarks, dlib's 68-point model in the face's box).
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np

from facemend.data.io import list_images, read_image
from facemend.faces import DEFAULT_LANDMARKS, yunet
from facemend.methods.registry import DEFAULT_MODEL, load_restorer
from facemend.pipelines.alignment_check import landmark_agreement, restore_scenes, scene_alignment_error
from facemend.pipelines.detect_benchmark import Sample, crop_side, synthetic_scenes
from facemend.pipelines.evaluate import evaluate
from facemend.pipelines.photo import FaceOptions, PhotoPipeline

REPO = Path(__file__).resolve().parents[1]
KEYS = ["idd", "lmd", "psnr_y"]


def lfw_images(root: Path):
    """One photo per LFW person, people in name order."""
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        first = min(person.glob("*.jpg"), default=None)
        if first is not None:
            yield read_image(first).to_uint8()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--testset", type=Path, required=True, help="facemend-test folder")
    parser.add_argument(
        "--detectors", default="yunet,yunet+detector,hog", help="comma-separated rows: DETECTOR[+LANDMARKS]"
    )
    parser.add_argument("--lfw", type=int, default=300, help="LFW photos in the landmark comparison")
    parser.add_argument("--lfw-skip", type=int, default=500, help="LFW people skipped (the first 500 calibrate)")
    parser.add_argument(
        "--raw-yunet",
        action="store_true",
        help="YuNet's points without DLIB_OFFSETS_512 (with --lfw-skip 0 --lfw 500: how those offsets were measured)",
    )
    parser.add_argument("--faces", type=int, default=200, help="facemend-test heavy faces restored (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--points-only", action="store_true", help="scenes: the points' errors, no restoration")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write results.json here")
    args = parser.parse_args()
    detectors = [name.strip() for name in args.detectors.split(",") if name.strip()]
    if args.raw_yunet:
        yunet.DLIB_OFFSETS_512 = np.zeros_like(yunet.DLIB_OFFSETS_512)
    results: dict = {"landmarks": {}, "scene_points": {}, "restored": {}}
    for row in detectors:
        if row != "hog" and args.lfw > 0:
            images = itertools.islice(lfw_images(args.data / "lfw"), args.lfw_skip, None)
            detector, landmarks = _row(row)
            results["landmarks"][row] = landmark_agreement(images, detector, args.lfw, landmarks)
            print(f"LFW, {row} vs dlib 68→5:", json.dumps(results["landmarks"][row]), flush=True)
    if args.faces > 0:
        scenes = heavy_scenes(args.testset, args.faces, args.seed)
        for row in detectors:
            results["scene_points"][row] = scene_alignment_error(scenes, *_row(row))
            print(f"heavy pasted at 1×, {row} vs true points:", json.dumps(results["scene_points"][row]))
        if not args.points_only:
            results["restored"] = restored_quality(scenes, args.testset, detectors)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def _row(row: str) -> tuple[str, str]:
    """`DETECTOR[+LANDMARKS]` → (detector, landmarks)."""
    detector, _, landmarks = row.partition("+")
    return detector, landmarks or DEFAULT_LANDMARKS


def heavy_scenes(testset: Path, faces: int, seed: int) -> list[Sample]:
    """Scenes of the first `faces` heavy LQ faces, pasted at their own 128 px."""
    paths = list_images([str(testset / "heavy" / "lq")])[:faces]
    width = next(w for w in range(40, 120) if crop_side(w) >= 128)
    return list(synthetic_scenes(paths, width, seed))


def restored_quality(scenes: list[Sample], testset: Path, detectors: list[str]) -> dict:
    """IDD / LMD / PSNR-Y of the heavy faces restored through each detector, over all faces and the common ones."""
    results = {}
    restorer = load_restorer(DEFAULT_MODEL)
    found: dict[str, dict[str, bool]] = {}
    per_face: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for detector in detectors:
            name, landmarks = _row(detector)
            pipeline = PhotoPipeline(restorer, options=FaceOptions(detector=name, landmarks=landmarks))
            out = Path(folder, detector)
            found[detector] = restore_scenes(scenes, pipeline, out)
            summary = evaluate(out, testset / "heavy" / "hq", keys=KEYS, progress=False, allow_partial=True)
            per_face[detector] = summary["images"]
    common = [stem for stem in found[detectors[0]] if all(found[d][stem] for d in detectors)]
    for detector in detectors:
        row = {"faces": len(found[detector]), "found": sum(found[detector].values()), "common": len(common)}
        for key in KEYS:
            values = [per_face[detector][stem][key] for stem in found[detector]]
            row[f"{key}_all"] = float(np.nanmean([np.nan if v is None else v for v in values]))
            values = [per_face[detector][stem][key] for stem in common]
            row[f"{key}_common"] = float(np.nanmean([np.nan if v is None else v for v in values]))
        results[detector] = row
        print(f"facemend-test heavy pasted at 1×, {DEFAULT_MODEL}, {detector}:", json.dumps(row), flush=True)
    return results


if __name__ == "__main__":
    main()

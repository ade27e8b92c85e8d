"""Face detection benchmark (benchmark, not a test): true faces found, false detections and seconds per photo of
each detector on real-lq/whole (hand-annotated in scripts/real_lq_whole_faces.json), real-lq/old-photos,
real-lq/gray, and scenes of facemend-test `heavy` and `medium` LQ faces pasted at several widths into
scikit-image's sample photos (seeded). See `facemend.pipelines.detect_benchmark`.

    OMP_NUM_THREADS=1 python scripts/benchmark_detection.py --testset data/facemend-test-128
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from facemend.pipelines.detect_benchmark import markdown_header, run_detection_benchmark

REPO = Path(__file__).resolve().parents[1]


def add_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the benchmark's sets (also used by scripts/shipped_detectors_recall.py)."""
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--annotations", type=Path, default=REPO / "scripts" / "real_lq_whole_faces.json")
    parser.add_argument("--testset", type=Path, default=None, help="facemend-test folder (else no scenes)")
    parser.add_argument("--widths", default="24,32,40,64,128", help="face widths of the scenes, px")
    parser.add_argument("--faces", type=int, default=60, help="faces per preset and width")
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_arguments(parser)
    parser.add_argument("--detectors", default="yunet,hog", help="comma-separated")
    parser.add_argument("--json", type=Path, default=None, help="also write the tallies here")
    args = parser.parse_args()
    detectors = [name.strip() for name in args.detectors.split(",") if name.strip()]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(f"commit {commit.stdout.strip()} (plus the working tree's changes)")
    print(markdown_header(detectors), flush=True)
    results = run_detection_benchmark(
        args.data,
        args.annotations,
        args.testset,
        detectors,
        [int(width) for width in args.widths.split(",")],
        args.faces,
        args.seed,
        report=lambda line: print(line, flush=True),
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Time every metric of the evaluation suite on a facemend-test preset (benchmark, not a test).

    python scripts/benchmark_metrics.py data/facemend-test-128/heavy [--faces 500]

Prints seconds per face for each metric alone (networks loaded before timing) and the wall time of all
metrics together through `facemend.evaluate` (loading included), which is what `facemend eval` costs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from facemend.metrics.suite import KEYS, FacePair, MetricSuite
from facemend.pipelines.evaluate import evaluate, faces_in, read_face


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a folder with lq/ and hq/")
    parser.add_argument("--faces", type=int, default=500)
    args = parser.parse_args()
    lq, hq = faces_in(args.data / "lq"), faces_in(args.data / "hq")
    stems = sorted(lq)[: args.faces]
    pairs = [FacePair(s, read_face(lq[s]), read_face(hq[s])) for s in stems]
    print(f"{len(pairs)} faces of {pairs[0].prediction.shape[1]} px from {args.data}")
    for key in KEYS:
        suite = MetricSuite([key])
        suite.load()
        began = time.perf_counter()
        suite.measure(pairs)
        print(f"{key:>9}: {(time.perf_counter() - began) / len(pairs) * 1000:7.1f} ms per face")
    began = time.perf_counter()
    evaluate(args.data / "lq", args.data / "hq", progress=False)
    print(f"all metrics with facemend.evaluate (loading included): {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()

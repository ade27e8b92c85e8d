"""Restoration speed (benchmark, not a test): seconds per aligned face for the bundled default, for the bundled
tiny `baseline` and for baseline's paper-scale `base` config (random weights: speed does not depend on them), at
batch 1 and 8, in fp32 and bf16, in one run; then the wall time of a whole `facemend restore --aligned` process
over 64 faces (default precision), once per model of `--models` (default: the previous default `baseline` and today's
default), so their ratio comes from one run.

    LD_PRELOAD=libtcmalloc_minimal.so.4 python scripts/benchmark_speed.py data/facemend-test-128/medium/lq

The network timings include resizing to the model's face size and back (what `s_per_face` in `benchmark`
measures), exclude loading, and take the median of 5 repeats after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from facemend.config import build
from facemend.methods.baseline.model import BaselineConfig, BaselineModel, BaselineRestorer
from facemend.methods.registry import DEFAULT_MODEL, load_restorer
from facemend.precision import resolve_precision
from facemend.training.config import load_train_config

REPO = Path(__file__).resolve().parents[1]


def seconds_per_face(restorer, size: int, batch: int, precision: str, repeats: int = 5) -> float:
    faces = torch.rand(batch, 3, size, size)
    restorer(faces, precision=precision)  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        restorer(faces, precision=precision)
        times.append(time.perf_counter() - began)
    return statistics.median(times) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faces", type=Path, help="a folder of aligned LQ faces (64 are restored)")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--models", default=f"baseline,{DEFAULT_MODEL}", help="models of the whole-process timing")
    parser.add_argument("--whole-only", action="store_true", help="only the whole-process timing")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.whole_only:
        network_timings()
    whole_process_timings(args.faces, args.count, args.models.split(","))


def network_timings() -> None:
    tiny = load_restorer("baseline")
    base_config = load_train_config(REPO / "configs" / "baseline" / "base.yaml")
    base = BaselineRestorer(BaselineModel(build(BaselineConfig, base_config.model, "model")))
    print(f"`--precision auto` is {resolve_precision('auto')} on this CPU")
    print("| model | face px | precision | batch | s / face |\n|---|---|---|---|---|")
    default = load_restorer(DEFAULT_MODEL)
    rows = ((f"{DEFAULT_MODEL} (bundled, the default)", default), ("baseline (bundled tiny)", tiny))
    for name, restorer in (*rows, ("baseline-base (random weights)", base)):
        for precision in ("fp32", "bf16"):
            for batch in (1, 8):
                seconds = seconds_per_face(restorer, restorer.face_size, batch, precision)
                print(f"| {name} | {restorer.face_size} | {precision} | {batch} | {seconds:.4f} |", flush=True)


def whole_process_timings(faces: Path, count: int, models: list[str]) -> None:
    files = sorted(faces.glob("*.png"))[:count]
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder, "in")
        inputs.mkdir()
        for file in files:
            (inputs / file.name).symlink_to(file.resolve())
        for model in models:
            output = Path(folder, f"out-{model}")
            command = [sys.executable, "-m", "facemend", "restore", str(inputs), "-o", str(output), "--aligned"]
            began = time.perf_counter()
            subprocess.run([*command, "--model", model, "--quiet"], check=True)
            wall = time.perf_counter() - began
            print(
                f"whole `facemend restore --aligned --model {model}` process, {len(files)} faces: {wall:.2f} s = "
                f"{wall / len(files):.3f} s per face (start-up, loading and file I/O included)"
            )


if __name__ == "__main__":
    main()

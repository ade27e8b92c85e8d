"""Throughput of the bundled default model (benchmark, not a test), in one run:

1. the network alone: faces per second at batch 1 / 8 / 32 in PyTorch fp32, PyTorch bf16 and onnxruntime (fp32);
2. whole `facemend restore` processes over a folder of 100 photos made from the committed mild and medium
   examples (1 or 2 faces each, resized, flipped): faces per second at `--batch 1 / 8 / 32`, start-up, face
   detection and file I/O included, with the run's own summary line; then at `--batch 8` with `--workers 2`
   (two processes reading photos and finding faces while the main one restores).

    LD_PRELOAD=libtcmalloc_minimal.so.4 python scripts/benchmark_throughput.py

Network timings take the median of 5 repeats after a warm-up and exclude loading (the ONNX export is made, or
found in the cache, before timing).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchmark_speed import seconds_per_face
from PIL import Image

from facemend.methods.registry import DEFAULT_MODEL, load_restorer
from facemend.runtime import with_runtime

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 8, 32)


def make_photos(folder: Path, count: int, seed: int = 0) -> None:
    """`count` photos from the committed example photos."""
    rng = np.random.default_rng(seed)
    names = ("astronaut_mild.png", "astronaut_medium.png")
    examples = [Image.open(REPO / "examples" / name).convert("RGB") for name in names]
    for index in range(count):
        photo = examples[index % len(examples)]
        photo = photo.resize([round(side * rng.uniform(0.9, 1.3)) for side in photo.size], Image.Resampling.LANCZOS)
        if rng.random() < 0.5:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if index % 4 == 3:  # every fourth photo: two people side by side
            pair = Image.new("RGB", (photo.width * 2, photo.height))
            pair.paste(photo, (0, 0))
            pair.paste(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (photo.width, 0))
            photo = pair
        photo.save(folder / f"photo_{index:03d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100, help="photos in the whole-process run")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {DEFAULT_MODEL!r}")

    restorer = load_restorer(DEFAULT_MODEL)
    runtimes = {
        "PyTorch fp32": (restorer, "fp32"),
        "PyTorch bf16": (restorer, "bf16"),
        "onnxruntime fp32": (with_runtime(restorer, "onnx", report=print), "fp32"),
    }
    print("\n| network | " + " | ".join(f"batch {batch}" for batch in BATCHES) + " |")
    print("|---|" + "---:|" * len(BATCHES))
    for name, (runner, precision) in runtimes.items():
        rates = [1.0 / seconds_per_face(runner, restorer.face_size, batch, precision) for batch in BATCHES]
        print(f"| {name} | " + " | ".join(f"{rate:.1f} faces/s" for rate in rates) + " |", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        photos = Path(folder, "photos")
        photos.mkdir()
        make_photos(photos, args.photos)
        print(f"\nwhole `facemend restore` over {args.photos} photos (default precision):")
        print("| --batch | --workers | seconds | faces/s | summary |\n|---:|---:|---:|---:|---|")
        for batch, workers in [*((batch, 1) for batch in BATCHES), (8, 2)]:
            output = str(Path(folder, f"out{batch}-{workers}"))
            command = [sys.executable, "-m", "facemend", "restore", str(photos), "-o", output, "--quiet"]
            began = time.perf_counter()
            run = subprocess.run(
                [*command, "--batch", str(batch), "--workers", str(workers)], capture_output=True, text=True
            )
            wall = time.perf_counter() - began
            if run.returncode != 0:
                sys.exit(run.stderr)
            summary = run.stderr.strip().splitlines()[-1]
            faces = int(re.search(r"(\d+) faces restored", summary).group(1))
            print(f"| {batch} | {workers} | {wall:.1f} | {faces / wall:.1f} | {summary} |", flush=True)


if __name__ == "__main__":
    main()

"""Throughput of `facemend restore --engine ray` against the local path (benchmark, not a test), docs/cluster.md.

On the same photos as scripts/benchmark_throughput.py (100 made from the committed examples), default model,
detector and batch:

1. the local path, one process;
2. a Ray cluster on 127.0.0.1 (a head and one more worker node, separate processes, `--num-cpus 1` each), with
   1 and then 2 worker processes per stage (`--num-workers N --restore-workers N`: N face-finding actors and N
   restoring actors), `--worker-cpus 0.5` so that all fit on the 2 logical CPUs; the cluster is stopped at the
   end, whatever happens.

Per run: wall seconds, photos/s, seconds to the first photo landing in the manifest (start-up: connecting,
starting actors, loading the model), and from the manifest the mean seconds per photo that the actors spend
finding faces and restoring + writing. The overhead Ray adds per photo is the steady-state wall time per photo
(after the first landed) less the slower stage's own mean time per photo divided by its actors: what goes to
moving photos between processes, scheduling and waiting. Also: how many outputs are byte-identical to the local
path's.

    nice -n 19 python scripts/benchmark_cluster.py [--photos 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

import numpy as np
from benchmark_throughput import make_photos
from PIL import Image

from facemend.pipelines.cluster import MANIFEST

RAY = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_USAGE_STATS": "1"}
PORT = 6397


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--workers", default="1,2", help="actors per stage in each Ray run, comma-separated")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}, {os.cpu_count()} cores, {args.photos} photos", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        photos = Path(folder, "photos")
        photos.mkdir()
        make_photos(photos, args.photos)
        columns = "wall s | photos/s | first photo s | find s/photo | restore+write s/photo | overhead s/photo"
        print(f"| engine | actors per stage | {columns} | identical to local |", flush=True)
        print("|---|" + "---:|" * 7 + "---|", flush=True)
        local = Path(folder, "local")
        wall, summary, _ = run_restore([str(photos), "-o", str(local)], None)
        print(f"| local | – | {wall:.1f} | {args.photos / wall:.2f} | – | – | – | – | – |  {summary}", flush=True)
        try:
            start_cluster()
            for workers in (int(n) for n in args.workers.split(",")):
                out = Path(folder, f"ray{workers}")
                command = [str(photos), "-o", str(out), "--engine", "ray", "--address", f"127.0.0.1:{PORT}"]
                command += ["--num-workers", str(workers), "--restore-workers", str(workers), "--worker-cpus", "0.5"]
                wall, summary, first = run_restore(command, out / MANIFEST)
                print(ray_row(workers, wall, first, out, local, args.photos) + f"  {summary}", flush=True)
        finally:
            subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True, timeout=300)


def start_cluster() -> None:
    node = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    head = [RAY, "start", "--head", "--port", str(PORT), "--include-dashboard=false", *node]
    subprocess.run(head, check=True, env=ENV, capture_output=True, timeout=300)
    subprocess.run([RAY, "start", "--address", f"127.0.0.1:{PORT}", *node], check=True, env=ENV, capture_output=True)


def run_restore(arguments: list[str], manifest: Path | None) -> tuple[float, str, float | None]:
    """Wall seconds of one `facemend restore`, its summary line, and (with `manifest`) the seconds until its
    first photo landed there."""
    command = [sys.executable, "-m", "facemend", "restore", *arguments, "--quiet"]
    began = time.perf_counter()
    run = subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE, text=True)
    first = None
    while run.poll() is None:  # stderr stays small with --quiet: one line per photo at most
        if manifest is not None and first is None and records(manifest):
            first = time.perf_counter() - began
        time.sleep(0.25)
    wall = time.perf_counter() - began
    stderr = run.stderr.read()
    if run.returncode != 0:
        sys.exit(stderr)
    return wall, stderr.strip().splitlines()[-1], first


def records(manifest: Path) -> list[dict]:
    if not manifest.exists():
        return []
    lines = []
    for line in manifest.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [line for line in lines if "input" in line]


def ray_row(workers: int, wall: float, first: float | None, out: Path, local: Path, count: int) -> str:
    landed = records(out / MANIFEST)
    find, restore = mean(r["find_s"] for r in landed), mean(r["restore_s"] for r in landed)
    first = first or wall
    steady = (wall - first) / max(1, count - 1)
    overhead = steady - max(find, restore) / workers
    same, worst = identical(out, local)
    return (
        f"| ray | {workers} | {wall:.1f} | {count / wall:.2f} | {first:.1f} | {find:.3f} | {restore:.3f} "
        f"| {overhead:.3f} | {same}/{count} (others: max {worst} of 255) |"
    )


def identical(out: Path, local: Path) -> tuple[int, int]:
    """Outputs byte-identical to the local path's, and the largest pixel difference among the others."""
    same, worst = 0, 0
    for path in sorted(local.glob("*.png")):
        if (out / path.name).read_bytes() == path.read_bytes():
            same += 1
        else:
            a, b = (np.asarray(Image.open(p), np.int32) for p in (path, out / path.name))
            worst = max(worst, int(np.abs(a - b).max()))
    return same, worst


if __name__ == "__main__":
    main()

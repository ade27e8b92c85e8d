"""Throughput of the bundled default model (benchmark, not a test), in one run:

1. the network alone: faces per second at batch 1 / 8 / 32 in PyTorch fp32, PyTorch bf16 and onnxruntime (fp32);
2. whole `facemend restore` processes over a folder of 100 photos made from the committed mild and medium
   examples (1 or 2 faces each, resized, flipped): faces per second at `--batch 1 / 8 / 32`, start-up, face
   detection and file I/O included, with the run's own summary line; then at `--batch 8` with `--workers 2`
   (two processes reading photos and finding faces while the main one restores); then at `--batch 8` with
   `--detector hog` (the dlib cascade, the default before YuNet), and the speed-up of the default over it;
3. one 1-megapixel photo with 4 faces restored in one process, after a first (warm-up) call, per detector;
4. a 10-second 640×480 video of two faces (a drifting astronaut photo, twice) restored with the detector on every
   frame and on every `DETECT_EVERY`-th (optical flow between): seconds, the share spent finding faces, faces
   restored, and how far the two outputs differ (PSNR).

    LD_PRELOAD=libtcmalloc_minimal.so.4 python scripts/benchmark_throughput.py
    python scripts/benchmark_throughput.py --parts photos,warm,video   # the parts about detection only

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

import cv2
import numpy as np
import torch
from benchmark_speed import seconds_per_face
from PIL import Image

from facemend.data.io import Photo, photo_from_array
from facemend.data.video import VideoWriter, frame_rate, read_video
from facemend.faces import DEFAULT_DETECTOR, flow
from facemend.methods.registry import DEFAULT_MODEL, load_restorer
from facemend.pipelines import video
from facemend.pipelines.photo import FaceOptions, PhotoPipeline
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
    parser.add_argument("--parts", default="network,photos,warm,video", help="which parts to run, comma-separated")
    parser.add_argument("--detectors-only", action="store_true", help="whole runs: only --batch 8, per detector")
    args = parser.parse_args()
    parts = {part.strip() for part in args.parts.split(",")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {DEFAULT_MODEL!r}")
    if "network" in parts:
        network_rates()
    if "photos" in parts:
        whole_runs(args.photos, args.detectors_only)
    if "warm" in parts:
        warm_megapixel()
    if "video" in parts:
        video_detection()


def network_rates() -> None:
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


def whole_runs(count: int, detectors_only: bool = False) -> None:
    with tempfile.TemporaryDirectory() as folder:
        photos = Path(folder, "photos")
        photos.mkdir()
        make_photos(photos, count)
        print(f"\nwhole `facemend restore` over {count} photos (default precision):")
        print("| --detector | --batch | --workers | seconds | faces/s | summary |\n|---|---:|---:|---:|---:|---|")
        walls = {}
        runs = [*((DEFAULT_DETECTOR, batch, 1) for batch in BATCHES), (DEFAULT_DETECTOR, 8, 2), ("hog", 8, 1)]
        if detectors_only:
            runs = [(DEFAULT_DETECTOR, 8, 1), ("hog", 8, 1)]
        for detector, batch, workers in runs:
            output = str(Path(folder, f"out-{detector}-{batch}-{workers}"))
            command = [sys.executable, "-m", "facemend", "restore", str(photos), "-o", output, "--quiet"]
            command += ["--batch", str(batch), "--workers", str(workers), "--detector", detector]
            began = time.perf_counter()
            run = subprocess.run(command, capture_output=True, text=True)
            wall = walls[detector, batch, workers] = time.perf_counter() - began
            if run.returncode != 0:
                sys.exit(run.stderr)
            summary = run.stderr.strip().splitlines()[-1]
            faces = int(re.search(r"(\d+) faces restored", summary).group(1))
            print(f"| {detector} | {batch} | {workers} | {wall:.1f} | {faces / wall:.1f} | {summary} |", flush=True)
        speedup = walls["hog", 8, 1] / walls[DEFAULT_DETECTOR, 8, 1]
        print(f"{DEFAULT_DETECTOR} vs hog at --batch 8: {speedup:.2f}× as fast", flush=True)


def megapixel_photo() -> Photo:
    """About 1 megapixel (1156×866): four copies of the medium example's upper part, two by two."""
    head = np.asarray(Image.open(REPO / "examples" / "astronaut_medium.png").convert("RGB"))[:384]
    tile = cv2.resize(head, (578, 433), interpolation=cv2.INTER_CUBIC)
    return photo_from_array(np.vstack([np.hstack([tile, tile[:, ::-1]])] * 2))


def warm_megapixel() -> None:
    photo = megapixel_photo()
    restorer = load_restorer(DEFAULT_MODEL)
    print(f"\none {photo.width}×{photo.height} photo, 4 faces, in one process (median of 5 after a warm-up call):")
    print("| --detector | faces | first call, s | warm, s | finding the faces alone, s |\n|---|---:|---:|---:|---:|")
    for detector in (DEFAULT_DETECTOR, "hog"):
        pipeline = PhotoPipeline(restorer, options=FaceOptions(detector=detector))
        began = time.perf_counter()
        _, job = pipeline(photo)
        first = time.perf_counter() - began
        warm, finding = [], []
        for _ in range(5):
            began = time.perf_counter()
            pipeline(photo)
            warm.append(time.perf_counter() - began)
            began = time.perf_counter()
            pipeline.detect(photo)
            finding.append(time.perf_counter() - began)
        print(
            f"| {detector} | {len(job.faces)} | {first:.2f} | {np.median(warm):.3f} | {np.median(finding):.3f} |",
            flush=True,
        )


def clip_frames(count: int = 120) -> list[np.ndarray]:
    """640×480 frames of two drifting, slowly zooming copies of the medium example's upper part."""
    head = np.asarray(Image.open(REPO / "examples" / "astronaut_medium.png").convert("RGB"))[:400, 40:440]
    frames = []
    for k in range(count):
        zoom = 1.0 + 0.002 * k
        shift = np.float32([[zoom, 0, -0.8 * k], [0, zoom, -0.4 * k]])
        moved = cv2.resize(cv2.warpAffine(head, shift, (400, 400), borderMode=cv2.BORDER_REFLECT), (320, 320))
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[80:400, :320], frame[80:400, 320:] = moved, moved[:, ::-1]
        frames.append(frame)
    return frames


def video_detection() -> None:
    seconds = {"finding": 0.0}
    original = flow.StridedDetection.__call__

    def timed(self, frame, detect):
        began = time.perf_counter()
        try:
            return original(self, frame, detect)
        finally:
            seconds["finding"] += time.perf_counter() - began

    flow.StridedDetection.__call__ = timed
    pipeline = PhotoPipeline(load_restorer(DEFAULT_MODEL))
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "clip.mp4")
        with VideoWriter(source, (640, 480), frame_rate(12.0)) as writer:
            for frame in clip_frames():
                writer.write(frame)
        print("\na 10-second 640×480 video (120 frames, 2 faces), default detector and model:")
        print("| --detect-every | seconds | finding faces | faces restored | PSNR vs every frame |")
        print("|---:|---:|---:|---:|---:|")
        outputs = {}
        for every in sorted({1, video.DETECT_EVERY, 6}):
            seconds["finding"] = 0.0
            outputs[every] = Path(folder, f"out{every}.mp4")
            began = time.perf_counter()
            result = video.restore_video(pipeline, source, outputs[every], progress=False, detect_every=every)
            wall = time.perf_counter() - began
            psnr = "–" if every == 1 else f"{video_psnr(outputs[1], outputs[every]):.1f} dB"
            share = f"{seconds['finding']:.1f} s ({seconds['finding'] / wall:.0%})"
            print(f"| {every} | {wall:.1f} | {share} | {result.faces} | {psnr} |", flush=True)
    flow.StridedDetection.__call__ = original


def video_psnr(a: Path, b: Path) -> float:
    """PSNR (dB) of two videos' frames, over all frames."""
    errors = []
    for frame_a, frame_b in zip(read_video(a)[1], read_video(b)[1], strict=True):
        errors.append(np.mean((frame_a.astype(np.float64) - frame_b) ** 2))
    return float(10 * np.log10(255**2 / max(np.mean(errors), 1e-12)))


if __name__ == "__main__":
    main()

"""How far does dlib's descriptor move under plain image damage? For N faces of a facemend-test (or -val) folder:
IDD and LMD (the metric suite's functions) between each HQ face and the same face blurred, down- and up-sampled,
JPEG-compressed, noised or mirrored. With `--restored DIR` (a benchmark's `faces/` folder of one model, named as
the HQ faces), also the restored faces, their sharpness (variance of the Laplacian over the HQ face's) and the
restored faces unsharp-masked at several strengths: does adding high-frequency energy move IDD?

Reads the result as "the restored faces are as far from the person as the HQ face blurred by σ≈…".

    python scripts/idd_sensitivity.py data/facemend-val-128 --faces 200 \
        --restored reports/val-medium/residual-unet/faces
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from facemend.data.io import list_images, read_image
from facemend.metrics.identity import face_signatures, identity_distance, landmark_distance

Damage = Callable[[np.ndarray], np.ndarray]
UNSHARP = ((0.5, 1.0), (1.0, 1.0), (1.5, 1.0), (1.0, 0.7), (2.0, 0.7))  # (amount, σ)


def blur(sigma: float) -> Damage:
    return lambda face: cv2.GaussianBlur(face, (0, 0), sigma)


def down_up(factor: int) -> Damage:
    def damage(face: np.ndarray) -> np.ndarray:
        size = face.shape[0]
        small = cv2.resize(face, (size // factor, size // factor), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)

    return damage


def jpeg(quality: int) -> Damage:
    def damage(face: np.ndarray) -> np.ndarray:
        ok, data = cv2.imencode(".jpg", face[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]

    return damage


def noise(sigma: float, seed: int = 0) -> Damage:
    generator = np.random.default_rng(seed)
    return lambda face: np.clip(face + generator.normal(0, sigma, face.shape), 0, 255).astype(np.uint8)


def unsharp(amount: float, sigma: float) -> Damage:
    def damage(face: np.ndarray) -> np.ndarray:
        smooth = cv2.GaussianBlur(face.astype(np.float32), (0, 0), sigma)
        return np.clip(face + amount * (face - smooth), 0, 255).astype(np.uint8)

    return damage


def sharpness(faces: list[np.ndarray]) -> float:
    """Mean variance of the Laplacian of the grey faces."""
    return float(np.mean([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in faces]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("testset", type=Path, help="a `facemend testset` folder (its medium/hq holds the HQ faces)")
    parser.add_argument("--faces", type=int, default=200, help="faces measured (the first N by file name)")
    parser.add_argument("--restored", type=Path, help="a folder of restored faces named as the HQ faces")
    args = parser.parse_args()
    hq_paths = list_images([args.testset / "medium" / "hq"])[: args.faces]
    hq = [read_image(path).to_uint8() for path in hq_paths]
    reference = face_signatures(hq)
    damages: dict[str, Damage] = {f"blur σ{s}": blur(s) for s in (0.5, 1.0, 1.5, 2.0)}
    damages |= {f"down-up ×{f}": down_up(f) for f in (2, 3, 4)}
    damages |= {f"JPEG q{q}": jpeg(q) for q in (60, 30)}
    damages["noise σ5"] = noise(5.0)
    damages["mirrored"] = lambda face: np.ascontiguousarray(face[:, ::-1])
    versions = {name: [damage(face) for face in hq] for name, damage in damages.items()}
    if args.restored:
        restored = [read_image(args.restored / path.name).to_uint8() for path in hq_paths]
        versions["restored"] = restored
        for amount, sigma in UNSHARP:
            versions[f"restored, unsharp {amount}/σ{sigma}"] = [unsharp(amount, sigma)(face) for face in restored]
    hq_sharpness = sharpness(hq)
    print(f"{len(hq)} faces of {args.testset}; mean over faces found in both")
    print("| version | IDD | LMD | sharpness / HQ's |\n|---|---:|---:|---:|")
    for name, faces in versions.items():
        signatures = face_signatures(faces)
        idd = identity_distance(signatures, reference)
        lmd = landmark_distance(signatures, reference)
        print(f"| {name} | {np.nanmean(idd):.3f} | {np.nanmean(lmd):.4f} | {sharpness(faces) / hq_sharpness:.2f} |")


if __name__ == "__main__":
    main()

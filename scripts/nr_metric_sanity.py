"""Do the no-reference metrics rank damage correctly on 128-px faces? For N faces of a facemend-test folder: the
HQ face, the HQ face blurred (Gaussian σ = 1 and 2 px), and its `medium` and `heavy` LQ faces, scored by NIQE and
BRISQUE as the metric suite scores them (resized to 512 px, bicubic), NIQE at 256 px (2× for 128-px faces: near
the least size NIQE takes, > 193 px) and BRISQUE at the faces' own size. Prints, per metric, the mean of each
version and the share of faces where the damaged version scores worse (higher) than the HQ face. Used to choose
IQPFR's prior and to read the NIQE/BRISQUE columns of 128-px benchmarks.

    python scripts/nr_metric_sanity.py data/facemend-test-128 --faces 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from facemend.data.io import list_images, read_image
from facemend.quality.brisque import BRISQUE
from facemend.quality.niqe import NIQE
from facemend.quality.prior import resize_for_prior


def load(paths: list[Path]) -> np.ndarray:
    return np.stack([read_image(path).to_uint8() for path in paths])


def blurred(faces: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(face, (0, 0), sigma) for face in faces])


def to_tensor(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(faces).permute(0, 3, 1, 2).double() / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("testset", type=Path, help="a `facemend testset` folder (medium/ and heavy/)")
    parser.add_argument("--faces", type=int, default=200, help="faces scored (the first N by file name)")
    args = parser.parse_args()
    hq_paths = list_images([args.testset / "medium" / "hq"])[: args.faces]
    versions = {"hq": load(hq_paths)}
    versions["blur σ1"] = blurred(versions["hq"], 1.0)
    versions["blur σ2"] = blurred(versions["hq"], 2.0)
    for preset in ("medium", "heavy"):
        versions[preset] = load([args.testset / preset / "lq" / path.name for path in hq_paths])
    metrics = {
        "NIQE @512": (NIQE().double(), 512),
        "NIQE @256": (NIQE().double(), 256),
        "BRISQUE @512": (BRISQUE().double(), 512),
        "BRISQUE @own size": (BRISQUE().double(), None),
    }
    print(f"{len(hq_paths)} faces of {args.testset}; mean score (share of faces scoring worse than hq)")
    for name, (metric, size) in metrics.items():
        values = {}
        with torch.no_grad():
            for version, faces in versions.items():
                images = to_tensor(faces)
                values[version] = torch.cat(
                    [metric(resize_for_prior(chunk, size)) for chunk in images.split(16)]
                ).numpy()
        cells = [f"hq {values['hq'].mean():.2f}"]
        for version in list(versions)[1:]:
            worse = float((values[version] > values["hq"]).mean())
            cells.append(f"{version} {values[version].mean():.2f} ({worse:.0%})")
        print(f"{name}: " + ", ".join(cells))


if __name__ == "__main__":
    main()

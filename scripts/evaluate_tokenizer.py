"""How well a tokenizer reconstructs unseen faces: encode → quantize → decode every face of the test split,
then PSNR / SSIM / PD-MNv2 / FD-dlib / IDD against the originals and the codebook's usage over all tokens.

    python scripts/evaluate_tokenizer.py weights/tokenizer-tiny data/prepared256/test -o reports/tokenizer

Writes OUT/{hq,reconstruction}/*.png, OUT/metrics.{json,csv,md} (the `eval` layout) and OUT/codebook.json
(share of codes used at least once, perplexity of the code frequencies).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import facemend
from facemend.config import build
from facemend.data.datasets import load_faces
from facemend.data.io import list_images, photo_from_array, write_image
from facemend.models.quantizer import codebook_usage
from facemend.models.tokenizer import TokenizerConfig, VQTokenizer
from facemend.weights import load_into, load_weights

KEYS = ["psnr_y", "psnr_rgb", "ssim_y", "idd", "lmd", "pd_mnv2", "fd_mnv2", "fd_dlib"]


def reconstruct(weights_dir: Path, faces_dir: Path, out: Path, batch: int = 32) -> dict:
    """Encode → quantize → decode every face of `faces_dir` with the tokenizer `weights_dir`, writing
    OUT/hq/ and OUT/reconstruction/ and OUT/codebook.json; returns the codebook usage."""
    weights = load_weights(weights_dir, "tokenizer")
    config = build(TokenizerConfig, weights.config, "config")
    model = VQTokenizer(config).eval()
    load_into(model, weights.state_dict, weights_dir)
    faces = load_faces(faces_dir, config.image_size)
    stems = [path.stem for path in list_images([faces_dir], recursive=False)]
    indices = []
    for start in range(0, len(faces), batch):
        images = torch.from_numpy(faces[start : start + batch]).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            reconstruction, quantized = model(images)
        indices.append(quantized.indices)
        decoded = np.rint(reconstruction.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255.0).astype(np.uint8)
        for stem, original, image in zip(stems[start:], faces[start : start + batch], decoded, strict=False):
            write_image(out / "hq" / f"{stem}.png", photo_from_array(original))
            write_image(out / "reconstruction" / f"{stem}.png", photo_from_array(image))
    used, perplexity = codebook_usage(torch.cat(indices), config.codebook_size)
    usage = {
        "faces": len(faces),
        "tokens": sum(part.numel() for part in indices),
        "codebook_size": config.codebook_size,
        "codes_used": used,
        "perplexity": perplexity,
    }
    (out / "codebook.json").write_text(json.dumps(usage, indent=2) + "\n")
    return usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, help="a tokenizer weights folder")
    parser.add_argument("faces", type=Path, help="a folder of aligned faces (a `prepare` split)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    usage = reconstruct(args.weights, args.faces, args.output, args.batch)
    summary = facemend.evaluate(args.output / "reconstruction", args.output / "hq", args.output, keys=KEYS, grid=8)
    print(json.dumps(usage))
    print(
        " ".join(
            f"{key} {summary['mean'][key]:.4f} [{summary['ci95'][key][0]:.4f}, {summary['ci95'][key][1]:.4f}]"
            for key in KEYS
        )
    )


if __name__ == "__main__":
    main()

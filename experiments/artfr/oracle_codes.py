"""Where does `artfr` lose the input's identity: in the predicted codes, or in the decoder and fusion? One command
decodes the same aligned test faces from three code sources, at fidelity 0 and 1:

- `predicted`: the transformer's one-shot codes (what `artfr` restores with by default);
- `oracle`: the HQ face's own codes (the tokenizer's encoding of the ground truth: 100% code accuracy);
- `lq latent`: the LQ encoder's unit-normalised latent itself, no codes (what `feature_mse` pulls to the codes).

    python experiments/artfr/oracle_codes.py --model artfr --data data/facemend-test-128 -o reports/artfr-oracle \
        [--limit 200]

The faces go to the model as aligned crops (no detection or pasting: the test set's faces are aligned), so the
numbers sit close to, not exactly on, `facemend benchmark`'s. OUT/oracle.md holds the table: PSNR-Y, IDD and
FD-dlib per preset, with the LQ input's row.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facemend.methods.artfr.model import ArtfrModel, ArtfrRestorer
from facemend.methods.base import resize_faces
from facemend.methods.registry import resolve_model
from facemend.metrics.report import LABELS, means
from facemend.metrics.suite import FacePair, MetricSuite
from facemend.models.fusion import decode_codes_with_fusion
from facemend.pipelines.benchmark import benchmark_data
from facemend.pipelines.evaluate import read_face

PRESETS = ("medium", "heavy")
KEYS = ("psnr_y", "idd", "fd_dlib")
SOURCES = ("predicted", "oracle", "lq latent")


def decode_sources(model: ArtfrModel, lq: torch.Tensor, hq: torch.Tensor) -> dict[tuple[str, float], torch.Tensor]:
    """`b 3 S S` LQ and HQ faces at the model's size → restored faces per (code source, fidelity)."""
    latent, features = model.encode_lq(lq)
    codes = {
        "predicted": model.tokenizer.quantizer.lookup(model.sample(latent, 1)),
        "oracle": model.tokenizer.quantizer.lookup(model.tokenizer.encode_indices(hq)),
        "lq latent": F.normalize(latent.float(), dim=1),
    }
    decoder, fusion = model.tokenizer.decoder, model.fusion
    return {
        (source, fidelity): decode_codes_with_fusion(decoder, fusion, codes[source], features, fidelity).clamp(0, 1)
        for source in SOURCES
        for fidelity in (0.0, 1.0)
    }


def _uint8(faces: torch.Tensor) -> list[np.ndarray]:
    return list((faces.float() * 255).round().byte().permute(0, 2, 3, 1).numpy())


def _tensor(faces: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float() / 255


def measure_preset(
    restorer: ArtfrRestorer, root: Path, limit: int | None, batch_size: int = 25, warn: Callable = print
) -> dict[str, dict[str, float]]:
    """Row label → metric → value on one preset's faces (the LQ input's row first)."""
    data = benchmark_data(root, limit, warn)
    size, suite = restorer.face_size, MetricSuite(KEYS)
    pairs: dict[str, list[FacePair]] = {}
    with torch.inference_mode():
        for start in range(0, len(data.stems), batch_size):
            stems = data.stems[start : start + batch_size]
            targets = [read_face(data.hq[s]) for s in stems]
            lq, hq = _tensor([read_face(data.lq[s]) for s in stems]), _tensor(targets)
            outputs = {"LQ input": lq} | {
                f"{source}, fidelity {fidelity:g}": resize_faces(faces, lq.shape[-1])
                for (source, fidelity), faces in decode_sources(
                    restorer.model, resize_faces(lq, size), resize_faces(hq, size)
                ).items()
            }
            for label, faces in outputs.items():
                pairs.setdefault(label, []).extend(
                    FacePair(stem, face, target, str(data.hq[stem]))
                    for stem, face, target in zip(stems, _uint8(faces), targets, strict=True)
                )
    return {label: means(suite.measure(label_pairs)) for label, label_pairs in pairs.items()}


def oracle_markdown(results: dict[str, dict[str, dict[str, float]]], faces: int) -> str:
    """One table per preset: a row per (code source, fidelity), after the LQ input's."""
    header = " | ".join(LABELS[key] for key in KEYS)
    lines = [f"# artfr: identity by code source ({faces} aligned faces per preset at most)", ""]
    for preset, rows in results.items():
        lines += [f"| {preset} | {header} |", "|---|" + "---:|" * len(KEYS)]
        lines += [
            f"| {label} | {values['psnr_y']:.2f} | {values['idd']:.4f} | {values['fd_dlib']:.3f} |"
            for label, values in rows.items()
        ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="artfr", help="registered artfr model or weights folder")
    parser.add_argument("--data", required=True, help="facemend-test folder with medium/ and heavy/")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    restorer, _ = resolve_model(args.model)
    if not isinstance(restorer, ArtfrRestorer):
        parser.error(f"--model {args.model!r} is not an artfr model")
    results = {preset: measure_preset(restorer, Path(args.data) / preset, args.limit) for preset in PRESETS}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "oracle.json").write_text(json.dumps(results, indent=2))
    markdown = oracle_markdown(results, args.limit)
    (out / "oracle.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()

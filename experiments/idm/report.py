"""Issue 8's evidence besides the steps sweep (scripts/steps_sweep.py), in one command. It trains nothing; each
part runs when its options are given and OUT/report.md collects the parts:

- `--cleaned`: no-reference scores (NIQE, BRISQUE) of the training faces a `facemend clean` round restored,
  against the same faces in `--original`, as a histogram (OUT/nr-histograms.png) and quantiles. Both are
  resized to `--size` first (area), the size the trainers see: a cleaned face was restored at the model's size
  and resized back to the file's, so measuring it at the file's size would only measure that resize.
- `--round K=MODEL` (repeatable): each round's model benchmarked on facemend-test (`--data`, `medium` and
  `heavy`): PSNR, SSIM, IDD, NIQE, FD-dlib, seconds per face.
- `--tokenizer NAME=WEIGHTS` (repeatable, "beyond restoration"): tokenizers trained with the same budget on the
  original and on the cleaned faces (configs/tokenizer/experiments/tiny-beyond-{original,cleaned}.yaml); each
  reconstructs the faces of `--test-faces` (a prepare test split, untouched by clean) and its reconstructions are
  measured: NIQE, BRISQUE, FD-dlib, and PSNR-Y / IDD against the faces.

    LD_PRELOAD=libtcmalloc_minimal.so.4 python experiments/idm/report.py \
        --original data/prepared256 --cleaned data/cleaned256/round-1 \
        --round 1=src/facemend/bundled/idm-tiny --round 2=runs/idm-tiny-refine-round-1/denoise \
        --round "2 control (original faces)=runs/idm-tiny-refine/denoise" --data data/facemend-test-128 \
        --tokenizer original=runs/tokenizer-tiny-beyond-original/reconstruct \
        --tokenizer cleaned=runs/tokenizer-tiny-beyond-cleaned/reconstruct --test-faces data/prepared256/test \
        -o reports/idm-report [--limit 100] [--nr-faces 1000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from evaluate_tokenizer import reconstruct

import facemend
from facemend.errors import FacemendError
from facemend.metrics.report import LABELS, arrow, format_value
from facemend.metrics.suite import FacePair, MetricSuite
from facemend.pipelines.benchmark import presets_markdown, run_benchmark
from facemend.pipelines.clean import read_manifest
from facemend.pipelines.evaluate import read_face, spread

PRESETS = ("medium", "heavy")
NR_KEYS = ("niqe", "brisque")
ROUND_KEYS = ("psnr_y", "ssim_y", "idd", "niqe", "fd_dlib")
BEYOND_KEYS = ("niqe", "brisque", "fd_dlib", "psnr_y", "idd")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def pairs_at_size(named: dict[str, Path], size: int):
    for stem, path in named.items():
        face = read_face(path)
        yield FacePair(stem, cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA))


def nr_scores(original: Path, cleaned: Path, size: int, limit: int | None) -> dict[str, dict[str, np.ndarray]]:
    """{"original" | "cleaned": {key: per-face values}} over the faces `cleaned` restored."""
    files = [row["file"] for row in read_manifest(cleaned) if row.get("cleaned_by")]
    if not files:
        raise FacemendError(f"{cleaned}: no cleaned faces in its manifest (is it a `facemend clean` output?)")
    files = spread(sorted(files), limit) if limit else files
    suite = MetricSuite(NR_KEYS)
    scores = {}
    for name, root in (("original", original), ("cleaned", cleaned)):
        measured = suite.measure(pairs_at_size({file: root / file for file in files}, size))
        scores[name] = {key: measured.per_image[key] for key in NR_KEYS}
    return scores


def nr_markdown(scores: dict[str, dict[str, np.ndarray]], size: int) -> list[str]:
    count = len(next(iter(scores["original"].values())))
    lines = [
        f"## Training faces before and after cleaning ({count} faces, measured at {size} px)",
        "",
        "| faces | score | mean | " + " | ".join(f"q{round(q * 100)}" for q in QUANTILES) + " |",
        "|---|---|---:|" + "---:|" * len(QUANTILES),
    ]
    for key in NR_KEYS:
        for name, values in scores.items():
            cells = [np.nanmean(values[key]), *np.nanquantile(values[key], QUANTILES)]
            lines.append(f"| {name} | {LABELS[key]} {arrow(key)} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    better = {key: float(np.nanmean(scores["cleaned"][key] < scores["original"][key])) for key in NR_KEYS}
    lines += [
        "",
        "Share of faces whose score improved: " + ", ".join(f"{LABELS[k]} {v:.0%}" for k, v in better.items()),
    ]
    return lines + ["", "![NR-score histograms](nr-histograms.png)", ""]


def nr_histograms(scores: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(NR_KEYS), figsize=(5 * len(NR_KEYS), 3.6), squeeze=False)
    for axis, key in zip(axes[0], NR_KEYS, strict=True):
        values = np.concatenate([scores[name][key] for name in scores])
        bins = np.linspace(*np.nanquantile(values, (0.005, 0.995)), 40)
        for name in scores:
            axis.hist(
                scores[name][key], bins=bins, alpha=0.55, label=f"{name} (mean {np.nanmean(scores[name][key]):.2f})"
            )
        axis.set_xlabel(f"{LABELS[key]} {arrow(key)}")
        axis.legend(fontsize=8)
    figure.suptitle("training faces: original vs cleaned", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def beyond_markdown(summaries: dict[str, dict]) -> list[str]:
    lines = [
        "## Beyond restoration: tokenizer trained on original vs cleaned faces",
        "",
        "| trained on | " + " | ".join(f"{LABELS[k]} {arrow(k)}" for k in BEYOND_KEYS) + " | codes used |",
        "|---|" + "---:|" * (len(BEYOND_KEYS) + 1),
    ]
    for name, summary in summaries.items():
        cells = [format_value(key, summary["mean"].get(key)) for key in BEYOND_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {summary['codebook']['codes_used']:.0%} |")
    return lines + [""]


def named(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"error: {option} takes NAME=PATH, got {value!r}")
        pairs[name] = path
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path, help="the prepare folder that was cleaned")
    parser.add_argument("--cleaned", type=Path, help="a `facemend clean` output folder")
    parser.add_argument("--size", type=int, default=128, help="the trainers' face size (NR scores are taken there)")
    parser.add_argument("--nr-faces", type=int, help="at most this many cleaned faces for the histograms")
    parser.add_argument("--round", action="append", default=[], metavar="K=MODEL", help="a round's model")
    parser.add_argument("--data", type=Path, help="facemend-test: holds medium/ and heavy/")
    parser.add_argument("--limit", type=int, help="at most this many faces per preset (spread evenly)")
    parser.add_argument("--tokenizer", action="append", default=[], metavar="NAME=WEIGHTS", help="beyond row")
    parser.add_argument("--test-faces", type=Path, help="faces the tokenizers reconstruct (a prepare test split)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    rounds, tokenizers = named(args.round, "--round"), named(args.tokenizer, "--tokenizer")
    if args.cleaned and not args.original:
        raise SystemExit("error: --cleaned needs --original (the folder it was cleaned from)")
    if rounds and not args.data:
        raise SystemExit("error: --round needs --data (facemend-test)")
    if tokenizers and not args.test_faces:
        raise SystemExit("error: --tokenizer needs --test-faces")

    args.out.mkdir(parents=True, exist_ok=True)
    lines, record = ["# IDM: iterative dataset enhancement", ""], {}
    try:
        if args.cleaned:
            scores = nr_scores(args.original, args.cleaned, args.size, args.nr_faces)
            nr_histograms(scores, args.out / "nr-histograms.png")
            lines += nr_markdown(scores, args.size)
            record["nr"] = {name: {k: v.tolist() for k, v in values.items()} for name, values in scores.items()}
        if rounds:
            results = {
                preset: run_benchmark(
                    args.data / preset,
                    list(rounds.values()),
                    args.out / "rounds" / preset,
                    keys=ROUND_KEYS,
                    limit=args.limit,
                )
                for preset in PRESETS
            }
            rows = [(model, (k, model)) for k, model in rounds.items()]
            faces = next(iter(results.values()))["faces"]
            lines += [f"## Rounds ({faces} faces per preset)", ""]
            lines += presets_markdown(results, rows, ("round", "model"), (*ROUND_KEYS, "s_per_face")) + [""]
            record["rounds"] = results
        if tokenizers:
            summaries = {}
            for name, weights in tokenizers.items():
                folder = args.out / "beyond" / name
                usage = reconstruct(Path(weights), args.test_faces, folder)
                summary = facemend.evaluate(folder / "reconstruction", folder / "hq", folder, keys=BEYOND_KEYS)
                summaries[name] = {**summary, "codebook": usage, "weights": weights}
            lines += beyond_markdown(summaries)
            record["beyond"] = {
                name: {k: s[k] for k in ("mean", "ci95", "codebook", "weights")} for name, s in summaries.items()
            }
    except FacemendError as error:
        raise SystemExit(f"error: {error}") from None
    (args.out / "report.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""The DAEFR ablation table of issue 5, in one command. It trains nothing: it benchmarks the four rows' trained
weights (configs/daefr/experiments/tiny-ablation-{hq-only,no-association,association,fusion}.yaml, all at the
same budget up to their predict stage) and the bundled daefr on facemend-test's `medium` and `heavy`
presets with `facemend benchmark`'s Python API, and writes one markdown table, OUT/ablation.md (each preset's
full benchmark stays in OUT/<preset>/).

    LD_PRELOAD=libtcmalloc_minimal.so.4 python experiments/daefr/ablation.py --data data/facemend-test-128 \
        -o reports/daefr-ablation [--limit 200]

Rows: the LQ input (the bar a restorer must clear); each ablation row's predicted codes decoded alone (w = 0,
no input blend: what the LQ branch, the association and the fusion change is the prediction); then the bundled
daefr (its fusion stage on top) at w = 1 without the input blend, and at its defaults. Columns: code accuracy,
PSNR-Y, SSIM-Y, IDD, LMD, NIQE, FD-dlib and seconds per face (restoration only, batched, excluding model
loading and file I/O). Under it, each row against the baseline row, face by face: the mean paired difference
of IDD and PSNR-Y with its standard error, and on how many faces the row is better.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from facemend.metrics.report import LABELS, paired_difference, read_per_face
from facemend.pipelines.benchmark import presets_markdown, run_benchmark, slug
from facemend.weights import load_weights

PRESETS = ("medium", "heavy")
KEYS = ("psnr_y", "ssim_y", "idd", "lmd", "niqe", "fd_dlib")
COLUMNS = ("code_acc", *KEYS, "s_per_face")
ROWS = {  # ablation row → the option naming it, and the run whose predict export it is
    "baseline (single HQ encoder)": ("hq-only", "daefr-tiny-ablation-hq-only"),
    "+ LQ branch, no association": ("no-association", "daefr-tiny-ablation-no-association"),
    "+ association": ("association", "daefr-tiny-ablation-association"),
    "+ fusion (full DAEFR)": ("full", "daefr-tiny-ablation-fusion"),
}
FIX_ROWS = {  # the fix tried for the claim (issue 5), shown when its weights exist
    "fix: + association, kept in predict": ("association-kept", "daefr-tiny-ablation-association-kept"),
}
CODES_ALONE = "fidelity=0,keep_input=0"
BUNDLED_ROWS = {"fidelity=1,keep_input=0": "bundled daefr, w = 1, no blend", "": "bundled daefr, defaults"}


def ablation_markdown(results: dict[str, dict], specs: dict[str, tuple[str, str]], budgets: dict[str, str]) -> str:
    """One table: a row per preset × (LQ input, each spec); `specs` maps a benchmark spec to its cells (row, how
    it restores)."""
    lines = [
        "# DAEFR ablation on facemend-test",
        "",
        "Every ablation row was trained at the same budget up to its predict stage: "
        + "; ".join(f"{row}: {budget}" for row, budget in budgets.items())
        + ".",
        "",
    ]
    lines += presets_markdown(results, list(specs.items()), ("model", "restored as"), COLUMNS)
    return "\n".join(lines) + "\n"


PAIRED = ("idd", "psnr_y")


def paired_markdown(out: Path, specs: dict[str, tuple[str, str]], baseline: str) -> list[str]:
    """Each spec restored as `baseline` is against `baseline` on the same faces: mean difference ± standard error,
    and the faces on which it is better."""
    lines = [
        "",
        f"Against {specs[baseline][0]}, face by face (row − baseline: mean ± standard error; faces on which the row "
        "is better):",
        "",
        "| preset | model | " + " | ".join(f"Δ {LABELS[key]}" for key in PAIRED) + " |",
        "|---|---|" + "---:|" * len(PAIRED),
    ]
    for preset in PRESETS:
        base = read_per_face(out / preset / slug(baseline))
        for spec, (row, restored) in specs.items():
            if spec == baseline or restored != specs[baseline][1]:  # ablation rows only (codes alone)
                continue
            faces = read_per_face(out / preset / slug(spec))
            cells = [paired_difference(faces, base, key) for key in PAIRED]
            lines.append(f"| {preset} | {row} | " + " | ".join(cells) + " |")
    return lines


def budget_of(folder: Path) -> str:
    """The batch size and the steps of each stage up to the one that wrote `folder` (RUN/STAGE: from
    RUN/config.yaml), else the run and step that its config.json names."""
    run_config = folder.parent / "config.yaml"
    if run_config.is_file():
        config = yaml.safe_load(run_config.read_text(encoding="utf-8"))
        names = [stage["name"] for stage in config["stages"]]
        upto = config["stages"][: names.index(folder.name) + 1] if folder.name in names else config["stages"]
        stages = ", ".join(f"{stage['name']} {stage['steps']}" for stage in upto)
        return f"batch {config['data']['batch_size']}, {stages} steps"
    training = load_weights(folder).info.get("training", {})
    return f"run {training.get('run', '?')} to {training.get('stage', '?')} step {training.get('steps', '?')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="facemend-test: holds medium/ and heavy/")
    parser.add_argument("-o", "--out", type=Path, required=True)
    for option, run in (*ROWS.values(), *FIX_ROWS.values()):
        default = Path("runs") / run / "predict"
        parser.add_argument(f"--{option}", type=Path, default=default, help=f"weights folder (default: {default})")
    parser.add_argument("--bundled", default="daefr", help="the final daefr: a model name or weights folder")
    parser.add_argument("--limit", type=int, help="at most this many faces per preset (spread evenly)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    folders = {row: getattr(args, option.replace("-", "_")) for row, (option, _) in {**ROWS, **FIX_ROWS}.items()}
    folders = {row: folder for row, folder in folders.items() if row in ROWS or folder.is_dir()}
    specs = {f"{folder}:{CODES_ALONE}": (row, "codes alone") for row, folder in folders.items()}
    for knobs, label in BUNDLED_ROWS.items():
        specs[f"{args.bundled}:{knobs}" if knobs else args.bundled] = (label, knobs or "defaults")
    budgets = {row: budget_of(folder) for row, folder in folders.items()}
    results = {}
    for preset in PRESETS:
        results[preset] = run_benchmark(
            args.data / preset, list(specs), args.out / preset, args.batch_size, KEYS, args.limit
        )
    (args.out / "ablation.json").write_text(json.dumps({"specs": specs, "results": results}, indent=1) + "\n")
    table = ablation_markdown(results, specs, budgets)
    table += "\n".join(paired_markdown(args.out, specs, next(iter(specs)))) + "\n"
    (args.out / "ablation.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

"""The DAEFR ablation table of issue 5, in one command. It trains nothing: it benchmarks the four rows' trained
weights folders (configs/daefr-tiny-ablation-{hq-only,no-association,association,full}.yaml, all at the same,
shorter budget) on facemend-test's `medium` and `heavy` presets with `facemend benchmark`'s Python API, and
writes one markdown table, OUT/ablation.md (each preset's full benchmark stays in OUT/<preset>/).

    LD_PRELOAD=libtcmalloc_minimal.so.4 python scripts/daefr_ablation.py --data data/facemend-test-128 \
        -o reports/daefr-ablation [--fidelity 0,1] [--limit 200]

Rows: the LQ input (the bar a restorer must clear), then each ablation row at each `--fidelity` (w = 0: the
predicted codes decoded alone, which isolates the prediction; w = 1: what `restore` gives by default). Columns:
code accuracy, PSNR-Y, SSIM-Y, IDD, LMD, NIQE, FD-dlib and seconds per face (restoration only, batched,
excluding model loading and file I/O).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from facemend.pipelines.benchmark import presets_markdown, run_benchmark
from facemend.weights import load_weights

PRESETS = ("medium", "heavy")
KEYS = ("psnr_y", "ssim_y", "idd", "lmd", "niqe", "fd_dlib")
COLUMNS = ("code_acc", *KEYS, "s_per_face")
ROWS = {  # ablation row → its option, and config configs/daefr-tiny-ablation-OPTION.yaml
    "baseline (single HQ encoder)": "hq-only",
    "+ LQ branch, no association": "no-association",
    "+ association": "association",
    "+ fusion (full DAEFR)": "full",
}


def ablation_markdown(results: dict[str, dict], specs: dict[str, tuple[str, float]], budgets: dict[str, str]) -> str:
    """One table: a row per preset × (LQ input, ablation row × fidelity); `specs` maps a benchmark spec to its
    (ablation row, fidelity)."""
    lines = [
        "# DAEFR ablation on facemend-test",
        "",
        "Every row was trained at the same budget (configs/daefr-tiny-ablation-*.yaml): "
        + "; ".join(f"{row}: {budget}" for row, budget in budgets.items())
        + ".",
        "",
    ]
    rows = [(spec, (row, f"{w:g}")) for spec, (row, w) in specs.items()]
    lines += presets_markdown(results, rows, ("model", "w"), COLUMNS)
    return "\n".join(lines) + "\n"


def budget_of(folder: Path) -> str:
    """The batch size and each stage's steps of the run that wrote `folder` (RUN/STAGE: from RUN/config.yaml),
    else the run and step that its config.json names."""
    run_config = folder.parent / "config.yaml"
    if run_config.is_file():
        config = yaml.safe_load(run_config.read_text(encoding="utf-8"))
        stages = ", ".join(f"{stage['name']} {stage['steps']}" for stage in config["stages"])
        return f"batch {config['data']['batch_size']}, {stages} steps"
    training = load_weights(folder).info.get("training", {})
    return f"run {training.get('run', '?')} to {training.get('stage', '?')} step {training.get('steps', '?')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="facemend-test: holds medium/ and heavy/")
    parser.add_argument("-o", "--out", type=Path, required=True)
    for option in ROWS.values():
        default = Path("runs") / f"daefr-tiny-ablation-{option}" / "fusion"
        parser.add_argument(f"--{option}", type=Path, default=default, help=f"weights folder (default: {default})")
    parser.add_argument("--fidelity", default="0,1", help="comma-separated fidelities w to restore at")
    parser.add_argument("--limit", type=int, help="at most this many faces per preset (spread evenly)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    folders = {row: getattr(args, option.replace("-", "_")) for row, option in ROWS.items()}
    fidelities = [float(w) for w in args.fidelity.split(",")]
    specs = {f"{folders[row]}:fidelity={w:g}": (row, w) for row in ROWS for w in fidelities}
    budgets = {row: budget_of(folder) for row, folder in folders.items()}
    results = {}
    for preset in PRESETS:
        results[preset] = run_benchmark(
            args.data / preset, list(specs), args.out / preset, args.batch_size, KEYS, args.limit
        )
    (args.out / "ablation.json").write_text(json.dumps({"specs": specs, "results": results}, indent=1) + "\n")
    table = ablation_markdown(results, specs, budgets)
    (args.out / "ablation.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

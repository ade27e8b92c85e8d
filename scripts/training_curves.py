"""Plot a run's validation curves (the `val_*` scores the trainer logs at every sample step) against steps and
CPU-hours, and write them as a markdown table too.

    python scripts/training_curves.py runs/residual-unet-tiny --seconds-per-step 2.5 -o docs/methods/residual-unet

Resumed runs log into several `csv/version_*` folders; they are read together, the latest value of a step
winning. Hours are steps × `--seconds-per-step` (the trainer's measured rate on the machine of the run).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_validation(run_dir: Path) -> dict[str, dict[int, float]]:
    """`stage/val_key` → {global step: value}, over every csv version of the run."""
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted((run_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])):
        with open(path, newline="") as file:
            for row in csv.DictReader(file):
                for key, value in row.items():
                    if "/val_" in key and value:
                        curves[key][int(row["step"])] = float(value)
    if not curves:
        raise SystemExit(f"{run_dir}: no validation scores in csv/version_*/metrics.csv")
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run folder (runs/NAME)")
    parser.add_argument("--seconds-per-step", type=float, required=True, help="measured training rate")
    parser.add_argument("-o", "--output", type=Path, required=True, help="writes OUTPUT-curves.png and .md")
    args = parser.parse_args()
    curves = read_validation(args.run)
    outputs = sorted(key for key in curves if not key.endswith("_lq"))
    figure, axes = plt.subplots(1, len(outputs), figsize=(4 * len(outputs), 3.2), squeeze=False)
    for axis, key in zip(axes[0], outputs, strict=True):
        steps = sorted(curves[key])
        axis.plot(steps, [curves[key][s] for s in steps], marker="o", markersize=3, label="model (EMA)")
        if f"{key}_lq" in curves:
            axis.axhline(next(iter(curves[f"{key}_lq"].values())), color="grey", linestyle="--", label="LQ input")
        axis.set_title(key.split("/val_")[1])
        axis.set_xlabel("step")
        hours = axis.secondary_xaxis("top", functions=(lambda s: s * args.seconds_per_step / 3600,
                                                        lambda h: h * 3600 / args.seconds_per_step))  # fmt: skip
        hours.set_xlabel("CPU-hours (2 cores)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output.with_name(args.output.name + "-curves.png"), dpi=110)
    steps = sorted(set().union(*(curves[key] for key in outputs)))
    lines = ["| step | hours | " + " | ".join(key.split("/val_")[1] for key in sorted(curves)) + " |"]
    lines.append("|---:|---:|" + "---:|" * len(curves))
    for step in steps:
        cells = [f"{curves[key][step]:.4g}" if step in curves[key] else "" for key in sorted(curves)]
        lines.append(f"| {step} | {step * args.seconds_per_step / 3600:.2f} | " + " | ".join(cells) + " |")
    args.output.with_name(args.output.name + "-curves.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

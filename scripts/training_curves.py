"""Plot a run's validation curves (the `val_*` scores the trainer logs at every sample step) against steps and
CPU-hours, over all its stages, and write them as a markdown table too.

    python scripts/training_curves.py runs/residual-unet-tiny --seconds-per-step restore=4.22 refine=3.66 \
        -o docs/methods/residual-unet

Resumed runs log into several `csv/version_*` folders; they are read together, the latest value of a step
winning. A metric keeps one curve across stages; the stages' boundaries (from the run's `config.yaml`) are marked.
Hours are steps × `--seconds-per-step`: one rate for every stage, or STAGE=SECONDS per stage (the trainer's
measured rate on the machine of the run).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_validation(run_dir: Path) -> dict[str, dict[int, float]]:
    """`val_key` → {global step: value}, over every csv version and stage of the run."""
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted((run_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])):
        with open(path, newline="") as file:
            for row in csv.DictReader(file):
                for key, value in row.items():
                    if "/val_" in key and value:
                        curves[key.split("/val_")[1]][int(row["step"])] = float(value)
    if not curves:
        raise SystemExit(f"{run_dir}: no validation scores in csv/version_*/metrics.csv")
    return curves


def stage_spans(run_dir: Path) -> list[tuple[str, int, int]]:
    """(stage, first global step, last global step) of each stage, in order, from the run's config.yaml."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    spans, start = [], 0
    for stage in config["stages"]:
        spans.append((stage["name"], start, start + int(stage["steps"])))
        start += int(stage["steps"])
    return spans


def hours_at(step: float, spans: list[tuple[str, int, int]], rates: dict[str, float]) -> float:
    """CPU-hours spent until global `step`, each stage at its own rate."""
    seconds = sum(max(0.0, min(step, end) - begin) * rates[name] for name, begin, end in spans)
    return seconds / 3600


def parse_rates(values: list[str], spans: list[tuple[str, int, int]]) -> dict[str, float]:
    if len(values) == 1 and "=" not in values[0]:
        return {name: float(values[0]) for name, _, _ in spans}
    rates = dict((name, float(seconds)) for name, seconds in (value.split("=", 1) for value in values))
    missing = [name for name, _, _ in spans if name not in rates]
    if missing:
        raise SystemExit(f"--seconds-per-step: no rate for stage(s) {', '.join(missing)}")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run folder (runs/NAME)")
    parser.add_argument("--seconds-per-step", nargs="+", required=True, metavar="[STAGE=]S", help="training rate")
    parser.add_argument("-o", "--output", type=Path, required=True, help="writes OUTPUT-curves.png and .md")
    args = parser.parse_args()
    curves = read_validation(args.run)
    spans = stage_spans(args.run)
    rates = parse_rates(args.seconds_per_step, spans)
    total_steps, total_hours = spans[-1][2], hours_at(spans[-1][2], spans, rates)
    outputs = sorted(key for key in curves if not key.endswith("_lq"))
    figure, axes = plt.subplots(1, len(outputs), figsize=(4 * len(outputs), 3.2), squeeze=False)
    for axis, key in zip(axes[0], outputs, strict=True):
        steps = sorted(curves[key])
        axis.plot(steps, [curves[key][s] for s in steps], marker="o", markersize=3, label="model (EMA)")
        if f"{key}_lq" in curves:
            axis.axhline(next(iter(curves[f"{key}_lq"].values())), color="grey", linestyle="--", label="LQ input")
        for name, begin, _ in spans[1:]:
            axis.axvline(begin, color="black", linewidth=0.6, linestyle=":")
            axis.annotate(name, (begin, 1), xycoords=("data", "axes fraction"), fontsize=7, va="top")
        axis.set_title(key)
        axis.set_xlabel("step")
        hours = axis.secondary_xaxis("top", functions=(lambda s: s * total_hours / total_steps,
                                                        lambda h: h * total_steps / total_hours))  # fmt: skip
        hours.set_xlabel("CPU-hours (2 cores, mean rate)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output.with_name(args.output.name + "-curves.png"), dpi=110)
    steps = sorted(set().union(*(curves[key] for key in outputs)))
    lines = ["| step | stage | hours | " + " | ".join(sorted(curves)) + " |"]
    lines.append("|---:|---|---:|" + "---:|" * len(curves))
    for step in steps:
        stage = next(name for name, begin, end in spans if begin < step <= end)
        cells = [f"{curves[key][step]:.4g}" if step in curves[key] else "" for key in sorted(curves)]
        lines.append(f"| {step} | {stage} | {hours_at(step, spans, rates):.2f} | " + " | ".join(cells) + " |")
    args.output.with_name(args.output.name + "-curves.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

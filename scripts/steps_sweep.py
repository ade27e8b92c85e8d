"""A sampler-steps sweep of one iterative model (artfr, idm) on facemend-test, in one command: issues 6 and 8.
It trains nothing: it benchmarks `MODEL:steps=N` for each N, plus comparison rows, on the `medium` and `heavy`
presets with `facemend benchmark`'s Python API, and writes OUT/sweep.md (one table), OUT/sweep.json and
OUT/sweep.png (each metric against seconds per face: quality vs time). Each preset's full benchmark, with its
restored faces, stays in OUT/<preset>/.

    LD_PRELOAD=libtcmalloc_minimal.so.4 python scripts/steps_sweep.py --model artfr --steps 1,2,4,8,16 \
        --compare baseline --compare daefr --data data/facemend-test-128 -o reports/artfr-sweep [--limit 200]

`--model` is a registered model or a weights folder; `--knobs` adds knobs to every sweep row (e.g.
`temperature=1,seed=0` for artfr, `noise_scale=1,seed=0` for idm). `--compare` (repeatable) takes any spec, knobs
included (`artfr:steps=8,temperature=1`); one whose model is neither registered nor an existing folder is left out
and named under the table (e.g. DAEFR before it has landed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facemend.errors import FacemendError
from facemend.methods.registry import MODELS, ModelSpec, is_weights_folder
from facemend.metrics.report import LABELS, arrow
from facemend.pipelines.benchmark import LQ_INPUT, presets_markdown, run_benchmark

PRESETS = ("medium", "heavy")
KEYS = ("psnr_y", "ssim_y", "idd", "niqe", "fd_dlib", "pd_mnv2")
COLUMNS = (*KEYS, "code_acc", "s_per_face")
PLOTTED = ("fd_dlib", "niqe", "idd", "psnr_y")


def sweep_specs(model: str, steps: list[int], knobs: str) -> dict[str, int]:
    """Benchmark spec → step count, in sweep order."""
    extra = f",{knobs}" if knobs else ""
    return {f"{model}:steps={n}{extra}": n for n in steps}


def available(spec: str) -> bool:
    name = ModelSpec.parse(spec).name
    return Path(name).is_dir() if is_weights_folder(name) else name in MODELS


def sweep_markdown(results: dict[str, dict], model: str, specs: dict[str, int], compare: list[str], missing) -> str:
    rows = [(spec, (model, str(n))) for spec, n in specs.items()] + [(spec, (spec, "–")) for spec in compare]
    first = next(iter(results.values()))
    lines = [
        f"# Steps sweep of {model} on facemend-test",
        "",
        f"{first['faces']} faces per preset. {first['timing']}.",
        "",
        *presets_markdown(results, rows, ("model", "steps"), COLUMNS),
    ]
    if missing:
        lines += ["", "Left out (not trained or not landed yet): " + ", ".join(missing)]
    return "\n".join(lines) + "\n"


def sweep_plot(results: dict[str, dict], model: str, specs: dict[str, int], compare: list[str], path: Path) -> None:
    """One panel per metric against seconds per face: a line per preset through the sweep (labelled by steps),
    the comparison rows as single points and the LQ input as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PLOTTED), figsize=(4.5 * len(PLOTTED), 4), squeeze=False)
    for axis, key in zip(axes[0], PLOTTED, strict=True):
        for index, (preset, result) in enumerate(results.items()):
            colour = f"C{index}"
            rows = result["models"]
            xs = [rows[spec]["s_per_face"] for spec in specs]
            ys = [rows[spec].get(key) for spec in specs]
            axis.plot(xs, ys, "o-", color=colour, label=f"{model} ({preset})")
            for x, y, n in zip(xs, ys, specs.values(), strict=True):
                axis.annotate(str(n), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
            for marker, spec in zip("s^vD", compare, strict=False):
                axis.plot(
                    rows[spec]["s_per_face"], rows[spec].get(key), marker, color=colour, label=f"{spec} ({preset})"
                )
            axis.axhline(rows[LQ_INPUT].get(key), color=colour, linestyle="--", linewidth=0.8)
        axis.set_xscale("log")
        axis.set_xlabel("seconds per face")
        axis.set_ylabel(f"{LABELS[key]} {arrow(key)}")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"{model}: quality vs time (labels: steps; dashed: LQ input)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registered model or weights folder with a `steps` knob")
    parser.add_argument("--steps", default="1,2,4,8,16", help="comma-separated step counts")
    parser.add_argument("--knobs", default="", help="knobs added to every sweep row, e.g. seed=1")
    parser.add_argument(
        "--compare", action="append", default=[], metavar="SPEC", help="a model spec shown beside it (repeatable)"
    )
    parser.add_argument("--data", type=Path, required=True, help="facemend-test: holds medium/ and heavy/")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated facemend-test presets")
    parser.add_argument("--limit", type=int, help="at most this many faces per preset (spread evenly)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    try:
        steps = [int(n) for n in args.steps.split(",")]
    except ValueError as error:
        raise SystemExit(f"error: --steps: {error}") from None
    specs = sweep_specs(args.model, steps, args.knobs)
    wanted = [spec.strip() for spec in args.compare if spec.strip()]
    compare = [name for name in wanted if available(name)]
    missing = [name for name in wanted if name not in compare]
    results = {}
    try:
        for preset in args.presets.split(","):
            results[preset] = run_benchmark(
                args.data / preset, [*specs, *compare], args.out / preset, args.batch_size, KEYS, args.limit
            )
    except FacemendError as error:
        raise SystemExit(f"error: {error}") from None
    (args.out / "sweep.json").write_text(json.dumps({"specs": specs, "results": results}, indent=1) + "\n")
    table = sweep_markdown(results, args.model, specs, compare, missing)
    (args.out / "sweep.md").write_text(table)
    sweep_plot(results, args.model, specs, compare, args.out / "sweep.png")
    print(table)


if __name__ == "__main__":
    main()

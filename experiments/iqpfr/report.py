"""The IQPFR table of issue 7, in one command. It trains nothing: it benchmarks trained weights folders on
facemend-test's `medium` and `heavy` presets with `facemend benchmark`'s Python API and writes one markdown
table, OUT/iqpfr.md (each preset's full benchmark stays in OUT/<preset>/).

    LD_PRELOAD=libtcmalloc_minimal.so.4 python experiments/iqpfr/report.py --data data/facemend-test-128 \
        -o reports/iqpfr [--fidelity 0,1] [--limit 200]

Rows, per preset and fidelity w: the LQ input; the `quality` sweep of iqpfr (0.2, 0.4, 0.6, 0.8, 1.0), whose
no-reference scores should rise with it; then the comparison at the default quality (1.0): baseline,
baseline-q, daefr, daefr-q, iqpfr and iqpfr without the HQ+ codebook, daefr and iqpfr without their input blend
(`keep_input=0`: it would hide what the model changes); last, iqpfr at its defaults, blend included, for the
minimum bar (FD-dlib and IDD better than the LQ input). A row whose weights folder does not exist yet is left
out and named under the table. Columns: PSNR-Y, SSIM-Y, IDD, NIQE, BRISQUE, FD-dlib and seconds per
face (restoration only). A gain on the metric the quality prior is built from (iqpfr's config says which) does not
count alone: the other no-reference metric and FD-dlib are the ones no model here was trained against. Under
the table: whether each no-reference score improves at every step of the sweep, then each quality-conditioned
model against its unconditioned one (baseline-q − baseline, daefr-q − daefr), iqpfr against its ablation without
the HQ+ codebook and iqpfr at quality 1 against 0.2, face by face: mean paired difference of PSNR-Y, IDD, NIQE
and BRISQUE with its standard error.
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path

from facemend.methods.registry import resolve_model
from facemend.metrics.report import LABELS, paired_difference, read_per_face
from facemend.metrics.suite import HIGHER_IS_BETTER
from facemend.pipelines.benchmark import presets_markdown, run_benchmark, slug

PRESETS = ("medium", "heavy")
KEYS = ("psnr_y", "ssim_y", "idd", "niqe", "brisque", "fd_dlib")
COLUMNS = (*KEYS, "s_per_face")
SWEEP = (0.2, 0.4, 0.6, 0.8, 1.0)
# comparison row → (option, default weights folder or registered model, quality-conditioned, knobs); the committed
# fp16 snapshots where a model has no bundled weights (daefr-q's, 26 MB in fp16, stay in runs/)
MODELS = {
    "baseline": ("baseline", "baseline", False, ""),
    "baseline-q": ("baseline-q", "weights/baseline-q-tiny-fusion", True, ""),
    # daefr's and iqpfr's defaults blend the input back in, which would hide what the models change
    "daefr": ("daefr", "daefr", False, ",keep_input=0"),
    "daefr-q": ("daefr-q", "runs/daefr-q-tiny/fusion", True, ",keep_input=0"),
    "iqpfr": ("iqpfr", "iqpfr", True, ",keep_input=0"),
    "iqpfr without the HQ+ codebook": (
        "iqpfr-no-hqplus",
        "weights/iqpfr-tiny-ablation-no-hqplus-fusion",
        True,
        ",keep_input=0",
    ),
}
PAIRS = {  # row → the row it is compared with face by face: what the quality prior adds, what the HQ+ codebook adds
    "baseline-q": "baseline",
    "daefr-q": "daefr",
    "iqpfr": "iqpfr without the HQ+ codebook",
}
PAIRED = ("psnr_y", "idd", "niqe", "brisque")
Row = tuple[str, str, str, str]  # (section, label, quality, fidelity) as shown


def report_rows(models: dict[str, str], fidelities: list[float]) -> list[tuple[str, Row]]:
    """(benchmark spec, row) pairs: the sweep of `models["iqpfr"]`, then every comparison model (by its weights
    folder or registered name in `models`), at each fidelity. A spec may serve two rows (iqpfr at quality 1)."""
    rows: list[tuple[str, Row]] = []
    for w in fidelities:
        if "iqpfr" in models:
            for quality in SWEEP:
                spec = f"{models['iqpfr']}:fidelity={w:g},quality={quality:g}" + MODELS["iqpfr"][3]
                rows.append((spec, ("sweep", "iqpfr", f"{quality:g}", f"{w:g}")))
        for label, (_, _, conditioned, knobs) in MODELS.items():
            if label in models:
                spec = f"{models[label]}:fidelity={w:g}" + (",quality=1" if conditioned else "") + knobs
                rows.append((spec, ("comparison", label, quality_shown(label), f"{w:g}")))
    if "iqpfr" in models:  # the minimum bar: the model as users get it, its input blend included
        rows.append((models["iqpfr"], ("bar", "iqpfr (defaults)", "1", "1")))
    return rows


def quality_shown(label: str) -> str:
    """The quality column of comparison row `label`: 1 for a quality-conditioned model, else a dash."""
    return "1" if MODELS[label][2] else "–"


def spec_of(rows: list[tuple[str, Row]], section: str, label: str, quality: str, fidelity: str) -> str | None:
    return next((spec for spec, row in rows if row == (section, label, quality, fidelity)), None)


def paired_side(rows: list[tuple[str, Row]], label: str, fidelity: str) -> tuple[str, str | None]:
    """(name as shown, benchmark spec) of comparison row `label` at `fidelity`, one side of a face-by-face pair."""
    name = label + (" (q = 1)" if MODELS[label][2] else "")
    return name, spec_of(rows, "comparison", label, quality_shown(label), fidelity)


def paired_markdown(out: Path, rows: list[tuple[str, Row]]) -> list[str]:
    """Each quality-conditioned model against its unconditioned one, iqpfr against its ablation without the HQ+
    codebook and iqpfr at quality 1 against 0.2, face by face on the same faces (mean difference ± standard error;
    faces on which the first is better)."""
    lines = [
        "",
        "Face by face (first − second: mean ± standard error; faces on which the first is better):",
        "",
        "| preset | w | first | second | " + " | ".join(f"Δ {LABELS[key]}" for key in PAIRED) + " |",
        "|---|---|---|---|" + "---:|" * len(PAIRED),
    ]
    fidelities = list(dict.fromkeys(row[3] for _, row in rows))
    for preset in PRESETS:
        for w in fidelities:
            pairs = [(*paired_side(rows, first, w), *paired_side(rows, second, w)) for first, second in PAIRS.items()]
            pairs.append(
                (
                    "iqpfr, q = 1",
                    spec_of(rows, "sweep", "iqpfr", "1", w),
                    "iqpfr, q = 0.2",
                    spec_of(rows, "sweep", "iqpfr", "0.2", w),
                )
            )
            for first, first_spec, second, second_spec in pairs:
                if first_spec is None or second_spec is None:
                    continue
                faces = read_per_face(out / preset / slug(first_spec))
                base = read_per_face(out / preset / slug(second_spec))
                cells = " | ".join(paired_difference(faces, base, key) for key in PAIRED)
                lines.append(f"| {preset} | {w} | {first} | {second} | {cells} |")
    return lines


def sweep_markdown(results: dict[str, dict], rows: list[tuple[str, Row]]) -> list[str]:
    """Whether each no-reference score improves at every step of the quality sweep, per preset and fidelity."""
    lines = ["", "The quality sweep, step by step (0.2 → 1.0):", ""]
    for preset, result in results.items():
        for w in dict.fromkeys(row[3] for _, row in rows):
            specs = [spec_of(rows, "sweep", "iqpfr", f"{q:g}", w) for q in SWEEP]
            if None in specs:
                continue
            cells = []
            for key in ("niqe", "brisque"):
                values = [result["models"][spec][key] for spec in specs]
                steps = [b - a for a, b in pairwise(values)]
                improving = sum((d > 0) if key in HIGHER_IS_BETTER else (d < 0) for d in steps)
                cells.append(
                    f"{LABELS[key]} improves at {improving} of {len(steps)} steps ({values[0]:.3f} → {values[-1]:.3f})"
                )
            lines.append(f"- {preset}, w = {w}: " + "; ".join(cells))
    return lines


def prior_metric(model: str) -> str:
    """The metric of the quality prior that `model` (a quality-conditioned weights folder or registered model) was
    trained with."""
    restorer, _ = resolve_model(model)
    return restorer.model.config.quality_conditioning.prior.metric


def report_markdown(
    results: dict[str, dict], rows: list[tuple[str, Row]], missing: dict[str, str], prior: str = "niqe"
) -> str:
    """One table: per preset, the LQ input, then each row (sweep rows, then comparison rows); `prior` is the
    metric the quality prior is built from."""
    other = "brisque" if prior == "niqe" else "niqe"
    lines = [
        "# IQPFR on facemend-test",
        "",
        f"The quality prior is built from {LABELS[prior]} (src/facemend/quality/prior.py): the metric iqpfr, "
        f"baseline-q and daefr-q trained against; {LABELS[other]} and FD-dlib are not.",
        "",
        *presets_markdown(results, rows, ("rows", "model", "quality", "w"), COLUMNS),
    ]
    if missing:
        lines += ["", "Not trained yet (left out): " + "; ".join(f"{row} ({where})" for row, where in missing.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="facemend-test: holds medium/ and heavy/")
    parser.add_argument("-o", "--out", type=Path, required=True)
    for option, default, _, _ in MODELS.values():
        parser.add_argument(f"--{option}", default=default, help=f"weights folder or model name (default: {default})")
    parser.add_argument("--fidelity", default="0,1", help="comma-separated fidelities w to restore at")
    parser.add_argument("--limit", type=int, help="at most this many faces per preset (spread evenly)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    chosen = {label: getattr(args, option.replace("-", "_")) for label, (option, _, _, _) in MODELS.items()}
    models = {label: where for label, where in chosen.items() if "/" not in where or Path(where).is_dir()}
    missing = {label: where for label, where in chosen.items() if label not in models}
    rows = report_rows(models, [float(w) for w in args.fidelity.split(",")])
    specs = list(dict.fromkeys(spec for spec, _ in rows))
    results = {}
    for preset in PRESETS:
        results[preset] = run_benchmark(args.data / preset, specs, args.out / preset, args.batch_size, KEYS, args.limit)
    (args.out / "iqpfr.json").write_text(json.dumps({"rows": rows, "missing": missing, "results": results}, indent=1))
    # the prior's metric as iqpfr has it, else as the first quality-conditioned row present has it
    source = next((label for label in ("iqpfr", *MODELS) if label in models and MODELS[label][2]), None)
    table = report_markdown(results, rows, missing, prior_metric(models[source]) if source else "niqe")
    table += "\n".join([*sweep_markdown(results, rows), *paired_markdown(args.out, rows)]) + "\n"
    (args.out / "iqpfr.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

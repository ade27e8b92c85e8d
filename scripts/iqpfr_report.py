"""The IQPFR table of issue 7, in one command. It trains nothing: it benchmarks trained weights folders on
facemend-test's `medium` and `heavy` presets with `facemend benchmark`'s Python API and writes one markdown
table, OUT/iqpfr.md (each preset's full benchmark stays in OUT/<preset>/).

    LD_PRELOAD=libtcmalloc_minimal.so.4 python scripts/iqpfr_report.py --data data/facemend-test-128 \
        -o reports/iqpfr [--fidelity 0,1] [--limit 200]

Rows, per preset and fidelity w: the LQ input; the `quality` sweep of iqpfr (0.2, 0.4, 0.6, 0.8, 1.0), whose
no-reference scores should rise with it; then the comparison at the default quality (1.0): baseline,
baseline-q, daefr, daefr-q, iqpfr and iqpfr without the HQ+ codebook. A row whose weights folder does not exist
yet is left out and named under the table. Columns: PSNR-Y, SSIM-Y, IDD, NIQE, BRISQUE, FD-dlib and seconds per
face (restoration only). A gain on the metric the quality prior is built from (NIQE by default; iqpfr's
config.json says) does not count alone: the other no-reference metric and FD-dlib are the ones no model here
was trained against.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facemend.metrics.report import LABELS
from facemend.pipelines.benchmark import presets_markdown, run_benchmark

PRESETS = ("medium", "heavy")
KEYS = ("psnr_y", "ssim_y", "idd", "niqe", "brisque", "fd_dlib")
COLUMNS = (*KEYS, "s_per_face")
SWEEP = (0.2, 0.4, 0.6, 0.8, 1.0)
MODELS = {  # comparison row → (option, default weights folder or registered model, quality-conditioned)
    "baseline": ("baseline", "baseline", False),
    "baseline-q": ("baseline-q", "runs/baseline-q-tiny/fusion", True),
    "daefr": ("daefr", "runs/daefr-tiny/fusion", False),
    "daefr-q": ("daefr-q", "runs/daefr-q-tiny/fusion", True),
    "iqpfr": ("iqpfr", "runs/iqpfr-tiny/fusion", True),
    "iqpfr without the HQ+ codebook": ("iqpfr-no-hqplus", "runs/iqpfr-tiny-ablation-no-hqplus/fusion", True),
}
Row = tuple[str, str, str, str]  # (section, label, quality, fidelity) as shown


def report_rows(models: dict[str, str], fidelities: list[float]) -> list[tuple[str, Row]]:
    """(benchmark spec, row) pairs: the sweep of `models["iqpfr"]`, then every comparison model (by its weights
    folder or registered name in `models`), at each fidelity. A spec may serve two rows (iqpfr at quality 1)."""
    rows: list[tuple[str, Row]] = []
    for w in fidelities:
        if "iqpfr" in models:
            for quality in SWEEP:
                spec = f"{models['iqpfr']}:fidelity={w:g},quality={quality:g}"
                rows.append((spec, ("sweep", "iqpfr", f"{quality:g}", f"{w:g}")))
        for label, (_, _, conditioned) in MODELS.items():
            if label in models:
                spec = f"{models[label]}:fidelity={w:g}" + (",quality=1" if conditioned else "")
                rows.append((spec, ("comparison", label, "1" if conditioned else "–", f"{w:g}")))
    return rows


def prior_metric(folder: str) -> str:
    """The metric of the quality prior a weights folder's model was trained with (NIQE when it does not say)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return "niqe"
    return json.loads(path.read_text())["config"]["quality_conditioning"]["prior"]["metric"]


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
    for option, default, _ in MODELS.values():
        parser.add_argument(f"--{option}", default=default, help=f"weights folder or model name (default: {default})")
    parser.add_argument("--fidelity", default="0,1", help="comma-separated fidelities w to restore at")
    parser.add_argument("--limit", type=int, help="at most this many faces per preset (spread evenly)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    chosen = {label: getattr(args, option.replace("-", "_")) for label, (option, _, _) in MODELS.items()}
    models = {label: where for label, where in chosen.items() if "/" not in where or Path(where).is_dir()}
    missing = {label: where for label, where in chosen.items() if label not in models}
    rows = report_rows(models, [float(w) for w in args.fidelity.split(",")])
    specs = list(dict.fromkeys(spec for spec, _ in rows))
    results = {}
    for preset in PRESETS:
        results[preset] = run_benchmark(args.data / preset, specs, args.out / preset, args.batch_size, KEYS, args.limit)
    (args.out / "iqpfr.json").write_text(json.dumps({"rows": rows, "missing": missing, "results": results}, indent=1))
    table = report_markdown(results, rows, missing, prior_metric(models.get("iqpfr", "")))
    (args.out / "iqpfr.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

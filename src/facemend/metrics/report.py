"""Summaries of `Measurements`: means with 95% bootstrap intervals, missing counts, and the JSON / CSV /
markdown files of `facemend eval` (docs/design.md, Contracts)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facemend.data.io import write_bytes_atomic
from facemend.metrics.suite import (
    HIGHER_IS_BETTER,
    SET_KEYS,
    TRAINED_AGAINST,
    FacePair,
    Measurements,
    MetricSuite,
    default_keys,
)

BOOTSTRAP_RESAMPLES = 1000
SET_BOOTSTRAP_RESAMPLES = 200  # each resample recomputes a Fréchet distance
BOOTSTRAP_SEED = 0
LABELS = {
    "psnr_y": "PSNR-Y",
    "psnr_rgb": "PSNR-RGB",
    "ssim_y": "SSIM-Y",
    "ssim_rgb": "SSIM-RGB",
    "idd": "IDD",
    "lmd": "LMD",
    "pd_mnv2": "PD-MNv2",
    "fd_mnv2": "FD-MNv2",
    "fd_dlib": "FD-dlib",
    "ids_sface": "IDS-SFace",
    "niqe": "NIQE",
    "brisque": "BRISQUE",
    "code_acc": "code acc.",
    "s_per_face": "s/face",
}


def bootstrap_interval(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED):
    """95% percentile-bootstrap interval of the mean of the finite `values` (None if fewer than 2)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    return _interval(values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1))


def set_bootstrap_interval(measurements: Measurements, key: str, resamples: int = SET_BOOTSTRAP_RESAMPLES):
    """95% interval of a set metric, resampling the image pairs jointly.

    A resample repeats faces, which inflates a Fréchet distance, so the percentile interval is shifted back by
    the resamples' mean excess over the full-set value (bias-corrected percentile bootstrap)."""
    n = len(measurements.stems)
    value = measurements.set_value(key)
    if n < 2 or not np.isfinite(value):
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    values = np.array([measurements.set_value(key, rng.integers(0, n, n)) for _ in range(resamples)])
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return None
    low, high = _interval(values, shift=value - values.mean())
    return [max(low, 0.0), high]  # a distance stays ≥ 0


def _interval(estimates: np.ndarray, shift: float = 0.0) -> list[float]:
    """The central 95% of bootstrap `estimates`, moved by `shift`."""
    low, high = np.percentile(estimates, [2.5, 97.5]) + shift
    return [float(low), float(high)]


def _measured_keys(measurements: Measurements) -> list[str]:
    keys = [*measurements.per_image, *measurements.set_features]
    return [k for k in LABELS if k in keys]


def means(measurements: Measurements) -> dict[str, float | None]:
    """Each measured metric over the set: the mean of the per-image values found, or the set metric itself."""
    mean: dict[str, float | None] = {}
    for key in _measured_keys(measurements):
        if key in SET_KEYS:
            mean[key] = _number(measurements.set_value(key))
        else:
            finite = measurements.per_image[key][np.isfinite(measurements.per_image[key])]
            mean[key] = float(finite.mean()) if len(finite) else None
    return mean


def summarize(measurements: Measurements) -> dict:
    """The contract's `metrics.json` object: mean, ci95, missing, images (plus the image count)."""
    mean, ci95, missing = means(measurements), {}, {}
    for key in _measured_keys(measurements):
        if key in SET_KEYS:
            ci95[key] = set_bootstrap_interval(measurements, key)
        else:
            ci95[key] = bootstrap_interval(measurements.per_image[key])
        missing[key] = measurements.missing(key)
    images = {
        stem: {key: _number(values[i]) for key, values in measurements.per_image.items()}
        for i, stem in enumerate(measurements.stems)
    }
    return {"count": len(measurements.stems), "mean": mean, "ci95": ci95, "missing": missing, "images": images}


def summarize_faces(
    predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None = None, keys: Sequence[str] | None = None
) -> dict:
    """Metrics of aligned H×W×3 uint8 RGB faces (against `targets`, same sizes, when given) in the `metrics.json`
    layout; stems are the faces' positions ("0", "1", …)."""
    if targets is not None and len(targets) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets")
    suite = MetricSuite(keys or default_keys(targets is not None))
    pairs = (FacePair(str(i), face, targets[i] if targets is not None else None) for i, face in enumerate(predictions))
    return summarize(suite.measure(pairs))


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def arrow(key: str) -> str:
    return "↑" if key in HIGHER_IS_BETTER or key == "code_acc" else "↓"


TRAINED_AGAINST_MARK = "†"
TRAINED_AGAINST_NOTE = (
    f"{TRAINED_AGAINST_MARK} trained against: a model's loss uses this metric's network (perceptual: MobileNetV2; "
    "identity: SFace); judge identity by IDD, FD-dlib and LMD, which no model sees."
)


def heading(key: str) -> str:
    """A metric's column heading: its label, a † where models are trained against it, and its arrow."""
    mark = TRAINED_AGAINST_MARK if key in TRAINED_AGAINST else ""
    return f"{LABELS[key]}{mark} {arrow(key)}"


def trained_against_note(keys) -> list[str]:
    """The footnote lines a table needs when it shows a trained-against metric."""
    return ["", TRAINED_AGAINST_NOTE] if set(keys) & TRAINED_AGAINST else []


def format_value(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key.startswith("psnr"):
        return f"{value:.2f}"
    if key.startswith("ssim") or key in {"idd", "lmd", "pd_mnv2", "code_acc"}:
        return f"{value:.4f}"
    if key == "s_per_face":
        return f"{value:.3f}"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def summary_markdown(summary: dict, title: str) -> str:
    lines = [f"# {title}", "", f"{summary['count']} faces; 95% bootstrap intervals of the mean.", ""]
    lines += ["| metric | mean | 95% interval | missing |", "|---|---:|---:|---:|"]
    for key, value in summary["mean"].items():
        interval = summary["ci95"][key]
        shown = f"{format_value(key, interval[0])} – {format_value(key, interval[1])}" if interval else "–"
        row = [heading(key), format_value(key, value), shown, str(summary["missing"][key])]
        lines.append("| " + " | ".join(row) + " |")
    lines += trained_against_note(summary["mean"])
    return "\n".join(lines) + "\n"


def summary_csv(summary: dict) -> str:
    keys = list(next(iter(summary["images"].values()), {}))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["stem", *keys])
    for stem, values in summary["images"].items():
        writer.writerow([stem, *("" if values[k] is None else repr(values[k]) for k in keys)])
    return buffer.getvalue()


def read_per_face(folder: Path) -> dict[str, dict[str, float | None]]:
    """The per-face metrics `write_summary` left in `folder` (its metrics.csv): stem → metric → value (None where
    the metric had none)."""
    with (folder / "metrics.csv").open(newline="", encoding="utf-8") as file:
        rows = csv.DictReader(file)
        return {row.pop("stem"): {k: float(v) if v else None for k, v in row.items()} for row in rows}


def paired_difference(row: dict[str, dict], base: dict[str, dict], key: str) -> str:
    """`row` against `base` on the faces both measured with `key`: the mean difference ± its standard error, and
    on how many faces `row` is better, e.g. `-0.1000 ± 0.0577 (2/3)`."""
    diffs = [
        row[stem][key] - base[stem][key]
        for stem in base
        if stem in row and row[stem][key] is not None and base[stem][key] is not None
    ]
    if len(diffs) < 2:
        return "–"
    mean = sum(diffs) / len(diffs)
    error = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
    better = sum((d > 0) if key in HIGHER_IS_BETTER else (d < 0) for d in diffs)
    return f"{mean:+.4f} ± {error:.4f} ({better}/{len(diffs)})"


def write_summary(summary: dict, out: Path, title: str) -> list[Path]:
    """`metrics.json`, `metrics.csv`, `metrics.md` in `out`, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        out / "metrics.json": json.dumps(summary, indent=1),
        out / "metrics.csv": summary_csv(summary),
        out / "metrics.md": summary_markdown(summary, title),
    }
    for path, text in files.items():
        write_bytes_atomic(path, text.encode())
    return list(files)

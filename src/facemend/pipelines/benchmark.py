"""`facemend benchmark`: restore a folder of aligned LQ faces with each model and compare them in one table.

`--data DIR` is either a pair folder (`DIR/lq`, `DIR/hq`: e.g. a facemend-test preset) for full-reference and
no-reference metrics, or a folder of LQ faces only (`DIR/lq` alone, or images directly in `DIR`) for the
no-reference ones. The rows `lq-input` (the LQ faces measured as they are) and `classical` are always there.

`s_per_face` is the restoration alone (resizing to the model's face size, the network, resizing back) per face,
batched, excluding model loading, file reading and writing.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facemend.data.io import read_image, write_bytes_atomic, write_image
from facemend.errors import FacemendError
from facemend.methods.registry import resolve_model
from facemend.metrics.report import LABELS, arrow, format_value, heading, trained_against_note, write_summary
from facemend.metrics.suite import KEYS, NO_REFERENCE_KEYS, MetricSuite, check_keys, default_keys
from facemend.pipelines.evaluate import faces_in, match_stems, measure_faces, spread
from facemend.pipelines.photo import FaceOptions, PhotoPipeline
from facemend.precision import resolve_precision

LQ_INPUT = "lq-input"
ALWAYS = (LQ_INPUT, "classical")
EXTRA_KEYS = ("code_acc", "s_per_face")


@dataclass(frozen=True)
class BenchmarkData:
    root: Path
    stems: list[str]
    lq: dict[str, Path]
    hq: dict[str, Path] | None


def benchmark_data(root: str | Path, limit: int | None = None, warn: Callable[[str], None] = print) -> BenchmarkData:
    """The LQ (and HQ) faces of `root`; with `limit`, that many spread evenly over the sorted stems."""
    root = Path(root)
    lq_dir = root / "lq" if (root / "lq").is_dir() else root
    lq = faces_in(lq_dir)
    hq = faces_in(root / "hq") if (root / "hq").is_dir() else None
    stems = match_stems(lq, hq, allow_partial=False, warn=warn) if hq is not None else sorted(lq)
    if limit is not None:
        if limit < 1:
            raise FacemendError(f"limit must be >= 1, got {limit}")
        stems = spread(stems, limit)
    return BenchmarkData(root, stems, lq, hq)


def model_rows(specs: Sequence[str]) -> list[str]:
    """`lq-input`, `classical`, then the given specs in order, without repeats."""
    rows: list[str] = []
    for spec in [*ALWAYS, *(s.strip() for s in specs)]:
        if spec and spec not in rows:
            rows.append(spec)
    return rows


def slug(spec: str) -> str:
    """A folder name for a spec: `artfr:steps=8` → `artfr_steps-8`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.replace(":", "_").replace(",", "_"))


def restore_set(
    spec: str, data: BenchmarkData, out: Path, batch_size: int, progress: bool, precision: str = "auto"
) -> tuple[float, float | None]:
    """Restore every LQ face with `spec` into `out`; returns (seconds per face, mean code accuracy or None)."""
    restorer, knobs = resolve_model(spec)
    # strength 1: the model's own output is what is compared, not the damage-dependent share of it
    pipeline = PhotoPipeline(restorer, knobs, FaceOptions(aligned=True, strength=1.0), batch_size, precision)
    seconds = 0.0
    accuracies: list[float] | None = []
    bar = tqdm(total=len(data.stems), desc=spec, unit="face", disable=not progress, dynamic_ncols=True)
    with bar:
        for start in range(0, len(data.stems), batch_size):
            stems = data.stems[start : start + batch_size]
            photos = [read_image(data.lq[stem]) for stem in stems]
            began = time.perf_counter()
            jobs = [pipeline.prepare(photo) for photo in photos]
            for job, restored in zip(jobs, pipeline.restore_crops([job.crops[0] for job in jobs]), strict=True):
                job.restored = [restored]
            outputs = [pipeline.finish(job) for job in jobs]
            seconds += time.perf_counter() - began
            for stem, output in zip(stems, outputs, strict=True):
                write_image(out / f"{stem}.png", output)
            if data.hq is not None and accuracies is not None:  # None once the model says it has no codebook
                accuracy = _code_accuracy(pipeline, jobs, [data.hq[stem] for stem in stems])
                accuracies = None if accuracy is None else accuracies + accuracy
            bar.update(len(stems))
    return seconds / len(data.stems), (float(np.mean(accuracies)) if accuracies else None)


def _code_accuracy(pipeline: PhotoPipeline, jobs, targets: list[Path]) -> list[float] | None:
    hq_jobs = [pipeline.prepare(read_image(path)) for path in targets]
    faces = torch.from_numpy(np.stack([job.crops[0] for job in jobs])).permute(0, 3, 1, 2)
    hq = torch.from_numpy(np.stack([job.crops[0] for job in hq_jobs])).permute(0, 3, 1, 2)
    with torch.inference_mode():
        accuracy = pipeline.restorer.code_accuracy(faces, hq, **pipeline.knobs)
    return None if accuracy is None else accuracy.double().tolist()


def run_benchmark(
    data_dir: str | Path,
    specs: Sequence[str],
    out: str | Path,
    batch_size: int = 8,
    keys: Sequence[str] | None = None,
    limit: int | None = None,
    progress: bool = True,
    warn: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    precision: str = "auto",
) -> dict:
    """Run the benchmark and write `out/benchmark.{json,md,png}` plus each model's faces and metrics."""
    rows = model_rows(specs)
    for spec in rows[1:]:  # every spec is checked (and its weights loaded) before anything runs
        resolve_model(spec)
    data = benchmark_data(data_dir, limit, warn)
    reference = data.hq is not None
    keys = check_keys(keys or default_keys(reference))
    if not reference and set(keys) - set(NO_REFERENCE_KEYS):
        raise FacemendError(f"{data.root} has no hq/ folder: only {', '.join(NO_REFERENCE_KEYS)} apply")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FacemendError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    suite = MetricSuite(keys, batch_size=16)
    suite.load()
    result: dict = {
        "data": str(data_dir),
        "faces": len(data.stems),
        "reference": reference,
        "models": {},
        "ci95": {},
        "missing": {},
        "timing": f"s_per_face: restoration only, batch {batch_size}, {torch.get_num_threads()} torch threads, "
        f"{resolve_precision(precision)}, excluding model loading and file I/O",
    }
    for spec in rows:
        folder = out / slug(spec)
        staging = out / f".{slug(spec)}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "faces").mkdir(parents=True)
        try:
            if spec == LQ_INPUT:
                faces, seconds, accuracy = data.lq, None, None
            else:
                seconds, accuracy = restore_set(spec, data, staging / "faces", batch_size, progress, precision)
                faces = {stem: staging / "faces" / f"{stem}.png" for stem in data.stems}
            summary = measure_faces(data.stems, faces, data.hq, suite, progress, desc=f"eval {spec}")
            if spec == LQ_INPUT:
                shutil.rmtree(staging / "faces")
            write_summary(summary, staging, f"{spec} on {data_dir}")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        result["models"][spec] = {**summary["mean"], "code_acc": accuracy, "s_per_face": seconds}
        result["ci95"][spec] = summary["ci95"]
        result["missing"][spec] = summary["missing"]
    write_bytes_atomic(out / "benchmark.json", (json.dumps(result, indent=1) + "\n").encode())
    write_bytes_atomic(out / "benchmark.md", benchmark_markdown(result).encode())
    benchmark_plot(result, out / "benchmark.png")
    return result


def benchmark_markdown(result: dict) -> str:
    """A paper-style table: one row per model, the best value of each column in bold (`lq-input` excluded)."""
    rows = result["models"]
    columns = [k for k in (*KEYS, *EXTRA_KEYS) if any(row.get(k) is not None for row in rows.values())]
    best = {}
    for key in columns:
        values = {spec: row[key] for spec, row in rows.items() if spec != LQ_INPUT and row.get(key) is not None}
        if key != "s_per_face" and len(values) > 1:
            pick = max if arrow(key) == "↑" else min
            best[key] = pick(values.values())
    kind = "with ground truth" if result["reference"] else "no ground truth: no-reference metrics only"
    lines = [f"# Benchmark: {result['data']}", "", f"{result['faces']} faces ({kind}). {result['timing']}.", ""]
    lines.append("| model | " + " | ".join(heading(k) for k in columns) + " |")
    lines.append("|---|" + "---:|" * len(columns))
    for spec, row in rows.items():
        cells = []
        for key in columns:
            text = format_value(key, row.get(key))
            cells.append(f"**{text}**" if key in best and row.get(key) == best[key] else text)
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    lines += trained_against_note(columns)
    return "\n".join(lines) + "\n"


def presets_markdown(
    results: dict[str, dict],
    rows: Sequence[tuple[str, tuple[str, ...]]],
    headers: Sequence[str],
    columns: Sequence[str],
) -> list[str]:
    """The lines of one markdown table over several `run_benchmark` results (one per preset): for each preset the
    LQ input, then `rows`, each a benchmark spec and its cells under `headers` (shown ahead of the `columns`)."""
    metric_headers = " | ".join(heading(key) for key in columns)
    lines = [
        f"| preset | {' | '.join(headers)} | {metric_headers} |",
        "|---|" + "---|" * len(headers) + "---:|" * len(columns),
    ]
    lq_cells = ("LQ input", *("–" for _ in headers[1:]))
    for preset, result in results.items():
        models = result["models"]
        for spec, cells in [(LQ_INPUT, lq_cells), *rows]:
            values = " | ".join(format_value(key, models[spec].get(key)) for key in columns)
            lines.append(f"| {preset} | {' | '.join(cells)} | {values} |")
    return lines + trained_against_note(columns)


def benchmark_plot(result: dict, path: Path) -> None:
    """Scatter plots of the models: identity vs realism (with ground truth) and quality vs time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["models"]
    panels = [("idd", "fd_dlib"), ("s_per_face", "niqe")] if result["reference"] else [("niqe", "brisque")]
    panels = [(x, y) for x, y in panels if any(r.get(x) is not None and r.get(y) is not None for r in rows.values())]
    if not panels:
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for axis, (x, y) in zip(axes[0], panels, strict=True):
        for spec, row in rows.items():
            if row.get(x) is None or row.get(y) is None or (x == "s_per_face" and spec == LQ_INPUT):
                continue
            axis.scatter(row[x], row[y], s=30)
            axis.annotate(spec, (row[x], row[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        axis.set_xlabel(f"{LABELS[x]} {arrow(x)}")
        axis.set_ylabel(f"{LABELS[y]} {arrow(y)}")
        if x == "s_per_face":
            axis.set_xscale("log")
        axis.grid(alpha=0.3)
    figure.suptitle(f"{result['data']} ({result['faces']} faces)", fontsize=10)
    figure.tight_layout()
    staging = path.with_name(f".{path.name}.partial.png")
    figure.savefig(staging, dpi=120)
    plt.close(figure)
    staging.replace(path)

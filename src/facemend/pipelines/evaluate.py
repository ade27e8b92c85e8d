"""`facemend eval`: metrics of a folder of restored faces against ground truth, written as a report.

Files are matched by stem (`a.png` restores `a.jpg`). Nothing is written until every file has been read and
measured, so a bad file never leaves a partial report behind.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facemend.data.io import IMAGE_SUFFIXES, photo_from_array, read_image, write_image
from facemend.errors import FacemendError
from facemend.metrics.report import summarize, write_summary
from facemend.metrics.suite import NO_REFERENCE_KEYS, FacePair, MetricSuite, check_keys, default_keys

GRID_CELL = 256  # px: side of one face in the comparison grid
_SHOW_NAMES = 5


def faces_in(folder: str | Path) -> dict[str, Path]:
    """Images directly in `folder`, by stem; two files with one stem are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacemendError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        if path.stem in found:
            raise FacemendError(f"{folder}: two images named {path.stem} ({found[path.stem].name}, {path.name})")
        found[path.stem] = path
    if not found:
        raise FacemendError(f"{folder}: no images")
    return found


def match_stems(predictions: dict[str, Path], targets: dict[str, Path], allow_partial: bool, warn: Callable) -> list:
    """Stems present in both sets; a difference is an error unless `allow_partial`, then a warning."""
    only_predicted = sorted(predictions.keys() - targets.keys())
    only_target = sorted(targets.keys() - predictions.keys())
    common = sorted(predictions.keys() & targets.keys())
    if only_predicted or only_target:
        parts = [
            f"{len(names)} only in {where} ({_names(names)})"
            for names, where in ((only_predicted, "--pred"), (only_target, "--gt"))
            if names
        ]
        message = f"file sets differ: {'; '.join(parts)}"
        if not allow_partial:
            raise FacemendError(f"{message}; pass --allow-partial to evaluate the {len(common)} in both")
        if not common:
            raise FacemendError(f"{message}; no file is in both")
        warn(f"warning: {message}; evaluating the {len(common)} in both")
    return common


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOW_NAMES])
    return shown + (", …" if len(names) > _SHOW_NAMES else "")


def spread(items: Sequence[str], count: int) -> list[str]:
    """`count` of `items` spread evenly from the first to the last (all of them if there are fewer)."""
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int))]


def read_face(path: Path) -> np.ndarray:
    return read_image(path).to_uint8()


def evaluate(
    pred: str | Path,
    gt: str | Path | None = None,
    out: str | Path | None = None,
    lq: str | Path | None = None,
    grid: int = 0,
    keys: Sequence[str] | None = None,
    allow_partial: bool = False,
    batch_size: int = 16,
    suite: MetricSuite | None = None,
    progress: bool = True,
    warn: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> dict:
    """Measure the faces in `pred` (against `gt` when given, else no-reference metrics only) and return the
    `metrics.json` summary; with `out`, also write it with CSV, markdown and, for `grid` > 0, `grid.jpg`."""
    predictions = faces_in(pred)
    targets = faces_in(gt) if gt is not None else None
    keys = check_keys(keys or default_keys(targets is not None))
    if targets is None and set(keys) - set(NO_REFERENCE_KEYS):
        raise FacemendError(f"--gt is needed for {', '.join(k for k in keys if k not in NO_REFERENCE_KEYS)}")
    stems = match_stems(predictions, targets, allow_partial, warn) if targets is not None else sorted(predictions)
    columns = ([faces_in(lq)] if lq is not None else []) + [predictions] + ([targets] if targets else [])
    suite = suite or MetricSuite(keys, batch_size)
    summary = measure_faces(stems, predictions, targets, suite, progress)
    if out is not None:
        out = Path(out)
        grid_image = comparison_grid(stems, columns, grid) if grid > 0 else None
        write_summary(summary, out, f"facemend eval: {pred}" + (f" vs {gt}" if gt is not None else ""))
        if grid_image is not None:
            write_image(out / "grid.jpg", photo_from_array(grid_image))
    return summary


def measure_faces(
    stems: Sequence[str],
    predictions: dict[str, Path],
    targets: dict[str, Path] | None,
    suite: MetricSuite,
    progress: bool = True,
    desc: str = "eval",
) -> dict:
    """The `metrics.json` summary of the faces `stems` (files by stem), measured by `suite`."""
    suite.load()

    def pairs() -> Iterator[FacePair]:
        for stem in stems:
            target = targets[stem] if targets is not None else None
            yield FacePair(
                stem,
                read_face(predictions[stem]),
                read_face(target) if target is not None else None,
                str(target.resolve()) if target is not None else None,
            )

    with tqdm(total=len(stems), desc=desc, unit="face", disable=not progress, dynamic_ncols=True) as bar:
        return summarize(suite.measure(pairs(), progress=bar.update))


def comparison_grid(stems: Sequence[str], columns: Sequence[dict[str, Path]], rows: int) -> np.ndarray:
    """`rows` faces spread evenly over `stems`, one column per folder (e.g. LQ | prediction | GT), as uint8 RGB."""
    lines = []
    for stem in spread(stems, rows):
        cells = []
        for column in columns:
            if stem not in column:
                raise FacemendError(f"grid: no image named {stem} in {next(iter(column.values())).parent}")
            face = read_face(column[stem])
            cells.append(cv2.resize(face, (GRID_CELL, GRID_CELL), interpolation=cv2.INTER_AREA))
        lines.append(np.concatenate(cells, axis=1))
    return np.concatenate(lines, axis=0)

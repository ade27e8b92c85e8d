"""Restore many photo files into a folder: faces batched across photos, one progress bar, a summary."""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from facemend.data.io import read_image, write_image
from facemend.data.parallel import check_workers
from facemend.errors import FacemendError
from facemend.pipelines.photo import FaceCropper, PhotoJob, PhotoPipeline


@dataclass
class RunSummary:
    photos: int = 0  # photos written
    faces: int = 0  # faces restored
    no_face: int = 0  # photos without a restorable face (written unchanged, or skipped)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    faces_per_photo: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.photos} photos written, {self.faces} faces restored, {self.no_face} without a face, "
            f"{len(self.failures)} failed, {self.seconds:.1f} s"
        )


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Output names: each input's stem, made unique (`x`, `x_2`, …) when inputs share one."""
    taken: set[str] = set()
    stems = []
    for path in paths:
        stem, n = path.stem, 1
        while stem in taken:
            n += 1
            stem = f"{path.stem}_{n}"
        taken.add(stem)
        stems.append(stem)
    return stems


def refuse_overwriting_inputs(inputs: Sequence[Path], outputs: Sequence[Path]) -> None:
    """Raise a FacemendError when one of `outputs` is one of `inputs`."""
    sources = {path.resolve() for path in inputs}
    for output in outputs:
        if output.resolve() in sources:
            raise FacemendError(f"{output} would overwrite its own input: choose another output folder")


@dataclass
class _Pending:
    source: Path
    stem: str
    job: PhotoJob


def restore_files(
    pipeline: PhotoPipeline,
    paths: Sequence[Path],
    outdir: Path,
    save_faces: bool = False,
    skip_no_face: bool = False,
    report: Callable[[str], None] = print,
    progress: bool = True,
    workers: int = 1,
) -> RunSummary:
    """Restore every file in `paths` into `outdir/<stem>.png`; bad files are reported and skipped.

    Faces from consecutive photos are restored together once `pipeline.batch_size` of them are waiting. With
    `workers` > 1, that many processes read the next photos and find their faces while this one restores.
    """
    stems = output_stems(paths)
    refuse_overwriting_inputs(paths, [outdir / f"{stem}.png" for stem in stems])
    summary = RunSummary()
    started = time.perf_counter()
    pending: list[_Pending] = []

    def flush() -> None:
        crops = [crop for item in pending for crop in item.job.crops]
        restored = iter(pipeline.restore_crops(crops))
        for item in pending:
            item.job.restored = [next(restored) for _ in item.job.crops]
            _write(pipeline, item, outdir, save_faces, summary, report)
        pending.clear()

    found = 0
    bar = tqdm(total=len(paths), desc="restore", unit="photo", disable=not progress, dynamic_ncols=True)
    prepared = _prepared_photos(pipeline.cropper, paths, workers)
    for path, stem, outcome in zip(paths, stems, prepared, strict=True):
        job = _accept(pipeline, path, outcome, skip_no_face, summary, report)
        if job is not None:
            found += len(job.crops)
            pending.append(_Pending(path, stem, job))
            if sum(len(item.job.crops) for item in pending) >= pipeline.batch_size:
                flush()
        bar.set_postfix(faces=found, failed=len(summary.failures), refresh=False)
        bar.update()
    flush()
    bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


def read_and_prepare(path: Path, cropper: FaceCropper) -> PhotoJob | FacemendError:
    """The photo's faces, cropped, or the error that stopped it (returned: it crosses process boundaries)."""
    try:
        return cropper.prepare(read_image(path))
    except FacemendError as error:
        return error


def _prepared_photos(cropper: FaceCropper, paths: Sequence[Path], workers: int) -> Iterator[PhotoJob | FacemendError]:
    """`read_and_prepare` of every path, in order: here, or in `workers` processes that run at most two photos
    each ahead of the caller (so memory holds a few photos, however many there are)."""
    workers = min(check_workers(workers), len(paths))
    if workers <= 1:
        yield from (read_and_prepare(path, cropper) for path in paths)
        return
    # a fork server: forking a process that runs torch's thread pools can deadlock the child
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        ahead: deque[Future] = deque()
        for path in paths:
            ahead.append(pool.submit(read_and_prepare, path, cropper))
            if len(ahead) > 2 * workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def _accept(
    pipeline: PhotoPipeline,
    path: Path,
    outcome: PhotoJob | FacemendError,
    skip_no_face: bool,
    summary: RunSummary,
    report: Callable[[str], None],
) -> PhotoJob | None:
    """The prepared photo; None when it could not be read or is skipped (both reported)."""
    if isinstance(outcome, FacemendError):
        summary.failures.append((str(path), str(outcome)))
        report(f"error: {outcome}")
        return None
    job = outcome
    if job.too_small:
        minimum = pipeline.options.min_face_size
        report(f"warning: {path}: {job.too_small} face(s) smaller than {minimum} px left unrestored")
    if not job.crops:
        summary.no_face += 1
        report(f"warning: {path}: no face found, {'skipped' if skip_no_face else 'written unchanged'}")
        if skip_no_face:
            return None
    return job


def _write(
    pipeline: PhotoPipeline,
    item: _Pending,
    outdir: Path,
    save_faces: bool,
    summary: RunSummary,
    report: Callable[[str], None],
) -> None:
    job = item.job
    try:
        if save_faces:
            for k, (crop, restored) in enumerate(zip(job.crops, job.restored, strict=True)):
                write_image(outdir / "cropped_faces" / f"{item.stem}_{k:02d}.png", job.photo.with_rgb(crop))
                write_image(outdir / "restored_faces" / f"{item.stem}_{k:02d}.png", job.photo.with_rgb(restored))
        write_image(outdir / f"{item.stem}.png", pipeline.finish(job))
    except (OSError, FacemendError) as error:
        summary.failures.append((str(item.source), str(error)))
        report(f"error: {item.source}: cannot write output: {error}")
        return
    summary.photos += 1
    summary.faces += len(job.crops)
    summary.faces_per_photo[str(item.source)] = len(job.crops)
    if job.crops:
        report(f"{item.source}: {len(job.crops)} face(s)")

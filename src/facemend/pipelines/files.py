"""Restore many photo files into a folder: faces batched across photos, one progress bar, a summary."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from facemend.data.io import read_image, write_bytes_atomic, write_image
from facemend.data.parallel import check_workers
from facemend.errors import FacemendError
from facemend.pipelines.photo import FaceCropper, FaceOptions, PhotoJob, PhotoPipeline

WRITES_AHEAD = 2  # photos beyond a batch's worth pasted back and encoded by the writer thread while faces are restored


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
    name = StemNamer()
    return [name(path) for path in paths]


class StemNamer:
    """`output_stems` one input at a time, in the inputs' order (for inputs listed lazily)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def __call__(self, path: Path) -> str:
        stem, n = path.stem, 1
        while stem in self._taken:
            n += 1
            stem = f"{path.stem}_{n}"
        self._taken.add(stem)
        return stem


def refuse_overwriting_inputs(inputs: Sequence[Path], outputs: Sequence[Path]) -> None:
    """Raise a FacemendError when one of `outputs` is one of `inputs`."""
    sources = {path.resolve() for path in inputs}
    for output in outputs:
        if output.resolve() in sources:
            raise FacemendError(f"{output} would overwrite its own input: choose another output folder")


def refuse_writing_over_listed_inputs(sources: Sequence[str | Path], outdir: Path) -> None:
    """`refuse_overwriting_inputs` for inputs listed lazily from `sources` (files and folders, as `iter_images`
    lists them): an output `outdir/STEM.png` is an input exactly when some input is a `.png` file directly in
    `outdir` (whichever input takes that stem, its output lands there), so only `outdir` is looked at, and only
    when a source could list it."""
    if not outdir.is_dir():
        return
    folder = outdir.resolve()
    files = [Path(source).resolve() for source in sources if not Path(source).is_dir()]
    roots = [Path(source).resolve() for source in sources if Path(source).is_dir()]
    candidates = [path for path in files if path.parent == folder and path.suffix == ".png"]
    listing_roots = [root for root in roots if root == folder or root in folder.parents]
    if any(not any(part.startswith(".") for part in folder.relative_to(root).parts) for root in listing_roots):
        with os.scandir(folder) as listing:
            candidates += [
                folder / entry.name
                for entry in listing
                if entry.name.endswith(".png") and not entry.name.startswith(".") and entry.is_file()
            ]
    if candidates:
        raise FacemendError(f"{candidates[0]} would overwrite its own input: choose another output folder")


@dataclass
class _Pending:
    source: Path
    stem: str
    job: PhotoJob
    restored: list = field(default_factory=list)  # the restorations of the job's first crops, so far

    @property
    def waiting(self) -> list:
        """The crops not restored yet."""
        return self.job.crops[len(self.restored) :]


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

    Faces from consecutive photos are restored together in full batches of `pipeline.batch_size`: a photo whose
    faces straddle two batches waits for the second (only the last batch of the run is padded), and photos are
    written in order as their faces are done. A writer thread pastes the faces back and encodes each output
    (both release the GIL) while this thread goes on finding and restoring faces; outcomes are counted and
    reported here, in input order. With `workers` > 1, that many processes read the next photos and find their
    faces while this one restores.
    """
    stems = output_stems(paths)
    refuse_overwriting_inputs(paths, [outdir / f"{stem}.png" for stem in stems])
    summary = RunSummary()
    started = time.perf_counter()
    pending: deque[_Pending] = deque()
    writes: deque[tuple[_Pending, Future]] = deque()
    writer = ThreadPoolExecutor(1, thread_name_prefix="facemend-writer")

    def settle(keep: int = 0) -> None:
        """Count and report the writes done, oldest first, waiting while more than `keep` are in flight."""
        while writes and (len(writes) > keep or writes[0][1].done()):
            item, write = writes.popleft()
            _note_write(item, write, summary, report)

    def flush(last: bool = False) -> None:
        crops = [crop for item in pending for crop in item.waiting]
        count = len(crops) if last else len(crops) - len(crops) % pipeline.batch_size
        restored = iter(pipeline.restore_crops(crops[:count]))
        for item in pending:
            take = min(count, len(item.waiting))
            item.restored += [next(restored) for _ in range(take)]
            count -= take
        while pending and not pending[0].waiting:
            item = pending.popleft()
            item.job.restored = item.restored
            writes.append((item, writer.submit(write_photo, pipeline, item.job, outdir, item.stem, save_faces)))
            settle(pipeline.batch_size + WRITES_AHEAD)

    found = 0
    bar = tqdm(total=len(paths), desc="restore", unit="photo", disable=not progress, dynamic_ncols=True)
    prepared = _prepared_photos(pipeline.cropper, paths, workers)
    with writer:  # on the way out (an error included), the writes in flight finish: each is whole or absent
        for path, stem, outcome in zip(paths, stems, prepared, strict=True):
            job = _accept(pipeline, path, outcome, skip_no_face, summary, report)
            if job is not None:
                found += len(job.crops)
                pending.append(_Pending(path, stem, job))
                if sum(len(item.waiting) for item in pending) >= pipeline.batch_size:
                    flush()
            bar.set_postfix(faces=found, failed=len(summary.failures), refresh=False)
            bar.update()
        flush(last=True)
        settle()
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
        note_failure(summary, path, str(outcome), report)
        return None
    kept = note_prepared(summary, path, len(outcome.crops), outcome.too_small, pipeline.options, skip_no_face, report)
    return outcome if kept else None


def note_failure(summary: RunSummary, source: Path | str, message: str, report: Callable[[str], None]) -> None:
    """Count and report a photo that failed; `message` names the file."""
    summary.failures.append((str(source), message))
    report(f"error: {message}")


def note_prepared(
    summary: RunSummary,
    path: Path | str,
    faces: int,
    too_small: int,
    options: FaceOptions,
    skip_no_face: bool,
    report: Callable[[str], None],
) -> bool:
    """Count and report what finding a photo's faces gave (faces too small, no face); False when it is skipped."""
    if too_small:
        report(f"warning: {path}: {too_small} face(s) smaller than {options.min_face_size} px left unrestored")
    if not faces:
        summary.no_face += 1
        report(f"warning: {path}: no face found, {'skipped' if skip_no_face else 'written unchanged'}")
        return not skip_no_face
    return True


def note_written(summary: RunSummary, source: Path | str, faces: int, report: Callable[[str], None]) -> None:
    """Count and report a photo written with `faces` faces restored."""
    summary.photos += 1
    summary.faces += faces
    summary.faces_per_photo[str(source)] = faces
    if faces:
        report(f"{source}: {faces} face(s)")


def _note_write(item: _Pending, write: Future, summary: RunSummary, report: Callable[[str], None]) -> None:
    """Wait for the photo's write (`write_photo`) and count it as written or failed."""
    try:
        write.result()
    except (OSError, FacemendError) as error:
        note_failure(summary, item.source, f"{item.source}: cannot write output: {error}", report)
        return
    note_written(summary, item.source, len(item.job.crops), report)


def write_photo(pipeline: PhotoPipeline, job: PhotoJob, outdir: Path, stem: str, save_faces: bool) -> None:
    """Paste the restored faces back and write `outdir/<stem>.png` (with `save_faces`, also the face crops and
    their report), each file atomically; raises OSError or FacemendError."""
    if save_faces and job.crops:
        for k, (crop, restored) in enumerate(zip(job.crops, job.applied_faces(), strict=True)):
            write_image(outdir / "cropped_faces" / f"{stem}_{k:02d}.png", job.photo.with_rgb(crop))
            write_image(outdir / "restored_faces" / f"{stem}_{k:02d}.png", job.photo.with_rgb(restored))
        faces = [{"face": f"{stem}_{k:02d}", **face} for k, face in enumerate(job.face_reports())]
        report_json = (json.dumps(faces, indent=1) + "\n").encode()
        write_bytes_atomic(outdir / "restored_faces" / f"{stem}.json", report_json)
    write_image(outdir / f"{stem}.png", pipeline.finish(job))

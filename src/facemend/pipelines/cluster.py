"""Restore photo files on a Ray cluster (`facemend restore --engine ray`), resumably.

The inputs are listed lazily by one Ray task (`ListedPhotos`): folders are walked one at a time on a node that
sees them, output names are given in listing order (as the local path gives them), inputs the manifest has done
are left out, and rows stream on as they are found, so the driver never holds the list and the first photos
start at once. Ray Data streams them through two actor pools: finders read each photo on the node that processes it and
cut its aligned face crops (`FaceCropper`, as the local path does), restorers load the model once, restore the
faces of several photos per network batch, paste them back and write the outputs atomically (`write_photo`, as
the local path does). Only one small record per photo comes back to the driver, which appends it to
`OUT/manifest.jsonl` as it lands; a later run of the same command skips the inputs the manifest has done.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from facemend.data.io import IMAGE_SUFFIXES, iter_images
from facemend.data.video import VIDEO_SUFFIXES, is_video
from facemend.errors import FacemendError
from facemend.methods.registry import ModelSpec, load_restorer
from facemend.pipelines.files import (
    RunSummary,
    StemNamer,
    note_failure,
    note_prepared,
    note_written,
    read_and_prepare,
    refuse_writing_over_listed_inputs,
    write_photo,
)
from facemend.pipelines.photo import FaceCropper, FaceOptions, PhotoJob, PhotoPipeline
from facemend.runtime import with_runtime

MANIFEST = "manifest.jsonl"
CONNECT_TIMEOUT = 5.0  # seconds to reach a cluster's address before giving up
INSTALL_HINT = 'pip install "facemend[cluster]"'
DONE = ("restored", "no_face", "skipped")  # manifest statuses a re-run does not redo; "failed" is redone
LISTED_BLOCK_ROWS = 256  # inputs per block the listing task hands on


@dataclass(frozen=True)
class RestoreRecipe:
    """What a worker needs to build the driver's `PhotoPipeline`: names and values, no weights."""

    model: str  # a model name or a weights folder (absolute: workers have their own working folder)
    knobs: dict[str, float | int]
    options: FaceOptions
    face_size: int
    batch_size: int
    precision: str  # as resolved on the driver, so every node computes as the local path would there
    runtime: str = "torch"
    onnx: str | None = None
    threads: int = 0  # torch threads of the restoring actors: the driver's (fp32 kernels sum in thread-sized parts)

    @classmethod
    def of(cls, pipeline: PhotoPipeline, model: str, runtime: str = "torch", onnx: str | None = None) -> RestoreRecipe:
        """The recipe of `pipeline`, built from the spec `model` (its knobs are the pipeline's)."""
        name = ModelSpec.parse(model).name
        if Path(name).is_dir():
            name = str(Path(name).resolve())
        return cls(
            name,
            dict(pipeline.knobs),
            pipeline.options,
            pipeline.restorer.face_size,
            pipeline.batch_size,
            pipeline.precision,
            runtime,
            str(Path(onnx).resolve()) if onnx else None,
            torch.get_num_threads(),
        )

    def build(self) -> PhotoPipeline:
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        restorer = with_runtime(load_restorer(self.model), self.runtime, self.onnx, report=lambda _: None)
        return PhotoPipeline(restorer, self.knobs, self.options, self.batch_size, self.precision)

    def settings(self) -> dict[str, Any]:
        """What decides the outputs' bytes: a manifest written with other settings is not resumed."""
        return {**asdict(self), "options": asdict(self.options)}


@dataclass(frozen=True)
class ClusterOptions:
    """Where to run and how many actors of which size."""

    address: str | None = None  # None: a Ray instance on this machine; "auto", "HOST:PORT" or "ray://HOST:PORT"
    num_workers: int | None = None  # face finders (the costly stage); None: one per CPU of the cluster, less one
    restore_workers: int = 1  # restorers (each loads the model once)
    worker_cpus: float = 1.0  # CPUs each actor reserves (restorers run on CPUs: the pipeline has no GPU path yet)

    def __post_init__(self) -> None:
        for name in ("num_workers", "restore_workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FacemendError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.worker_cpus <= 0:
            raise FacemendError(f"--worker-cpus must be > 0, got {self.worker_cpus}")


def import_ray() -> Any:
    """The `ray` module, or a one-line FacemendError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise FacemendError(f"--engine ray needs Ray ({error.name} is missing): {INSTALL_HINT}") from None
    return ray


def connect(address: str | None) -> Any:
    """`ray`, connected to the cluster at `address` (None: a fresh local instance); fails within seconds, naming
    the address, when nothing answers there."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address not in (None, "auto", "local"):
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT).close()
        except ValueError:
            raise FacemendError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT") from None
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise FacemendError(f"cannot reach the Ray cluster at {address}: {reason}") from None
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
    except Exception as error:  # Ray raises ConnectionError, RuntimeError or its own types
        raise FacemendError(f"cannot connect to the Ray cluster at {address or 'a local instance'}: {error}") from None
    return ray


class Manifest:
    """`OUT/manifest.jsonl`: a header line with the run's settings, then one line per input as it lands (the
    last line of an input wins). Lines are flushed as written; a torn last line is ignored when read."""

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = path
        self.done: set[str] = set()
        if path.exists():
            header, records = _read_manifest(path)
            if header is not None and header.get("settings") != settings:
                differ = sorted(k for k in settings if header["settings"].get(k) != settings[k])
                raise FacemendError(
                    f"{path} was written by a run with other settings ({', '.join(differ)}): "
                    "restore into another folder, or delete the manifest to start over"
                )
            self.done = _done(records)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        if not path.stat().st_size:
            self.append({"facemend": "manifest", "settings": settings})

    def append(self, line: dict[str, Any]) -> None:
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        os.fsync(self._file.fileno())
        self._file.close()


def _read_manifest(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    header, records = None, []
    with path.open(encoding="utf-8") as file:
        for line in file:
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: its input is redone
            if isinstance(item, dict) and "settings" in item:
                header = item
            elif isinstance(item, dict) and "input" in item:
                records.append(item)
    return header, records


def _done(records: list[dict[str, Any]]) -> set[str]:
    latest = {record["input"]: record["status"] for record in records}
    return {name for name, status in latest.items() if status in DONE}


def listed_inputs(sources: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(input, output stem) of every photo and video `sources` list, lazily, in `list_images`' order: inputs as
    absolute paths (the manifest's names), stems as the local path gives them (videos take none: the cluster
    reports them, as it restores photos only)."""
    name = StemNamer()
    for path in iter_images(sources, suffixes=IMAGE_SUFFIXES + VIDEO_SUFFIXES):
        yield str(path.resolve()), "" if is_video(path) else name(path)


class ListedPhotos:
    """A Ray Data datasource of one read task that lists the inputs (`listed_inputs`) and leaves out those the
    manifest at `manifest` has done; rows `path`, `stem` in blocks of `LISTED_BLOCK_ROWS`. The task lists from
    the driver's working folder with the sources as given (relative ones too), so its order, and with it the
    output names, is the local path's exactly."""

    def __init__(self, sources: Sequence[str], manifest: str) -> None:
        self.sources, self.manifest, self.folder = list(sources), manifest, os.getcwd()

    def rows(self) -> Iterator[dict[str, list[str]]]:
        with contextlib.chdir(self.folder):
            yield from self._rows()

    def _rows(self) -> Iterator[dict[str, list[str]]]:
        manifest = Path(self.manifest)
        done = _done(_read_manifest(manifest)[1]) if manifest.exists() else set()
        block: dict[str, list[str]] = {"path": [], "stem": []}
        for path, stem in listed_inputs(self.sources):
            if path in done:
                continue
            block["path"].append(path)
            block["stem"].append(stem)
            if len(block["path"]) == LISTED_BLOCK_ROWS:
                yield block
                block = {"path": [], "stem": []}
        if block["path"]:
            yield block

    def datasource(self) -> Any:
        import pyarrow as pa
        from ray.data.block import BlockMetadata
        from ray.data.datasource import Datasource, ReadTask

        listed = self

        class _Listing(Datasource):
            def estimate_inmemory_data_size(self) -> None:
                return None

            def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None) -> list:
                def read() -> Iterator[Any]:
                    for block in listed.rows():
                        yield pa.table(block)

                metadata = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
                return [ReadTask(read, metadata)]

        return _Listing()


class FaceFinder:
    """Ray Data actor, stage 1: reads photos where it runs and cuts their aligned face crops."""

    def __init__(self, recipe: RestoreRecipe) -> None:
        self.cropper = FaceCropper(recipe.face_size, recipe.options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        jobs, seconds = [], []
        for path in batch["path"]:
            began = time.perf_counter()
            try:
                if is_video(Path(path)):
                    outcome: PhotoJob | FacemendError = FacemendError(
                        f"{path}: a video: the cluster restores photos (restore videos with --engine local)"
                    )
                else:
                    outcome = read_and_prepare(Path(path), self.cropper)
            except Exception as error:  # a detector crash on one photo must not stop the job
                outcome = FacemendError(f"{path}: cannot find faces ({type(error).__name__}: {error})")
            jobs.append(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
            seconds.append(time.perf_counter() - began)
        return {"path": list(batch["path"]), "stem": list(batch["stem"]), "job": jobs, "find_s": seconds}


class FaceRestorer:
    """Ray Data actor, stage 2: loads the model once; restores the faces of a batch of photos together, pastes
    them back and writes each photo atomically. Returns one manifest record per photo."""

    def __init__(self, recipe: RestoreRecipe, outdir: str, save_faces: bool, skip_no_face: bool) -> None:
        self.outdir, self.save_faces, self.skip_no_face = Path(outdir), save_faces, skip_no_face
        self.node = _node_name()
        self.pipeline: PhotoPipeline | None = None
        self.error: str | None = None
        try:
            self.pipeline = recipe.build()
        except Exception as error:  # reported per photo: one line in the manifest and the summary
            self.error = f"cannot load model {recipe.model!r} on {self.node}: {_one_line(error)}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        records = [self._record(path, stem, find_s) for path, stem, find_s in zip(*_columns(batch), strict=True)]
        outcomes = [pickle.loads(job) for job in batch["job"]]
        ready = [(r, o) for r, o in zip(records, outcomes, strict=True) if self._prepared(r, o)]
        began = time.perf_counter()
        try:
            self._restore([job for _, job in ready])
        except Exception as error:  # the network failed on this node: its photos fail, the job goes on
            for record, _ in ready:
                record["error"] = f"{record['input']}: cannot restore its faces on {self.node}: {_one_line(error)}"
            ready = []
        network_s = (time.perf_counter() - began) / max(1, sum(len(job.crops) for _, job in ready))
        for record, job in ready:
            began = time.perf_counter()
            self._write(record, job)
            record["restore_s"] = network_s * len(job.crops) + time.perf_counter() - began
        for record in records:
            record["seconds"] = record["find_s"] + record["restore_s"]
        return {key: [record[key] for record in records] for key in records[0]}

    def _restore(self, jobs: list[PhotoJob]) -> None:
        """Restore the faces of `jobs` together, `batch_size` at a time."""
        if jobs and self.pipeline is not None:
            restored = iter(self.pipeline.restore_crops([crop for job in jobs for crop in job.crops]))
            for job in jobs:
                job.restored = [next(restored) for _ in job.crops]

    def _record(self, path: str, stem: str, find_s: float) -> dict[str, Any]:
        return {
            "input": path,
            "output": None,
            "status": "failed",
            "found": False,
            "faces": 0,
            "too_small": 0,
            "seconds": 0.0,
            "find_s": float(find_s),
            "restore_s": 0.0,
            "error": None,
            "stem": stem,
            "node": self.node,
        }

    def _prepared(self, record: dict[str, Any], outcome: PhotoJob | FacemendError) -> bool:
        """Fill in what finding the faces gave; True when the photo is to be restored and written."""
        if isinstance(outcome, FacemendError):
            record["error"] = _one_line(outcome)
            return False
        record["found"], record["faces"], record["too_small"] = True, len(outcome.crops), outcome.too_small
        if not outcome.crops and self.skip_no_face:
            record["status"] = "skipped"
            return False
        if self.error is not None:
            record["error"] = f"{record['input']}: {self.error}"
            return False
        return True

    def _write(self, record: dict[str, Any], job: PhotoJob) -> None:
        assert self.pipeline is not None
        try:
            write_photo(self.pipeline, job, self.outdir, record["stem"], self.save_faces)
        except (OSError, FacemendError) as error:
            record["error"] = f"{record['input']}: cannot write output: {_one_line(error)}"
            return
        except Exception as error:  # pasting back failed on this photo
            record["error"] = f"{record['input']}: cannot finish on {self.node}: {type(error).__name__}: {error}"
            return
        record["status"] = "restored" if job.crops else "no_face"
        record["output"] = f"{record['stem']}.png"


def _node_name() -> str:
    """The host and Ray node this actor runs on (several nodes may share one host)."""
    try:
        import ray

        node = ray.get_runtime_context().get_node_id()[:8]
    except Exception:  # outside Ray (a direct call)
        node = "-"
    return f"{socket.gethostname()}/{node}"


def _columns(batch: dict[str, Any]) -> tuple[Sequence[str], Sequence[str], Sequence[float]]:
    return batch["path"], batch["stem"], batch["find_s"]


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def restore_files_on_ray(
    recipe: RestoreRecipe,
    sources: Sequence[str | Path],
    outdir: Path,
    cluster: ClusterOptions,
    save_faces: bool = False,
    skip_no_face: bool = False,
    report: Callable[[str], None] = print,
    progress: bool = True,
) -> RunSummary:
    """Restore every photo `sources` list (files, and folders walked lazily) into `outdir/<stem>.png` on a Ray
    cluster, as `restore_files` would (same names, same bytes, same summary); inputs done according to
    `outdir/manifest.jsonl` are skipped."""
    sources = [str(source) for source in sources]
    refuse_writing_over_listed_inputs(sources, outdir)
    settings = {**recipe.settings(), "save_faces": save_faces, "skip_no_face": skip_no_face}
    manifest = Manifest(outdir / MANIFEST, settings)
    summary = RunSummary()
    started = time.perf_counter()
    try:
        run = _Run(recipe, outdir.resolve(), cluster, save_faces, skip_no_face)
        seen = _run(run, ListedPhotos(sources, str(manifest.path.resolve())), manifest, summary, report, progress)
        listed = skipped = 0
        for path, _ in listed_inputs(sources):  # listed again: what was done before, and what got lost
            listed += 1
            if path in manifest.done:
                skipped += 1
            elif path not in seen:  # rows of a batch that failed on every retry: no manifest line, redone next run
                note_failure(summary, path, f"{path}: lost on the cluster (its batch failed); re-run to retry", report)
        if skipped:
            report(f"{skipped} of {listed} photos already done ({outdir / MANIFEST}): skipped")
    finally:
        manifest.close()
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass(frozen=True)
class _Run:
    recipe: RestoreRecipe
    outdir: Path  # absolute
    cluster: ClusterOptions
    save_faces: bool
    skip_no_face: bool


def _run(
    run: _Run,
    listing: ListedPhotos,
    manifest: Manifest,
    summary: RunSummary,
    report: Callable[[str], None],
    progress: bool,
) -> set[str]:
    """Restore what `listing` lists; the inputs whose records came back."""
    ray = connect(run.cluster.address)
    seen: set[str] = set()
    try:
        bar = tqdm(desc="restore", unit="photo", disable=not progress, dynamic_ncols=True)
        for record in _records(ray, run, listing):
            if record["input"] in seen:  # a listing task retried by Ray lists its first rows again
                continue
            seen.add(record["input"])
            _account(record, run.recipe.options, run.skip_no_face, summary, report)
            manifest.append({key: value for key, value in record.items() if key != "stem"})
            bar.set_postfix(faces=summary.faces, failed=len(summary.failures), refresh=False)
            bar.update()
        bar.close()
    finally:
        ray.shutdown()
    return seen


def _records(ray: Any, run: _Run, listing: ListedPhotos) -> Iterator[dict[str, Any]]:
    """Ray Data's plan (listing → finders → restorers) and its records, in the order they land."""
    recipe, cluster = run.recipe, run.cluster
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.max_errored_blocks = -1  # a batch that fails on every retry costs its photos, not the job
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    finders = cluster.num_workers or max(1, int(ray.cluster_resources().get("CPU", 2) / cluster.worker_cpus) - 1)
    # Ray Data's actor pools restart a killed actor and retry its in-flight batches on a live one (their default
    # max_restarts=-1 and max_task_retries=-1, with system errors retried): a lost worker costs only those photos.
    pool = ray.data.ActorPoolStrategy
    rows = ray.data.read_datasource(listing.datasource(), num_cpus=0)  # the listing reserves no CPU
    found = rows.map_batches(
        FaceFinder,
        fn_constructor_args=(recipe,),
        batch_size=1,
        compute=pool(min_size=1, max_size=finders),
        num_cpus=cluster.worker_cpus,
    )
    restored = found.map_batches(
        FaceRestorer,
        fn_constructor_args=(recipe, str(run.outdir), run.save_faces, run.skip_no_face),
        batch_size=recipe.batch_size,
        compute=pool(min_size=1, max_size=cluster.restore_workers),
        num_cpus=cluster.worker_cpus,
    )
    yield from restored.iter_rows()


def _account(
    record: dict[str, Any], options: FaceOptions, skip_no_face: bool, summary: RunSummary, report: Callable[[str], None]
) -> None:
    """Count and report one photo's record as the local path counts and reports it."""
    if not record["found"]:  # unreadable, or finding its faces failed
        note_failure(summary, record["input"], record["error"], report)
        return
    faces = int(record["faces"])
    if not note_prepared(summary, record["input"], faces, int(record["too_small"]), options, skip_no_face, report):
        return
    if record["status"] == "failed":
        note_failure(summary, record["input"], record["error"], report)
    else:
        note_written(summary, record["input"], faces, report)

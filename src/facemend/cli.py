"""The `facemend` command. Parses arguments and calls pipelines; holds no model logic."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from facemend.errors import FacemendError
from facemend.extras import missing_extra
from facemend.precision import PRECISIONS
from facemend.runtime import RUNTIMES

if TYPE_CHECKING:  # imported when used: --engine ray needs the `cluster` extra
    from collections.abc import Callable

    from facemend.methods.base import Knob
    from facemend.methods.registry import ModelInfo
    from facemend.pipelines.cluster import ClusterOptions
    from facemend.pipelines.files import RunSummary
    from facemend.pipelines.photo import PhotoPipeline

PRECISION_HELP = "network arithmetic: auto = bf16 where the CPU has native bf16 (AVX512-BF16 / AMX), else fp32"
KNOB_DEST = "knob:"  # argparse dest prefix of the knob flags, so a knob never shadows another option


# The pip extra each command needs beyond `pip install facemend` (`restore` needs one only for videos, `--runtime
# onnx` and `--engine ray`: the missing module names it).
COMMAND_EXTRAS = {
    "eval": "eval",
    "score": "eval",
    "benchmark": "eval",
    "benchmark-noharm": "eval",
    "benchmark-video": "eval",
    "train": "train",
    "clean": "train",
    "export": "onnx",
    "serve": "serve",
}


def _report(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def cmd_restore(args: argparse.Namespace) -> int:
    from facemend.data.io import IMAGE_SUFFIXES, iter_images, list_images
    from facemend.data.parallel import check_workers
    from facemend.data.video import VIDEO_SUFFIXES, is_video
    from facemend.faces.temporal import TemporalOptions
    from facemend.methods.registry import resolve_model
    from facemend.pipelines.files import restore_files
    from facemend.pipelines.photo import FaceOptions, PhotoPipeline, parse_strength
    from facemend.pipelines.video import restore_videos
    from facemend.runtime import runtime_precision, with_runtime

    check_workers(args.workers)
    cluster = _cluster_options(args)  # before any work: a missing extra or a bad flag stops the run here
    if args.detect_every < 1:
        raise FacemendError(f"--detect-every must be >= 1, got {args.detect_every}")
    restorer, knobs = resolve_model(args.model, **_knob_values(args))
    precision = runtime_precision(args.runtime, args.precision)
    restorer = with_runtime(restorer, args.runtime, args.onnx, report=_report)
    options = FaceOptions(
        detector=args.detector,
        landmarks=args.landmarks,
        only_center_face=args.only_center_face,
        min_face_size=args.min_face_size,
        aligned=args.aligned,
        upscale=args.upscale,
        strength=parse_strength(args.strength),
    )
    pipeline = PhotoPipeline(restorer, knobs, options, batch_size=args.batch, precision=precision)
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    listed = iter_images(args.inputs, suffixes=suffixes)  # lazily: the cluster lists its inputs itself
    if next(listed, None) is None:
        raise FacemendError(f"no images or videos found in {', '.join(args.inputs)}")
    outdir = Path(args.output)
    if outdir.exists() and not outdir.is_dir():
        raise FacemendError(f"{outdir}: output exists and is not a folder")
    if cluster is not None:
        if any(is_video(Path(name)) and Path(name).is_file() for name in args.inputs):
            raise FacemendError("--engine ray restores photos: restore videos with --engine local")
        summary = _restore_on_ray(args, pipeline, outdir, cluster)
        print(summary.line(), file=sys.stderr)
        return 1 if summary.failures else 0
    paths = list_images(args.inputs, suffixes=suffixes)
    photos = [path for path in paths if not is_video(path)]
    videos = [path for path in paths if is_video(path)]
    failures = 0
    if photos:
        summary = restore_files(
            pipeline,
            photos,
            outdir,
            args.save_faces,
            args.skip_no_face,
            report=_report,
            progress=not args.quiet,
            workers=args.workers,
        )
        print(summary.line(), file=sys.stderr)
        failures += len(summary.failures)
    if videos:  # --save-faces and --skip-no-face are for photos: every frame of a video is written
        video_summary = restore_videos(
            pipeline,
            videos,
            outdir,
            report=_report,
            progress=not args.quiet,
            detect_every=args.detect_every,
            temporal=TemporalOptions() if args.temporal else None,
        )
        print(video_summary.line(), file=sys.stderr)
        failures += len(video_summary.failures)
    return 1 if failures else 0


def _cluster_options(args: argparse.Namespace) -> ClusterOptions | None:
    if args.engine != "ray":
        return None
    from facemend.pipelines.cluster import ClusterOptions, import_ray

    import_ray()
    return ClusterOptions(args.address, args.num_workers, args.restore_workers, args.worker_cpus)


def _restore_on_ray(
    args: argparse.Namespace, pipeline: PhotoPipeline, outdir: Path, cluster: ClusterOptions
) -> RunSummary:
    from facemend.pipelines.cluster import RestoreRecipe, restore_files_on_ray

    recipe = RestoreRecipe.of(pipeline, args.model, args.runtime, args.onnx)
    return restore_files_on_ray(
        recipe,
        args.inputs,
        outdir,
        cluster,
        args.save_faces,
        args.skip_no_face,
        report=_report,
        progress=not args.quiet,
    )


def cmd_degrade(args: argparse.Namespace) -> int:
    from facemend.data.degradation import degrade_folder

    summary = degrade_folder(args.source, args.output, args.preset, args.seed, args.size, args.gray_prob, args.workers)
    print(f"{summary.written} pairs written to {args.output}, {len(summary.failed)} failed", file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from facemend.pipelines.prepare import prepare_dataset

    summary = prepare_dataset(args.sources, args.output, args.size, args.min_face_size, args.workers)
    print(summary.line(), file=sys.stderr)
    return 1 if summary.skipped["unreadable"] else 0  # no face / too small are outcomes, not failures


def _metric_keys(text: str | None) -> list[str] | None:
    return [key.strip() for key in text.split(",") if key.strip()] if text else None


def cmd_clean(args: argparse.Namespace) -> int:
    from facemend.pipelines.clean import clean_dataset, clean_rounds

    options = {
        "knobs": _knob_values(args),
        "splits": tuple(split.strip() for split in args.splits.split(",") if split.strip()),
        "limit": args.limit,
        "batch_size": args.batch,
        "precision": args.precision,
        "progress": not args.quiet,
    }
    if args.rounds is None:
        if args.config is not None:
            raise FacemendError("--config is for --rounds: the training config each round trains")
        summary = clean_dataset(args.dataset, args.output, args.model, resume=args.resume, **options)
        print(summary.line(), file=sys.stderr)
        return 0
    if args.config is None:
        raise FacemendError("--rounds needs --config: the training config each round trains")
    model = clean_rounds(
        args.dataset, args.output, args.model, args.config, args.rounds, args.resume, report=_report, **options
    )
    if model is None:
        return 130
    print(f"{args.rounds} round(s) done; the last round's model: {model}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from facemend.pipelines.evaluate import evaluate

    if args.grid < 0:
        raise FacemendError("--grid must be ≥ 0")
    summary = evaluate(
        args.pred,
        args.gt,
        args.output,
        lq=args.lq,
        grid=args.grid,
        keys=_metric_keys(args.metrics),
        allow_partial=args.allow_partial,
        batch_size=args.batch,
        progress=not args.quiet,
        warn=_report,
    )
    print((Path(args.output) / "metrics.md").read_text(encoding="utf-8"), end="")
    missing = sum(summary["missing"].values())
    print(f"{summary['count']} faces evaluated, {missing} missing values; report in {args.output}", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from facemend.pipelines.score import read_calibration, score_folder

    calibration = read_calibration(args.calibration) if args.calibration else None
    summary = score_folder(
        args.folder,
        args.output,
        calibration,
        metric=args.metric,
        size=args.size,
        face_size=args.face_size,
        batch_size=args.batch,
        progress=not args.quiet,
    )
    fit = summary["calibration"]
    how = "fitted to these faces" if summary["calibration_fitted"] else f"from {args.calibration}"
    size = "null" if fit["size"] is None else fit["size"]
    print(
        f"{summary['count']} faces scored into {args.output}: median {fit['metric']} "
        f"{summary[fit['metric']]['q50']:.3f}, median score {summary['score']['q50']:.3f}; calibration ({how}), "
        f"for a config's quality_conditioning:\n"
        f"  prior: {{metric: {fit['metric']}, size: {size}, centre: {fit['centre']:.4f}, scale: {fit['scale']:.4f}}}",
        file=sys.stderr,
    )
    return 0


def cmd_testset(args: argparse.Namespace) -> int:
    from facemend.pipelines.testset import build_testset

    info = build_testset(
        args.prepared, args.output, args.size, args.max_faces, args.workers, not args.quiet, args.split
    )
    print(
        f"facemend-test ({args.split} split): {info['faces']} faces of {info['identities']} identities × "
        f"{', '.join(info['presets'])} in {args.output}",
        file=sys.stderr,
    )
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from facemend.methods.registry import split_specs
    from facemend.pipelines.benchmark import benchmark_markdown, run_benchmark

    result = run_benchmark(
        args.data,
        split_specs(args.models),
        args.output,
        batch_size=args.batch,
        keys=_metric_keys(args.metrics),
        limit=args.limit,
        progress=not args.quiet,
        warn=_report,
        precision=args.precision,
    )
    print(benchmark_markdown(result), end="")
    print(f"benchmark of {len(result['models'])} rows written to {args.output}", file=sys.stderr)
    return 0


def cmd_benchmark_noharm(args: argparse.Namespace) -> int:
    from facemend.methods.registry import split_specs
    from facemend.pipelines.noharm import run_noharm
    from facemend.pipelines.photo import parse_strength

    models = split_specs(args.models) if args.models else None
    sets = [name.strip() for name in args.sets.split(",")] if args.sets else None
    strength = parse_strength(args.strength)
    degraded = (args.degraded, args.degraded_limit)
    run_noharm(args.data, args.output, models, sets, args.limit, *degraded, args.batch, strength=strength)
    print(f"wrote {Path(args.output) / 'noharm.md'}", file=sys.stderr)
    return 0


def cmd_benchmark_video(args: argparse.Namespace) -> int:
    from facemend.methods.registry import split_specs
    from facemend.pipelines.photo import parse_strength
    from facemend.pipelines.video_benchmark import run_video_benchmark, video_benchmark_markdown

    presets = [name.strip() for name in args.presets.split(",") if name.strip()]
    result = run_video_benchmark(
        args.data,
        split_specs(args.models),
        args.output,
        clips=args.clips,
        frames=args.frames,
        presets=presets,
        seed=args.seed,
        alignment=args.align,
        temporal=args.temporal,
        strength=parse_strength(args.strength),
        batch_size=args.batch,
        precision=args.precision,
        progress=not args.quiet,
        warn=_report,
    )
    print(video_benchmark_markdown(result), end="")
    print(f"video benchmark of {result['clips']} clips written to {args.output}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from facemend.methods.registry import ModelSpec, load_restorer
    from facemend.runtime import export_onnx

    spec = ModelSpec.parse(args.model)
    if spec.knobs:
        raise FacemendError(f"knobs are inputs of the exported network, set at run time: drop them from {args.model!r}")
    restorer = load_restorer(spec.name)
    paths = export_onnx(restorer, args.output)
    for path, (network, spec) in zip(paths, restorer.network_specs().items(), strict=True):
        inputs = ", ".join(f"{name} {tuple(example.shape[1:])}" for name, example in spec.inputs.items())
        print(f"{path}: {restorer.name} network {network!r}, inputs (batch first): {inputs}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from facemend.web.limits import MB, Limits
    from facemend.web.server import serve

    limits = Limits(
        file_bytes=round(args.max_file_mb * MB),
        request_bytes=round(args.max_request_mb * MB),
        pixels=round(args.max_megapixels * 1e6),
        photos=args.max_photos,
    )
    serve(args.host, args.port, limits, precision=args.precision)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from facemend.methods.registry import DEFAULT_MODEL, MODELS

    runnable = [info for info in MODELS.values() if info.runnable]
    print("Models that run as installed (bundled weights, or none needed):")
    for info in runnable:
        default = " (default)" if info.name == DEFAULT_MODEL else ""
        print(f"{info.name}{default}: {info.description}")
        _print_knobs(info.knobs)
    print("\nModels to train first (no bundled weights; then pass the weights folder as --model):")
    for info in MODELS.values():
        if not info.runnable:
            print(f"{info.name}: {info.description}; {info.how_to_get()}")
            _print_knobs(info.knobs)
    print("\nor a weights folder of your own training (config.json + model.safetensors): --model runs/NAME/STAGE")
    return 0


def _print_knobs(knobs: tuple[Knob, ...]) -> None:
    for knob in knobs:
        old = f" (old name, until the next release: {', '.join(knob.old_names)})" if knob.old_names else ""
        print(f"    {knob.describe()}: {knob.help}{old}")


def _declared_knobs() -> dict[str, list[tuple[ModelInfo, Knob]]]:
    """Every knob name (and old name) a registered model declares → the (model, knob) pairs that declare it,
    the runnable models first."""
    from facemend.methods.registry import MODELS

    declared: dict[str, list[tuple[ModelInfo, Knob]]] = {}
    for info in MODELS.values():
        for knob in info.knobs:
            for name in (knob.name, *knob.old_names):
                declared.setdefault(name, []).append((info, knob))
    return declared


def _add_knob_flags(parser: argparse.ArgumentParser) -> None:
    """A `--NAME` flag per knob any registered model declares (`--keep-input` for `keep_input`), and per old name
    of one. Values stay text: the model's own `Knob.parse` checks them, as it does a model spec's and the web's."""
    group = parser.add_argument_group("knobs (each model has some of these: facemend models)")
    for name, owners in _declared_knobs().items():
        offered = [(info, knob) for info, knob in owners if info.runnable] or owners  # the models a user can run
        now = [(info, knob) for info, knob in offered if knob.name == name]
        renamed = dict.fromkeys(knob.name for _, knob in offered if knob.name != name)
        parts = [f"{now[0][1].help} ({', '.join(info.name for info, _ in now)})"] if now else []
        if renamed:
            models = ", ".join(info.name for info, knob in offered if knob.name != name)
            flags = ", ".join(f"--{new.replace('_', '-')}" for new in renamed)
            parts.append(f"for {models}: old name of {flags}, until the next release")
        flag, kind = f"--{name.replace('_', '-')}", owners[0][1].type.__name__.upper()
        group.add_argument(flag, dest=f"{KNOB_DEST}{name}", metavar=kind, default=None, help="; ".join(parts))


def _knob_values(args: argparse.Namespace) -> dict[str, str]:
    """The knob flags given, by knob name (still text)."""
    return {
        dest.removeprefix(KNOB_DEST): value
        for dest, value in vars(args).items()
        if dest.startswith(KNOB_DEST) and value is not None
    }


def _one_line(kind: type[Warning], show: Callable[..., None]) -> Callable[..., None]:
    """A `warnings.showwarning` that prints warnings of `kind` as one line, and hands others to `show`."""

    def shown(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, kind):
            print(f"facemend: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return shown


def build_parser() -> argparse.ArgumentParser:
    from facemend import __version__
    from facemend.data.degradation import PRESETS
    from facemend.faces.detection import DEFAULT_DETECTOR, DETECTORS
    from facemend.faces.locate import DEFAULT_LANDMARKS, LANDMARKS
    from facemend.methods.registry import DEFAULT_MODEL
    from facemend.pipelines.video import DETECT_EVERY
    from facemend.web.limits import MB, Limits

    parser = argparse.ArgumentParser(prog="facemend", description="Restore faces in real, degraded photos.")
    parser.add_argument("--version", action="version", version=f"facemend {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    restore = commands.add_parser("restore", help="restore the faces in photos and videos (files or folders)")
    restore.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders of them")
    restore.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    restore.add_argument("--model", default=DEFAULT_MODEL, metavar="SPEC", help=_model_help())
    restore.add_argument("--aligned", action="store_true", help="inputs are aligned face crops (any size)")
    restore.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR)
    restore.add_argument(
        "--landmarks",
        choices=LANDMARKS,
        default=DEFAULT_LANDMARKS,
        help="the 5 alignment points: dlib's 68-point model in the face's box (as the training faces were aligned), "
        "or the detector's own (YuNet's; no 68-point step)",
    )
    restore.add_argument("--only-center-face", action="store_true", help="restore only the most central face")
    restore.add_argument(
        "--min-face-size",
        type=int,
        default=32,
        metavar="PX",
        help="leave faces smaller than this (detector box side) as they are",
    )
    restore.add_argument("--upscale", type=int, default=1, metavar="K", help="output K times the input size")
    restore.add_argument(
        "--detect-every",
        type=int,
        default=DETECT_EVERY,
        metavar="N",
        help="videos: detect faces on every N-th frame, follow them by optical flow in between (1: every frame)",
    )
    restore.add_argument(
        "--temporal",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="videos: blend each restored face with its track's previous one where the face did not change, "
        "so the restored content does not flicker (default); --no-temporal restores every frame on its own",
    )
    restore.add_argument(
        "--strength",
        default="auto",
        metavar="auto|S",
        help="share of the model's change applied to each face, in [0, 1]; auto (default): by how damaged it is",
    )
    restore.add_argument("--batch", type=int, default=8, metavar="B", help="faces restored at once")
    restore.add_argument(
        "--workers", type=int, default=1, metavar="N", help="processes reading photos and finding faces (photos)"
    )
    restore.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    restore.add_argument("--runtime", choices=RUNTIMES, default="torch", help="what runs the network (onnx: fp32)")
    cluster = restore.add_argument_group("cluster (--engine ray, photos only; docs/cluster.md)")
    cluster.add_argument("--engine", choices=("local", "ray"), default="local", help="ray: a Ray cluster, resumably")
    cluster.add_argument("--address", metavar="ADDR", help="auto, HOST:PORT or ray://HOST:PORT (default: one here)")
    cluster.add_argument("--num-workers", type=int, metavar="N", help="actors finding faces (default: CPUs less one)")
    cluster.add_argument("--restore-workers", type=int, default=1, metavar="M", help="actors restoring (1 model each)")
    cluster.add_argument("--worker-cpus", type=float, default=1.0, metavar="C", help="CPUs each actor reserves")
    restore.add_argument(
        "--onnx", metavar="PATH", help="with --runtime onnx: this ONNX file (exported there if missing), not the cache"
    )
    restore.add_argument(
        "--save-faces",
        action="store_true",
        help="also write the aligned crops to cropped_faces/ and restored_faces/ (+ each face's strength as JSON)",
    )
    restore.add_argument("--skip-no-face", action="store_true", help="do not write photos without a face")
    restore.add_argument("-q", "--quiet", action="store_true", help="no progress bar (warnings and errors still shown)")
    _add_knob_flags(restore)
    restore.set_defaults(run=cmd_restore)

    degrade = commands.add_parser("degrade", help="make LQ/HQ pairs with the blind degradation model")
    degrade.add_argument("source", metavar="SRC", help="folder of HQ face images")
    degrade.add_argument("-o", "--output", required=True, metavar="OUT")
    degrade.add_argument("--preset", required=True, choices=sorted(PRESETS))
    degrade.add_argument("--seed", type=int, required=True)
    degrade.add_argument("--size", type=int, default=None, metavar="S", help="resize HQ faces to S×S first")
    degrade.add_argument("--gray-prob", type=float, default=0.0, help="share of LQ faces made greyscale")
    degrade.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    degrade.set_defaults(run=cmd_degrade)

    prepare = commands.add_parser("prepare", help="align faces from photo folders into train/val/test")
    prepare.add_argument("sources", nargs="+", metavar="SRC", help="source folders (e.g. lfw utkface)")
    prepare.add_argument("-o", "--output", required=True, metavar="OUT")
    prepare.add_argument("--size", type=int, default=512, metavar="S", help="aligned crop size")
    prepare.add_argument("--min-face-size", type=int, default=48, metavar="PX")
    prepare.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    prepare.set_defaults(run=cmd_prepare)

    clean = commands.add_parser("clean", help="restore a prepared dataset's HQ training faces (IDM's enhancement)")
    clean.add_argument("dataset", metavar="DATASET", help="folder written by `facemend prepare`")
    clean.add_argument("-o", "--output", required=True, metavar="CLEANED", help="new folder (a prepare folder too)")
    clean.add_argument("--model", default="idm", metavar="SPEC", help="NAME[:knob=value,...] or a weights folder")
    clean.add_argument("--splits", default="train", metavar="SPLIT,...", help="splits to clean; others are copied")
    clean.add_argument(
        "--limit", type=int, default=None, metavar="N", help="clean N faces per split, leave out the rest"
    )
    clean.add_argument("--batch", type=int, default=8, metavar="B", help="faces restored at once")
    clean.add_argument("--resume", action="store_true", help="continue into CLEANED: keep the files already there")
    clean.add_argument("--rounds", type=int, default=None, metavar="K", help="K rounds of clean + train (--config)")
    clean.add_argument("--config", metavar="YAML", help="with --rounds: the training config each round trains")
    clean.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    clean.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_knob_flags(clean)
    clean.set_defaults(run=cmd_clean)

    evaluation = commands.add_parser("eval", help="metrics of restored faces, against ground truth if given")
    evaluation.add_argument("--pred", required=True, metavar="DIR", help="restored aligned faces")
    evaluation.add_argument("--gt", metavar="DIR", help="ground-truth faces, same stems and sizes")
    evaluation.add_argument("--lq", metavar="DIR", help="degraded inputs (for --grid)")
    evaluation.add_argument("-o", "--output", required=True, metavar="REPORT", help="report folder")
    evaluation.add_argument("--grid", type=int, default=0, metavar="N", help="write grid.jpg with N faces")
    evaluation.add_argument("--metrics", metavar="KEY,...", help="only these metrics (default: all that apply)")
    evaluation.add_argument("--allow-partial", action="store_true", help="evaluate the stems in both sets")
    evaluation.add_argument("--batch", type=int, default=16, metavar="B", help="faces measured at once")
    evaluation.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    evaluation.set_defaults(run=cmd_eval)

    score = commands.add_parser("score", help="IQPFR's quality prior (calibrated NIQE) on every image of a folder")
    score.add_argument("folder", metavar="DIR", help="folder of (aligned) face images, searched recursively")
    score.add_argument("-o", "--output", required=True, metavar="OUT", help="scores.jsonl, summary.json, histogram.png")
    score.add_argument(
        "--calibration", metavar="FILE", help="a summary.json of an earlier run (default: fit one to these faces)"
    )
    score.add_argument("--metric", choices=("niqe", "brisque"), default=None, help="the prior's metric (default niqe)")
    score.add_argument(
        "--size", type=int, default=None, metavar="S", help="score at S px (default: niqe 512, brisque the faces' own)"
    )
    score.add_argument(
        "--face-size", type=int, default=None, metavar="S", help="resize faces to S first, as training loads them"
    )
    score.add_argument("--batch", type=int, default=16, metavar="B", help="faces scored at once")
    score.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    score.set_defaults(run=cmd_score)

    testset = commands.add_parser("testset", help="build facemend-test from the test split of `prepare`")
    testset.add_argument("--prepared", required=True, metavar="OUT", help="folder written by `facemend prepare`")
    testset.add_argument("-o", "--output", required=True, metavar="DIR", help="new (or empty) folder")
    testset.add_argument("--size", type=int, default=None, metavar="S", help="face size (default: as prepared)")
    testset.add_argument("--max-faces", type=int, default=500, metavar="N")
    testset.add_argument(
        "--split", choices=("test", "val"), default="test", help="val: a set to choose knob defaults on (default: test)"
    )
    testset.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    testset.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    testset.set_defaults(run=cmd_testset)

    bench = commands.add_parser("benchmark", help="restore LQ faces with each model and tabulate the metrics")
    bench.add_argument("--data", required=True, metavar="DIR", help="DIR/lq (+ DIR/hq), or a folder of LQ faces")
    bench.add_argument(
        "--models",
        default="",
        metavar="SPEC,...",
        help="model specs, e.g. baseline,artfr:steps=8,seed=1 (lq-input and classical always run)",
    )
    bench.add_argument("-o", "--output", required=True, metavar="REPORT", help="report folder")
    bench.add_argument("--metrics", metavar="KEY,...", help="only these metrics (default: all that apply)")
    bench.add_argument("--limit", type=int, default=None, metavar="N", help="only N faces, spread over the set")
    bench.add_argument("--batch", type=int, default=8, metavar="B", help="faces restored at once")
    bench.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    bench.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    bench.set_defaults(run=cmd_benchmark)

    noharm = commands.add_parser(
        "benchmark-noharm", help="does restoring harm sharp faces, and does it keep its gains on degraded ones"
    )
    noharm.add_argument("--data", default="../shared/data", metavar="DIR", help="the shared face data folder")
    noharm.add_argument("--models", metavar="SPECS", help="comma-separated specs (default: every bundled model)")
    noharm.add_argument("--sets", metavar="NAMES", help="comma-separated photo sets (default: all)")
    noharm.add_argument("--limit", type=int, metavar="N", help="at most N photos per set, spread evenly")
    noharm.add_argument(
        "--degraded", nargs="*", default=[], metavar="DIR", help="facemend-test preset folders (lq/ + hq/)"
    )
    noharm.add_argument("--degraded-limit", type=int, metavar="N", help="at most N faces per degraded folder")
    noharm.add_argument("--batch", type=int, default=8, metavar="B", help="faces restored at once")
    noharm.add_argument("--strength", default="auto", metavar="auto|S", help="the defaults' strength (photo sets)")
    noharm.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    noharm.set_defaults(run=cmd_benchmark_noharm)

    video_bench = commands.add_parser(
        "benchmark-video", help="clips with known motion: per-frame and temporal metrics of restored videos"
    )
    video_bench.add_argument(
        "--data", required=True, metavar="DIR", help="aligned HQ faces: DIR/hq, a facemend-test folder, or images"
    )
    video_bench.add_argument(
        "--models", default=DEFAULT_MODEL, metavar="SPEC,...", help="model specs (default: %(default)s)"
    )
    video_bench.add_argument("-o", "--output", required=True, metavar="REPORT", help="report folder")
    video_bench.add_argument("--clips", type=int, default=10, metavar="N", help="clips, one face each (default 10)")
    video_bench.add_argument("--frames", type=int, default=48, metavar="N", help="frames per clip (default 48)")
    video_bench.add_argument("--presets", default="medium,heavy", metavar="NAME,...", help="degradation presets")
    video_bench.add_argument("--seed", type=int, default=0, help="seeds the motion and the degradation")
    video_bench.add_argument(
        "--align",
        choices=("detector", "known"),
        default="detector",
        help="detector: the video path's detection and tracking; known: the true motion",
    )
    video_bench.add_argument(
        "--temporal",
        choices=("both", "on", "off"),
        default="both",
        help="rows per model: restored frame by frame (off), with the temporal blend (on), or both (default)",
    )
    video_bench.add_argument("--strength", default="1", metavar="auto|S", help="share of each change applied")
    video_bench.add_argument("--batch", type=int, default=8, metavar="B", help="faces restored at once")
    video_bench.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    video_bench.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    video_bench.set_defaults(run=cmd_benchmark_video)

    training = commands.add_parser("train", help="train a model from a YAML config (stages run in order)")
    training.add_argument("config", help="training config, e.g. configs/tokenizer/tiny.yaml")
    training.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    training.add_argument("--stage", help="start fresh at this stage (from its init or the previous export)")
    training.add_argument("--init", help="with --stage: the weights folder that stage starts from")
    training.add_argument("--devices", type=int, help="processes (DDP) per node; overrides trainer.devices")
    training.add_argument("--num-nodes", type=int, help="nodes; overrides trainer.num_nodes")
    training.add_argument("--accelerator", help="cpu, gpu or auto; overrides trainer.accelerator")
    training.add_argument("--runs-dir", help="where run folders go; overrides trainer.runs_dir")
    training.add_argument(
        "--precision", help="auto, bf16-mixed, 32-true, …; overrides trainer.precision (auto: bf16 where native)"
    )
    training.set_defaults(run=cmd_train)

    export = commands.add_parser("export", help="export a model's network to ONNX (knobs stay graph inputs)")
    export.add_argument("--model", default=DEFAULT_MODEL, metavar="SPEC", help="model name or weights folder")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="the .onnx file to write")
    export.set_defaults(run=cmd_export)

    serving = commands.add_parser("serve", help="a local web page (and JSON API) that restores uploaded photos")
    serving.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    serving.add_argument("--port", type=int, default=7860, help="default %(default)s")
    limits = Limits()
    for flag, default, unit, help_text in [
        ("--max-file-mb", limits.file_bytes / MB, "MB", "largest photo file"),
        ("--max-request-mb", limits.request_bytes / MB, "MB", "largest request (all its photos)"),
        ("--max-megapixels", limits.pixels / 1e6, "MP", "largest photo in pixels"),
        ("--max-photos", limits.photos, "N", "most photos per request"),
    ]:
        serving.add_argument(
            flag, type=type(default), default=default, metavar=unit, help=f"{help_text} (default %(default)g)"
        )
    serving.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    serving.set_defaults(run=cmd_serve)

    models = commands.add_parser("models", help="list the models and their knobs")
    models.set_defaults(run=cmd_models)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from facemend.methods.registry import recipe_for
    from facemend.training.config import load_train_config
    from facemend.training.trainer import train

    config = load_train_config(args.config)
    overrides = {
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "accelerator": args.accelerator,
        "runs_dir": args.runs_dir,
        "precision": args.precision,
    }
    for field, value in overrides.items():
        if value is not None:
            setattr(config.trainer, field, value)
    try:
        config.trainer.__post_init__()
    except ValueError as error:
        raise FacemendError(f"command-line override of trainer: {error}") from None
    if args.init is not None:
        if args.stage is None:
            raise FacemendError("--init needs --stage: the stage that starts from those weights")
        for stage in config.stages:
            if stage.name == args.stage:
                stage.init = args.init
    recipe = recipe_for(config)
    result = train(config, recipe, resume=args.resume, start_stage=args.stage)
    return 0 if result.finished else 130


def _model_help() -> str:
    from facemend.methods.registry import MODELS, runnable_models

    to_train = [name for name, info in MODELS.items() if not info.runnable]
    return (
        f"NAME[:knob=value,...] or a weights folder; NAME: {', '.join(runnable_models())} (default: %(default)s); "
        f"to train first (facemend models says how): {', '.join(to_train)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from facemend.methods.base import RenamedKnobWarning

    try:
        with warnings.catch_warnings():  # a knob's old name: one line, each time it is used
            warnings.simplefilter("always", RenamedKnobWarning)
            warnings.showwarning = _one_line(RenamedKnobWarning, warnings.showwarning)
            return args.run(args)
    except ModuleNotFoundError as error:  # an optional part that is not installed: say which extra adds it
        print(
            f"facemend: error: {missing_extra(error, COMMAND_EXTRAS.get(args.command), args.command)}", file=sys.stderr
        )
        return 2
    except FacemendError as error:
        print(f"facemend: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facemend: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

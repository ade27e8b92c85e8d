"""`facemend benchmark-noharm`: does restoring make good photos worse, and does it keep its gains on bad ones?

Two ways of putting each model's restoration back are compared on the same faces (found once per photo):

- `before`: the model's output at full strength pasted over the face through the feathered mask, as facemend did
  before detail-preserving paste-back (faces larger than the model's face size lose their fine detail);
- `after`: the defaults: the model's change added at the photo's resolution (`paste_change`), scaled by each
  face's automatic strength, in luminance only on grey or single-hue faces.

Photo sets (under the data root, `NOHARM_SETS`): sharp FFHQ photos resized so that their faces are about 150, 300
and 600 px, sharp studio portraits (evaluation only), real degraded whole photos, grey and tinted faces, grey
versions of colour photos, and the 4 `hq-ref/pairs` (degraded FFHQ photos with their ground truth). Against the
input, per face: PSNR (RGB, inside the face box), the sharpness ratio (variance of the Laplacian of the luminance
inside the face box, output over input) and IDD (dlib descriptors of 256-px aligned crops); per photo, for grey
inputs, the largest |R−G| or |G−B| of the output in levels of 255.

Degraded sets, against the clean ground truth: `hq-ref/pairs`, FFHQ photos degraded at photo level (the `medium`
preset at the face's size, so the LQ face is pasted back into its photo), and facemend-test's aligned LQ faces
(`--degraded`), where the share of the model's gains over the LQ input that the defaults keep is reported, and
whose grey versions must come back grey.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from facemend.data.degradation import degrade, get_preset, image_rng, sample_params
from facemend.data.io import Photo, list_images, read_image, write_bytes_atomic
from facemend.errors import FacemendError
from facemend.faces import Face, paste_face
from facemend.faces.template import face_box_in_photo, warp_to_crop
from facemend.methods.registry import MODELS, resolve_model
from facemend.metrics.identity import FaceSignatures, face_signatures, identity_distance
from facemend.metrics.pixel import rgb_to_y
from facemend.metrics.report import means
from facemend.metrics.suite import FacePair, MetricSuite
from facemend.pipelines.benchmark import benchmark_data
from facemend.pipelines.evaluate import read_face, spread
from facemend.pipelines.photo import FaceCropper, FaceOptions, PhotoJob, PhotoPipeline

WAYS = ("before", "after")
IDENTITY_CROP = 256  # aligned crop size at which IDD is measured
PSNR_CAP = 99.0  # dB, for faces left exactly as they were
DEGRADE_PRESET = "medium"
DEGRADE_SEED = 0
DEGRADED_KEYS = ("psnr_y", "idd", "fd_dlib")
PHOTO_GAIN_KEYS = ("psnr_y", "idd")
LOWER_IS_BETTER = ("idd", "fd_dlib")
SHARP_TARGETS = {"psnr": 35.0, "sharpness": 0.95}


@dataclass(frozen=True)
class PhotoSet:
    name: str
    folder: str  # under the data root
    scale: float = 1.0  # photos resized by this factor
    grey: bool = False  # photos turned grey (R = G = B) first
    sharp: bool = False  # sharp faces: the no-harm targets apply
    degraded: bool = False  # degraded at photo level; measured against the clean photo
    reference: str | None = None  # folder of clean photos of the same names (the inputs are degraded ones)

    @property
    def against_clean(self) -> bool:
        """Measured against a clean reference rather than against the input."""
        return self.degraded or self.reference is not None


NOHARM_SETS = (
    PhotoSet("ffhq-150", "hq-ref/ffhq", 0.25, sharp=True),
    PhotoSet("ffhq-300", "hq-ref/ffhq", 0.5, sharp=True),
    PhotoSet("ffhq-600", "hq-ref/ffhq", 1.0, sharp=True),
    PhotoSet("studio", "hq-ref/studio", sharp=True),
    PhotoSet("whole", "real-lq/whole"),
    PhotoSet("gray", "real-lq/gray"),
    PhotoSet("whole-grey", "real-lq/whole", grey=True),
    PhotoSet("ffhq-300-grey", "hq-ref/ffhq", 0.5, grey=True),
    PhotoSet("ffhq-150-lq", "hq-ref/ffhq", 0.25, degraded=True),
    PhotoSet("ffhq-300-lq", "hq-ref/ffhq", 0.5, degraded=True),
    PhotoSet("pairs", "hq-ref/pairs/lq", reference="hq-ref/pairs/hq"),
)


def bundled_models() -> list[str]:
    """The registered models that load here (the paper-scale ones have no weights to load)."""
    names = []
    for name in MODELS:
        try:
            resolve_model(name)
        except FacemendError:
            continue
        names.append(name)
    return names


def load_set(root: Path, photo_set: PhotoSet, limit: int | None) -> list[tuple[str, Photo, Photo]]:
    """(name, input photo, clean reference) of the set's photos; the reference is the input unless degraded."""
    folder = root / photo_set.folder
    if not folder.is_dir():
        raise FacemendError(f"{folder}: no such folder (is --data the shared data folder?)")
    paths = list_images([folder])
    if limit is not None:
        paths = [paths[i] for i in spread(list(range(len(paths))), limit)]
    photos = []
    for path in paths:
        photo = read_image(path)
        rgb = photo.rgb
        if photo_set.scale != 1.0:
            rgb = cv2.resize(rgb, None, fx=photo_set.scale, fy=photo_set.scale, interpolation=cv2.INTER_AREA)
        if photo_set.grey:
            rgb = grey_rgb(rgb)
        source = clean = Photo(np.clip(rgb, 0.0, 1.0))
        if photo_set.degraded:
            source = _degraded(clean, path.stem, photo_set.scale)
        if photo_set.reference is not None:
            clean = read_image(root / photo_set.reference / path.name)
        photos.append((path.stem, source, clean))
    return photos


def grey_rgb(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 float RGB turned grey: its luminance in all three channels (R = G = B)."""
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _degraded(photo: Photo, stem: str, scale: float) -> Photo:
    """The photo degraded with `DEGRADE_PRESET` as a face of its FFHQ crop's size (1024 px × `scale`)."""
    rng = image_rng(DEGRADE_SEED, stem)
    params = sample_params(rng, get_preset(DEGRADE_PRESET), round(1024 * scale))
    return Photo(degrade(photo.to_uint8(), params, rng).astype(np.float32) / 255)


def face_box_mask(shape: tuple[int, int], matrix: np.ndarray, size: int) -> np.ndarray:
    """Bool H×W: the photo pixels inside the template face box of the crop `matrix` makes at `size`."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(face_box_in_photo(matrix, size)).astype(np.int32), 1)
    return mask.astype(bool)


def face_psnr(output: np.ndarray, reference: np.ndarray, mask: np.ndarray, luma: bool = False) -> float:
    """PSNR (dB) of `output` against `reference` over the mask's pixels (RGB, or luminance Y)."""
    if luma:
        output, reference = (_luma(image)[..., None] for image in (output, reference))
    error = float(np.mean((output[mask].astype(np.float64) - reference[mask]) ** 2))
    return PSNR_CAP if error == 0 else min(PSNR_CAP, 10 * np.log10(1.0 / error))


def sharpness(image: np.ndarray, mask: np.ndarray) -> float:
    """Variance of the Laplacian of the luminance (0–255) over the mask's pixels."""
    laplacian = cv2.Laplacian(_luma(image) * 255.0, cv2.CV_32F, ksize=3)
    return float(laplacian[mask].var())


def _luma(image: np.ndarray) -> np.ndarray:
    """H×W BT.601 luma of H×W×3 RGB in [0, 1], as the metrics' PSNR-Y takes it, rescaled to [0, 1]."""
    pixels = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    return rgb_to_y(pixels)[0, 0].numpy() / 255.0


def grey_excess(photo: Photo) -> float:
    """The largest |R−G| or |G−B| of a photo, in levels of 255 (after rounding to 8 bits)."""
    pixels = photo.to_uint8().astype(np.int16)
    return float(max(np.abs(pixels[..., 0] - pixels[..., 1]).max(), np.abs(pixels[..., 1] - pixels[..., 2]).max()))


def identity_crops(photo: Photo, matrices: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """The faces as uint8 aligned crops at `IDENTITY_CROP` px (`matrices`: photo → crop at `size`)."""
    factor = IDENTITY_CROP / size
    return [Photo(warp_to_crop(photo.rgb, matrix * factor, IDENTITY_CROP)).to_uint8() for matrix in matrices]


@dataclass
class BenchPhoto:
    """One photo of a set: its input, its clean reference (the input itself unless degraded), its faces, and the
    dlib signatures of the input and reference faces, computed once for all models of one face size."""

    name: str
    source: Photo
    clean: Photo
    faces: list[Face]
    _signatures: dict[tuple[str, int], FaceSignatures] = field(default_factory=dict)

    def signatures(self, which: str, matrices: Sequence[np.ndarray], size: int) -> FaceSignatures:
        """The signatures of the `"source"` or `"clean"` photo's faces (`matrices`: photo → crop at `size`)."""
        if (which, size) not in self._signatures:
            photo = self.clean if which == "clean" else self.source
            self._signatures[which, size] = face_signatures(identity_crops(photo, matrices, size))
        return self._signatures[which, size]


def restored_both_ways(pipeline: PhotoPipeline, photo: Photo, faces: Sequence[Face]) -> tuple[PhotoJob, dict]:
    """The job of the photo's faces and its output both ways (`WAYS`)."""
    job = pipeline.crop_faces(photo, faces)
    job.restored = pipeline.restore_crops(job.crops)
    canvas = photo.rgb.copy()
    for restored, matrix in zip(job.restored, job.matrices, strict=True):
        paste_face(canvas, restored, matrix)
    return job, {"before": photo.with_rgb(canvas), "after": pipeline.finish(job)}


def measure_set(
    pipeline: PhotoPipeline, photos: Sequence[BenchPhoto], photo_set: PhotoSet
) -> dict[str, dict[str, float | None]]:
    """Per way, the set's means (and worst values) of the face and photo measurements."""
    size = pipeline.restorer.face_size
    rows: dict[str, dict[str, list[float]]] = {way: {} for way in (*WAYS, "input")}

    def add(way: str, key: str, values: Sequence[float]) -> None:
        rows[way].setdefault(key, []).extend(values)

    for photo in photos:
        source = photo.source
        job, outputs = restored_both_ways(pipeline, source, photo.faces)
        if not job.crops:
            continue
        reference = photo.clean.rgb
        masks = [face_box_mask(source.rgb.shape[:2], matrix, size) for matrix in job.matrices]
        reference_signatures = photo.signatures("clean", job.matrices, size)
        add("after", "strength", job.strengths)
        candidates = {**outputs, "input": source} if photo_set.against_clean else outputs
        for way, output in candidates.items():
            if way == "input":
                signatures = photo.signatures("source", job.matrices, size)
            else:
                signatures = face_signatures(identity_crops(output, job.matrices, size))
            add(way, "idd", identity_distance(signatures, reference_signatures).tolist())
            add(way, "psnr", [face_psnr(output.rgb, reference, mask) for mask in masks])
            add(way, "psnr_y", [face_psnr(output.rgb, reference, mask, luma=True) for mask in masks])
            ratios = [sharpness(output.rgb, mask) / max(sharpness(reference, mask), 1e-6) for mask in masks]
            add(way, "sharpness", ratios)
            if grey_excess(source) == 0:
                add(way, "grey_levels", [grey_excess(output)])
    return {way: _summary(values) for way, values in rows.items() if values}


def _summary(values: dict[str, list[float]]) -> dict[str, float | None]:
    summary: dict[str, float | None] = {"faces": float(len(values.get("psnr", [])))}
    for key, numbers in values.items():
        finite = np.array([v for v in numbers if np.isfinite(v)])
        summary[key] = float(finite.mean()) if len(finite) else None
        if key in ("psnr", "sharpness", "psnr_y"):
            summary[f"{key}_min"] = float(finite.min()) if len(finite) else None
        if key == "grey_levels":
            summary[key] = float(finite.max()) if len(finite) else None
    return summary


def measure_testset(
    spec: str, folder: Path, limit: int | None, suite: MetricSuite, batch_size: int
) -> dict[str, dict[str, float | None]]:
    """facemend-test aligned LQ faces: means of `DEGRADED_KEYS` for the LQ input, the model at full strength
    (`before`) and at the automatic strength (`after`); and, for `after`, the largest |R−G| or |G−B| of the
    restored faces of grey versions of the same LQ faces (`grey_levels`)."""
    data = benchmark_data(folder, limit, warn=lambda message: print(message, file=sys.stderr))
    if data.hq is None:
        raise FacemendError(f"{folder}: no hq/ folder: the degraded sets need their ground truth")
    targets = [read_face(data.hq[stem]) for stem in data.stems]
    sources = [read_image(data.lq[stem]) for stem in data.stems]
    outputs: dict[str, list[Photo]] = {"input": sources}
    restorer, knobs = resolve_model(spec)
    pipelines = {
        way: PhotoPipeline(restorer, knobs, FaceOptions(aligned=True, strength=strength), batch_size)
        for way, strength in (("before", 1.0), ("after", None))
    }
    outputs["before"], _ = _restore_aligned(pipelines["before"], sources)
    outputs["after"], strengths = _restore_aligned(pipelines["after"], sources)
    result = {}
    for way, faces in outputs.items():
        pairs = (
            FacePair(stem, face.to_uint8(), target)
            for stem, face, target in zip(data.stems, faces, targets, strict=True)
        )
        result[way] = {"faces": float(len(faces)), **means(suite.measure(pairs))}
    result["after"]["strength"] = float(np.mean(strengths))
    greys, _ = _restore_aligned(pipelines["after"], [photo.with_rgb(grey_rgb(photo.rgb)) for photo in sources])
    result["after"]["grey_levels"] = max(grey_excess(photo) for photo in greys)
    return result


def _restore_aligned(pipeline: PhotoPipeline, sources: Sequence[Photo]) -> tuple[list[Photo], list[float]]:
    """Aligned faces restored in batches: the outputs and each face's strength."""
    jobs = [pipeline.prepare(photo) for photo in sources]
    restored = iter(pipeline.restore_crops([job.crops[0] for job in jobs]))
    for job in jobs:
        job.restored = [next(restored)]
    return [pipeline.finish(job) for job in jobs], [job.strengths[0] for job in jobs]


def gain_shares(result: dict[str, dict[str, float | None]], keys: Sequence[str]) -> dict[str, float | None]:
    """Per key, the share of the `before` gain over the input that `after` keeps (1 = all of it); None where
    `before` gained nothing to keep."""
    shares: dict[str, float | None] = {}
    for key in keys:
        lq, before, after = (result[way].get(key) for way in ("input", "before", "after"))
        sign = -1.0 if key in LOWER_IS_BETTER else 1.0
        if lq is None or before is None or after is None or sign * (before - lq) <= 0:
            shares[key] = None
            continue
        shares[key] = (after - lq) / (before - lq)
    return shares


def run_noharm(
    data_root: str | Path,
    out: str | Path,
    models: Sequence[str] | None = None,
    sets: Sequence[str] | None = None,
    limit: int | None = None,
    degraded: Sequence[str | Path] = (),
    degraded_limit: int | None = None,
    batch_size: int = 8,
    report: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    strength: float | None = None,
) -> dict:
    """Run the benchmark; writes `out/noharm.json` and `out/noharm.md` and returns the result. `strength` is the
    `after` way's (None: auto)."""
    root = Path(data_root)
    chosen = _choose_sets(sets)
    models = list(models) if models else bundled_models()
    for spec in models:
        resolve_model(spec)  # unknown models stop the run before any work
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FacemendError(f"{out}: exists and is not a folder")
    result: dict = {"data": str(data_root), "limit": limit, "strength": strength, "sets": {}, "testsets": {}}
    photo_sets = {photo_set.name: load_set(root, photo_set, limit) for photo_set in chosen}
    found: dict[str, list[BenchPhoto]] = {}
    finder = FaceCropper(IDENTITY_CROP)
    for photo_set in chosen:
        found[photo_set.name] = [BenchPhoto(n, s, c, finder.detect(s)) for n, s, c in photo_sets[photo_set.name]]
        report(f"{photo_set.name}: {len(found[photo_set.name])} photos")
    for spec in models:
        restorer, knobs = resolve_model(spec)
        pipeline = PhotoPipeline(restorer, knobs, FaceOptions(strength=strength), batch_size=batch_size)
        for photo_set in chosen:
            measured: dict = measure_set(pipeline, found[photo_set.name], photo_set)
            if photo_set.against_clean:
                measured["gain_kept"] = gain_shares(measured, PHOTO_GAIN_KEYS)
            result["sets"].setdefault(photo_set.name, {})[spec] = measured
            report(f"{photo_set.name} {spec}: {_brief(measured)}")
    suite = MetricSuite(DEGRADED_KEYS)
    for folder in degraded:
        for spec in models:
            measured = measure_testset(spec, Path(folder), degraded_limit, suite, batch_size)
            measured["gain_kept"] = gain_shares(measured, DEGRADED_KEYS)
            result["testsets"].setdefault(str(folder), {})[spec] = measured
            report(f"{folder} {spec}: gain kept {measured['gain_kept']}")
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "noharm.json", (json.dumps(result, indent=1) + "\n").encode())
    write_bytes_atomic(out / "noharm.md", noharm_markdown(result).encode())
    return result


def _choose_sets(names: Sequence[str] | None) -> list[PhotoSet]:
    known = {photo_set.name: photo_set for photo_set in NOHARM_SETS}
    if not names:
        return list(NOHARM_SETS)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise FacemendError(f"unknown set(s) {', '.join(unknown)}; choose from: {', '.join(known)}")
    return [known[name] for name in names]


def _brief(measured: dict[str, dict[str, float | None]]) -> str:
    """One line of a set's results, for the progress report."""
    return "; ".join(
        f"{way} " + ", ".join(f"{key} {value:.3f}" for key, value in values.items() if value is not None)
        for way, values in measured.items()
    )


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def noharm_markdown(result: dict) -> str:
    """One table of the photo sets (rows: set × model × way) and one of the facemend-test sets."""
    lines = [
        "| set | model | way | faces | PSNR vs input (mean / min) | sharpness (mean / min) | IDD | strength "
        "| grey max |R−G|,|G−B| | PSNR-Y | gain kept (PSNR-Y / IDD) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_model in result["sets"].items():
        for spec, by_way in by_model.items():
            kept = by_way.get("gain_kept")
            for way, row in by_way.items():
                if way == "gain_kept":
                    continue
                shares = " / ".join(_cell(kept[key]) for key in PHOTO_GAIN_KEYS) if kept and way == "after" else ""
                lines.append(
                    f"| {name} | {spec} | {way} | {_cell(row.get('faces'), 0)} "
                    f"| {_cell(row.get('psnr'))} / {_cell(row.get('psnr_min'))} "
                    f"| {_cell(row.get('sharpness'))} / {_cell(row.get('sharpness_min'))} "
                    f"| {_cell(row.get('idd'), 3)} | {_cell(row.get('strength'))} "
                    f"| {_cell(row.get('grey_levels'), 0)} | {_cell(row.get('psnr_y'))} | {shares} |"
                )
    if result["testsets"]:
        lines += [
            "",
            "| facemend-test set | model | way | PSNR-Y | IDD | FD-dlib | strength | grey max |R−G|,|G−B| "
            "| gain kept (PSNR-Y / IDD / FD-dlib) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for folder, by_model in result["testsets"].items():
            for spec, rows in by_model.items():
                kept = rows["gain_kept"]
                for way in ("input", *WAYS):
                    row = rows[way]
                    shares = " / ".join(_cell(kept[key]) for key in DEGRADED_KEYS) if way == "after" else ""
                    lines.append(
                        f"| {folder} | {spec} | {way} | {_cell(row.get('psnr_y'))} | {_cell(row.get('idd'), 3)} "
                        f"| {_cell(row.get('fd_dlib'), 3)} | {_cell(row.get('strength'))} "
                        f"| {_cell(row.get('grey_levels'), 0)} | {shares} |"
                    )
    return "\n".join(lines) + "\n"

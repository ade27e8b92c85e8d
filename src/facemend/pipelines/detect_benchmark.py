"""Face detection benchmark: the true faces each detector finds, its false detections and its time per photo, on

- `real-lq/whole` (real photos, every face annotated by hand in a JSON file: `{"faces": {file: [[l, t, r, b]]}}`);
- folders of aligned faces (`real-lq/old-photos`, `real-lq/gray`): one face per image, in the template's box;
- generated scenes: facemend-test LQ faces pasted, at several face widths, into background photos (seeded).

A detection finds a true face when each box holds the other's centre (detectors draw boxes of different shapes:
HOG's are square and cut the forehead, YuNet's are taller); each true face is found at most once, best score
first. Detections that find nothing are false. Times are those of `find_faces` (detection and, for the dlib
detectors, the 68-point landmarks), after one warm-up call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from facemend.data.io import list_images, read_image
from facemend.errors import FacemendError
from facemend.faces import FaceBox, FaceDetector, find_faces
from facemend.faces.template import template_face_box
from facemend.package_files import package_file

SCENE_SIZE = (640, 480)  # w, h of a generated scene: under 800 px, so the dlib detectors search it at 2×
MAX_FACES_PER_SCENE = 6
CELL_MARGIN = 1.3  # a face's crop takes one grid cell of this many crop sides
FEATHER = 0.1  # share of the crop over which a pasted face fades into the background
# scikit-image's sample photos without a human face: the scenes' backgrounds (a dev dependency, located only)
BACKGROUNDS = (
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "coins.png",
)


@dataclass(frozen=True)
class Sample:
    name: str
    rgb: np.ndarray  # H×W×3 uint8
    faces: tuple[FaceBox, ...]
    pasted: tuple[tuple[str, int, int, int], ...] = ()  # generated scenes: (face file stem, left, top, side)


@dataclass
class Tally:
    photos: int = 0
    faces: int = 0
    found: int = 0
    false: int = 0
    seconds: float = 0.0

    def add(self, faces: int, found: int, false: int, seconds: float) -> None:
        self.photos += 1
        self.faces += faces
        self.found += found
        self.false += false
        self.seconds += seconds


def count_matches(detections: Sequence[FaceBox], truths: Sequence[FaceBox]) -> tuple[int, int]:
    """(true faces found, false detections)."""
    found = sum(truths_found(detections, truths))
    return found, len(detections) - found


def truths_found(detections: Sequence[FaceBox], truths: Sequence[FaceBox]) -> list[bool]:
    """Whether each true face is found: best-scoring detections first, each true face found once."""
    found = [False] * len(truths)
    for box in sorted(detections, key=lambda b: -b.score):
        match = next(
            (
                index
                for index, truth in enumerate(truths)
                if not found[index] and _holds(box, truth.center) and _holds(truth, box.center)
            ),
            None,
        )
        if match is not None:
            found[match] = True
    return found


def _holds(box: FaceBox, point: tuple[float, float]) -> bool:
    return box.left <= point[0] <= box.right and box.top <= point[1] <= box.bottom


def annotated_photos(folder: Path, annotations: Path) -> Iterator[Sample]:
    """The photos of `folder` named in `annotations`, with their hand-drawn face boxes."""
    faces = json.loads(annotations.read_text(encoding="utf-8"))["faces"]
    for name, boxes in sorted(faces.items()):
        rgb = read_image(folder / name).to_uint8()
        yield Sample(name, rgb, tuple(FaceBox(*box) for box in boxes))


def aligned_faces(folder: Path) -> Iterator[Sample]:
    """Aligned face crops: one face each, in the template's face box."""
    for path in list_images([str(folder)]):
        rgb = read_image(path).to_uint8()
        height, width = rgb.shape[:2]
        if height != width:
            raise FacemendError(f"{path}: an aligned face crop must be square, got {width}×{height}")
        yield Sample(path.name, rgb, (template_face_box(width),))


def crop_side(face_width: float) -> int:
    """Side of an aligned crop whose template face box is `face_width` wide."""
    box = template_face_box(512)
    return max(4, round(face_width * 512 / box.width))


def background(index: int, rng: np.random.Generator) -> np.ndarray:
    """A random `SCENE_SIZE` window of one of `BACKGROUNDS`, RGB uint8."""
    path = package_file("skimage", "data", BACKGROUNDS[index % len(BACKGROUNDS)], install='pip install -e ".[dev]"')
    rgb = read_image(path).to_uint8()
    width, height = SCENE_SIZE
    factor = max(width / rgb.shape[1], height / rgb.shape[0]) * rng.uniform(1.0, 1.5)
    rgb = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
    y = int(rng.integers(0, rgb.shape[0] - height + 1))
    x = int(rng.integers(0, rgb.shape[1] - width + 1))
    return np.ascontiguousarray(rgb[y : y + height, x : x + width])


def paste_crop(canvas: np.ndarray, crop: np.ndarray, left: int, top: int) -> None:
    """Paste a square crop into `canvas` at (left, top), its border feathered into the background."""
    side = crop.shape[0]
    ramp = np.clip((np.minimum(np.arange(side), np.arange(side)[::-1]) + 0.5) / max(1.0, FEATHER * side), 0, 1)
    alpha = np.minimum.outer(ramp, ramp)[..., None]
    region = canvas[top : top + side, left : left + side].astype(np.float32)
    canvas[top : top + side, left : left + side] = np.round(alpha * crop + (1 - alpha) * region).astype(np.uint8)


def synthetic_scenes(face_paths: Sequence[Path], face_width: int, seed: int) -> Iterator[Sample]:
    """Scenes of `SCENE_SIZE` with the faces of `face_paths` pasted at `face_width` px (template box width), up
    to `MAX_FACES_PER_SCENE` each, in random cells of a grid over a random background."""
    rng = np.random.default_rng([seed, face_width])
    side = crop_side(face_width)
    cell = round(side * CELL_MARGIN)
    columns, rows = SCENE_SIZE[0] // cell, SCENE_SIZE[1] // cell
    if columns * rows == 0:
        raise FacemendError(f"faces {face_width} px wide do not fit a {SCENE_SIZE[0]}×{SCENE_SIZE[1]} scene")
    per_scene = min(MAX_FACES_PER_SCENE, columns * rows)
    for start in range(0, len(face_paths), per_scene):
        canvas = background(int(rng.integers(0, 1 << 30)), rng)
        cells = rng.permutation(columns * rows)[: len(face_paths[start : start + per_scene])]
        faces, pasted = [], []
        for path, index in zip(face_paths[start : start + per_scene], cells, strict=False):
            crop = read_image(path).to_uint8()
            shrink = side < crop.shape[0]
            crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
            left = int((index % columns) * cell + rng.integers(0, cell - side + 1))
            top = int((index // columns) * cell + rng.integers(0, cell - side + 1))
            paste_crop(canvas, crop, left, top)
            faces.append(template_face_box(side).scaled(1.0, (left, top)))
            pasted.append((path.stem, left, top, side))
        yield Sample(f"w{face_width}_{start // per_scene:03d}", canvas, tuple(faces), tuple(pasted))


def measure(samples: Sequence[Sample], detectors: Sequence[str]) -> dict[str, Tally]:
    """Each detector's tally over `samples`."""
    tallies = {}
    for name in detectors:
        detector = FaceDetector(name)
        find_faces(samples[0].rgb, detector)  # warm-up: models load
        tally = Tally()
        for sample in samples:
            began = time.perf_counter()
            faces = find_faces(sample.rgb, detector)
            seconds = time.perf_counter() - began
            found, false = count_matches([face.box for face in faces], sample.faces)
            tally.add(len(sample.faces), found, false, seconds)
        tallies[name] = tally
    return tallies


def benchmark_sets(
    data: Path, annotations: Path, testset: Path | None, widths: Sequence[int], faces_per_width: int, seed: int
) -> dict[str, list[Sample]]:
    """Set name → its samples. `data` is the shared data folder; `testset` a facemend-test folder (its
    `heavy/lq` and `medium/lq` faces make the generated scenes), or None to skip them."""
    sets: dict[str, list[Sample]] = {
        "real-lq/whole": list(annotated_photos(data / "real-lq" / "whole", annotations)),
        "real-lq/old-photos": list(aligned_faces(data / "real-lq" / "old-photos")),
        "real-lq/gray": list(aligned_faces(data / "real-lq" / "gray")),
    }
    for preset in ("heavy", "medium") if testset is not None else ():
        paths = list_images([str(testset / preset / "lq")])[:faces_per_width]
        if not paths:
            raise FacemendError(f"{testset / preset / 'lq'}: no faces (make it with `facemend testset`)")
        for width in widths:
            sets[f"{preset} pasted, {width} px"] = list(synthetic_scenes(paths, width, seed))
    return sets


def run_detection_benchmark(
    data: Path,
    annotations: Path,
    testset: Path | None,
    detectors: Sequence[str],
    widths: Sequence[int],
    faces_per_width: int,
    seed: int,
    report=print,
) -> dict[str, dict[str, dict]]:
    """Set name → detector → tally (as a dict), on `benchmark_sets`."""
    sets = benchmark_sets(data, annotations, testset, widths, faces_per_width, seed)
    results = {}
    for name, samples in sets.items():
        results[name] = {detector: asdict(tally) for detector, tally in measure(samples, detectors).items()}
        report(markdown_row(name, results[name]))
    return results


def markdown_header(detectors: Sequence[str]) -> str:
    cells = " | ".join(f"{d}: found | {d}: false | {d}: s/photo" for d in detectors)
    return f"| set | photos | faces | {cells} |\n|---|---:|---:|" + "---:|" * (3 * len(detectors))


def markdown_row(name: str, tallies: dict[str, dict]) -> str:
    first = next(iter(tallies.values()))
    cells = " | ".join(
        f"{t['found']} | {t['false']} | {t['seconds'] / max(1, t['photos']):.3f}" for t in tallies.values()
    )
    return f"| {name} | {first['photos']} | {first['faces']} | {cells} |"

"""`facemend prepare`: source photos → aligned face crops split by identity, with a manifest.

Layout: `OUT/{train,val,test}/<source>__<stem>.png` and `OUT/manifest.jsonl`, one record per kept face:
file, source_path, source, identity, split, landmarks5, box (both in source-image pixels). The source is the
folder's name; the identity is a file's first sub-folder under it (LFW: the person) or else the file's stem.
One face per photo: the one nearest the centre. Tight crops (UTKFace) are found on a padded copy.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facemend.data.io import Photo, encode_image, list_images, read_image, write_bytes_atomic
from facemend.data.parallel import parallel_map
from facemend.data.splits import SPLITS, split_of
from facemend.errors import FacemendError
from facemend.faces import Face, FaceDetector, alignment_matrix, find_faces, warp_to_crop
from facemend.faces.dlib_models import cnn_face_detector, hog_face_detector, shape_predictor_68

PAD_FRACTION = 0.3  # of the image side, on each side, for the second detection attempt
SKIP_REASONS = ("no face", "too small", "unreadable")


@dataclass(frozen=True)
class SourceFile:
    path: Path
    source: str
    identity: str
    stem: str  # unique within the source


@dataclass
class PrepareSummary:
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason → count
    per_split: Counter = field(default_factory=Counter)

    def line(self) -> str:
        total = self.kept + sum(self.skipped.values())
        skipped = ", ".join(f"{self.skipped[r]} {r}" for r in SKIP_REASONS)
        splits = ", ".join(f"{s} {self.per_split[s]}" for s in SPLITS)
        share = 100.0 * self.kept / max(1, total)
        return f"kept {self.kept}/{total} faces ({share:.1f}%: {splits}); skipped: {skipped}"


def collect_sources(sources: list[str | Path]) -> list[SourceFile]:
    """Every image under each source folder, with its source name, identity and a unique stem."""
    files = []
    for source_dir in map(Path, sources):
        if not source_dir.is_dir():
            raise FacemendError(f"{source_dir}: not a folder of photos")
        source = source_dir.resolve().name
        seen: Counter = Counter()
        for path in list_images([source_dir]):
            relative = path.relative_to(source_dir)
            identity = relative.parts[0] if len(relative.parts) > 1 else path.stem
            seen[path.stem] += 1
            stem = path.stem if seen[path.stem] == 1 else f"{path.stem}_{seen[path.stem]}"
            files.append(SourceFile(path, source, identity, stem))
    return files


def _load_dlib_models() -> None:
    hog_face_detector()
    cnn_face_detector()
    shape_predictor_68()


_AS_IS = FaceDetector("hog", upsample_below=0)
# Cheapest first; most photos stop at the first: as they are, then padded (tight crops such as UTKFace need
# context around the face), then padded and, when small, searched at twice the size (HOG's window is 80 px).
_ATTEMPTS = ((0.0, _AS_IS), (PAD_FRACTION, _AS_IS), (PAD_FRACTION, FaceDetector("hog")))


def _central_face(image: np.ndarray) -> tuple[Face, int] | None:
    """The face nearest the centre and the padding it was found with, or None."""
    for pad_fraction, detector in _ATTEMPTS:
        offset = round(pad_fraction * max(image.shape[:2]))
        padded = cv2.copyMakeBorder(image, offset, offset, offset, offset, cv2.BORDER_CONSTANT, value=0)
        faces = find_faces(padded, detector, only_center_face=True)
        if faces:
            return faces[0], offset
    return None


@dataclass(frozen=True)
class Outcome:
    status: str  # "kept" or one of SKIP_REASONS
    record: dict | None = None  # the manifest record of a kept face
    message: str = ""  # why an unreadable file could not be read


def prepare_one(item: SourceFile, out: Path, size: int, min_face_size: int) -> Outcome:
    """Align the central face of one photo and write it."""
    try:
        photo = read_image(item.path)
    except FacemendError as error:
        return Outcome("unreadable", message=str(error))
    found = _central_face(photo.to_uint8())
    if found is None:
        return Outcome("no face")
    face, offset = found
    if face.size < min_face_size:
        return Outcome("too small")
    points5 = face.landmarks5 - offset
    crop = warp_to_crop(photo.rgb, alignment_matrix(points5, size), size)
    split = split_of(item.identity)
    file = f"{split}/{item.source}__{item.stem}.png"
    write_bytes_atomic(out / file, encode_image(Photo(crop, None)))
    record = {
        "file": file,
        "source_path": str(item.path),
        "source": item.source,
        "identity": item.identity,
        "split": split,
        "landmarks5": np.round(points5, 2).tolist(),
        "box": face.box.scaled(1.0, (-offset, -offset)).as_list(),
    }
    return Outcome("kept", record)


def prepare_dataset(
    sources: list[str | Path],
    out: str | Path,
    size: int = 512,
    min_face_size: int = 48,
    workers: int | None = None,
    progress: bool = True,
) -> PrepareSummary:
    """Prepare aligned `size`-px faces from `sources` into `out` (see the module docstring)."""
    if size < 16:
        raise FacemendError(f"size must be >= 16, got {size}")
    if min_face_size < 1:
        raise FacemendError(f"min_face_size must be >= 1, got {min_face_size}")
    out = Path(out)
    items = collect_sources(sources)
    if not items:
        raise FacemendError(f"no images found in {', '.join(map(str, sources))}")
    work = partial(prepare_one, out=out, size=size, min_face_size=min_face_size)
    summary = PrepareSummary()
    records = []
    results = parallel_map(
        work,
        items,
        workers,
        desc="prepare" if progress else None,
        chunksize=16,
        initializer=_load_dlib_models,
    )
    for outcome in results:
        if outcome.record is None:
            summary.skipped[outcome.status] += 1
            if outcome.message:
                tqdm.write(f"error: {outcome.message}", file=sys.stderr)
            continue
        summary.kept += 1
        summary.per_split[outcome.record["split"]] += 1
        records.append(outcome.record)
    records.sort(key=lambda r: r["file"])
    manifest = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    write_bytes_atomic(out / "manifest.jsonl", manifest.encode("utf-8"))
    return summary

"""Photo → detect → align → restorer (batched faces) → paste back → photo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from facemend.data.io import Photo
from facemend.errors import FacemendError
from facemend.faces import (
    DEFAULT_DETECTOR,
    DEFAULT_LANDMARKS,
    LANDMARKS,
    Face,
    FaceDetector,
    alignment_matrix,
    find_faces,
    paste_change,
    upscale_background,
    warp_to_crop,
)
from facemend.faces.template import face_box_in_photo, matrix_scale
from facemend.faces.tone import is_single_tone, luminance_only
from facemend.methods.base import Restorer
from facemend.precision import resolve_precision
from facemend.quality.damage import (
    ANALYSIS_SIZE,
    JPEG_BLOCK,
    FaceDamage,
    auto_strength,
    fine_band_damage,
    measure_damage,
    native_view_size,
)

MAX_UPSCALE = 8
AUTO_STRENGTH = "auto"


def parse_strength(value: str | float | None) -> float | None:
    """`"auto"` (or None) → None, the automatic strength; a number in [0, 1] (or its text) → that float."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO_STRENGTH):
        return None
    try:
        strength = float(value)
    except (TypeError, ValueError):
        raise FacemendError(f"strength must be 'auto' or a number in [0, 1], got {value!r}") from None
    if not 0.0 <= strength <= 1.0:
        raise FacemendError(f"strength must be 'auto' or a number in [0, 1], got {value!r}")
    return strength


@dataclass(frozen=True)
class FaceOptions:
    """How faces are found and put back."""

    detector: str = DEFAULT_DETECTOR
    landmarks: str = DEFAULT_LANDMARKS  # where the 5 alignment points come from: "dlib68" or "detector" (YuNet's)
    only_center_face: bool = False
    min_face_size: int = 32  # detector-box side in pixels; smaller faces are left as they are
    aligned: bool = False  # inputs are already aligned crops (any size): no detection, no paste-back
    upscale: int = 1  # output = input size × upscale
    strength: float | None = None  # share of the restorer's change applied to each face; None: auto, by its damage

    def __post_init__(self) -> None:
        if self.strength is not None and not 0.0 <= self.strength <= 1.0:
            raise FacemendError(f"strength must be 'auto' or a number in [0, 1], got {self.strength}")
        if not 1 <= self.upscale <= MAX_UPSCALE:
            raise FacemendError(f"upscale must be an integer in [1, {MAX_UPSCALE}], got {self.upscale}")
        if self.landmarks not in LANDMARKS:
            raise FacemendError(f"unknown landmarks {self.landmarks!r}; choose one of: {', '.join(LANDMARKS)}")
        if self.min_face_size < 1:
            raise FacemendError(f"min_face_size must be >= 1, got {self.min_face_size}")


@dataclass
class PhotoJob:
    """One photo on its way through the pipeline: its faces' crops, then their restorations."""

    photo: Photo
    faces: list[Face] = field(default_factory=list)
    matrices: list[np.ndarray] = field(default_factory=list)  # photo → crop, 2×3
    crops: list[np.ndarray] = field(default_factory=list)  # S×S×3 float32
    restored: list[np.ndarray] = field(default_factory=list)
    too_small: int = 0
    damages: list[FaceDamage] = field(default_factory=list)
    strengths: list[float] = field(default_factory=list)  # share of the restorer's change applied, per face
    drop_fine: list[float] = field(default_factory=list)  # share of the face's finer-than-S noise/blocks dropped
    single_tone: list[bool] = field(default_factory=list)  # grey or one-hue faces: luminance restored only

    def face_reports(self) -> list[dict[str, object]]:
        """Per face: the strength applied, the share of its finer-than-S noise and blocks dropped, the damage
        measured, and whether the face was restored in luminance only (grey or single-hue)."""
        return [
            {
                "strength": round(strength, 3),
                "drop_fine": round(drop, 3),
                "damage": damage.to_dict(),
                "single_tone": tone,
            }
            for strength, drop, damage, tone in zip(
                self.strengths, self.drop_fine, self.damages, self.single_tone, strict=True
            )
        ]

    def changes(self) -> list[np.ndarray]:
        """Per face, what is added to its crop: the restorer's change (restored − crop) times the face's strength,
        reduced to luminance for single-tone faces."""
        changes = []
        for crop, restored, strength, tone in zip(
            self.crops, self.restored, self.strengths, self.single_tone, strict=True
        ):
            change = (restored - crop) * np.float32(strength)
            changes.append(luminance_only(change) if tone else change)
        return changes

    def applied_faces(self) -> list[np.ndarray]:
        """The restored crops as they are pasted back: each crop plus its change, clipped to [0, 1]."""
        return [np.clip(crop + change, 0.0, 1.0) for crop, change in zip(self.crops, self.changes(), strict=True)]


@dataclass(frozen=True)
class FaceCropper:
    """Finds a photo's faces and cuts their aligned crops at `face_size`; holds no network, so worker
    processes can run it (the detector's models load once per process)."""

    face_size: int
    options: FaceOptions = field(default_factory=FaceOptions)

    def prepare(self, photo: Photo) -> PhotoJob:
        """Find the faces and cut their aligned crops."""
        if self.options.aligned:
            size, native = self.face_size, min(photo.width, photo.height)
            job = PhotoJob(photo, crops=[_resize(photo.rgb, (size, size))])
            side = native_view_size(native)
            native_crop = None if side is None else _resize(photo.rgb, (side, side))
            analysed = job.crops[0] if size == ANALYSIS_SIZE else _resize(photo.rgb, (ANALYSIS_SIZE, ANALYSIS_SIZE))
            self._assess(job, analysed, native, photo.rgb, native_crop)
            return job
        return self.crop_faces(photo, self.detect(photo))

    def detect(self, photo: Photo, min_score: float | None = None) -> list[Face]:
        """The photo's faces, left to right (or only the most central one), of every size; `min_score`: YuNet's
        score threshold, when lowered (videos: faces it overlaps a followed face)."""
        if self.options.aligned:
            raise FacemendError("aligned inputs are not searched for faces")
        detector = FaceDetector(self.options.detector, min_score=min_score)
        return find_faces(photo.to_uint8(), detector, self.options.only_center_face, self.options.landmarks)

    def crop_faces(self, photo: Photo, faces: Sequence[Face]) -> PhotoJob:
        """The aligned crops of `faces` (found in `photo`, perhaps smoothed since); faces below the minimum size
        are counted and left alone."""
        size = self.face_size
        job = PhotoJob(photo)
        for face in faces:
            if face.size < self.options.min_face_size:
                job.too_small += 1
                continue
            matrix = alignment_matrix(face.landmarks5, size)
            job.faces.append(face)
            job.matrices.append(matrix)
            job.crops.append(warp_to_crop(photo.rgb, matrix, size))
            native = size / matrix_scale(matrix)
            side = native_view_size(native)
            native_crop = None if side is None else warp_to_crop(photo.rgb, matrix * (side / size), side)
            analysed = job.crops[-1]
            if size != ANALYSIS_SIZE:  # cut at the analysis size itself, so the damage is the same for every model
                analysed = warp_to_crop(photo.rgb, matrix * (ANALYSIS_SIZE / size), ANALYSIS_SIZE)
            self._assess(job, analysed, native, _face_region(photo.rgb, matrix, size), native_crop)
        return job

    def _assess(
        self,
        job: PhotoJob,
        crop: np.ndarray,
        native_size: float,
        region: np.ndarray,
        native_crop: np.ndarray | None,
    ) -> None:
        """Record the face's damage, the strength it gets and whether it is single-toned, from its aligned crop at
        the analysis size."""
        damage = measure_damage(crop, native_size, region, native_crop)
        job.damages.append(damage)
        strength = auto_strength(damage) if self.options.strength is None else self.options.strength
        job.strengths.append(strength)
        job.drop_fine.append(strength * fine_band_damage(damage))
        job.single_tone.append(is_single_tone(crop))


class PhotoPipeline:
    """Restores the faces of photos with one restorer and one set of knob values."""

    def __init__(
        self,
        restorer: Restorer,
        knobs: dict[str, float | int] | None = None,
        options: FaceOptions | None = None,
        batch_size: int = 8,
        precision: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise FacemendError(f"batch size must be >= 1, got {batch_size}")
        self.restorer = restorer
        self.knobs = restorer.resolve_knobs(**(knobs or {}))
        self.options = options or FaceOptions()
        self.batch_size = batch_size
        self.precision = resolve_precision(precision)
        if not self.options.aligned:
            FaceDetector(self.options.detector)  # an unknown detector fails here, before any work
        self.cropper = FaceCropper(restorer.face_size, self.options)

    def prepare(self, photo: Photo) -> PhotoJob:
        """Find the faces and cut their aligned crops at the restorer's face size."""
        return self.cropper.prepare(photo)

    def detect(self, photo: Photo, min_score: float | None = None) -> list[Face]:
        """The photo's faces, left to right (or only the most central one), of every size (see
        `FaceCropper.detect`)."""
        return self.cropper.detect(photo, min_score)

    def crop_faces(self, photo: Photo, faces: Sequence[Face]) -> PhotoJob:
        """The aligned crops of `faces` at the restorer's face size (see `FaceCropper.crop_faces`)."""
        return self.cropper.crop_faces(photo, faces)

    def restore_crops(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Restore S×S×3 float32 crops, `batch_size` at a time.

        Every network call gets exactly `batch_size` faces (a short batch is padded with copies of its last face):
        oneDNN picks its kernels by the batch's shape, so a face's restoration would otherwise depend on how many
        faces it was batched with. With a fixed shape it depends on the face alone (on this CPU: checked in
        `tests/test_faces.py`), so a photo comes out the same alone, in a folder, or through the Ray engine.
        """
        restored: list[np.ndarray] = []
        for start in range(0, len(crops), self.batch_size):
            chunk = list(crops[start : start + self.batch_size])
            padded = chunk + [chunk[-1]] * (self.batch_size - len(chunk))
            batch = torch.from_numpy(np.stack(padded)).permute(0, 3, 1, 2)
            output = self.restorer(batch, precision=self.precision, **self.knobs)[: len(chunk)]
            restored.extend(output.permute(0, 2, 3, 1).float().cpu().numpy())
        return restored

    def finish(self, job: PhotoJob) -> Photo:
        """The output photo: each face's change (see `PhotoJob.changes`) added at the photo's own resolution, so the
        photo keeps the detail finer than the restorer's face size, less the share `drop_fine` of it judged noise or
        JPEG blocks (for aligned inputs, the crop's change resized to the output and added to the input)."""
        upscale = self.options.upscale
        height, width = job.photo.height * upscale, job.photo.width * upscale
        changes = job.changes()
        if self.options.aligned:
            shrinking = width * height < changes[0].shape[0] * changes[0].shape[1]
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
            change = cv2.resize(changes[0], (width, height), interpolation=interpolation)
            photo = _resize(job.photo.rgb, (width, height))
            base = cv2.resize(job.crops[0], (width, height), interpolation=interpolation)
            return job.photo.with_rgb(photo + change + np.float32(job.drop_fine[0]) * (base - photo))
        canvas = upscale_background(job.photo.rgb, upscale)
        for change, matrix, crop, drop in zip(changes, job.matrices, job.crops, job.drop_fine, strict=True):
            paste_change(canvas, change, matrix, upscale, crop, drop)
        return job.photo.with_rgb(canvas)

    def __call__(self, photo: Photo) -> tuple[Photo, PhotoJob]:
        """Restore one photo; also returns its job (faces found, crops and restorations)."""
        job = self.prepare(photo)
        job.restored = self.restore_crops(job.crops)
        return self.finish(job), job


def _face_region(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The photo's pixels under the face box of the aligned crop (`matrix`: photo → crop at `size`), an upright
    rectangle starting on JPEG's 8-pixel block grid."""
    points = face_box_in_photo(matrix, size)
    height, width = image.shape[:2]
    x0, y0 = (max(0, int(v)) // JPEG_BLOCK * JPEG_BLOCK for v in points.min(axis=0))
    x1, y1 = min(width, int(np.ceil(points[:, 0].max()))), min(height, int(np.ceil(points[:, 1].max())))
    return image[y0 : max(y0, y1), x0 : max(x0, x1)]


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` resized to `size` (w, h): area averaging when shrinking, bicubic when enlarging."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image.astype(np.float32, copy=True)
    shrinking = size[0] * size[1] < width * height
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return np.clip(resized, 0.0, 1.0).astype(np.float32)

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
    Face,
    FaceDetector,
    alignment_matrix,
    find_faces,
    paste_face,
    upscale_background,
    warp_to_crop,
)
from facemend.methods.base import Restorer
from facemend.precision import resolve_precision

MAX_UPSCALE = 8


@dataclass(frozen=True)
class FaceOptions:
    """How faces are found and put back."""

    detector: str = "hog"
    only_center_face: bool = False
    min_face_size: int = 32  # detector-box side in pixels; smaller faces are left as they are
    aligned: bool = False  # inputs are already aligned crops (any size): no detection, no paste-back
    upscale: int = 1  # output = input size × upscale

    def __post_init__(self) -> None:
        if not 1 <= self.upscale <= MAX_UPSCALE:
            raise FacemendError(f"upscale must be an integer in [1, {MAX_UPSCALE}], got {self.upscale}")
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


@dataclass(frozen=True)
class FaceCropper:
    """Finds a photo's faces and cuts their aligned crops at `face_size`; holds no network, so worker
    processes can run it (the detector's models load once per process)."""

    face_size: int
    options: FaceOptions = field(default_factory=FaceOptions)

    def prepare(self, photo: Photo) -> PhotoJob:
        """Find the faces and cut their aligned crops."""
        if self.options.aligned:
            size = self.face_size
            return PhotoJob(photo, crops=[_resize(photo.rgb, (size, size))])
        return self.crop_faces(photo, self.detect(photo))

    def detect(self, photo: Photo) -> list[Face]:
        """The photo's faces, left to right (or only the most central one), of every size."""
        if self.options.aligned:
            raise FacemendError("aligned inputs are not searched for faces")
        detector = FaceDetector(self.options.detector)
        return find_faces(photo.to_uint8(), detector, self.options.only_center_face)

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
        return job


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

    def detect(self, photo: Photo) -> list[Face]:
        """The photo's faces, left to right (or only the most central one), of every size."""
        return self.cropper.detect(photo)

    def crop_faces(self, photo: Photo, faces: Sequence[Face]) -> PhotoJob:
        """The aligned crops of `faces` at the restorer's face size (see `FaceCropper.crop_faces`)."""
        return self.cropper.crop_faces(photo, faces)

    def restore_crops(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Restore S×S×3 float32 crops, `batch_size` at a time."""
        restored: list[np.ndarray] = []
        for start in range(0, len(crops), self.batch_size):
            batch = torch.from_numpy(np.stack(crops[start : start + self.batch_size])).permute(0, 3, 1, 2)
            output = self.restorer(batch, precision=self.precision, **self.knobs)
            restored.extend(output.permute(0, 2, 3, 1).float().cpu().numpy())
        return restored

    def finish(self, job: PhotoJob) -> Photo:
        """The output photo: restored faces pasted back (or the restored crop, for aligned inputs)."""
        upscale = self.options.upscale
        height, width = job.photo.height * upscale, job.photo.width * upscale
        if self.options.aligned:
            return job.photo.with_rgb(_resize(job.restored[0], (width, height)))
        canvas = upscale_background(job.photo.rgb, upscale)
        for face, matrix in zip(job.restored, job.matrices, strict=True):
            paste_face(canvas, face, matrix, upscale)
        return job.photo.with_rgb(canvas)

    def __call__(self, photo: Photo) -> tuple[Photo, PhotoJob]:
        """Restore one photo; also returns its job (faces found, crops and restorations)."""
        job = self.prepare(photo)
        job.restored = self.restore_crops(job.crops)
        return self.finish(job), job


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` resized to `size` (w, h): area averaging when shrinking, bicubic when enlarging."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image.astype(np.float32, copy=True)
    shrinking = size[0] * size[1] < width * height
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return np.clip(resized, 0.0, 1.0).astype(np.float32)

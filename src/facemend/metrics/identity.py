"""IDD and LMD from dlib: the 128-d face descriptor and the 68 landmarks of aligned face crops.

Aligned crops need no detection: dlib's landmark model runs in the template face box (`template_face_box`), so
even faces too degraded for a detector are measured. A face counts as not found (its values are missing, never
zero) when the crop is flat or the landmark fit is implausible: eyes closer than a tenth of the crop, or points
far outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dlib
import numpy as np

from facemend.faces import dlib_models
from facemend.faces.landmarks import LEFT_EYE, RIGHT_EYE
from facemend.faces.template import template_face_box

CHIP_SIZE = 150  # dlib's descriptor network input; its chips pad the face by 25%
CHIP_PADDING = 0.25
FLAT_STD = 2.0  # grey levels (0–255): below this the crop holds no face to find
MIN_EYE_DISTANCE = 0.1  # share of the crop side
MAX_OUTSIDE = 0.25  # share of the crop side a landmark may lie outside the crop


@dataclass(frozen=True)
class FaceSignatures:
    """Landmarks `n 68 2` and descriptors `n 128` of n crops; rows of faces not found are NaN."""

    landmarks: np.ndarray
    descriptors: np.ndarray

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.landmarks[:, 0, 0])

    def take(self, indices: np.ndarray | Sequence[int]) -> FaceSignatures:
        return FaceSignatures(self.landmarks[indices], self.descriptors[indices])


def face_signatures(crops: Sequence[np.ndarray], with_descriptors: bool = True) -> FaceSignatures:
    """dlib landmarks (and descriptors) of aligned H×W×3 uint8 RGB face crops of any size."""
    predictor = dlib_models.shape_predictor_68()
    landmarks = np.full((len(crops), 68, 2), np.nan)
    descriptors = np.full((len(crops), 128), np.nan)
    chips, rows = [], []
    for i, crop in enumerate(crops):
        crop = np.ascontiguousarray(crop)
        size = crop.shape[0]
        shape = predictor(crop, template_face_box(size).to_dlib())
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
        if not _plausible(crop, points):
            continue
        landmarks[i] = points
        if with_descriptors:
            chips.append(dlib.get_face_chip(crop, shape, size=CHIP_SIZE, padding=CHIP_PADDING))
            rows.append(i)
    if chips:
        computed = dlib_models.face_descriptor_model().compute_face_descriptor(chips)
        descriptors[rows] = np.array([list(d) for d in computed], np.float64)
    return FaceSignatures(landmarks, descriptors)


def _plausible(crop: np.ndarray, points: np.ndarray) -> bool:
    size = crop.shape[0]
    if crop.astype(np.float32).mean(axis=2).std() < FLAT_STD:
        return False
    if eye_distance(points) < MIN_EYE_DISTANCE * size:
        return False
    margin = MAX_OUTSIDE * size
    return bool(((points > -margin) & (points < np.array(crop.shape[1::-1]) + margin)).all())


def eye_distance(points68: np.ndarray) -> np.ndarray:
    """Distance between the eye centres of `… 68 2` landmarks."""
    return np.linalg.norm(points68[..., LEFT_EYE, :].mean(axis=-2) - points68[..., RIGHT_EYE, :].mean(axis=-2), axis=-1)


def identity_distance(prediction: FaceSignatures, target: FaceSignatures) -> np.ndarray:
    """IDD per image: Euclidean distance of dlib descriptors (dlib's same-person threshold is 0.6); NaN if either
    face was not found."""
    return np.linalg.norm(prediction.descriptors - target.descriptors, axis=1)


def landmark_distance(prediction: FaceSignatures, target: FaceSignatures) -> np.ndarray:
    """LMD per image: mean distance of the 68 landmarks over the target's inter-ocular distance; NaN if either face
    was not found."""
    return np.linalg.norm(prediction.landmarks - target.landmarks, axis=2).mean(axis=1) / eye_distance(target.landmarks)

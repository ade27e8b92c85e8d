"""How well a detector's faces align and restore, against today's dlib HOG + 68-point landmarks:

- `landmark_agreement`: on photos (LFW), the detector's 5 points against dlib's 68 points reduced to 5, as a
  share of the face's size (the width of the template's face box at the face's native crop size) and in pixels
  of a 512-px aligned crop (the mean offset per point, so a systematic shift shows);
- `scene_alignment_error`: on generated scenes (facemend-test faces pasted at known places, see `detect_benchmark`),
  the detector's 5 points against the true ones (the template's: the faces are aligned crops);
- `restore_scenes`: generated scenes (facemend-test faces pasted at known places, see `detect_benchmark`)
  restored whole by a `PhotoPipeline`, each pasted face cut back out so that its restoration can be measured
  against the ground truth with `facemend eval`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from facemend.data.io import photo_from_array, write_image
from facemend.faces import DEFAULT_LANDMARKS, FaceDetector, alignment_matrix, find_faces, native_size, template_points
from facemend.faces.template import TEMPLATE_FACE_BOX_512, TEMPLATE_SIZE, transform_points
from facemend.pipelines.detect_benchmark import Sample, truths_found
from facemend.pipelines.photo import PhotoPipeline

POINT_NAMES = ("left eye", "right eye", "nose tip", "left mouth corner", "right mouth corner")


def landmark_agreement(
    images: Iterator[np.ndarray], detector: str, limit: int, landmarks: str = DEFAULT_LANDMARKS
) -> dict:
    """The 5 points `find_faces` gives with `detector` and `landmarks` against dlib's (HOG box, 68 points → 5) on
    the most central face of each image, over the first `limit` images where both find a face."""
    reference, candidate = FaceDetector("hog"), FaceDetector(detector)
    shares, offsets, missed = [], [], 0
    for image in images:
        theirs = find_faces(image, reference, only_center_face=True)
        if not theirs:
            continue
        ours = find_faces(image, candidate, only_center_face=True, landmarks=landmarks)
        if not ours:
            missed += 1
            continue
        truth, points = theirs[0].landmarks5, ours[0].landmarks5
        face_width = native_size(truth) * (TEMPLATE_FACE_BOX_512[2] - TEMPLATE_FACE_BOX_512[0]) / TEMPLATE_SIZE
        shares.append(np.linalg.norm(points - truth, axis=1) / face_width)
        matrix = alignment_matrix(truth, TEMPLATE_SIZE)
        offsets.append(transform_points(matrix, points) - transform_points(matrix, truth))
        if len(shares) == limit:
            break
    share, offset = np.array(shares), np.array(offsets)
    return {
        "faces": len(shares),
        "missed_by_detector": missed,
        "mean_error_share": float(share.mean()),
        "median_error_share": float(np.median(share.mean(axis=1))),
        "p95_error_share": float(np.percentile(share.mean(axis=1), 95)),
        "per_point_error_share": dict(zip(POINT_NAMES, share.mean(axis=0).round(4).tolist(), strict=True)),
        "mean_offset_px_at_512": dict(zip(POINT_NAMES, offset.mean(axis=0).round(2).tolist(), strict=True)),
    }


def scene_alignment_error(scenes: Sequence[Sample], detector: str, landmarks: str = DEFAULT_LANDMARKS) -> dict:
    """Each found face's 5 points against where they truly are: the pasted crops are aligned faces, so their points
    are the template's (the alignment of the training faces); error as a share of the face's width."""
    finder = FaceDetector(detector)
    errors = []
    for scene in scenes:
        faces = find_faces(scene.rgb, finder, landmarks=landmarks)
        for (_, left, top, side), truth in zip(scene.pasted, scene.faces, strict=True):
            hit = [face for face in faces if truths_found([face.box], [truth])[0]]
            if hit:
                errors.append(np.linalg.norm(hit[0].landmarks5 - template_points(side) - [left, top], axis=1))
                errors[-1] /= truth.width
    error = np.array(errors)
    return {
        "faces": len(errors),
        "mean_error_share": float(error.mean()),
        "median_error_share": float(np.median(error.mean(axis=1))),
        "per_point_error_share": dict(zip(POINT_NAMES, error.mean(axis=0).round(4).tolist(), strict=True)),
    }


def restore_scenes(scenes: Sequence[Sample], pipeline: PhotoPipeline, out: Path) -> dict[str, bool]:
    """Restore each scene whole and write each pasted face's region of the result to `out/<stem>.png`; returns
    face stem → whether the pipeline's detector found it (a face it missed comes back as it went in)."""
    out.mkdir(parents=True, exist_ok=True)
    found: dict[str, bool] = {}
    for scene in scenes:
        restored, job = pipeline(photo_from_array(scene.rgb))
        rgb = restored.to_uint8()
        hits = truths_found([face.box for face in job.faces], scene.faces)
        for (stem, left, top, side), hit in zip(scene.pasted, hits, strict=True):
            write_image(out / f"{stem}.png", photo_from_array(rgb[top : top + side, left : left + side]))
            found[stem] = hit
    return found

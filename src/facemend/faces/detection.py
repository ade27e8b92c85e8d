"""Face detectors: YuNet (default: learned, box + 5 landmarks), dlib HOG, dlib CNN (MMOD) and OpenCV Haar, all
returning `Detection`s in the coordinates of the image they were given, cleaned of empty boxes and near-duplicates.

`yunet` (see `facemend.faces.yunet`) gives each face its 5 landmarks too (`find_faces` decides which points align).
`hog` is a cascade tuned for degraded photos at CPU cost: HOG boxes it is unsure of are kept only if dlib's
CNN, run on the box's neighbourhood alone (~160 ms), finds a face there; when HOG finds nothing, OpenCV's Haar
candidates are checked the same way. `cnn` runs the CNN on the whole photo (seconds per megapixel); `haar` is
the bare cascade (fastest, most false positives).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from facemend.errors import FacemendError
from facemend.faces import dlib_models
from facemend.faces.boxes import Detection, FaceBox, suppress_duplicates
from facemend.faces.yunet import detect_yunet

DETECTORS = ("yunet", "hog", "cnn", "haar")
DEFAULT_DETECTOR = "yunet"
HOG_MIN_SCORE = 0.15  # real faces score ≥ 0.2 on 99% of LFW/UTKFace; textures on clothing score below
# HOG boxes scoring below this are kept only if dlib's CNN also finds a face in them: 11 of 280 sampled real LFW
# faces score below it (all 11 confirmed), and so do false positives on clothing (rejected).
HOG_CONFIRM_BELOW = 0.6
CONFIRM_WINDOW = 200  # px: side of the region (twice the box) handed to the CNN; 160 missed blurred faces


# (max_side, upsample_below) of each detector, see `FaceDetector`
SEARCH_SIZES = {"yunet": (1600, 0), "hog": (1600, 800), "cnn": (1600, 800), "haar": (1600, 800)}


@dataclass(frozen=True)
class FaceDetector:
    """Detects faces in an H×W×3 uint8 RGB image.

    Big images are shrunk so that their long side is at most `max_side` (detection cost grows with pixels);
    images whose long side is under `upsample_below` are searched at twice their size (HOG's window is 80 px,
    so the dlib detectors need that to find faces down to ~40 px; YuNet finds them at their own size).
    `None` takes the detector's own value from `SEARCH_SIZES`.
    """

    name: str = DEFAULT_DETECTOR
    max_side: int | None = None
    upsample_below: int | None = None
    min_score: float | None = None  # yunet only: the score a face needs (None: `yunet.SCORE_THRESHOLD`)

    def __post_init__(self) -> None:
        if self.name not in DETECTORS:
            raise FacemendError(f"unknown detector {self.name!r}; choose one of: {', '.join(DETECTORS)}")
        if self.min_score is not None and (self.name != "yunet" or not 0.0 < self.min_score <= 1.0):
            raise FacemendError(f"min_score is YuNet's, in (0, 1]; got {self.min_score} for {self.name!r}")

    def __call__(self, image: np.ndarray) -> list[FaceBox]:
        """The faces' boxes."""
        return [detection.box for detection in self.detect(image)]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The faces' boxes and, from YuNet, their 5 landmarks; best score first, without near-duplicates."""
        default_max_side, default_upsample_below = SEARCH_SIZES[self.name]
        max_side = default_max_side if self.max_side is None else self.max_side
        upsample_below = default_upsample_below if self.upsample_below is None else self.upsample_below
        height, width = image.shape[:2]
        long_side = max(height, width)
        scale = min(1.0, max_side / long_side)
        if long_side * scale < upsample_below:
            scale *= 2.0
        if scale != 1.0:
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=interpolation)
        image = np.ascontiguousarray(image)
        if self.name == "yunet":
            found = detect_yunet(image) if self.min_score is None else detect_yunet(image, self.min_score)
        else:
            found = [Detection(box) for box in _DETECT[self.name](image)]
        return [detection.scaled(1.0 / scale) for detection in suppress_duplicates(found)]


def _detect_hog(image: np.ndarray) -> list[FaceBox]:
    rects, scores, _ = dlib_models.hog_face_detector().run(image, 0, HOG_MIN_SCORE)
    boxes = [FaceBox(r.left(), r.top(), r.right(), r.bottom(), float(s)) for r, s in zip(rects, scores, strict=True)]
    found = [box for box in boxes if box.score >= HOG_CONFIRM_BELOW or _cnn_confirms(image, box)]
    if not found:  # blur defeats HOG's gradients sooner than Haar's coarse features: try those, checked
        found = [box for box in _detect_haar(image) if _cnn_confirms(image, box)]
    return found


def _cnn_confirms(image: np.ndarray, box: FaceBox) -> bool:
    """Whether dlib's CNN finds a face in the region around `box`, resized so the face is ~100 px."""
    (cx, cy), half = box.center, max(box.width, box.height)
    height, width = image.shape[:2]
    x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
    x1, y1 = min(width, round(cx + half)), min(height, round(cy + half))
    factor = CONFIRM_WINDOW / (2 * half)
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    region = cv2.resize(image[y0:y1, x0:x1], None, fx=factor, fy=factor, interpolation=interpolation)
    return len(dlib_models.cnn_face_detector()(np.ascontiguousarray(region), 0)) > 0


def _detect_cnn(image: np.ndarray) -> list[FaceBox]:
    detections = dlib_models.cnn_face_detector()(image, 0)
    return [
        FaceBox(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), float(d.confidence)) for d in detections
    ]


@lru_cache(maxsize=1)
def _haar_cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FacemendError(f"OpenCV Haar cascade not found at {path} (opencv-python-headless<5 ships it)")
    return cascade


def _detect_haar(image: np.ndarray) -> list[FaceBox]:
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    found, _, weights = _haar_cascade().detectMultiScale3(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40), outputRejectLevels=True
    )
    return [
        FaceBox(float(x), float(y), float(x + w), float(y + h), float(s))
        for (x, y, w, h), s in zip(found, np.ravel(weights), strict=True)
    ]


_DETECT = {"hog": _detect_hog, "cnn": _detect_cnn, "haar": _detect_haar}

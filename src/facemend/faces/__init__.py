"""Faces: detection (YuNet's 5 landmarks, or dlib's 68 reduced to 5), the FFHQ-style template, paste-back, and
tracking through video."""

from facemend.faces.boxes import Detection, FaceBox
from facemend.faces.detection import DEFAULT_DETECTOR, DETECTORS, FaceDetector
from facemend.faces.locate import DEFAULT_LANDMARKS, LANDMARKS, Face, find_faces
from facemend.faces.paste import feather_mask, paste_change, paste_face, upscale_background
from facemend.faces.template import alignment_matrix, native_size, template_points, warp_to_crop
from facemend.faces.tracking import FaceTracker, SmoothingOptions

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_LANDMARKS",
    "DETECTORS",
    "Detection",
    "Face",
    "FaceBox",
    "FaceDetector",
    "FaceTracker",
    "LANDMARKS",
    "SmoothingOptions",
    "alignment_matrix",
    "feather_mask",
    "find_faces",
    "native_size",
    "paste_change",
    "paste_face",
    "template_points",
    "upscale_background",
    "warp_to_crop",
]

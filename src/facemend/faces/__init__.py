"""Faces: detection, 68→5-point landmarks, the FFHQ-style template, paste-back, and tracking through video."""

from facemend.faces.detection import DETECTORS, FaceBox, FaceDetector
from facemend.faces.locate import Face, find_faces
from facemend.faces.paste import feather_mask, paste_face, upscale_background
from facemend.faces.template import alignment_matrix, native_size, template_points, warp_to_crop
from facemend.faces.tracking import FaceTracker, SmoothingOptions

__all__ = [
    "DETECTORS",
    "Face",
    "FaceBox",
    "FaceDetector",
    "FaceTracker",
    "SmoothingOptions",
    "alignment_matrix",
    "feather_mask",
    "find_faces",
    "native_size",
    "paste_face",
    "template_points",
    "upscale_background",
    "warp_to_crop",
]

"""dlib's model files, shipped in the `face_recognition_models` wheel, loaded once per process.

`face_recognition_models/__init__.py` imports `pkg_resources` (gone in setuptools >= 81), so the package is only
located, never imported.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import dlib

from facemend.package_files import package_file

SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
CNN_FACE_DETECTOR = "mmod_human_face_detector.dat"
FACE_DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"


def dlib_model_path(filename: str) -> Path:
    """Path of one of dlib's model files inside the installed `face_recognition_models` package."""
    return package_file("face_recognition_models", "models", filename)


@lru_cache(maxsize=1)
def shape_predictor_68() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_68)))


@lru_cache(maxsize=1)
def hog_face_detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=1)
def cnn_face_detector() -> dlib.cnn_face_detection_model_v1:
    return dlib.cnn_face_detection_model_v1(str(dlib_model_path(CNN_FACE_DETECTOR)))


@lru_cache(maxsize=1)
def face_descriptor_model() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(dlib_model_path(FACE_DESCRIPTOR)))

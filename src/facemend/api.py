"""The Python API: `facemend.restore(image, model=..., **knobs)`."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from facemend.data.io import photo_from_array, photo_to_array, photo_to_pil, read_image
from facemend.faces.detection import DEFAULT_DETECTOR
from facemend.faces.locate import DEFAULT_LANDMARKS
from facemend.methods.base import Restorer
from facemend.methods.registry import DEFAULT_MODEL, resolve_model
from facemend.pipelines.photo import FaceOptions, PhotoPipeline, parse_strength
from facemend.runtime import runtime_precision, with_runtime

ImageLike = TypeVar("ImageLike", np.ndarray, Image.Image)


def restore(
    image: ImageLike | str | Path,
    model: str | Restorer = DEFAULT_MODEL,
    *,
    aligned: bool = False,
    detector: str = DEFAULT_DETECTOR,
    landmarks: str = DEFAULT_LANDMARKS,
    only_center_face: bool = False,
    min_face_size: int = 32,
    upscale: int = 1,
    strength: float | str = "auto",
    precision: str = "auto",
    runtime: str = "torch",
    **knobs: float | int,
) -> ImageLike | Image.Image:
    """Restore the faces in `image` and return the restored photo.

    `image` is an ndarray (H×W grey, H×W×3 RGB or H×W×4 RGBA; uint8, uint16 or float in [0, 1]), a PIL image,
    or a path; the result has the same type and layout (a PIL image for a path). `model` is a spec such as
    `"classical:keep_input=0.5"` or a `Restorer`; `knobs` set the model's knobs (e.g. `keep_input=0.7`; a knob's
    old name works for one release, with a `DeprecationWarning`). `precision`:
    `"fp32"`, `"bf16"` or `"auto"` (bf16 where the CPU computes it natively). `runtime`: `"torch"`, or `"onnx"`
    (onnxruntime in fp32, on the network's cached ONNX export, made on first use). `strength`: the share of the
    model's change applied to each face, in [0, 1], or `"auto"` (by how damaged each face is). `landmarks`: where the
    5 alignment points come from, `"dlib68"` (dlib's 68-point model in the face's box) or `"detector"` (YuNet's own).
    A photo without a face comes back unchanged.
    """
    restorer, resolved = resolve_model(model, **knobs)
    precision = runtime_precision(runtime, precision)
    restorer = with_runtime(restorer, runtime)
    options = FaceOptions(
        detector,
        landmarks,
        only_center_face,
        min_face_size,
        aligned,
        upscale,
        strength=parse_strength(strength),
    )
    pipeline = PhotoPipeline(restorer, resolved, options, precision=precision)
    photo = read_image(image) if isinstance(image, str | Path) else photo_from_array(image)
    restored, _ = pipeline(photo)
    if isinstance(image, np.ndarray):
        return photo_to_array(restored, like=image)
    return photo_to_pil(restored)

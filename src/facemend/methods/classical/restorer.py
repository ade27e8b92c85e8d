"""`classical`: denoising plus detail enhancement, no learning. The baseline row of every evaluation table.

Per face: estimate the noise level (Immerkær's fast estimator), remove noise and block artefacts with
non-local means at a strength set by that estimate, then restore local contrast with a two-scale unsharp mask
on luma. `keep_input` blends the result with the input (1 = the input unchanged), as in the other methods; its
old name `fidelity` (now only CodeFormer's fusion weight) works for one more release.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from facemend.methods.base import Restorer, blend_with_input, keep_input_knob

_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def estimate_noise_sigma(gray: np.ndarray) -> float:
    """Std of additive Gaussian noise in a greyscale image (any scale), Immerkær (1996), eq. 4."""
    height, width = gray.shape
    response = cv2.filter2D(gray.astype(np.float32), -1, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT)
    total = np.abs(response[1:-1, 1:-1]).sum(dtype=np.float64)
    return float(math.sqrt(math.pi / 2) * total / (6.0 * (width - 2) * (height - 2)))


def enhance_face(face: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB → H×W×3 float32 in [0, 1]: denoised, then sharpened."""
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    strength = float(np.clip(1.1 * estimate_noise_sigma(gray) + 2.0, 3.0, 25.0))
    denoised = cv2.fastNlMeansDenoisingColored(face, None, strength, strength, 5, 15).astype(np.float32) / 255.0
    # sharpen luma only and add the same detail to R, G and B: no colour fringes, no hue shifts
    luma = cv2.cvtColor(denoised, cv2.COLOR_RGB2GRAY)
    scale = face.shape[0] / 512.0
    fine = cv2.GaussianBlur(luma, (0, 0), max(0.5, 1.0 * scale))
    medium = cv2.GaussianBlur(luma, (0, 0), max(1.0, 4.0 * scale))
    detail = 0.8 * (luma - fine) + 0.4 * (luma - medium)
    return np.clip(denoised + detail[..., None], 0.0, 1.0)


class ClassicalRestorer(Restorer):
    name = "classical"
    knobs = (keep_input_knob(0.3, old_names=("fidelity",)),)

    def __init__(self, face_size: int = 512) -> None:
        self.face_size = face_size

    def restore_faces(self, faces: torch.Tensor, *, keep_input: float) -> torch.Tensor:
        images = np.clip(np.rint(faces.permute(0, 2, 3, 1).cpu().numpy() * 255.0), 0, 255).astype(np.uint8)
        enhanced = torch.from_numpy(np.stack([enhance_face(image) for image in images])).permute(0, 3, 1, 2)
        return blend_with_input(faces, enhanced.to(faces.device, faces.dtype), keep_input)

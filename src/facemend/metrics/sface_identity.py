"""SFace identity of facemend's aligned crops: the crop (FFHQ 5-point template, any square size) is warped onto
SFace's ArcFace template at 112 px, differentiably (kornia), and embedded.

Used twice, and marked so in every table: as the identity *loss* a restorer is trained with (`training/losses.py`,
cosine distance to the HQ face's embedding, GFPGAN-style) and as the `ids_sface` metric (cosine similarity to
the ground truth, higher is better). A model trained with the loss is judged by dlib's IDD, FD-dlib and LMD,
which it never saw (the independence rule).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import warp_affine
from torch import nn

from facemend.faces.template import template_points
from facemend.models.sface import ARCFACE_POINTS_112, INPUT_SIZE, SFace

# Crops are first reduced (antialiased) to this size when larger, so the warp never minifies by more than ~1.1×.
WORKING_SIZE = 128


@lru_cache(maxsize=16)
def crop_to_sface_matrix(size: int) -> np.ndarray:
    """2×3 similarity transform from an aligned `size`-px crop's pixel coordinates to SFace's 112-px input:
    the FFHQ template's 5 points onto ArcFace's (least squares)."""
    matrix, _ = cv2.estimateAffinePartial2D(template_points(size), ARCFACE_POINTS_112, method=cv2.LMEDS)
    return matrix


def to_sface_input(faces: torch.Tensor) -> torch.Tensor:
    """Aligned crops `b 3 S S` in [0, 1] → SFace inputs `b 3 112 112`, differentiable in `faces`."""
    if faces.shape[-1] > WORKING_SIZE:
        faces = F.interpolate(faces, size=(WORKING_SIZE,) * 2, mode="bilinear", antialias=True, align_corners=False)
    matrix = torch.as_tensor(crop_to_sface_matrix(faces.shape[-1]), dtype=faces.dtype, device=faces.device)
    return warp_affine(faces, matrix.expand(faces.shape[0], 2, 3), (INPUT_SIZE, INPUT_SIZE), align_corners=False)


class SFaceIdentity(nn.Module):
    """Aligned crops `b 3 S S` (RGB in [0, 1]) → unit SFace embeddings `b 128`. Frozen; gradients flow to the
    input."""

    def __init__(self) -> None:
        super().__init__()
        self.sface = SFace()

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.sface(to_sface_input(faces.float()))

    def embed_with_maps(self, faces: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The embeddings and SFace's feature maps at four resolutions (`SFace.embed_with_maps`)."""
        return self.sface.embed_with_maps(to_sface_input(faces.float()))


def identity_similarity(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Cosine similarity, `b`, of two batches of unit embeddings."""
    return (first * second).sum(dim=1)

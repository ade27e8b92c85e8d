"""No-reference image quality: NIQE and BRISQUE as batched, differentiable torch modules."""

from .brisque import BRISQUE
from .niqe import NIQE

__all__ = ["BRISQUE", "NIQE"]

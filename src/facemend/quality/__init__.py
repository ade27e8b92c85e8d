"""No-reference image quality: NIQE and BRISQUE as batched, differentiable torch modules, and IQPFR's quality
prior (a calibrated NIQE score in [0, 1])."""

from .brisque import BRISQUE
from .niqe import NIQE
from .prior import QualityPrior, QualityPriorConfig

__all__ = ["BRISQUE", "NIQE", "QualityPrior", "QualityPriorConfig"]

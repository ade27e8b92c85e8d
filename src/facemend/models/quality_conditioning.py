"""IQPFR's quality conditioning, a plug-in for any code predictor (iqpfr, and baseline / daefr as `baseline-q`,
`daefr-q`): a face's quality score is quantised into bins and each bin has a learned tensor of the token grid's
shape that is added to the latent the transformer reads (IQPIR's code: 10 bins, the embedding reshaped to the
token grid, added to the LQ features).

Training conditions on each HQ face's true score (the prior of `quality/prior.py`); at inference the score is
the user's target (`quality` knob). Bin k holds scores in [k / bins, (k + 1) / bins); 1.0 joins the top bin, so
IQPIR's inference score 0.9 and the knob's default 1.0 ask for the same thing. The tensor is learned at the
model's token grid and resized bicubically for other grids (as the position embeddings are), so the networks
stay resolution-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from facemend.models.tokenizer import TokenizerConfig
from facemend.quality.prior import QualityPriorConfig

DEFAULT_QUALITY = 1.0  # the target when none is given: the best attainable (the top bin, as IQPIR's 0.9)


@dataclass
class QualityConditioningConfig:
    bins: int = 10  # IQPIR: the score quantised into 10 bins
    prior: QualityPriorConfig = field(default_factory=QualityPriorConfig)  # the scorer (and calibration) whose
    # scores the predictor is conditioned on; saved with the weights so that `quality` keeps its meaning

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise ValueError(f"bins must be >= 2, got {self.bins}")


def quality_bins(quality: torch.Tensor, bins: int) -> torch.Tensor:
    """Scores in [0, 1] (`b`) → bin indices `b` in [0, bins − 1]: ⌊score · bins⌋, 1.0 in the top bin. In float64
    with a 1e-6 margin, so that a knob value on a bin edge (0.7 → bin 7) is not floored into the bin below."""
    return (quality.double().clamp(0.0, 1.0) * bins + 1e-6).floor().long().clamp(max=bins - 1)


class QualityEmbedding(nn.Module):
    """Scores `b` → additive conditions `b d h w`: one learned `d × grid × grid` tensor per bin."""

    def __init__(self, dim: int, grid: int, bins: int):
        super().__init__()
        self.dim, self.grid, self.bins = dim, grid, bins
        self.embedding = nn.Embedding(bins, dim * grid * grid)
        nn.init.normal_(self.embedding.weight, std=0.02)  # as the position embeddings: small beside the latent

    def forward(self, quality: torch.Tensor | float, latent: torch.Tensor) -> torch.Tensor:
        """Scores (a float or `b`) and the `b d h w` latent they condition → `b d h w` to add to it."""
        batch, _, height, width = latent.shape
        scores = torch.as_tensor(quality, device=latent.device).reshape(-1).expand(batch)
        condition = rearrange(
            self.embedding(quality_bins(scores, self.bins)), "b (d h w) -> b d h w", d=self.dim, h=self.grid
        )
        if (height, width) != (self.grid, self.grid):
            condition = F.interpolate(condition, size=(height, width), mode="bicubic", align_corners=False)
        return condition.to(latent.dtype)


def quality_embedding(config: QualityConditioningConfig | None, tokenizer: TokenizerConfig) -> QualityEmbedding | None:
    """The embedding a predictor on `tokenizer`'s token grid builds for `config` (None: no conditioning)."""
    if config is None:
        return None
    return QualityEmbedding(tokenizer.codebook_dim, tokenizer.token_grid, config.bins)


def quality_condition(
    embedding: QualityEmbedding | None, quality: torch.Tensor | float | None, latent: torch.Tensor
) -> torch.Tensor | None:
    """What a predictor adds to `latent` (None: nothing): the embedding of `quality` (None: DEFAULT_QUALITY)."""
    if embedding is None:
        if quality is not None:
            raise ValueError("quality given to a predictor without quality conditioning")
        return None
    return embedding(DEFAULT_QUALITY if quality is None else quality, latent)

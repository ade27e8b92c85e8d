"""Multi-head cross-attention between two feature maps on the same token grid (DAEFR's fusion of its two
encoders, Tsai et al., 2024): every position of the query map attends to every position of the context map.

Queries and keys carry the grid's learned position embeddings (`blocks.GridPositionEmbedding`, shared by both
maps, so that a position attends most easily to the same place in the other map); values do not, as in DETR.
Both inputs are layer-normalised first; the attended values, projected, are added to the query map and the sum
is layer-normalised (residual + norm): with the context ignored, the output is the normalised query map.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from facemend.models.blocks import GridPositionEmbedding


class CrossAttention(nn.Module):
    """`b d h w` queries, `b d h w` context → `b d h w`, with `heads` heads of `dim / heads` channels."""

    def __init__(self, dim: int, heads: int, grid: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.position = GridPositionEmbedding(dim, grid)
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """`b d h w` query map and `b d h w` context map (same grid) → `b d h w`."""
        height, width = query.shape[2:]
        if context.shape[2:] != query.shape[2:]:
            raise ValueError(f"context grid {tuple(context.shape[2:])} differs from the query grid {(height, width)}")
        position = self.position(height, width)
        tokens = rearrange(query, "b d h w -> b (h w) d")
        context = self.norm_context(rearrange(context, "b d h w -> b (h w) d"))
        attended, _ = self.attention(
            self.norm_query(tokens) + position, context + position, context, need_weights=False
        )
        return rearrange(self.norm_out(tokens + attended), "b (h w) d -> b d h w", h=height, w=width)

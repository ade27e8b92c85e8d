"""Vector quantizer with an l2-normalised codebook kept alive by dead-code restarts.

Lookup is by cosine similarity (both the encoder output and the codes live on the unit sphere), which keeps
codes comparable and the codebook well used (Yu et al., ViT-VQGAN, 2022). A code that no encoder vector
picked for `dead_code_steps` consecutive training steps is restarted at a random encoder vector of the
current batch (Dhariwal et al., Jukebox, 2020). Under torch.distributed the usage is summed over processes and
the restarted codes are broadcast from rank 0, so every process keeps the same codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # b d h w, straight-through: gradients flow to the encoder
    indices: torch.Tensor  # b h w, long
    commitment_loss: torch.Tensor  # scalar: pulls encoder outputs to their codes
    codebook_loss: torch.Tensor  # scalar: pulls codes to the encoder outputs


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class VectorQuantizer(nn.Module):
    ema_exempt = ("codebook",)  # restarts move codes: a weight average of the codebook would be meaningless

    def __init__(self, codebook_size: int, dim: int, dead_code_steps: int = 100):
        super().__init__()
        self.codebook_size = codebook_size
        self.dim = dim
        self.dead_code_steps = dead_code_steps
        self.codebook = nn.Parameter(F.normalize(torch.randn(codebook_size, dim), dim=1))
        self.register_buffer("idle_steps", torch.zeros(codebook_size, dtype=torch.long))

    def normalized_codebook(self) -> torch.Tensor:
        return F.normalize(self.codebook.float(), dim=1)

    def nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        """`n d` unit vectors → `n` indices of the most similar codes."""
        return (vectors @ self.normalized_codebook().t()).argmax(dim=1)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """`b d h w` encoder output → the nearest codes' indices `b h w`, without a training step's side effects
        (no restarts, no losses)."""
        height, width = z.shape[2:]
        with torch.autocast(device_type=z.device.type, enabled=False):
            vectors = F.normalize(rearrange(z.float(), "b d h w -> (b h w) d"), dim=1)
            return rearrange(self.nearest(vectors), "(b h w) -> b h w", h=height, w=width)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """`b h w` indices → `b d h w` codes."""
        return rearrange(self.normalized_codebook()[indices], "b h w d -> b d h w")

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """`b d h w` encoder output → quantized `b d h w`, indices `b h w` and the two VQ losses."""
        height, width = z.shape[2:]
        with torch.autocast(device_type=z.device.type, enabled=False):
            vectors = F.normalize(rearrange(z.float(), "b d h w -> (b h w) d"), dim=1)
            if self.training:
                self._restart_dead_codes(vectors.detach())
            indices = self.nearest(vectors.detach())
            codes = self.normalized_codebook()[indices]
            commitment_loss = F.mse_loss(vectors, codes.detach())
            codebook_loss = F.mse_loss(codes, vectors.detach())
            quantized = vectors + (codes - vectors).detach()
        quantized = rearrange(quantized, "(b h w) d -> b d h w", h=height, w=width)
        indices = rearrange(indices, "(b h w) -> b h w", h=height, w=width)
        return QuantizerOutput(quantized, indices, commitment_loss, codebook_loss)

    @torch.no_grad()
    def _restart_dead_codes(self, vectors: torch.Tensor) -> None:
        counts = torch.bincount(self.nearest(vectors), minlength=self.codebook_size)
        if _distributed():
            dist.all_reduce(counts)
        self.idle_steps.add_(1).masked_fill_(counts > 0, 0)
        dead = (self.idle_steps >= self.dead_code_steps).nonzero().squeeze(1)
        if dead.numel() == 0:
            return
        picks = torch.randint(0, vectors.shape[0], (dead.numel(),), device=vectors.device)
        self.codebook.data[dead] = vectors[picks].to(self.codebook.dtype)
        self.idle_steps[dead] = 0
        if _distributed():
            dist.broadcast(self.codebook.data, src=0)


def codebook_usage(indices: torch.Tensor, codebook_size: int) -> tuple[float, float]:
    """Share of codes used at least once, and the perplexity of their frequencies, over `indices`."""
    counts = torch.bincount(indices.flatten(), minlength=codebook_size).double()
    probs = counts / counts.sum()
    entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
    return float((counts > 0).double().mean()), float(entropy.exp())

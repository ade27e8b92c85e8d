"""Controllable fusion of LQ encoder features into the decoder (CodeFormer's controllable feature
transformation, Zhou et al., 2022, eq. 6): at each fused level, scale α and shift β are predicted from the LQ
encoder's and the decoder's features, and the decoder's features become F̂_d = F_d + w · (α ⊙ F_d + β).
w = 0 leaves the decoder's output untouched (the pure codebook answer); w = 1 uses the LQ features fully."""

from __future__ import annotations

import torch
from torch import nn

from facemend.models.blocks import ResBlock
from facemend.models.tokenizer import Decoder, VQTokenizer


class FusionBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.mix = ResBlock(2 * channels, channels)
        self.scale = nn.Conv2d(channels, channels, 3, padding=1)
        self.shift = nn.Conv2d(channels, channels, 3, padding=1)
        for conv in (self.scale, self.shift):  # start as the identity: training begins from the lookup output
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, decoded: torch.Tensor, encoded: torch.Tensor, fidelity: torch.Tensor) -> torch.Tensor:
        """`b c h w` decoder and LQ-encoder features, fidelity `b 1 1 1` → `b c h w`."""
        mixed = self.mix(torch.cat([encoded, decoded], dim=1))
        return decoded + fidelity * (decoded * self.scale(mixed) + self.shift(mixed))


def check_fusion_levels(levels: tuple[int, ...] | list[int], level_count: int) -> tuple[int, ...]:
    """`levels` as a tuple, each a tokenizer level (0 = full resolution … `level_count` − 1); a config's
    `fusion_levels` field is named in the error."""
    bad = [level for level in levels if not 0 <= level < level_count]
    if bad:
        raise ValueError(f"fusion_levels: {bad[0]} is not a tokenizer level (0..{level_count - 1})")
    return tuple(levels)


class FidelityFusion(nn.Module):
    """One FusionBlock per fused level (level 0 = full resolution; `widths[level]` channels)."""

    def __init__(self, widths: list[int], levels: tuple[int, ...]):
        super().__init__()
        check_fusion_levels(levels, len(widths))
        self.blocks = nn.ModuleDict({str(level): FusionBlock(widths[level]) for level in levels})

    def forward(
        self, level: int, decoded: torch.Tensor, encoded: list[torch.Tensor], fidelity: torch.Tensor
    ) -> torch.Tensor:
        if str(level) not in self.blocks:
            return decoded
        return self.blocks[str(level)](decoded, encoded[level], fidelity)


def decode_with_fusion(
    tokenizer: VQTokenizer,
    fusion: FidelityFusion,
    indices: torch.Tensor,
    lq_features: list[torch.Tensor],
    fidelity: torch.Tensor | float,
) -> torch.Tensor:
    """Code indices `b h w` → images `b 3 H W` through the tokenizer's decoder, with the LQ encoder's features
    (one per level) fused in at weight `fidelity` (a float or `b`)."""
    return decode_codes_with_fusion(
        tokenizer.decoder, fusion, tokenizer.quantizer.lookup(indices), lq_features, fidelity
    )


def decode_codes_with_fusion(
    decoder: Decoder,
    fusion: FidelityFusion,
    codes: torch.Tensor,
    lq_features: list[torch.Tensor],
    fidelity: torch.Tensor | float,
) -> torch.Tensor:
    """Codes `b d h w` → images `b 3 H W` through `decoder`, with the LQ features fused in at `fidelity`."""
    reference = lq_features[0]
    weight = torch.as_tensor(fidelity, dtype=reference.dtype, device=reference.device).reshape(-1, 1, 1, 1)
    weight = weight.expand(codes.shape[0], 1, 1, 1)
    return decoder(codes, modulate=lambda level, h: fusion(level, h, lq_features, weight.to(h.dtype)))

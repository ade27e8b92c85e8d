"""`daefr`: dual associated encoders (DAEFR, Tsai et al., ICLR 2024). What LIAGM/DAEFR's code fixes is taken
from it (facts read from its public code); the rest is ours:

- HQ prior: the shared HQ tokenizer (`hq_tokenizer`; tiny: configs/tokenizer/tiny-32.yaml), frozen: its encoder
  and codebook give the HQ faces' target codes; only its decoder is fine-tuned, with the fusion, as baseline's.
- LQ branch: a second tokenizer of the same config (`lq_tokenizer`), trained by self-reconstruction on LQ faces
  with its own codebook (recipe `tokenizer-lq`, configs/tokenizer/lq-tiny-32.yaml).
- Branch encoders: `hq_branch_encoder` and `lq_branch_encoder` start as copies of the two tokenizers' encoders;
  they are what the association aligns and the prediction fine-tunes, while the tokenizers keep their own
  encoders (the HQ one for the target codes).
- Association (`methods/daefr/recipe.py`): CLIP's symmetric cross-entropy over each face's token-grid
  positions (each position a patch), with a learnable temperature (`association`: logit scale exp(t),
  t initialised to ln(1/0.07), the scale clamped at 100 as in CLIP).
- Combining the branches (`combine`): `mhca` (DAEFR): multi-head cross-attention (`methods/daefr/cross_attention.py`)
  on the codebook_dim channels of the token grid, queries from the LQ-branch encoder's latent of the LQ face,
  keys and values from the HQ-branch encoder's latent of the same LQ face; `add`: the two latents, each
  1×1-projected, summed (ablation: a second branch without the fusion); `hq_only`: the HQ-branch latent alone
  (ablation: the single-encoder baseline; no LQ tokenizer, LQ-branch encoder or temperature is built).
- Prediction: the shared code transformer (`models/code_transformer.py`) on the combined latent, one shot
  (argmax), decoded by the HQ decoder (`methods/lookup.py`, shared with baseline).
- Fidelity: the shared controllable fusion (CodeFormer's) of the LQ-branch encoder's features (the HQ-branch
  encoder's under `hq_only`) into the HQ decoder at weight `fidelity`, trained last: decoding the codes alone
  loses identity at the tiny size, as for baseline and artfr.
- Input blend: `keep_input` mixes the input image back into the output (`blend_with_input`, as artfr's),
  default 0.3, chosen on facemend-val for the weights of the second identity stage (docs/identity-stage.md; 0.5
  for the first one's); before them, 0.85 was the smallest share at which the bundled model beat the input on
  both IDD and FD-dlib under both presets (docs/methods/daefr.md). `daefr-q` shares the default.
- Quality conditioning (`daefr-q`, off by default): IQPFR's plug-in (`models/quality_conditioning.py`), added to
  the combined latent the transformer reads; nothing else changes.
- Restoring drops the LQ tokenizer and the temperature (`DaefrRestorer.training_only`): bundled weights leave
  them out (tiny: 9.9 M parameters, 19 MiB in float16, under the 20 MiB limit; 24 MiB with them). The HQ
  tokenizer's encoder stays: code accuracy needs the HQ faces' codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from facemend.methods.daefr.cross_attention import CrossAttention
from facemend.methods.lookup import CodePrediction, LookupRestorer, predict_codes
from facemend.models.code_transformer import CodeTransformer, CodeTransformerConfig
from facemend.models.fusion import FidelityFusion, check_fusion_levels
from facemend.models.quality_conditioning import QualityConditioningConfig, quality_condition, quality_embedding
from facemend.models.tokenizer import Encoder, TokenizerConfig, VQTokenizer

KIND = "daefr"
COMBINES = ("mhca", "add", "hq_only")
MAX_LOGIT_SCALE = 100.0  # CLIP's clamp of exp(t)
DEFAULT_KEEP_INPUT = 0.3  # the input's share of the output (`blend_with_input`); chosen on facemend-val for the
# identity2 stage's weights (docs/identity-stage.md; it was 0.85, then 0.5)


@dataclass
class DaefrConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # both tokenizers' and branch encoders'
    transformer: CodeTransformerConfig = field(default_factory=CodeTransformerConfig)
    combine: str = "mhca"  # how the branches meet: "mhca" (DAEFR), "add" or "hq_only" (ablations)
    attention_heads: int = 8  # heads of the cross-attention, on codebook_dim channels (DAEFR: 8 on 256)
    fusion_levels: tuple[int, ...] = (0, 1, 2)  # tokenizer levels (0 = full resolution) that take LQ features
    quality_conditioning: QualityConditioningConfig | None = None  # IQPFR's plug-in (daefr-q); None: off

    def __post_init__(self) -> None:
        self.fusion_levels = check_fusion_levels(self.fusion_levels, len(self.tokenizer.channel_mults))
        if self.combine not in COMBINES:
            raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got {self.combine!r}")
        dim = self.tokenizer.codebook_dim
        if self.attention_heads < 1 or dim % self.attention_heads:
            raise ValueError(f"attention_heads must divide tokenizer.codebook_dim ({dim}), got {self.attention_heads}")


class LogitScale(nn.Module):
    """CLIP's learnable temperature, as the logit scale exp(t) (Radford et al., 2021)."""

    def __init__(self, initial_temperature: float = 0.07):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / initial_temperature)))

    def forward(self) -> torch.Tensor:
        """→ the scalar exp(t), at most MAX_LOGIT_SCALE."""
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)


class BranchSum(nn.Module):
    """`add`: the LQ-branch and HQ-branch latents, each 1×1-projected, summed; starts as their mean."""

    def __init__(self, dim: int):
        super().__init__()
        self.lq_proj = nn.Conv2d(dim, dim, 1)
        self.hq_proj = nn.Conv2d(dim, dim, 1)
        for conv in (self.lq_proj, self.hq_proj):
            nn.init.zeros_(conv.bias)
            with torch.no_grad():
                conv.weight.copy_(0.5 * torch.eye(dim).view(dim, dim, 1, 1))

    def forward(self, lq_latent: torch.Tensor, hq_latent: torch.Tensor) -> torch.Tensor:
        """Two `b d h w` latents → `b d h w`."""
        return self.lq_proj(lq_latent) + self.hq_proj(hq_latent)


class DaefrModel(nn.Module):
    def __init__(self, config: DaefrConfig):
        super().__init__()
        self.config = config
        tokens = config.tokenizer
        self.hq_tokenizer = VQTokenizer(tokens)  # the HQ prior: frozen after its own training
        self.hq_branch_encoder = Encoder(tokens)
        if self.dual:
            self.lq_tokenizer = VQTokenizer(tokens)  # trained on LQ faces (recipe tokenizer-lq), then frozen
            self.lq_branch_encoder = Encoder(tokens)
            self.association = LogitScale()
            if config.combine == "mhca":
                self.combine = CrossAttention(tokens.codebook_dim, config.attention_heads, tokens.token_grid)
            else:
                self.combine = BranchSum(tokens.codebook_dim)
        self.transformer = CodeTransformer(
            config.transformer, tokens.codebook_dim, tokens.codebook_size, tokens.token_grid
        )
        self.fusion = FidelityFusion(tokens.widths(), config.fusion_levels)
        self.quality_embedding = quality_embedding(config.quality_conditioning, tokens)

    @property
    def dual(self) -> bool:
        """Whether the model has the LQ branch (every `combine` but `hq_only`)."""
        return self.config.combine != "hq_only"

    def encode(self, lq: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`b 3 H W` LQ faces → the combined latent `b d h w` the transformer reads, and the encoder features
        (one per level, full resolution first) that the fusion blends into the decoder."""
        hq_latent, hq_features = self.hq_branch_encoder(lq, return_features=True)
        if not self.dual:
            return hq_latent, hq_features
        lq_latent, lq_features = self.lq_branch_encoder(lq, return_features=True)
        return self.combine(lq_latent, hq_latent), lq_features

    def forward(
        self,
        lq: torch.Tensor,
        fidelity: torch.Tensor | float | None = None,
        hq: torch.Tensor | None = None,
        quality: torch.Tensor | float | None = None,
    ) -> CodePrediction:
        """`b 3 H W` LQ faces in [0, 1] → the lookup's `CodePrediction` (`methods/lookup.py`): the HQ prior's
        codes predicted from the combined latent (plus the embedding of `quality` when conditioned), decoded
        with the fusion when `fidelity` is given."""
        latent, features = self.encode(lq)
        condition = quality_condition(self.quality_embedding, quality, latent)
        return predict_codes(
            self.transformer, self.hq_tokenizer, self.fusion, latent, features, fidelity, hq, condition
        )


class DaefrRestorer(LookupRestorer):
    name = "daefr"
    kind = KIND
    config_class = DaefrConfig
    model_class = DaefrModel
    training_only = ("lq_tokenizer", "association")  # restoring needs neither (tiny: 2.4 M of 12.4 M parameters)
    default_keep_input = DEFAULT_KEEP_INPUT

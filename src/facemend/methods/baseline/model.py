"""`baseline`: CodeFormer-style lookup. An LQ encoder (initialised from the tokenizer's encoder) feeds a
transformer that predicts the HQ face's code indices; the frozen HQ decoder decodes the looked-up codes, while
a controllable fusion blends LQ encoder features into it with weight `fidelity` (0 = the codebook's answer,
most quality; 1 = most faithful to the input). The lookup itself (`methods/lookup.py`) is shared with daefr.

`quality_conditioning` (off by default) plugs in IQPFR's quality conditioning (`models/quality_conditioning.py`):
the transformer then reads the LQ latent plus an embedding of the HQ face's quality score (training) or the
`quality` knob (restoring); nothing else changes (`baseline-q`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from facemend.methods.lookup import CodePrediction, LookupRestorer, predict_codes
from facemend.models.code_transformer import CodeTransformer, CodeTransformerConfig
from facemend.models.fusion import FidelityFusion, check_fusion_levels
from facemend.models.quality_conditioning import QualityConditioningConfig, quality_condition, quality_embedding
from facemend.models.tokenizer import Encoder, TokenizerConfig, VQTokenizer

KIND = "baseline"


@dataclass
class BaselineConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    transformer: CodeTransformerConfig = field(default_factory=CodeTransformerConfig)
    fusion_levels: tuple[int, ...] = (0, 1, 2)  # tokenizer levels (0 = full resolution) that take LQ features
    quality_conditioning: QualityConditioningConfig | None = None  # IQPFR's plug-in (baseline-q); None: off

    def __post_init__(self) -> None:
        self.fusion_levels = check_fusion_levels(self.fusion_levels, len(self.tokenizer.channel_mults))


class BaselineModel(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        self.config = config
        tokens = config.tokenizer
        self.tokenizer = VQTokenizer(tokens)  # the HQ prior: frozen after its own training
        self.lq_encoder = Encoder(tokens)
        self.transformer = CodeTransformer(
            config.transformer, tokens.codebook_dim, tokens.codebook_size, tokens.token_grid
        )
        self.fusion = FidelityFusion(tokens.widths(), config.fusion_levels)
        self.quality_embedding = quality_embedding(config.quality_conditioning, tokens)

    def forward(
        self,
        lq: torch.Tensor,
        fidelity: torch.Tensor | float | None = None,
        hq: torch.Tensor | None = None,
        quality: torch.Tensor | float | None = None,
    ) -> CodePrediction:
        """`b 3 H W` LQ faces in [0, 1] → code logits; decoded images too when `fidelity` (a float or `b`) is
        given; the HQ faces' codes when `hq` is given. `quality` (a float or `b`; default 1) is the target score
        of a quality-conditioned model."""
        lq_latent, features = self.lq_encoder(lq, return_features=True)
        condition = quality_condition(self.quality_embedding, quality, lq_latent)
        return predict_codes(
            self.transformer, self.tokenizer, self.fusion, lq_latent, features, fidelity, hq, condition
        )


class BaselineRestorer(LookupRestorer):
    name = "baseline"
    kind = KIND
    config_class = BaselineConfig
    model_class = BaselineModel

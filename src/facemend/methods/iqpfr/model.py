"""`iqpfr`: an image-quality prior steers the code prediction (IQPFR). What IQPIR's code fixes is taken from it
(its facts: 10 score bins embedded into a token-grid-shaped tensor added to the LQ features, a head of
2 × codebook_size logits, decoded features = 0.8 × HQ+ + 1 × common, inference at 0.9); the rest is ours:

- Prior: a calibrated no-reference score in [0, 1] (`quality/prior.py`): NIQE at 512 px by default, BRISQUE
  then being the independent metric (or the reverse, `metric: brisque`; see the caution there about NIQE on
  128-px faces). `facemend score` scores a folder and fits the calibration, which the config keeps
  (`quality_conditioning.prior`) and the weights carry.
- Common codebook: the shared HQ tokenizer's (tiny: configs/tokenizer/tiny-32.yaml), whose encoder and codebook
  stay frozen; they give every HQ face its common codes.
- HQ+ codebook (`hqplus`): a second quantizer of the same size on the same encoder latent, starting as a copy of
  the common codebook. Its stage (`methods/iqpfr/recipe.py`) trains it with the shared decoder on the faces
  scoring ≥ the stage's `min_score` only (the share kept is logged), the encoder and common codebook frozen:
  the decoder reads 1 × common + 0.8 × HQ+ codes and learns to reconstruct those faces. From then on the
  decoder decodes such combined codes; nothing decodes common codes alone.
- Predictor: an LQ encoder (a copy of the tokenizer's) → + the quality embedding (`models/quality_conditioning.py`)
  → the shared code transformer with a head of 2 × codebook_size logits per token: the common and the HQ+ codes
  of the HQ face (each the nearest code of its latent in that codebook), argmax each, decode the combination.
- Condition in training: each HQ face's true score, computed on the fly by the prior (no gradient) on the face
  as the model sees it (at its face size, flipped or not): the same scorer, size and calibration as the quality
  loss and the `quality` knob, and no bookkeeping between the files of a scores.jsonl and the training draws.
- `quality` knob: default 1.0, the best attainable; it falls in the same (top) bin as IQPIR's inference score
  0.9, so the default is IQPIR's setting.
- Discrete quality optimisation (loss `quality`): `methods/iqpfr/recipe.py`.
- Fidelity: the shared controllable fusion (CodeFormer's) of LQ encoder features into the decoder, trained last,
  as for the other lookup methods.
- Input blend: `keep_input` mixes the input image back into the output (`blend_with_input`, as daefr's), default
  0.5, chosen on facemend-val for the weights of the identity stage (docs/identity-stage.md); before it, 0.7 was
  the smallest share at which the bundled model beat the input on both IDD and FD-dlib under both presets
  (docs/methods/iqpfr.md).
- Restoring drops the common tokenizer's encoder (`IqpfrRestorer.training_only`), which only gives training the
  HQ faces' codes: bundled weights leave it out (tiny: 9.6 M parameters, 18.3 MiB in float16), and restorers
  report no code accuracy.
- Ablation `hqplus: false`: the common codebook alone (a head of codebook_size logits, no HQ+ stage); the
  conditioning and the quality loss stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from facemend.methods.lookup import CodePrediction, LookupRestorer, argmax_codes, lookup_knobs
from facemend.models.code_transformer import CodeTransformer, CodeTransformerConfig
from facemend.models.fusion import FidelityFusion, check_fusion_levels, decode_codes_with_fusion
from facemend.models.quality_conditioning import QualityConditioningConfig, quality_condition, quality_embedding
from facemend.models.quantizer import VectorQuantizer
from facemend.models.tokenizer import Encoder, TokenizerConfig, VQTokenizer

KIND = "iqpfr"
HQPLUS_WEIGHT = 0.8  # IQPIR: decoded features = 1 × common + 0.8 × HQ+
DEFAULT_KEEP_INPUT = 0.5  # the input's share of the output (`blend_with_input`; docs/identity-stage.md)


@dataclass
class IqpfrConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # the common codebook's tokenizer
    transformer: CodeTransformerConfig = field(default_factory=CodeTransformerConfig)
    quality_conditioning: QualityConditioningConfig = field(default_factory=QualityConditioningConfig)
    hqplus: bool = True  # the HQ+ codebook (false: the ablation with the common codebook only)
    hqplus_weight: float = HQPLUS_WEIGHT  # weight of the HQ+ codes in the decoded features
    fusion_levels: tuple[int, ...] = (0, 1, 2)  # tokenizer levels (0 = full resolution) that take LQ features

    def __post_init__(self) -> None:
        self.fusion_levels = check_fusion_levels(self.fusion_levels, len(self.tokenizer.channel_mults))
        if self.hqplus_weight <= 0:
            raise ValueError(f"hqplus_weight must be > 0, got {self.hqplus_weight}")


@dataclass
class IqpfrPrediction(CodePrediction):
    """The lookup's prediction plus iqpfr's second code sequence, over its HQ+ codebook (all None without it)."""

    hqplus_logits: torch.Tensor | None = None  # b (h w) n
    hqplus_indices: torch.Tensor | None = None  # b h w
    hqplus_target_indices: torch.Tensor | None = None  # b h w, the HQ face's HQ+ codes (when `hq` is given)

    def code_accuracies(self) -> dict[str, float]:
        """`code_acc` (the common codes) and, with the HQ+ codebook, `hqplus_acc`."""
        accuracies = super().code_accuracies()
        if self.hqplus_indices is not None:
            accuracies["hqplus_acc"] = (self.hqplus_indices == self.hqplus_target_indices).float().mean().item()
        return accuracies

    def code_cross_entropy(self) -> torch.Tensor:
        """The common codes' cross-entropy plus, with the HQ+ codebook, the HQ+ codes' (summed: the common codes
        weigh as much as in the baseline)."""
        ce = super().code_cross_entropy()
        if self.hqplus_logits is not None:
            ce = ce + F.cross_entropy(self.hqplus_logits.transpose(1, 2).float(), self.hqplus_target_indices.flatten(1))
        return ce


class IqpfrModel(nn.Module):
    def __init__(self, config: IqpfrConfig):
        super().__init__()
        self.config = config
        tokens = config.tokenizer
        self.tokenizer = VQTokenizer(tokens)  # the common codebook (frozen) and the shared decoder
        if config.hqplus:
            self.hqplus = VectorQuantizer(tokens.codebook_size, tokens.codebook_dim, tokens.dead_code_steps)
        self.lq_encoder = Encoder(tokens)
        self.quality_embedding = quality_embedding(config.quality_conditioning, tokens)
        self.transformer = CodeTransformer(
            config.transformer, tokens.codebook_dim, tokens.codebook_size * self.codebooks, tokens.token_grid
        )
        self.fusion = FidelityFusion(tokens.widths(), config.fusion_levels)

    @property
    def codebooks(self) -> int:
        """How many code sequences the transformer predicts: 2 (common, HQ+), or 1 without the HQ+ codebook."""
        return 2 if self.config.hqplus else 1

    def combine(self, common: torch.Tensor, hqplus: torch.Tensor | None = None) -> torch.Tensor:
        """Common (and HQ+) codes `b d h w` → the decoder's input `b d h w`: 1 × common + w × HQ+ (IQPIR)."""
        return common if hqplus is None else common + self.config.hqplus_weight * hqplus

    def codes(self, indices: torch.Tensor, hqplus_indices: torch.Tensor | None = None) -> torch.Tensor:
        """Common (and HQ+) code indices `b h w` → the decoder's input `b d h w`."""
        hqplus = None if hqplus_indices is None else self.hqplus.lookup(hqplus_indices)
        return self.combine(self.tokenizer.quantizer.lookup(indices), hqplus)

    @torch.no_grad()
    def hq_indices(self, hq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`b 3 H W` HQ faces → their common and HQ+ codes (`b h w` each; HQ+ None without it)."""
        latent = self.tokenizer.encoder(hq)
        hqplus = self.hqplus.indices(latent) if self.config.hqplus else None
        return self.tokenizer.quantizer.indices(latent), hqplus

    def logits(
        self, latent: torch.Tensor, quality: torch.Tensor | float | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The LQ latent `b d h w` and target scores → logits `b (h w) n` over the common and the HQ+ codebook."""
        logits = self.transformer(latent + quality_condition(self.quality_embedding, quality, latent))
        common, *hqplus = logits.split(self.config.tokenizer.codebook_size, dim=-1)
        return common, (hqplus[0] if hqplus else None)

    def forward(
        self,
        lq: torch.Tensor,
        fidelity: torch.Tensor | float | None = None,
        hq: torch.Tensor | None = None,
        quality: torch.Tensor | float | None = None,
    ) -> IqpfrPrediction:
        """`b 3 H W` LQ faces in [0, 1] and target scores (a float or `b`; default 1) → both code sequences;
        decoded (with the fusion) when `fidelity` is given; the HQ faces' codes when `hq` is given."""
        latent, features = self.lq_encoder(lq, return_features=True)
        height, width = latent.shape[2:]
        logits, hqplus_logits = self.logits(latent, quality)
        out = IqpfrPrediction(logits, latent, argmax_codes(logits, height, width), hqplus_logits=hqplus_logits)
        if hqplus_logits is not None:
            out.hqplus_indices = argmax_codes(hqplus_logits, height, width)
        if hq is not None:
            out.target_indices, out.hqplus_target_indices = self.hq_indices(hq)
            out.target_codes = self.tokenizer.quantizer.lookup(out.target_indices)
        if fidelity is not None:
            codes = self.codes(out.indices, out.hqplus_indices)
            out.images = decode_codes_with_fusion(self.tokenizer.decoder, self.fusion, codes, features, fidelity)
        return out


class IqpfrRestorer(LookupRestorer):
    name = "iqpfr"
    kind = KIND
    config_class = IqpfrConfig
    model_class = IqpfrModel
    default_keep_input = DEFAULT_KEEP_INPUT
    knobs = lookup_knobs(True, DEFAULT_KEEP_INPUT)
    # The common tokenizer's encoder only gives training its HQ faces' codes (tiny: 1.0 M of 10.6 M parameters;
    # without it the bundled weights fit the 20 MiB limit).
    training_only = ("tokenizer.encoder",)

    def code_accuracy(self, faces: torch.Tensor, targets: torch.Tensor, **knobs: float | int) -> None:
        """None: restoring drops the encoder that gives the target faces' codes."""
        return None

"""How `iqpfr` is trained, on the frozen common tokenizer (stages in configs/iqpfr/tiny.yaml):

- `hqplus` (any stage that trains `hqplus`): the HQ+ codebook and the shared decoder learn on the faces scoring
  ≥ the stage's `method: {min_score: …}` (`IqpfrStageOptions`; the scores: `data.scores`, `facemend score` over
  the training folder; `stage_faces` keeps those faces, and the trainer logs the share kept), the encoder and common
  codebook frozen. Each face's latent is quantised by both codebooks; the decoder reconstructs the face from
  1 × common + 0.8 × HQ+ codes with the tokenizer's losses (`l1`, `perceptual`, `adversarial`;
  `recipe.reconstruction_step`). The encoder being frozen, the HQ+ codes enter the decoder as they are (no
  straight-through), so the reconstruction's gradient reaches the HQ+ codebook directly; the quantizer's
  codebook loss keeps the codes near the latents they are picked for, and unused codes restart at latents of
  the kept faces.
- `predict`: the lookup stage shared with baseline and daefr (`lookup_stage.py`), conditioned on each HQ face's
  true score (the prior, no gradient): `code_ce` on both code sequences (summed: the common codes weigh as much
  as in the baseline), `feature_mse` on the LQ latent against the common codes, and
- `quality` (discrete quality optimisation): per token, the expected code under the predicted distribution
  (softmax-weighted codebook) in the backward pass and the argmax code in the forward pass (straight-through):
  the decoder therefore decodes exactly the codes the model would pick, and the gradient moves the distribution
  toward codes that raise the score. Both sequences are combined as in restoring, decoded without the fusion,
  and scored by the prior; the loss is max(0, q − score) per face, q being the score the prediction was
  conditioned on: it raises the output's score to the target it asked for, and no further, so the `quality`
  knob keeps its meaning at low targets and fidelity is traded only where the output falls short. Weighted
  small (0.1 in the tiny config) beside the code losses. The decoder is frozen in this stage: the gradient
  passes through it to the transformer without teaching it to please the prior.
- `fusion`: the shared fusion stage on the predicted codes (`fusion_stage.py`).

A stage starts from tokenizer weights (the common tokenizer; the HQ+ codebook starts as a copy of its
codebook and the LQ encoder as a copy of its encoder) or from iqpfr weights (later stages: the previous export).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

from facemend.data.datasets import DataConfig, faces_scoring, read_scores
from facemend.methods.iqpfr.model import KIND, IqpfrConfig, IqpfrModel, IqpfrPrediction, IqpfrRestorer
from facemend.methods.lookup_stage import LookupRecipe, lookup_step, lookup_validate
from facemend.metrics.pixel import psnr
from facemend.training.config import StageConfig
from facemend.training.recipe import KeptFaces, StepOutput, reconstruction_step
from facemend.weights import Weights

HQPLUS_LOSSES = ("l1", "perceptual", "adversarial")
VALIDATION_QUALITIES = (0.2, 1.0)


@dataclass
class IqpfrStageOptions:
    """A stage's `method:` options."""

    min_score: float | None = None  # train on the faces whose score in data.scores is >= this (the HQ+ stage
    # needs it); None: every face

    def __post_init__(self) -> None:
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")


def straight_through_codes(logits: torch.Tensor, codebook: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Logits `b (h w) n` over a codebook `n d` → codes `b d h w`: the argmax codes forward, the gradient of the
    expected code Σ softmax(logits) · codebook backward."""
    probabilities = logits.float().softmax(dim=-1)
    expected = probabilities @ codebook
    chosen = codebook[probabilities.argmax(dim=-1)]
    codes = expected + (chosen - expected).detach()
    return rearrange(codes, "b (h w) d -> b d h w", h=height, w=width)


class IqpfrRecipe(LookupRecipe):
    name = "iqpfr"
    kind = KIND
    config_class = IqpfrConfig
    model_class = IqpfrModel
    losses = frozenset({"code_ce", "feature_mse", "quality", "identity", "face_perceptual", *HQPLUS_LOSSES})
    paired = True
    starts_from_tokenizer = True
    stage_options_class = IqpfrStageOptions
    left_out = IqpfrRestorer.training_only

    def needs_left_out(self, stage: StageConfig) -> bool:
        """The common tokenizer's encoder gives the HQ faces' codes, the targets of the lookup losses (a stage
        without them logs code accuracies against a fresh encoder's codes, which mean nothing)."""
        return any(stage.weight(name) for name in ("code_ce", "feature_mse", "quality")) or "hqplus" in stage.trainable

    def check_options(self, options: IqpfrStageOptions, data: DataConfig) -> None:
        if options.min_score is not None and data.scores is None:
            raise ValueError(
                "min_score: needs data.scores, the scores.jsonl of `facemend score` over the training faces"
            )

    def stage_faces(self, stage: StageConfig, data: DataConfig, files: list[Path]) -> KeptFaces | None:
        """The faces scoring ≥ the stage's `min_score` in `data.scores`, if it sets one."""
        min_score = self.stage_options(stage).min_score
        if min_score is None:
            return None
        positions = faces_scoring(files, read_scores(data.scores), min_score)
        return KeptFaces(positions, f"score >= {min_score:g} in {data.scores}")

    def check_stage(self, stage: StageConfig) -> None:
        if "hqplus" not in stage.trainable:
            return
        if self.stage_options(stage).min_score is None:
            raise ValueError(
                "method.min_score: the HQ+ stage (one training hqplus) learns from the faces scoring >= it"
            )
        other = sorted(name for name in stage.losses if stage.weight(name) and name not in HQPLUS_LOSSES)
        if other:
            raise ValueError(
                f"losses.{other[0]}: the HQ+ stage (one training hqplus) takes only {', '.join(HQPLUS_LOSSES)}"
            )

    def initialize(
        self, model: IqpfrModel, weights: Weights | None, stage: StageConfig, parts: dict[str, Weights] | None = None
    ) -> None:
        super().initialize(model, weights, stage, parts)
        if weights is not None and weights.kind == "tokenizer" and model.config.hqplus:
            model.hqplus.load_state_dict(model.tokenizer.quantizer.state_dict())  # HQ+ starts as the common codebook

    def generator_step(self, model: IqpfrModel, batch, stage: StageConfig, discriminator) -> StepOutput:
        if "hqplus" in stage.trainable:
            return self.hqplus_step(model, batch, stage, discriminator)

        def quality_term(out: IqpfrPrediction, quality: torch.Tensor, logs: dict[str, float]) -> torch.Tensor:
            if not stage.weight("quality"):
                return torch.zeros((), device=out.latent.device)
            loss, score = self.quality_loss(model, out, quality)
            logs.update(quality=loss.item(), prior_score=score.mean().item(), target_score=quality.mean().item())
            return stage.weight("quality") * loss

        return lookup_step(self, model, model.tokenizer, model.fusion, batch, stage, discriminator, quality_term)

    def quality_loss(
        self, model: IqpfrModel, out: IqpfrPrediction, quality: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The discrete quality optimisation term (mean of max(0, q − score)) and the scores `b` of the decoded
        argmax codes."""
        height, width = out.indices.shape[1:]
        common = straight_through_codes(out.logits, model.tokenizer.quantizer.normalized_codebook(), height, width)
        hqplus = None
        if out.hqplus_logits is not None:
            hqplus = straight_through_codes(out.hqplus_logits, model.hqplus.normalized_codebook(), height, width)
        images = model.tokenizer.decoder(model.combine(common, hqplus))
        score = self.quality_prior(self.config.quality_conditioning.prior, images.device)(images.clamp(0, 1))
        return F.relu(quality - score).mean(), score.detach()

    def hqplus_step(self, model: IqpfrModel, batch, stage: StageConfig, discriminator) -> StepOutput:
        """The HQ+ stage's step: reconstruct the (kept) HQ faces from common + HQ+ codes."""
        hq = batch["hq"]
        with torch.no_grad():
            latent = model.tokenizer.encoder(hq)
            common = model.tokenizer.quantizer.lookup(model.tokenizer.quantizer.indices(latent))
        quantized = model.hqplus(latent)  # in training: restarts unused codes at these latents
        images = model.tokenizer.decoder(model.combine(common, model.hqplus.lookup(quantized.indices)))
        logs = {"hqplus_codebook": quantized.codebook_loss.item()}
        last_layer = model.tokenizer.last_layer
        return reconstruction_step(self, images, hq, last_layer, stage, discriminator, quantized.codebook_loss, logs)

    def validate(self, model: IqpfrModel, batch):
        """The lookup's scores at quality 1 (PSNR by fidelity, code accuracy), the prior's mean score of the codes'
        own answer (fidelity 0) at a low and the top target and of the HQ faces, and the PSNR of the HQ faces
        decoded from their own codes (what the HQ+ stage trains)."""
        scores, rows = lookup_validate(model, batch)
        lq, hq = batch["lq"], batch["hq"]
        prior = self.quality_prior(self.config.quality_conditioning.prior, hq.device)
        for quality in VALIDATION_QUALITIES:
            images = model(lq, fidelity=0.0, quality=quality).images.clamp(0, 1)
            scores[f"prior_score_q{quality:g}"] = float(prior(images).mean())
        scores["prior_score_hq"] = float(prior(hq).mean())
        own = model.tokenizer.decoder(model.codes(*model.hq_indices(hq))).clamp(0, 1)
        scores["psnr_rgb_own_codes"] = float(psnr(own, hq).mean())
        return scores, rows

"""The lookup stage shared by the one-shot code predictors (baseline, daefr, iqpfr; CodeFormer's stage II): a
model whose `forward(lq, fidelity, hq, quality)` returns a `CodePrediction` (`methods/lookup.py`) learns the HQ
face's codes:

- `code_ce`: cross-entropy on the HQ face's code indices (`CodePrediction.code_cross_entropy`: a method whose
  model predicts more code sequences adds theirs);
- `feature_mse`: MSE between the unit-normalised encoder latent and the HQ codes.

A quality-conditioned model (IQPFR's conditioning) reads each HQ face's true score: the quality prior of its
config (`LookupRecipe.quality_prior`) on the HQ face, without gradient.

A stage that weights a decoded-image loss also decodes the predicted codes with LQ features fused in at a drawn
fidelity and adds the shared fusion-stage losses (`fusion_stage.py`); one that weights only those is the
fusion stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facemend.config import ConfigError
from facemend.methods.lookup import CodePrediction
from facemend.metrics.pixel import psnr
from facemend.models.fusion import FidelityFusion
from facemend.models.tokenizer import VQTokenizer
from facemend.quality.prior import QualityPrior, QualityPriorConfig
from facemend.training.config import StageConfig
from facemend.training.fusion_stage import decodes, draw_fidelity, fusion_step
from facemend.training.recipe import Recipe, StepOutput

# a method's own term, from the prediction and the target scores it was conditioned on (None: unconditioned);
# it logs itself into the dict
ExtraLoss = Callable[[CodePrediction, torch.Tensor | None, dict[str, float]], torch.Tensor]

VALIDATION_FIDELITIES = (0.0, 0.5, 1.0)


class LookupRecipe(Recipe):
    """The recipe of a lookup model (baseline, daefr, iqpfr), whose config may hold IQPFR's quality conditioning
    (`quality_conditioning`, None or absent: unconditioned): a conditioned model trains only with a calibrated
    prior, and scores with it (`quality_prior`)."""

    def __init__(self, model_config: dict[str, Any], discriminator_config: dict[str, Any]):
        super().__init__(model_config, discriminator_config)
        self._priors: dict[str, QualityPrior] = {}

    def check_trainable(self) -> None:
        """A quality-conditioned model needs a calibrated prior."""
        conditioning = getattr(self.config, "quality_conditioning", None)
        if conditioning is not None and not conditioning.prior.calibrated:
            raise ConfigError(
                "model.quality_conditioning.prior: not calibrated (centre, scale): run `facemend score` on the "
                "training faces and copy the calibration it prints"
            )

    def quality_prior(self, config: QualityPriorConfig, device: torch.device) -> QualityPrior:
        """IQPFR's quality prior (`quality/prior.py`) of `config`, built on first use (it reads NIQE's pristine
        model, which models may not)."""
        key = repr(config)
        if key not in self._priors:
            self._priors[key] = QualityPrior(config).requires_grad_(False)
        return self._priors[key].to(device)


def true_quality(recipe: LookupRecipe, model: nn.Module, hq: torch.Tensor) -> torch.Tensor | None:
    """The quality prior's scores `b` of the HQ faces, the condition a quality-conditioned model trains with;
    None for a model without conditioning."""
    if model.quality_embedding is None:
        return None
    with torch.no_grad():
        return recipe.quality_prior(recipe.config.quality_conditioning.prior, hq.device)(hq)


def lookup_step(
    recipe: LookupRecipe,
    model: nn.Module,
    tokenizer: VQTokenizer,
    fusion: FidelityFusion,
    batch: dict[str, torch.Tensor],
    stage: StageConfig,
    discriminator: nn.Module | None,
    extra: ExtraLoss | None = None,
) -> StepOutput:
    """One step of the lookup and/or fusion losses (and `extra`, a method's own term); `tokenizer` is the
    model's HQ prior, `fusion` its fusion."""
    lq, hq = batch["lq"], batch["hq"]
    decode = decodes(stage)
    fidelity = draw_fidelity(lq.shape[0], stage.fidelity_one_share, lq.device) if decode else None
    quality = true_quality(recipe, model, hq)
    out = model(lq, fidelity=fidelity, hq=hq, quality=quality)
    logs = out.code_accuracies()
    loss = torch.zeros((), device=lq.device)
    if stage.weight("code_ce"):
        ce = out.code_cross_entropy()
        loss = loss + stage.weight("code_ce") * ce
        logs["ce"] = ce.item()
    if stage.weight("feature_mse"):
        feature = F.mse_loss(F.normalize(out.latent.float(), dim=1), out.target_codes)
        loss = loss + stage.weight("feature_mse") * feature
        logs["feature_mse"] = feature.item()
    if extra is not None:
        loss = loss + extra(out, quality, logs)
    if decode:
        return fusion_step(recipe, tokenizer, fusion, out.images, hq, fidelity, stage, discriminator, loss, logs)
    logs["loss"] = loss.item()
    return StepOutput(loss, logs)


def lookup_validate(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], list[torch.Tensor]]:
    """PSNR at a few fidelities and code accuracy on the validation batch; rows: LQ, each fidelity, HQ."""
    lq, hq = batch["lq"], batch["hq"]
    scores: dict[str, float] = {}
    rows = [lq]
    for fidelity in VALIDATION_FIDELITIES:
        out = model(lq, fidelity=fidelity, hq=hq)
        scores[f"psnr_rgb_w{fidelity:g}"] = float(psnr(out.images.clamp(0, 1), hq).mean())
        rows.append(out.images)
    scores["code_acc"] = float((out.indices == out.target_indices).float().mean())
    scores["psnr_rgb_lq"] = float(psnr(lq, hq).mean())
    return scores, [*rows, hq]

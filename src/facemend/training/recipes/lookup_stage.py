"""The lookup stage shared by the one-shot code predictors (baseline, daefr; CodeFormer's stage II): a model
whose `forward(lq, fidelity, hq)` returns a `CodePrediction` (`methods/lookup.py`) learns the HQ face's codes:

- `code_ce`: cross-entropy on the HQ face's code indices;
- `feature_mse`: MSE between the unit-normalised latent the transformer read and the HQ codes.

A stage that weights a decoded-image loss also decodes the predicted codes with LQ features fused in at a drawn
fidelity and adds the shared fusion-stage losses (`fusion_stage.py`); one that weights only those is the
fusion stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facemend.metrics.pixel import psnr
from facemend.models.fusion import FidelityFusion
from facemend.models.tokenizer import VQTokenizer
from facemend.training.config import StageConfig
from facemend.training.recipe import Recipe, StepOutput
from facemend.training.recipes.fusion_stage import decodes, draw_fidelity, fusion_step

VALIDATION_FIDELITIES = (0.0, 0.5, 1.0)


def lookup_step(
    recipe: Recipe,
    model: nn.Module,
    tokenizer: VQTokenizer,
    fusion: FidelityFusion,
    batch: dict[str, torch.Tensor],
    stage: StageConfig,
    discriminator: nn.Module | None,
) -> StepOutput:
    """One step of the lookup and/or fusion losses; `tokenizer` is the model's HQ prior, `fusion` its fusion."""
    lq, hq = batch["lq"], batch["hq"]
    decode = decodes(stage)
    fidelity = draw_fidelity(lq.shape[0], stage.fidelity_one_share, lq.device) if decode else None
    out = model(lq, fidelity=fidelity, hq=hq)
    logs = {"code_acc": (out.indices == out.target_indices).float().mean().item()}
    loss = torch.zeros((), device=lq.device)
    if stage.weight("code_ce"):
        ce = F.cross_entropy(out.logits.transpose(1, 2).float(), out.target_indices.flatten(1))
        loss = loss + stage.weight("code_ce") * ce
        logs["ce"] = ce.item()
    if stage.weight("feature_mse"):
        feature = F.mse_loss(F.normalize(out.latent.float(), dim=1), out.target_codes)
        loss = loss + stage.weight("feature_mse") * feature
        logs["feature_mse"] = feature.item()
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

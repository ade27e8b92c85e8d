"""How `artfr` is trained, on a frozen tokenizer:

- `tokens`: LQ encoder + masked transformer. Per HQ face, a share γ(r) of its codes (r ~ U(0, 1), γ the cosine
  schedule) is replaced by [MASK]; cross-entropy on the masked positions only (`code_ce`), plus MSE between the
  unit-normalised LQ latent and the HQ codes (`feature_mse`, as in the baseline's lookup stage).
- `fusion`: the codes are sampled (no gradient, greedy; with the stage's `method: {sampler_steps: N}`,
  `ArtfrStageOptions`) and decoded with LQ features fused in; the fusion (and, if the stage says so, the
  decoder) learns with the shared fusion-stage losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facemend.methods.artfr.model import KIND, ArtfrConfig, ArtfrModel
from facemend.metrics.pixel import psnr
from facemend.samplers.maskgit import cosine_mask_ratio
from facemend.training.config import StageConfig
from facemend.training.fusion_stage import decodes, draw_fidelity, fusion_step
from facemend.training.recipe import Recipe, StepOutput

VALIDATION_STEPS = (1, 8)


@dataclass
class ArtfrStageOptions:
    """A stage's `method:` options."""

    sampler_steps: int = 1  # sampler steps of the codes decoded in training (1 = one-shot)

    def __post_init__(self) -> None:
        if self.sampler_steps < 1:
            raise ValueError(f"sampler_steps must be >= 1, got {self.sampler_steps}")


def random_mask(codes: torch.Tensor) -> torch.Tensor:
    """`b n` bool: per row, ⌈γ(r) n⌉ ≥ 1 random positions, r ~ U(0, 1) (MaskGIT's training masks)."""
    batch, length = codes.shape
    ratio = cosine_mask_ratio(torch.rand(batch, device=codes.device)).to(codes.device)
    count = (ratio * length).ceil().clamp(min=1).long()
    rank = torch.rand(batch, length, device=codes.device).argsort(dim=1).argsort(dim=1)
    return rank < count.unsqueeze(1)


class ArtfrRecipe(Recipe):
    name = "artfr"
    kind = KIND
    config_class = ArtfrConfig
    model_class = ArtfrModel
    losses = frozenset({"code_ce", "feature_mse", "l1", "perceptual", "identity", "face_perceptual", "adversarial"})
    paired = True
    starts_from_tokenizer = True
    stage_options_class = ArtfrStageOptions

    def generator_step(self, model: ArtfrModel, batch, stage: StageConfig, discriminator) -> StepOutput:
        lq, hq = batch["lq"], batch["hq"]
        lq_latent, features = model.encode_lq(lq)
        with torch.no_grad():
            target = model.tokenizer.encode_indices(hq)  # b h w
        loss = torch.zeros((), device=lq.device)
        logs: dict[str, float] = {}
        if stage.weight("code_ce"):
            codes = target.flatten(1)
            masked = random_mask(codes)
            logits = model.predict(codes.masked_fill(masked, model.mask_token_id), lq_latent)
            ce = F.cross_entropy(logits[masked].float(), codes[masked])
            loss = loss + stage.weight("code_ce") * ce
            logs.update(ce=ce.item(), masked_acc=(logits[masked].argmax(-1) == codes[masked]).float().mean().item())
        if stage.weight("feature_mse"):
            target_codes = model.tokenizer.quantizer.lookup(target)
            feature = F.mse_loss(F.normalize(lq_latent.float(), dim=1), target_codes)
            loss = loss + stage.weight("feature_mse") * feature
            logs["feature_mse"] = feature.item()
        if decodes(stage):
            with torch.no_grad():
                indices = model.sample(lq_latent.detach(), self.stage_options(stage).sampler_steps)
            logs["code_acc"] = (indices == target).float().mean().item()
            fidelity = draw_fidelity(lq.shape[0], stage.fidelity_one_share, lq.device)
            images = model.decode(indices, features, fidelity)
            return fusion_step(
                self, model.tokenizer, model.fusion, images, hq, fidelity, stage, discriminator, loss, logs
            )
        logs["loss"] = loss.item()
        return StepOutput(loss, logs)

    def validate(self, model: ArtfrModel, batch):
        lq, hq = batch["lq"], batch["hq"]
        lq_latent, features = model.encode_lq(lq)
        target = model.tokenizer.encode_indices(hq)
        scores: dict[str, float] = {"psnr_rgb_lq": float(psnr(lq, hq).mean())}
        rows = [lq]
        for steps in VALIDATION_STEPS:
            indices = model.sample(lq_latent, steps)
            scores[f"code_acc_s{steps}"] = float((indices == target).float().mean())
        for fidelity in (0.0, 1.0):  # at the last validation step count
            images = model.decode(indices, features, fidelity)
            scores[f"psnr_rgb_w{fidelity:g}"] = float(psnr(images.clamp(0, 1), hq).mean())
            rows.append(images)
        return scores, [*rows, hq]

"""How `baseline` is trained (CodeFormer's stages II and III, on a frozen tokenizer):

- `lookup`: LQ encoder + transformer learn the HQ face's codes: cross-entropy on the code indices plus MSE
  between the (unit-normalised) LQ latent and the HQ codes. The decoder is not run.
- `fusion`: the fusion blocks (and, if the stage says so, the decoder) learn to blend LQ encoder features into
  the decoder (`fusion_stage.py`: L1 + perceptual + adversarial, and how each face's fidelity is drawn).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facemend.methods.baseline import KIND, BaselineConfig, BaselineModel
from facemend.metrics.pixel import psnr
from facemend.training.config import StageConfig
from facemend.training.recipe import Recipe, StepOutput
from facemend.training.recipes.fusion_stage import decodes, draw_fidelity, fusion_step
from facemend.weights import Weights

VALIDATION_FIDELITIES = (0.0, 0.5, 1.0)


class BaselineRecipe(Recipe):
    name = "baseline"
    kind = KIND
    config_class = BaselineConfig
    model_class = BaselineModel
    losses = frozenset({"code_ce", "feature_mse", "l1", "perceptual", "adversarial"})
    paired = True
    starts_from_tokenizer = True

    def state_to_load(self, model: BaselineModel, weights: Weights) -> dict[str, torch.Tensor]:
        state = weights.state_dict
        if tuple(weights.config.get("fusion_levels", ())) != model.config.fusion_levels:
            # other fused levels: start the fusion afresh, keep everything else (e.g. fusion after lookup)
            fresh = {key: value for key, value in model.state_dict().items() if key.startswith("fusion.")}
            state = {key: value for key, value in state.items() if not key.startswith("fusion.")} | fresh
        return state

    def generator_step(self, model, batch, stage: StageConfig, discriminator) -> StepOutput:
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
            feature = F.mse_loss(F.normalize(out.lq_latent.float(), dim=1), out.target_codes)
            loss = loss + stage.weight("feature_mse") * feature
            logs["feature_mse"] = feature.item()
        if decode:
            return fusion_step(self, model, out.images, hq, fidelity, stage, discriminator, loss, logs)
        logs["loss"] = loss.item()
        return StepOutput(loss, logs)

    def validate(self, model: BaselineModel, batch):
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

"""How `baseline` is trained (CodeFormer's stages II and III, on a frozen tokenizer):

- `lookup`: LQ encoder + transformer learn the HQ face's codes: cross-entropy on the code indices plus MSE
  between the (unit-normalised) LQ latent and the HQ codes. The decoder is not run.
- `fusion`: the fusion blocks (and, if the stage says so, the decoder) learn to blend LQ encoder features into
  the decoder; loss L1 + perceptual + adversarial. How each face's fidelity w is drawn:
  - `fidelity_one_share: p` (CodeFormer's way): w = 1 with probability p, else w = 0; every face gets the
    adversarial loss. The fusion learns the full correction at w = 1; w = 0 keeps the decoder a decoder of
    looked-up codes.
  - unset: w ~ U(0, 1) and the adversarial loss is weighted by 1 − w. The fusion's networks never see w, so
    they learn one correction c for all w; under L2 its best size is E[w] / E[w²] = 1.5 times the correction
    that w = 1 needs, which over-shoots at w = 1 (the first bundled baseline was trained this way).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facemend.errors import FacemendError
from facemend.methods.baseline import KIND, BaselineConfig, BaselineModel
from facemend.metrics.pixel import psnr
from facemend.training.config import StageConfig
from facemend.training.losses import adaptive_adversarial_weight
from facemend.training.recipe import Recipe, StepOutput
from facemend.weights import Weights, load_into

VALIDATION_FIDELITIES = (0.0, 0.5, 1.0)


class BaselineRecipe(Recipe):
    name = "baseline"
    kind = KIND
    config_class = BaselineConfig
    model_class = BaselineModel
    losses = frozenset({"code_ce", "feature_mse", "l1", "perceptual", "adversarial"})
    paired = True

    def initialize(self, model: BaselineModel, weights: Weights | None, stage: StageConfig) -> None:
        if weights is None:
            raise FacemendError(f"stage {stage.name!r}: baseline starts from trained tokenizer weights (set init)")
        if weights.kind == "tokenizer":
            model.initialize_from_tokenizer(weights)
        elif weights.kind == KIND:
            state = weights.state_dict
            if tuple(weights.config.get("fusion_levels", ())) != model.config.fusion_levels:
                # other fused levels: start the fusion afresh, keep everything else (e.g. fusion after lookup)
                fresh = {key: value for key, value in model.state_dict().items() if key.startswith("fusion.")}
                state = {key: value for key, value in state.items() if not key.startswith("fusion.")} | fresh
            load_into(model, state, f"stage {stage.name!r}")
        else:
            raise FacemendError(f"stage {stage.name!r}: cannot start baseline from {weights.kind!r} weights")

    def generator_step(self, model, batch, stage: StageConfig, discriminator) -> StepOutput:
        lq, hq = batch["lq"], batch["hq"]
        decode = any(stage.weight(name) for name in ("l1", "perceptual", "adversarial"))
        fidelity = _draw_fidelity(lq.shape[0], stage.fidelity_one_share, lq.device) if decode else None
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
            images = out.images
            l1 = (images - hq).abs().mean()
            perceptual = self.perceptual(images, hq) if stage.weight("perceptual") else torch.zeros_like(l1)
            reconstruction = stage.weight("l1") * l1 + stage.weight("perceptual") * perceptual
            loss = loss + reconstruction
            logs.update(l1=l1.item(), perceptual=perceptual.item())
            if discriminator is not None:
                realism = discriminator(images).mean(dim=(1, 2, 3))
                weight = 1.0 - fidelity if stage.fidelity_one_share is None else torch.ones_like(fidelity)
                adversarial = -(weight * realism).mean()  # hinge generator loss
                last_layer = model.tokenizer.decoder.conv_out.weight
                if last_layer.requires_grad:
                    balance = adaptive_adversarial_weight(reconstruction, adversarial, last_layer)
                else:  # frozen decoder: measure at the fusion's last layer, the one being trained
                    balance = adaptive_adversarial_weight(reconstruction, adversarial, _last_fusion_layer(model))
                loss = loss + stage.weight("adversarial") * balance * adversarial
                logs.update(g_adv=adversarial.item(), adv_balance=balance.item())
            logs["loss"] = loss.item()
            return StepOutput(loss, logs, fake=images, real=hq)
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


def _draw_fidelity(count: int, one_share: float | None, device) -> torch.Tensor:
    if one_share is None:
        return torch.rand(count, device=device)
    return (torch.rand(count, device=device) < one_share).float()


def _last_fusion_layer(model) -> torch.Tensor:
    blocks = model.fusion.blocks
    return blocks[min(blocks.keys(), key=int)].shift.weight  # the full-resolution-most block's shift

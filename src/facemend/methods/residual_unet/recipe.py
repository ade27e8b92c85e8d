"""How `residual-unet` is trained: one stage (`restore`) on LQ/HQ pairs degraded on the fly, with L1 +
perceptual + identity (SFace) + hinge adversarial losses on the restored face (`recipe.reconstruction_step`),
VQGAN's adaptive weight measured at the UNet's output convolution.

A stage may start from `idm` weights (`init: weights/idm-tiny-denoise`): `fold_idm_one_step` turns IDM's
UNet at the first step of deterministic DDIM (t = T − 1 from zero noise) into this model's UNet, so training
starts from IDM's one-step estimate instead of from the input. It may also start from a trained `residual-unet`
with fewer residual blocks per level or narrower levels (`grow_state`, `models/unet_growth.py`): the grown model
starts by computing exactly what the trained one did.

Validation on the fixed batch: PSNR-RGB of the LQ input and of the restored faces, SFace similarity to the HQ
faces (the trained-against identity) and dlib's IDD (the independent judge), both for the input and the output.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facemend.config import build
from facemend.errors import FacemendError
from facemend.methods.idm.model import IdmConfig, IdmModel, make_scheduler
from facemend.methods.residual_unet.model import KIND, ResidualUNetConfig, ResidualUNetModel
from facemend.metrics import identity as dlib_identity
from facemend.metrics.pixel import psnr
from facemend.metrics.sface_identity import SFaceIdentity, identity_similarity
from facemend.models.unet import timestep_embedding
from facemend.models.unet_growth import grow_unet_state
from facemend.training.config import StageConfig
from facemend.training.recipe import Recipe, StepOutput, reconstruction_step
from facemend.weights import Weights, load_into


def fold_idm_one_step(idm: Weights, config: ResidualUNetConfig) -> dict[str, torch.Tensor]:
    """A `residual-unet` state dict computing what `idm`'s model computes at one DDIM step from zero noise.

    IDM's UNet reads cat(x_t, LQ) and the timestep; at t = T − 1 with x_t = 0 it is a function of the LQ face
    alone: the x_t half of the input convolution sees zeros, and every residual block adds a constant (the
    embedding of T − 1, projected) after its first convolution, which is that convolution's bias. Its v output
    gives x̂0 = √ᾱ x_t − √(1 − ᾱ) v = −√(1 − ᾱ) v, the scaled residual, and the face LQ + x̂0 / scale (in
    [−1, 1] units), i.e. LQ + x̂0 / (2 scale) in [0, 1]: this model's output convolution is IDM's times
    −√(1 − ᾱ) / scale. (IDM also clips x̂0 to keep the face in range; the restorer clamps the face instead.)
    """
    idm_config = build(IdmConfig, idm.config, "idm weights' config")
    if idm_config.diffuse != "residual" or idm_config.prediction_type != "v_prediction":
        raise FacemendError("residual-unet starts only from an idm model that diffuses the residual with v-prediction")
    ours, theirs = config.unet, idm_config.unet
    for name in ("channels", "channel_mults", "blocks_per_level", "attention_levels"):
        if getattr(ours, name) != getattr(theirs, name):
            raise FacemendError(f"model.unet.{name}: {getattr(ours, name)} differs from the idm weights' {name}")
    idm_model = IdmModel(idm_config)
    load_into(idm_model, {key: value.float() for key, value in idm.state_dict.items()}, "idm weights")
    state = idm_model.state_dict()
    last = idm_config.num_train_timesteps - 1
    alpha = float(make_scheduler(idm_config).alphas_cumprod[last])
    with torch.no_grad():
        embedding = F.silu(idm_model.unet.time_mlp(timestep_embedding(torch.tensor([last]), theirs.time_dim)))[0]
        folded = {key: value for key, value in state.items() if not key.startswith("unet.time_mlp.")}
        for key in [key for key in state if key.endswith(".embed.weight")]:
            block = key.removesuffix(".embed.weight")
            constant = state[key] @ embedding + state[f"{block}.embed.bias"]
            folded[f"{block}.conv1.bias"] = state[f"{block}.conv1.bias"] + constant
            del folded[key], folded[f"{block}.embed.bias"]
        # the input convolution's x_t half sees zeros: only its LQ half stays
        folded["unet.conv_in.weight"] = state["unet.conv_in.weight"][:, theirs.image_channels :].contiguous()
        factor = -math.sqrt(1.0 - alpha) / idm_config.residual_scale
        folded["unet.conv_out.weight"] = state["unet.conv_out.weight"] * factor
        folded["unet.conv_out.bias"] = state["unet.conv_out.bias"] * factor
    return folded


def grow_state(model: ResidualUNetModel, weights: Weights) -> dict[str, torch.Tensor]:
    """A state dict for `model` from `residual-unet` weights with no more blocks per level and no wider levels:
    the trained UNet grown into the model's (`models/unet_growth.py`), which starts by computing what it did."""
    trained = build(ResidualUNetConfig, weights.config, "residual-unet weights' config").unet
    unet_state = {key.removeprefix("unet."): value for key, value in weights.state_dict.items()}
    return grow_unet_state(model.unet, trained, unet_state, prefix="unet.")


class ResidualUNetRecipe(Recipe):
    name = "residual-unet"
    kind = KIND
    config_class = ResidualUNetConfig
    model_class = ResidualUNetModel
    losses = frozenset({"l1", "perceptual", "identity", "face_perceptual", "adversarial"})
    paired = True

    def __init__(self, model_config: dict[str, Any], discriminator_config: dict[str, Any]):
        super().__init__(model_config, discriminator_config)
        self._validation_identity: SFaceIdentity | None = None

    def initialize(self, model: nn.Module, weights: Weights | None, stage: StageConfig, parts=None) -> None:
        if weights is not None and weights.kind == "idm":
            load_into(model, fold_idm_one_step(weights, self.config), f"stage {stage.name!r}: idm weights")
            return
        super().initialize(model, weights, stage, parts)

    def state_to_load(self, model: ResidualUNetModel, weights: Weights) -> dict[str, torch.Tensor]:
        return grow_state(model, weights)  # the weights as they are when the model is no deeper than they

    def generator_step(self, model: ResidualUNetModel, batch, stage: StageConfig, discriminator) -> StepOutput:
        restored = model(batch["lq"])
        last_layer = model.unet.conv_out.weight
        loss = torch.zeros((), device=restored.device)
        return reconstruction_step(self, restored, batch["hq"], last_layer, stage, discriminator, loss, {})

    def validate(self, model: ResidualUNetModel, batch):
        lq, hq = batch["lq"], batch["hq"]
        restored = model(lq).clamp(0, 1)
        if self._validation_identity is None:
            self._validation_identity = SFaceIdentity()
        embed = self._validation_identity
        target = embed(hq)
        scores = {
            "psnr_rgb_lq": float(psnr(lq, hq).mean()),
            "psnr_rgb": float(psnr(restored, hq).mean()),
            "ids_sface_lq": float(identity_similarity(embed(lq), target).mean()),
            "ids_sface": float(identity_similarity(embed(restored), target).mean()),
        }
        signatures = [dlib_identity.face_signatures(_uint8(faces)) for faces in (lq, restored, hq)]
        for name, signature in zip(("idd_lq", "idd"), signatures[:2], strict=True):
            scores[name] = float(np.nanmean(dlib_identity.identity_distance(signature, signatures[2])))
        return scores, [lq, restored, hq]


def _uint8(faces: torch.Tensor) -> list[np.ndarray]:
    return list(np.rint(faces.float().clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8))

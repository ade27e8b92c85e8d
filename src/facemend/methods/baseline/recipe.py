"""How `baseline` is trained (CodeFormer's stages II and III, on a frozen tokenizer):

- `lookup`: LQ encoder + transformer learn the HQ face's codes: cross-entropy on the code indices plus MSE
  between the (unit-normalised) LQ latent and the HQ codes (`lookup_stage.py`, shared with daefr). The decoder
  is not run.
- `fusion`: the fusion blocks (and, if the stage says so, the decoder) learn to blend LQ encoder features into
  the decoder (`fusion_stage.py`: L1 + perceptual + adversarial, and how each face's fidelity is drawn).
"""

from __future__ import annotations

import torch

from facemend.methods.baseline.model import KIND, BaselineConfig, BaselineModel
from facemend.methods.lookup_stage import LookupRecipe, lookup_step, lookup_validate
from facemend.training.config import StageConfig
from facemend.training.recipe import StepOutput
from facemend.weights import Weights


class BaselineRecipe(LookupRecipe):
    name = "baseline"
    kind = KIND
    config_class = BaselineConfig
    model_class = BaselineModel
    losses = frozenset({"code_ce", "feature_mse", "l1", "perceptual", "identity", "face_perceptual", "adversarial"})
    paired = True
    starts_from_tokenizer = True

    def state_to_load(self, model: BaselineModel, weights: Weights) -> dict[str, torch.Tensor]:
        state = weights.state_dict
        if tuple(weights.config.get("fusion_levels", ())) != model.config.fusion_levels:
            # other fused levels: start the fusion afresh, keep everything else (e.g. fusion after lookup)
            fresh = {key: value for key, value in model.state_dict().items() if key.startswith("fusion.")}
            state = {key: value for key, value in state.items() if not key.startswith("fusion.")} | fresh
        return state

    def generator_step(self, model: BaselineModel, batch, stage: StageConfig, discriminator) -> StepOutput:
        return lookup_step(self, model, model.tokenizer, model.fusion, batch, stage, discriminator)

    def validate(self, model: BaselineModel, batch):
        return lookup_validate(model, batch)

"""How `daefr` is trained, on two frozen tokenizers: the HQ prior and the LQ tokenizer (recipe `tokenizer-lq`).

- `associate` (DAEFR's association stage): the HQ-branch encoder reads the HQ face, the LQ-branch encoder the LQ
  face; `association` = the symmetric cross-entropy over the patch similarity matrix S = exp(t) · f_hq · f_lqᵀ
  of each face (unit-normalised token-grid features, diagonal = same patch; `association.patch_association_loss`),
  mean over the batch. Both branches keep their reconstruction losses: each branch encoder's latent goes
  through its own tokenizer's frozen quantizer and decoder, and is compared with what that tokenizer was
  trained on (HQ branch: the HQ face; LQ branch: the LQ face) with `l1` (+ `perceptual`) and the quantizer's
  `commitment`; they keep the associated latents decodable, near their codebooks.
- `predict` (DAEFR's final stage): both branch encoders read the LQ face, are combined (`combine`) and the
  transformer predicts the HQ face's codes (targets: the frozen HQ tokenizer's codes of the HQ face):
  `code_ce` + `feature_mse` (DAEFR: CE + 10 × feature L2), the lookup stage shared with baseline
  (`lookup_stage.py`; the feature L2 is taken on the combined latent, unit-normalised, against the HQ codes).
- `fusion`: the shared fusion stage on the predicted codes (`fusion_stage.py`), as for baseline and artfr.

A stage that weights `association` and no lookup loss is an association stage (its `l1`, `perceptual` and
`commitment` are the branches' reconstruction losses); any other runs the lookup and/or fusion losses. A predict
stage may weight `association` too (ours, not DAEFR's: the ablation's fix): the same patch association of the
HQ-branch encoder on the HQ face and the LQ-branch encoder on the LQ face is added to the lookup losses, which
otherwise pull the two encoders apart again (validation association accuracy 86% → 3–4% over 1,000 predict steps).

Starting weights: the first stage starts from tokenizer weights in `init` (the HQ prior) and, unless
`combine: hq_only`, the LQ tokenizer's in `init_parts: {lq_tokenizer: FOLDER}`; each branch encoder starts as
a copy of its tokenizer's encoder. A stage may also start from daefr weights (later stages: the previous
stage's export), including those of the other dual `combine` (`mhca` ↔ `add`): the `combine` module then starts
fresh, so the ablation's `add` row can run its predict stage from the `mhca` model's associate export (that stage
does not touch `combine`).
"""

from __future__ import annotations

import torch

from facemend.errors import FacemendError
from facemend.methods.daefr.association import patch_association_loss, patch_similarity
from facemend.methods.daefr.model import KIND, DaefrConfig, DaefrModel, DaefrRestorer
from facemend.methods.lookup_stage import ExtraLoss, LookupRecipe, lookup_step, lookup_validate
from facemend.models.tokenizer import VQTokenizer
from facemend.training.config import StageConfig
from facemend.training.recipe import StepOutput, load_tokenizer
from facemend.weights import Weights

ASSOCIATION_LOSSES = ("association", "l1", "perceptual", "commitment")
LOOKUP_LOSSES = ("code_ce", "feature_mse")


def is_association_stage(stage: StageConfig) -> bool:
    """Whether `stage` is DAEFR's association stage: it weights `association` and no lookup loss."""
    return bool(stage.weight("association")) and not any(stage.weight(name) for name in LOOKUP_LOSSES)


def association_accuracy(hq_latent: torch.Tensor, lq_latent: torch.Tensor) -> float:
    """Share of patches whose most similar patch in the other map is the same patch (both ways, averaged)."""
    similarity = patch_similarity(hq_latent, lq_latent, 1.0)
    diagonal = torch.arange(similarity.shape[1], device=similarity.device)
    rows = (similarity.argmax(dim=2) == diagonal).float().mean()
    columns = (similarity.argmax(dim=1) == diagonal).float().mean()
    return float((rows + columns) / 2)


class DaefrRecipe(LookupRecipe):
    name = "daefr"
    kind = KIND
    config_class = DaefrConfig
    model_class = DaefrModel
    losses = frozenset({*ASSOCIATION_LOSSES, "code_ce", "feature_mse", "identity", "face_perceptual", "adversarial"})
    paired = True
    starts_from_tokenizer = True
    init_parts = {"lq_tokenizer": "tokenizer"}
    left_out = DaefrRestorer.training_only

    def needs_left_out(self, stage: StageConfig) -> bool:
        """A stage that weights `association` reads its temperature (the association stage also the LQ
        tokenizer)."""
        return bool(stage.weight("association"))

    def check_stage(self, stage: StageConfig) -> None:
        dual = self.config.combine != "hq_only"
        if stage.init_parts and not dual:
            raise ValueError("init_parts: combine hq_only has no LQ tokenizer to load")
        if stage.weight("association") and not dual:
            raise ValueError("losses.association: combine hq_only has one encoder, nothing to associate")
        if stage.weight("association"):
            if is_association_stage(stage):
                allowed, kind = ASSOCIATION_LOSSES, "an association stage (one weighting association)"
            else:
                allowed, kind = ("association", *LOOKUP_LOSSES), "a predict stage that keeps the association"
            other = sorted(name for name in stage.losses if stage.weight(name) and name not in allowed)
            if other:
                raise ValueError(f"losses.{other[0]}: {kind} takes only {', '.join(allowed)}")
        elif stage.weight("commitment"):
            raise ValueError("losses.commitment: only an association stage (one weighting association) uses it")

    def initialize(
        self, model: DaefrModel, weights: Weights | None, stage: StageConfig, parts: dict[str, Weights] | None = None
    ) -> None:
        where = f"stage {stage.name!r}"
        parts = parts or {}
        if weights is None or weights.kind != "tokenizer":
            if parts:
                raise FacemendError(f"{where}: init_parts load beside tokenizer weights only, not {KIND} weights")
            super().initialize(model, weights, stage)
            return
        load_tokenizer(model.hq_tokenizer, model.hq_branch_encoder, weights, f"{where}: tokenizer weights")
        if model.dual:
            if "lq_tokenizer" not in parts:
                raise FacemendError(
                    f"{where}: combine {model.config.combine!r} starts from the LQ tokenizer's weights too "
                    "(set init_parts.lq_tokenizer)"
                )
            lq_where = f"{where}: init_parts.lq_tokenizer"
            load_tokenizer(model.lq_tokenizer, model.lq_branch_encoder, parts["lq_tokenizer"], lq_where)

    def state_to_load(self, model: DaefrModel, weights: Weights) -> dict[str, torch.Tensor]:
        """All of the daefr weights, except parts this model has but the weights' model had not in that form:
        `combine` when the weights are of the other dual combine (mhca ↔ add), `quality_embedding` when they are
        unconditioned and this model is daefr-q. Those parts start fresh, so an ablation row or daefr-q can
        start its predict stage from another run's associate stage, which trains neither."""
        combines = (weights.config.get("combine"), model.config.combine)
        fresh = []
        if combines[0] != combines[1] and "hq_only" not in combines:
            fresh.append("combine")
        if weights.config.get("quality_conditioning") is None and model.config.quality_conditioning is not None:
            fresh.append("quality_embedding")
        if not fresh:
            return weights.state_dict  # the same model, or a mismatch that load_into reports
        prefixes = tuple(f"{part}." for part in fresh)
        state = {key: value for key, value in weights.state_dict.items() if not key.startswith(prefixes)}
        for part in fresh:
            state.update({f"{part}.{key}": value for key, value in getattr(model, part).state_dict().items()})
        return state

    def generator_step(self, model: DaefrModel, batch, stage: StageConfig, discriminator) -> StepOutput:
        if is_association_stage(stage):
            return self.associate(model, batch, stage)
        extra = self.kept_association(model, batch, stage) if stage.weight("association") else None
        return lookup_step(self, model, model.hq_tokenizer, model.fusion, batch, stage, discriminator, extra)

    def kept_association(self, model: DaefrModel, batch, stage: StageConfig) -> ExtraLoss:
        """A predict stage's association term: the branches' patch association on the HQ and the LQ face."""

        def term(out, quality, logs: dict[str, float]) -> torch.Tensor:
            hq_latent, lq_latent = model.hq_branch_encoder(batch["hq"]), model.lq_branch_encoder(batch["lq"])
            association = patch_association_loss(hq_latent, lq_latent, model.association())
            logs["association"] = association.item()
            return stage.weight("association") * association

        return term

    def associate(self, model: DaefrModel, batch, stage: StageConfig) -> StepOutput:
        """The association stage's step: patch association of the two branches + their reconstruction losses."""
        hq, lq = batch["hq"], batch["lq"]
        hq_latent, lq_latent = model.hq_branch_encoder(hq), model.lq_branch_encoder(lq)
        logit_scale = model.association()
        association = patch_association_loss(hq_latent, lq_latent, logit_scale)
        loss = stage.weight("association") * association
        logs = {"association": association.item(), "logit_scale": logit_scale.item()}
        logs["association_acc"] = association_accuracy(hq_latent.detach(), lq_latent.detach())
        if any(stage.weight(name) for name in ASSOCIATION_LOSSES[1:]):
            hq_terms = self.reconstruction(hq_latent, model.hq_tokenizer, hq, stage)
            lq_terms = self.reconstruction(lq_latent, model.lq_tokenizer, lq, stage)
            for name, hq_term, lq_term in zip(ASSOCIATION_LOSSES[1:], hq_terms, lq_terms, strict=True):
                loss = loss + stage.weight(name) * (hq_term + lq_term)
                logs[name] = (hq_term + lq_term).item()
        logs["loss"] = loss.item()
        return StepOutput(loss, logs)

    def reconstruction(
        self, latent: torch.Tensor, tokenizer: VQTokenizer, target: torch.Tensor, stage: StageConfig
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A branch encoder's latent through its tokenizer's quantizer and decoder: (l1, perceptual, commitment)
        against `target`, the faces that tokenizer reconstructs."""
        quantized = tokenizer.quantizer(latent)
        images = tokenizer.decoder(quantized.quantized)
        l1 = (images - target).abs().mean()
        perceptual = self.perceptual(images, target) if stage.weight("perceptual") else torch.zeros_like(l1)
        return l1, perceptual, quantized.commitment_loss

    def validate(self, model: DaefrModel, batch):
        scores, rows = lookup_validate(model, batch)
        if model.dual:
            hq_latent, lq_latent = model.hq_branch_encoder(batch["hq"]), model.lq_branch_encoder(batch["lq"])
            scores["association_acc"] = association_accuracy(hq_latent, lq_latent)
        return scores, rows

"""What a method tells the training loop: how to build its model, which losses it knows, and one step.

A recipe never touches optimisers, processes or files: the loop in `trainer.py` owns those.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from facemend.config import ConfigError, build, to_dict
from facemend.data.datasets import DataConfig
from facemend.errors import FacemendError
from facemend.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from facemend.training.config import StageConfig, TrainConfig
from facemend.training.losses import (
    IdentityLoss,
    PerceptualLoss,
    adaptive_adversarial_weight,
    hinge_generator_loss,
)
from facemend.weights import Weights, load_into


@dataclass
class StepOutput:
    loss: torch.Tensor  # what the generator's optimiser minimises
    logs: dict[str, float]  # scalars for the progress bar and the logs
    fake: torch.Tensor | None = None  # generated images, for the discriminator step (detached there)
    real: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class KeptFaces:
    """The training faces a stage keeps (`Recipe.stage_faces`)."""

    positions: np.ndarray  # their positions among the training files (file-name order), ascending
    rule: str  # what they have in common, as the log states it: "N of M training faces (P%) RULE"


def _nested(first: str, second: str) -> bool:
    """Whether one dotted module path is the other or inside it."""
    return f"{first}.".startswith(f"{second}.") or f"{second}.".startswith(f"{first}.")


class Recipe(ABC):
    name: ClassVar[str]  # the `recipe:` value of a training config
    kind: ClassVar[str]  # the `kind` of the exported weights
    losses: ClassVar[frozenset[str]]  # loss names a stage may weight
    paired: ClassVar[bool] = False  # True: batches carry degraded "lq" faces beside "hq"
    config_class: ClassVar[type]  # the model's config dataclass
    model_class: ClassVar[type[nn.Module]]  # built as model_class(config)
    starts_from_tokenizer: ClassVar[bool] = False  # True: the first stage may start from tokenizer weights
    init_parts: ClassVar[dict[str, str]] = {}  # parts a stage may load from more weights folders (a stage's
    # `init_parts`), each with the weights kind it takes
    stage_options_class: ClassVar[type | None] = None  # the dataclass of a stage's `method:` options (None: the
    # recipe takes none)
    left_out: ClassVar[tuple[str, ...]] = ()  # the model's parts (dotted paths) that restoring weights, such as
    # the bundled ones, leave out (the restorer's `training_only`); a stage that needs none of them (`needs_left_out`)
    # may start from such weights, with those parts fresh

    def __init__(self, model_config: dict[str, Any], discriminator_config: dict[str, Any]):
        """Validate both configs; errors name the field under `model.` / `discriminator.`."""
        self.config = build(self.config_class, model_config, "model")
        self.discriminator_config = build(DiscriminatorConfig, discriminator_config, "discriminator")
        self._perceptual: PerceptualLoss | None = None
        self._identity: IdentityLoss | None = None

    def build_model(self) -> nn.Module:
        """The model whose EMA weights the run exports."""
        return self.model_class(self.config)

    def build_discriminator(self) -> nn.Module | None:
        """The discriminator of stages with an adversarial loss."""
        return PatchDiscriminator(self.discriminator_config)

    def perceptual(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The perceptual loss (MobileNetV2-ImageNet features), its network loaded on first use."""
        if self._perceptual is None:
            self._perceptual = PerceptualLoss().to(prediction.device)
        return self._perceptual(prediction, target)

    def identity(self, prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The identity losses (SFace cosine distance, SFace face-perceptual distance), its network loaded on first
        use."""
        if self._identity is None:
            self._identity = IdentityLoss().to(prediction.device)
        return self._identity(prediction, target)

    def model_config(self) -> dict[str, Any]:
        """The model config as saved in `config.json`."""
        return to_dict(self.config)

    def initialize(
        self, model: nn.Module, weights: Weights | None, stage: StageConfig, parts: dict[str, Weights] | None = None
    ) -> None:
        """Load the weights a fresh stage starts from (None: keep the random initialisation): weights of this
        recipe's own kind, loaded strictly (through `state_to_load`), or, for a recipe that
        `starts_from_tokenizer`, tokenizer weights: the model's HQ prior (`tokenizer`), and its `lq_encoder` as
        a copy of the tokenizer's encoder. `parts` holds the stage's `init_parts` (a recipe that declares
        `init_parts` loads them)."""
        where = f"stage {stage.name!r}"
        if weights is None:
            if self.starts_from_tokenizer:
                raise FacemendError(f"{where}: {self.kind} starts from trained tokenizer weights (set init)")
            return
        if self.starts_from_tokenizer and weights.kind == "tokenizer":
            load_tokenizer(model.tokenizer, model.lq_encoder, weights, f"{where}: tokenizer weights")
        elif weights.kind == self.kind:
            load_into(model, self.completed(model, self.state_to_load(model, weights), stage), where)
        else:
            raise FacemendError(f"{where}: cannot start {self.kind!r} from {weights.kind!r} weights")

    def state_to_load(self, model: nn.Module, weights: Weights) -> dict[str, torch.Tensor]:
        """The state dict a stage loads from weights of this recipe's kind (default: all of it)."""
        return weights.state_dict

    def completed(
        self, model: nn.Module, state: dict[str, torch.Tensor], stage: StageConfig
    ) -> dict[str, torch.Tensor]:
        """`state` with the `left_out` parts it lacks (`absent_parts`) taken from `model` as built (fresh), when
        `stage` neither trains nor needs them; otherwise an error that says so."""
        fresh = model.state_dict()
        absent = self.absent_parts(state, fresh)
        prefixes = tuple(f"{part}." for part in absent)
        if not absent or not all(key.startswith(prefixes) for key in fresh.keys() - state.keys()):
            return state  # nothing left out, or weights of another model: `load_into` names what does not fit
        trained = [part for part in absent if any(_nested(part, path) for path in stage.trainable)]
        if trained or self.needs_left_out(stage):
            raise FacemendError(
                f"stage {stage.name!r}: its weights leave out {(trained or absent)[0]} (restoring weights, e.g. "
                "bundled ones), which this stage trains or uses: start it from a run's export"
            )
        return state | {key: value for key, value in fresh.items() if key.startswith(prefixes)}

    def absent_parts(self, state: dict[str, torch.Tensor], model_state: dict[str, torch.Tensor]) -> list[str]:
        """The `left_out` parts that the model (its `model_state`) has and `state` has no entries of."""

        def has(part: str, keys) -> bool:
            return any(key.startswith(f"{part}.") for key in keys)

        return [part for part in self.left_out if has(part, model_state) and not has(part, state)]

    def needs_left_out(self, stage: StageConfig) -> bool:
        """Whether `stage` reads a `left_out` part it does not train (default: no stage does)."""
        return False

    def check_trainable(self) -> None:  # noqa: B027 (a hook: most models train as they build)
        """Raise ConfigError, naming the field under `model.`, for a model config that builds but cannot be
        trained (default: every one can)."""

    def check_stage(self, stage: StageConfig) -> None:  # noqa: B027 (a hook: most recipes run every stage)
        """Raise ValueError, naming the stage's field, for a stage this recipe cannot run (default: any runs)."""

    def stage_options(self, stage: StageConfig) -> Any:
        """The stage's `method:` options as this recipe's `stage_options_class` (its defaults where unset), or None
        for a recipe that declares none; errors name the field under `method.`."""
        if self.stage_options_class is None:
            if stage.method:
                raise ConfigError(f"method.{next(iter(stage.method))}: recipe {self.name!r} takes no stage options")
            return None
        return build(self.stage_options_class, stage.method, "method")

    def check_stage_options(self, config: TrainConfig) -> None:
        """Every stage's `method:` options, built and checked against the data config (`check_options`); errors
        name the field (`stages[1].method.min_score: …`)."""
        for i, stage in enumerate(config.stages):
            try:
                self.check_options(self.stage_options(stage), config.data)
            except ConfigError as error:
                raise ConfigError(f"stages[{i}].{error}") from None
            except ValueError as error:
                raise ConfigError(f"stages[{i}].method.{error}") from None

    def check_options(self, options: Any, data: DataConfig) -> None:  # noqa: B027 (a hook)
        """Raise ValueError, naming the option, for a stage's options (`stage_options`) that the data config
        cannot serve (default: it serves any)."""

    def stage_faces(self, stage: StageConfig, data: DataConfig, files: list[Path]) -> KeptFaces | None:
        """The faces `stage` trains on among `files` (those of `data.root`/train, file-name order), or None: all
        of them (default). The trainer narrows them to the `data.train_faces` subset, if set."""
        return None

    @abstractmethod
    def generator_step(
        self, model: nn.Module, batch: dict[str, torch.Tensor], stage: StageConfig, discriminator: nn.Module | None
    ) -> StepOutput:
        """Forward and losses of one step; `discriminator` is given once the adversarial loss is on."""

    @abstractmethod
    def validate(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], list[torch.Tensor]]:
        """Scores of the (EMA) model on a fixed validation batch, and rows of images for the sample grid."""


def load_tokenizer(tokenizer: nn.Module, encoder: nn.Module, weights: Weights, where: str) -> None:
    """Tokenizer weights into `tokenizer` (strictly), and its encoder copied into `encoder`, the encoder a
    restorer trains from the tokenizer's."""
    load_into(tokenizer, weights.state_dict, where)
    encoder.load_state_dict(tokenizer.encoder.state_dict())


def reconstruction_step(
    recipe: Recipe,
    images: torch.Tensor,
    target: torch.Tensor,
    last_layer: torch.Tensor | None,
    stage: StageConfig,
    discriminator: nn.Module | None,
    loss: torch.Tensor,
    logs: dict[str, float],
    adversarial_weights: torch.Tensor | None = None,
) -> StepOutput:
    """Add the losses of decoded `images` against `target` to `loss`: L1 + perceptual (+ identity and
    face-perceptual, where the stage weights them), and once `discriminator` is on the hinge generator loss (per
    face weighted by `adversarial_weights`, default 1) with VQGAN's adaptive weight measured at `last_layer`, the
    trained layer nearest the output (None without a discriminator). Shared by the tokenizer, the fusion stage,
    iqpfr's HQ+ stage, idm's x̂0 losses and residual-unet."""
    l1 = (images - target).abs().mean()
    perceptual = recipe.perceptual(images, target) if stage.weight("perceptual") else torch.zeros_like(l1)
    reconstruction = stage.weight("l1") * l1 + stage.weight("perceptual") * perceptual
    logs.update(l1=l1.item(), perceptual=perceptual.item())
    if stage.weight("identity") or stage.weight("face_perceptual"):
        identity, face_perceptual = recipe.identity(images, target)
        for name, term in (("identity", identity), ("face_perceptual", face_perceptual)):
            if stage.weight(name):  # an unweighted term is logged, not back-propagated
                reconstruction = reconstruction + stage.weight(name) * term
            logs[name] = term.item()
    loss = loss + reconstruction
    if discriminator is not None:
        adversarial = hinge_generator_loss(discriminator(images), adversarial_weights)
        balance = adaptive_adversarial_weight(reconstruction, adversarial, last_layer)
        loss = loss + stage.weight("adversarial") * balance * adversarial
        logs.update(g_adv=adversarial.item(), adv_balance=balance.item())
    logs["loss"] = loss.item()
    return StepOutput(loss, logs, fake=images, real=target)

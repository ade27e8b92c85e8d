"""The typed training config: one YAML per experiment, with a list of stages run in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facemend.config import ConfigError, build, load_yaml
from facemend.data.datasets import DataConfig

PRECISIONS = ("auto", "bf16-mixed", "32-true", "16-mixed", "bf16-true")


@dataclass
class StageConfig:
    name: str
    steps: int  # optimiser steps in this stage
    trainable: tuple[str, ...]  # the model's submodules trained in this stage; the others are frozen
    losses: dict[str, float]  # loss name → weight (names the recipe knows)
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warm-up from 0
    cosine_decay: bool = False  # after warm-up: cosine from lr to lr × min_lr_ratio at the last step
    min_lr_ratio: float = 0.1
    disc_start: int = 0  # stage step at which the adversarial loss (if weighted) starts
    disc_lr: float | None = None  # discriminator learning rate (default: lr)
    init: str | None = None  # weights folder loaded when the stage starts fresh (else: the previous stage's)
    init_parts: dict[str, str] = field(default_factory=dict)  # with init: more weights folders loaded beside it,
    # by the part names the recipe declares (daefr: lq_tokenizer)
    ema_warmup: bool = False  # EMA decay ramps up as min(ema_decay, (1 + n) / (10 + n)) over the stage's updates
    fidelity_one_share: float | None = None  # the fusion stage (fusion_stage.py): share of faces trained at w = 1,
    # the rest at w = 0 (None: w ~ U(0, 1) per face)
    method: dict[str, Any] = field(default_factory=dict)  # the method's own options of this stage, checked by its
    # recipe (`Recipe.stage_options_class`); a method that declares none takes none

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"name must be a non-empty folder name, got {self.name!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not self.trainable:
            raise ValueError("trainable must name at least one module")
        if self.lr <= 0 or (self.disc_lr is not None and self.disc_lr <= 0):
            raise ValueError(f"lr and disc_lr must be > 0, got {self.lr}, {self.disc_lr}")
        if self.warmup_steps < 0 or self.disc_start < 0:
            raise ValueError("warmup_steps and disc_start must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.fidelity_one_share is not None and not 0.0 <= self.fidelity_one_share <= 1.0:
            raise ValueError(f"fidelity_one_share must be in [0, 1], got {self.fidelity_one_share}")
        if self.init_parts and not self.init:
            raise ValueError(f"init_parts ({', '.join(self.init_parts)}) load beside init: set init too")
        bad = [name for name, weight in self.losses.items() if weight < 0]
        if bad:
            raise ValueError(f"losses.{bad[0]} must be >= 0")

    def weight(self, loss: str) -> float:
        return self.losses.get(loss, 0.0)

    def lr_factor(self, step: int) -> float:
        """Multiplier of `lr` at stage step `step` (0-based)."""
        import math

        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if not self.cosine_decay:
            return 1.0
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"  # "cpu", "gpu", "auto" (Lightning Fabric's names)
    devices: int = 1  # processes per node (DDP when > 1; gloo on CPU)
    num_nodes: int = 1
    # Lightning Fabric's precision; "auto": bf16-mixed on a GPU or a CPU with native bf16 (AVX512-BF16, AMX),
    # else 32-true (bf16 is emulated, and far slower, on an AVX2-only CPU)
    precision: str = "auto"
    grad_clip: float = 1.0  # max gradient norm (0: off)
    ema_decay: float = 0.999
    checkpoint_minutes: float = 5.0  # also on SIGINT/SIGTERM and at the end of every stage
    log_every: int = 25
    sample_every: int = 500  # validation scores and a sample grid from the EMA weights
    threads: int = 0  # torch intra-op threads per process (0: torch's default)
    runs_dir: str = "runs"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("devices", "num_nodes", "log_every", "sample_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip < 0 or self.checkpoint_minutes <= 0 or self.threads < 0:
            raise ValueError("grad_clip and threads must be >= 0, checkpoint_minutes > 0")


@dataclass
class TrainConfig:
    name: str  # the run's folder: RUNS_DIR/NAME
    recipe: str  # what is trained: "tokenizer", "baseline", …
    stages: list[StageConfig]
    model: dict[str, Any] = field(default_factory=dict)  # the recipe's model config
    discriminator: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"name must be a non-empty folder name, got {self.name!r}")
        if not self.stages:
            raise ValueError("stages must list at least one stage")
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must differ, got {names}")

    @property
    def run_dir(self) -> Path:
        return Path(self.trainer.runs_dir) / self.name


def load_train_config(source: str | Path | dict) -> TrainConfig:
    """A training config from a YAML file or a dict; errors name the file and the bad field."""
    if isinstance(source, dict):
        return build(TrainConfig, source)
    try:
        return build(TrainConfig, load_yaml(source))
    except ConfigError as error:
        message = str(error)
        raise ConfigError(message if message.startswith(str(source)) else f"{source}: {message}") from None

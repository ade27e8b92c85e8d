"""Model specs `NAME[:knob=value,…]` → a `Restorer` and validated knob values.

The registry is the only place that knows every method; methods never import each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from facemend.config import ConfigError
from facemend.errors import FacemendError
from facemend.methods.base import Knob, Restorer
from facemend.methods.baseline import BaselineRestorer
from facemend.methods.classical import ClassicalRestorer
from facemend.weights import bundled, bundled_registry

if TYPE_CHECKING:
    from facemend.training.config import TrainConfig
    from facemend.training.recipe import Recipe

BUNDLED_BASELINE = "baseline-tiny"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    build: Callable[[], Restorer]  # builds the restorer and loads its bundled weights, if any
    knobs: tuple[Knob, ...]  # declared without building, so listing models loads nothing


def _bundled_baseline() -> Restorer:
    return BaselineRestorer.from_weights(bundled(BUNDLED_BASELINE), f"bundled weights {BUNDLED_BASELINE!r}")


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in [
        ModelInfo(
            "classical",
            "non-local-means denoising + detail enhancement (no learning)",
            ClassicalRestorer,
            ClassicalRestorer.knobs,
        ),
        ModelInfo(
            "baseline",
            "CodeFormer-style codebook lookup with controllable fidelity (tiny: 128-px faces)",
            _bundled_baseline,
            BaselineRestorer.knobs,
        ),
    ]
    if info.name != "baseline" or BUNDLED_BASELINE in bundled_registry()
}
# the learned model once its weights are bundled
DEFAULT_MODEL = "baseline" if "baseline" in MODELS else "classical"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    knobs: dict[str, str]

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        """`"artfr:steps=8,seed=1"` → ModelSpec("artfr", {"steps": "8", "seed": "1"})."""
        name, _, rest = spec.strip().partition(":")
        if not name:
            raise FacemendError(f"model spec {spec!r} has no model name (expected NAME[:knob=value,...])")
        knobs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise FacemendError(f"model spec {spec!r}: expected knob=value, got {item!r}")
            knobs[key.strip()] = value.strip()
        return cls(name, knobs)


def split_specs(text: str) -> list[str]:
    """`"baseline,artfr:steps=8,seed=1"` → `["baseline", "artfr:steps=8,seed=1"]`: a comma-separated piece with
    `=` but no `:` continues the previous spec's knobs (model names never contain `=`)."""
    specs: list[str] = []
    for piece in filter(None, (part.strip() for part in text.split(","))):
        if "=" in piece and ":" not in piece:
            if not specs:
                raise FacemendError(f"model list {text!r} starts with a knob ({piece!r}), not a model name")
            specs[-1] += f",{piece}"
        else:
            specs.append(piece)
    return specs


# training recipes by the `recipe:` name of a training config; imported only when training
RECIPES = {
    "tokenizer": "facemend.training.recipes.tokenizer:TokenizerRecipe",
    "baseline": "facemend.training.recipes.baseline:BaselineRecipe",
}


def recipe_for(config: TrainConfig) -> Recipe:
    """The recipe a training config names, built from (and validating) its model and discriminator sections."""
    if config.recipe not in RECIPES:
        raise ConfigError(f"recipe: unknown recipe {config.recipe!r} (recipes: {', '.join(RECIPES)})")
    module, _, name = RECIPES[config.recipe].partition(":")
    return getattr(importlib.import_module(module), name)(config.model, config.discriminator)


def model_info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise FacemendError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    return MODELS[name]


@lru_cache(maxsize=8)
def load_restorer(name: str) -> Restorer:
    """The restorer called `name`, built (and its weights loaded) once per process."""
    return model_info(name).build()


def resolve_model(spec: str | Restorer, **overrides: object) -> tuple[Restorer, dict[str, float | int]]:
    """A restorer and every knob's validated value, from a spec (knobs in `overrides` win) or an instance."""
    if isinstance(spec, Restorer):
        return spec, spec.resolve_knobs(**overrides)
    parsed = ModelSpec.parse(spec)
    restorer = load_restorer(parsed.name)
    return restorer, restorer.resolve_knobs(**{**parsed.knobs, **overrides})

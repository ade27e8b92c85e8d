"""Model specs `NAME[:knob=value,…]` → a `Restorer` and validated knob values. NAME is a registered model or a
weights folder (`runs/baseline-tiny/fusion`: any folder holding `config.json` + `model.safetensors` of a
restorer's kind, e.g. weights a user trained).

Methods register themselves: each method package (`methods/<name>/`, imported by `facemend.methods`) declares its
restorer kind, its models and its training recipe here on import. The registry names no method's code; methods
never import each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from facemend.config import ConfigError
from facemend.errors import FacemendError
from facemend.methods.base import Knob, Restorer, WeightsRestorer, with_current_names
from facemend.weights import bundled, bundled_registry, load_weights

if TYPE_CHECKING:
    from facemend.training.config import TrainConfig
    from facemend.training.recipe import Recipe


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    build: Callable[[], Restorer]  # builds the restorer and loads its bundled weights, if any
    knobs: tuple[Knob, ...]  # declared without building, so listing models loads nothing
    train_config: str | None = None  # set when no weights are bundled: the config that trains them
    weights_folder: str | None = None  # weights of it trained here, in the repository (usable as the model)

    @property
    def runnable(self) -> bool:
        """Whether it restores as installed (bundled weights, or none needed): the models offered."""
        return self.train_config is None

    def how_to_get(self) -> str:
        """For a model that is not runnable: `train it: CONFIG` (and the weights folder trained here, if any)."""
        folder = f"; weights folder: {self.weights_folder}" if self.weights_folder else ""
        return f"train it: {self.train_config}{folder}"


# weights-folder kind → the restorer built from such a folder (`register_restorer`)
RESTORER_KINDS: dict[str, type[WeightsRestorer]] = {}
# training recipes by the `recipe:` name of a training config, each a function importing it (`register_recipe`):
# recipes are imported only when training
RECIPES: dict[str, Callable[[], type[Recipe]]] = {}
# the registered models: the runnable ones first (bundled weights, or none needed), then the ones to train first,
# each in the order registered (`register_model`)
MODELS: dict[str, ModelInfo] = {}


def register_restorer(restorer: type[WeightsRestorer]) -> type[WeightsRestorer]:
    """Class decorator: weights folders of `restorer.kind` restore with `restorer`."""
    RESTORER_KINDS[restorer.kind] = restorer
    return restorer


def register_recipe(name: str, load: Callable[[], type[Recipe]]) -> None:
    """Training configs with `recipe: NAME` train with the recipe class that `load` imports and returns."""
    RECIPES[name] = load


def register_model(info: ModelInfo) -> None:
    """Offer `info` under its name (the runnable models listed before the ones to train first)."""
    models = [*MODELS.values(), info]
    MODELS.clear()
    MODELS.update({model.name: model for model in sorted(models, key=lambda model: not model.runnable)})


def register_method(
    name: str, restorer: type[WeightsRestorer], recipe: Callable[[], type[Recipe]], description: str, stage: str
) -> None:
    """Register a method: its restorer kind, its recipe, `NAME` (its bundled tiny weights, else how to train them)
    and `NAME-base` (paper scale); `stage` is the stage whose export restores."""
    register_restorer(restorer)
    register_recipe(name, recipe)
    register_model(tiny_model(name, restorer, description, stage))
    register_model(paper_scale_model(name, restorer.knobs, stage))


def _tokenizer_recipe() -> type[Recipe]:
    from facemend.training.tokenizer_recipe import TokenizerRecipe

    return TokenizerRecipe


def _lq_tokenizer_recipe() -> type[Recipe]:
    from facemend.training.tokenizer_recipe import LqTokenizerRecipe

    return LqTokenizerRecipe


register_recipe("tokenizer", _tokenizer_recipe)  # the shared prior's, no method's
register_recipe("tokenizer-lq", _lq_tokenizer_recipe)


def bundled_model(restorer: type[WeightsRestorer], name: str) -> Callable[[], Restorer]:
    """Builds `restorer` from the bundled weights folder `name`."""

    def build() -> Restorer:
        return restorer.from_weights(bundled(name), f"bundled weights {name!r}")

    return build


def tiny_model(method: str, restorer: type[WeightsRestorer], description: str, stage: str) -> ModelInfo:
    """`METHOD`: its bundled tiny weights (`METHOD-tiny`) when the package holds them, else how to train them."""
    name = f"{method}-tiny"
    if name not in bundled_registry():
        return untrained_model(method, description, restorer.knobs, stage)
    return ModelInfo(method, f"{description} (tiny: 128-px faces)", bundled_model(restorer, name), restorer.knobs)


def _train_first(name: str, config: str, export: str, folder: str | None = None) -> Callable[[], Restorer]:
    def build() -> Restorer:
        trained_here = f", or use the weights trained here (--model {folder})" if folder else ""
        raise FacemendError(
            f"model {name!r} has no bundled weights: train it (facemend train {config}), then pass its weights "
            f"folder as the model (--model {export}){trained_here}"
        )

    return build


def untrained_model(
    method: str,
    description: str,
    knobs: tuple[Knob, ...],
    stage: str,
    folder: str | None = None,
    config: str | None = None,
) -> ModelInfo:
    """A method whose tiny weights are not bundled: it says how to train them from `config` (default
    `configs/METHOD/tiny.yaml`) and names `folder`, weights of it trained here, when there are some."""
    config = config or f"configs/{method}/tiny.yaml"
    build = _train_first(method, config, f"runs/{method}-tiny/{stage}", folder)
    return ModelInfo(method, f"{description} (tiny: 128-px faces)", build, knobs, config, folder)


def paper_scale_model(method: str, knobs: tuple[Knob, ...], stage: str) -> ModelInfo:
    """`METHOD-base`: the method at paper scale, trained by the user from `configs/METHOD/base.yaml`."""
    name, config = f"{method}-base", f"configs/{method}/base.yaml"
    build = _train_first(name, config, f"runs/{name}/{stage}")
    return ModelInfo(name, f"{method} at paper scale (512-px faces)", build, knobs, config)


# the best measured model whose weights are bundled (docs/methods/residual-unet.md), else the next one
BUNDLED_DEFAULT = "residual-unet-tiny"
DEFAULT_MODEL = next(
    name
    for name, bundled_name in (("residual-unet", BUNDLED_DEFAULT), ("baseline", "baseline-tiny"), ("classical", None))
    if bundled_name is None or bundled_name in bundled_registry()
)


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


def recipe_for(config: TrainConfig) -> Recipe:
    """The recipe a training config names, built from (and validating) its model and discriminator sections and
    its stages' `method:` options."""
    if config.recipe not in RECIPES:
        raise ConfigError(f"recipe: unknown recipe {config.recipe!r} (recipes: {', '.join(RECIPES)})")
    recipe = RECIPES[config.recipe]()(config.model, config.discriminator)
    recipe.check_stage_options(config)
    return recipe


def model_info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise FacemendError(f"unknown model {name!r}; available: {', '.join(MODELS)}, or a weights folder")
    return MODELS[name]


def is_weights_folder(name: str) -> bool:
    return name not in MODELS and (os.sep in name or "/" in name or Path(name).is_dir())


def restorer_from_folder(folder: str | Path) -> Restorer:
    """The restorer of a weights folder, by the kind its `config.json` names."""
    weights = load_weights(folder)
    if weights.kind not in RESTORER_KINDS:
        kinds = ", ".join(RESTORER_KINDS)
        raise FacemendError(f"{folder}: holds {weights.kind!r} weights, which restore nothing (restorers: {kinds})")
    return RESTORER_KINDS[weights.kind].from_weights(weights, folder)


@lru_cache(maxsize=8)
def load_restorer(name: str) -> Restorer:
    """The restorer called `name` (or stored in the weights folder `name`), built once per process."""
    if is_weights_folder(name):
        return restorer_from_folder(name)
    return model_info(name).build()


def runnable_models() -> list[str]:
    """The registered models that restore as installed: what the CLI and the web page offer."""
    return [name for name, info in MODELS.items() if info.runnable]


def resolve_model(spec: str | Restorer, **overrides: object) -> tuple[Restorer, dict[str, float | int]]:
    """A restorer and every knob's validated value, from a spec (knobs in `overrides` win, each under its
    current name) or an instance."""
    if isinstance(spec, Restorer):
        return spec, spec.resolve_knobs(**overrides)
    parsed = ModelSpec.parse(spec)
    restorer = load_restorer(parsed.name)
    spec_knobs, given = (with_current_names(restorer.name, restorer.knobs, k) for k in (parsed.knobs, overrides))
    return restorer, restorer.resolve_knobs(**{**spec_knobs, **given})

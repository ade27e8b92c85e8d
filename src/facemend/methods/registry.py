"""Model specs `NAME[:knob=value,…]` → a `Restorer` and validated knob values. NAME is a registered model or a
weights folder (`runs/baseline-tiny/fusion`: any folder holding `config.json` + `model.safetensors` of a
restorer's kind, e.g. weights a user trained).

The registry is the only place that knows every method; methods never import each other.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from facemend.config import ConfigError
from facemend.errors import FacemendError
from facemend.methods.artfr import ArtfrRestorer
from facemend.methods.base import Knob, Restorer, WeightsRestorer, with_current_names
from facemend.methods.baseline import BaselineRestorer
from facemend.methods.classical import ClassicalRestorer
from facemend.methods.daefr import DaefrRestorer
from facemend.methods.idm import IdmRestorer
from facemend.methods.iqpfr import IqpfrRestorer
from facemend.methods.lookup import lookup_knobs
from facemend.methods.residual_unet import ResidualUNetRestorer
from facemend.weights import bundled, bundled_registry, load_weights

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


# weights-folder kind → the restorer built from such a folder
RESTORER_KINDS = {
    "baseline": BaselineRestorer,
    "daefr": DaefrRestorer,
    "artfr": ArtfrRestorer,
    "iqpfr": IqpfrRestorer,
    "idm": IdmRestorer,
    "residual-unet": ResidualUNetRestorer,
}


def _from_bundled(restorer: type[WeightsRestorer], name: str) -> Callable[[], Restorer]:
    """Builds `restorer` from the bundled weights folder `name`."""

    def build() -> Restorer:
        return restorer.from_weights(bundled(name), f"bundled weights {name!r}")

    return build


def _tiny(method: str, restorer: type[WeightsRestorer], description: str, stage: str) -> ModelInfo:
    """`METHOD`: its bundled tiny weights (`METHOD-tiny`) when the package holds them, else how to train them."""
    name = f"{method}-tiny"
    if name not in bundled_registry():
        return _not_trained_yet(method, description, restorer.knobs, stage)
    return ModelInfo(method, f"{description} (tiny: 128-px faces)", _from_bundled(restorer, name), restorer.knobs)


def _untrained(name: str, config: str, export: str, folder: str | None = None) -> Callable[[], Restorer]:
    def build() -> Restorer:
        trained_here = f", or use the weights trained here (--model {folder})" if folder else ""
        raise FacemendError(
            f"model {name!r} has no bundled weights: train it (facemend train {config}), then pass its weights "
            f"folder as the model (--model {export}){trained_here}"
        )

    return build


def _not_trained_yet(
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
    build = _untrained(method, config, f"runs/{method}-tiny/{stage}", folder)
    return ModelInfo(method, f"{description} (tiny: 128-px faces)", build, knobs, config, folder)


def _paper_scale(method: str, knobs: tuple[Knob, ...], stage: str) -> ModelInfo:
    """`METHOD-base`: the method at paper scale, trained by the user from `configs/METHOD/base.yaml`."""
    name, config = f"{method}-base", f"configs/{method}/base.yaml"
    build = _untrained(name, config, f"runs/{name}/{stage}")
    return ModelInfo(name, f"{method} at paper scale (512-px faces)", build, knobs, config)


_REGISTERED = [
    info
    for info in [
        ModelInfo(
            "classical",
            "non-local-means denoising + detail enhancement (no learning)",
            ClassicalRestorer,
            ClassicalRestorer.knobs,
        ),
        _tiny(
            "residual-unet",
            ResidualUNetRestorer,
            "a U-Net predicts the correction of the LQ face in one pass, trained with L1 + perceptual + identity "
            "(SFace) + adversarial losses",
            "restore",
        ),
        ModelInfo(
            "baseline",
            "CodeFormer-style codebook lookup with controllable fidelity (tiny: 128-px faces)",
            _from_bundled(BaselineRestorer, BUNDLED_BASELINE),
            BaselineRestorer.knobs,
        ),
        _paper_scale("baseline", BaselineRestorer.knobs, "fusion"),
        _tiny(
            "daefr",
            DaefrRestorer,
            "DAEFR: dual associated encoders (HQ and LQ branches, patch association, cross-attention fusion) "
            "predict the HQ codes in one shot, fidelity fusion",
            "fusion",
        ),
        _paper_scale("daefr", DaefrRestorer.knobs, "fusion"),
        _tiny(
            "iqpfr",
            IqpfrRestorer,
            "IQPFR: a quality-conditioned transformer predicts common and HQ+ codes (a dual codebook, HQ+ learned "
            "from the best-scoring faces), trained to raise a no-reference prior's score; `quality` sets the target",
            "fusion",
        ),
        _paper_scale("iqpfr", IqpfrRestorer.knobs, "fusion"),
        _not_trained_yet(
            "baseline-q",
            "baseline with IQPFR's quality conditioning (the target score embedded into the LQ latent)",
            lookup_knobs(True),
            "fusion",
            "weights/baseline-q-tiny-fusion",
            "configs/baseline/q-tiny.yaml",
        ),
        _not_trained_yet(
            "daefr-q",
            "daefr with IQPFR's quality conditioning (the target score embedded into the combined latent)",
            lookup_knobs(True, DaefrRestorer.default_keep_input),
            "fusion",
            config="configs/daefr/q-tiny.yaml",
        ),
        _tiny(
            "artfr",
            ArtfrRestorer,
            "ART-FR: masked generative transformer over the HQ codes, iterative parallel sampling (MaskGIT), "
            "fidelity fusion",
            "fusion",
        ),
        _paper_scale("artfr", ArtfrRestorer.knobs, "fusion"),
        _tiny(
            "idm",
            IdmRestorer,
            "IDM: conditional diffusion UNet on the LQ face, few-step DDIM sampling, the input blended back "
            "(`keep_input`); `facemend clean` enhances a training set with it",
            "denoise",
        ),
        _paper_scale("idm", IdmRestorer.knobs, "denoise"),
    ]
    if info.name != "baseline" or BUNDLED_BASELINE in bundled_registry()
]
# the runnable models first (bundled weights, or none needed), then the ones to train first, each in the order above
MODELS: dict[str, ModelInfo] = {info.name: info for info in sorted(_REGISTERED, key=lambda info: not info.runnable)}
# the best measured model whose weights are bundled (docs/methods/residual-unet.md), else the next one
BUNDLED_DEFAULT = "residual-unet-tiny"
DEFAULT_MODEL = next(
    name
    for name, bundled_name in (("residual-unet", BUNDLED_DEFAULT), ("baseline", BUNDLED_BASELINE), ("classical", None))
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


# training recipes by the `recipe:` name of a training config; imported only when training
RECIPES = {
    "tokenizer": "facemend.training.recipes.tokenizer:TokenizerRecipe",
    "tokenizer-lq": "facemend.training.recipes.tokenizer:LqTokenizerRecipe",
    "baseline": "facemend.training.recipes.baseline:BaselineRecipe",
    "daefr": "facemend.training.recipes.daefr:DaefrRecipe",
    "artfr": "facemend.training.recipes.artfr:ArtfrRecipe",
    "iqpfr": "facemend.training.recipes.iqpfr:IqpfrRecipe",
    "idm": "facemend.training.recipes.idm:IdmRecipe",
    "residual-unet": "facemend.training.recipes.residual_unet:ResidualUNetRecipe",
}


def recipe_for(config: TrainConfig) -> Recipe:
    """The recipe a training config names, built from (and validating) its model and discriminator sections."""
    if config.recipe not in RECIPES:
        raise ConfigError(f"recipe: unknown recipe {config.recipe!r} (recipes: {', '.join(RECIPES)})")
    module, _, name = RECIPES[config.recipe].partition(":")
    return getattr(importlib.import_module(module), name)(config.model, config.discriminator)


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

"""The `Restorer` interface every method implements, and the knobs a method declares."""

from __future__ import annotations

import os
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import torch
import torch.nn.functional as F
from torch import nn

from facemend.config import build
from facemend.errors import FacemendError
from facemend.precision import resolve_precision
from facemend.weights import Weights, load_into, load_weights, without_parts


class RenamedKnobWarning(DeprecationWarning):
    """A knob was given by its old name: it works for this release, as the knob it was renamed to."""


@dataclass(frozen=True)
class Knob:
    """A user-facing control of a method; the CLI flags and the web page's controls are built from these, and
    `parse` is the one place a knob's value is checked."""

    name: str
    type: type  # float or int
    default: float | int
    low: float | int
    high: float | int
    help: str = ""
    old_names: tuple[str, ...] = ()  # earlier names of this knob, accepted for one release with a warning

    def parse(self, value: object) -> float | int:
        """Validate `value` (a number, or a string from a model spec, a CLI flag or the web API) against the type
        and range."""
        try:
            number = self.type(value) if not isinstance(value, str) else self._from_string(value)
        except (TypeError, ValueError):
            raise FacemendError(f"knob {self.name!r} takes a {self.type.__name__}, got {value!r}") from None
        if not self.low <= number <= self.high:
            raise FacemendError(f"knob {self.name!r} must be in [{self.low}, {self.high}], got {number}")
        return number

    def _from_string(self, text: str) -> float | int:
        if self.type is int:
            as_float = float(text)
            if not as_float.is_integer():
                raise ValueError(text)
            return int(as_float)
        return self.type(text)

    def describe(self) -> str:
        return f"{self.name} ({self.type.__name__}, default {self.default}, range [{self.low}, {self.high}])"


def with_current_names(model: str, knobs: Iterable[Knob], values: Mapping[str, object]) -> dict[str, object]:
    """`values` by knob name, each old name (`Knob.old_names`) replaced by the knob's name with a
    `RenamedKnobWarning`; other names are left for the caller to judge."""
    renamed = {old: knob.name for knob in knobs for old in knob.old_names}
    current: dict[str, object] = {}
    for name, value in values.items():
        if name in renamed:
            new = renamed[name]
            if new in values:
                raise FacemendError(f"model {model!r}: knob {new!r} is given twice, also by its old name {name!r}")
            message = f"model {model!r}: knob {name!r} is now called {new!r}; the old name goes in the next release"
            warnings.warn(message, RenamedKnobWarning, stacklevel=_caller_outside_facemend())
            name = new
        current[name] = value
    return current


def _caller_outside_facemend() -> int:
    """The `stacklevel` that points a warning at the first caller outside this package (the user's code, where
    Python shows a DeprecationWarning)."""
    package = f"{Path(__file__).resolve().parents[1]}{os.sep}"
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


@dataclass(frozen=True)
class NetworkSpec:
    """One of a restorer's networks as export sees it."""

    inputs: dict[str, torch.Tensor]  # example inputs by name, batch first, in the order the network takes them
    outputs: tuple[str, ...]  # names of what it returns (one tensor, or a tuple in this order)


class Restorer(ABC):
    """Restores a batch of aligned faces: `b 3 h w` float in [0, 1] in, the same shape out.

    A subclass sets `name`, `face_size` (the crop size it works at; faces are aligned at that size) and `knobs`,
    and implements `restore_faces`. Callers go through `__call__`, which validates knobs and fills defaults, and
    runs the networks in fp32 or under bf16 autocast (`precision`), channels-last.

    A learned restorer keeps its networks in `networks`, each called with tensors only (knobs such as fidelity
    are tensor inputs; a sampler's loop stays in `restore_faces`), and describes them in `network_specs`: that
    is what ONNX export writes, and a runtime may swap each network for any callable with the same inputs.
    """

    name: ClassVar[str]
    knobs: ClassVar[tuple[Knob, ...]] = ()
    face_size: int = 512
    networks: dict[str, Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]] = {}  # set per instance

    def network_specs(self, batch: int = 1) -> dict[str, NetworkSpec]:
        """Each network's example inputs (batch `batch`) and output names, by the network's name."""
        raise FacemendError(f"model {self.name!r} has no network to export (it computes with OpenCV, not torch)")

    def resolve_knobs(self, **values: object) -> dict[str, float | int]:
        """Every knob of this model with its value: given ones validated (old names taken as the current ones,
        with a `RenamedKnobWarning`), others at their defaults."""
        values = with_current_names(self.name, self.knobs, values)
        declared = {knob.name: knob for knob in self.knobs}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            have = ", ".join(knob.describe() for knob in self.knobs) or "none"
            raise FacemendError(f"model {self.name!r} has no knob {unknown[0]!r}; its knobs: {have}")
        return {name: knob.parse(values[name]) if name in values else knob.default for name, knob in declared.items()}

    @abstractmethod
    def restore_faces(self, faces: torch.Tensor, **knobs: float | int) -> torch.Tensor:
        """`b 3 h w` in [0, 1] → `b 3 h w` in [0, 1]; `knobs` holds every declared knob."""

    def code_accuracy(self, faces: torch.Tensor, targets: torch.Tensor, **knobs: float | int) -> torch.Tensor | None:
        """Per-face share, `b`, of the target faces' codebook indices that the model predicts from `faces`; None
        for models without a codebook."""
        return None

    def __call__(self, faces: torch.Tensor, precision: str = "fp32", **knobs: object) -> torch.Tensor:
        if faces.ndim != 4 or faces.shape[1] != 3:
            raise ValueError(f"expected faces of shape (b, 3, h, w), got {tuple(faces.shape)}")
        resolved = self.resolve_knobs(**knobs)
        bf16 = resolve_precision(precision) == "bf16"
        faces = faces.float().contiguous(memory_format=torch.channels_last)  # what oneDNN's convolutions prefer
        with torch.inference_mode(), torch.autocast(faces.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self.restore_faces(faces, **resolved).float().clamp(0.0, 1.0)


class WeightsRestorer(Restorer):
    """A restorer of a trained network: built from a weights folder of its `kind`, whose config builds
    `model_class(config_class(...))`; the model is kept in eval mode, frozen, channels-last."""

    kind: ClassVar[str]
    config_class: ClassVar[type]
    model_class: ClassVar[type[nn.Module]]
    training_only: ClassVar[tuple[str, ...]] = ()  # the model's submodules (dotted paths) that only training uses:
    # a restorer drops them, and its weights (bundled ones, say) need not hold them

    def __init__(self, model: nn.Module):
        self.model = model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.face_size = self.face_size_of(model.config)

    @staticmethod
    def face_size_of(config) -> int:
        """The face size a model of this config works at: its tokenizer's (a method without one overrides this)."""
        return config.tokenizer.image_size

    @classmethod
    def from_weights(cls, weights: Weights, where: str | Path | None = None) -> Self:
        where = where or f"{cls.kind} weights"
        if weights.kind != cls.kind:
            raise FacemendError(f"{where}: holds {weights.kind!r} weights, not {cls.kind!r}")
        model = cls.model_class(build(cls.config_class, weights.config, "config"))
        for name in cls.training_only:
            parent, _, child = name.rpartition(".")
            owner = model.get_submodule(parent)
            if hasattr(owner, child):
                delattr(owner, child)
        load_into(model, cls.inference_state(weights.state_dict), where)
        return cls(model)

    @classmethod
    def inference_state(cls, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`state_dict` without the entries of the `training_only` submodules."""
        return without_parts(state_dict, cls.training_only)

    @classmethod
    def from_folder(cls, folder: str | Path) -> Self:
        return cls.from_weights(load_weights(folder, cls.kind), folder)


def resize_faces(faces: torch.Tensor, size: int) -> torch.Tensor:
    """Square `b 3 h w` faces at `size` (antialiased bicubic), unchanged when already that size."""
    if faces.shape[-2:] == (size, size):
        return faces
    resized = F.interpolate(faces, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return resized.clamp(0, 1)


def keep_input_knob(default: float, old_names: tuple[str, ...] = ()) -> Knob:
    """The `keep_input` knob of a method that mixes the input back into its output (`blend_with_input`)."""
    return Knob("keep_input", float, default, 0.0, 1.0, "share of the input image kept in the output", old_names)


def blend_with_input(faces: torch.Tensor, restored: torch.Tensor, input_share: float) -> torch.Tensor:
    """`restored` (any square size) brought to the input's size with `input_share` of the input `faces` mixed
    back in: 0 = the restoration only, 1 = the input unchanged."""
    return input_share * faces + (1.0 - input_share) * resize_faces(restored, faces.shape[-1])

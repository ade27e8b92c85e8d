"""One-shot code lookup (CodeFormer's), shared by the restorers that predict every HQ code at once (baseline,
daefr, iqpfr): a transformer's logits over the HQ codebook → argmax codes → the HQ decoder, with LQ encoder
features fused in at weight `fidelity` (`models/fusion.py`).

Not a method: the parts those methods have in common. A lookup model has
`forward(lq, fidelity=None, hq=None, quality=None)` returning a `CodePrediction`, and `quality_embedding`: IQPFR's
quality conditioning (`models/quality_conditioning.py`), or None. `LookupRestorer` runs any such model; a
conditioned one gains the `quality` knob."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from facemend.methods.base import Knob, NetworkSpec, WeightsRestorer, blend_with_input, keep_input_knob, resize_faces
from facemend.models.code_transformer import CodeTransformer
from facemend.models.fusion import FidelityFusion, decode_with_fusion
from facemend.models.quality_conditioning import DEFAULT_QUALITY
from facemend.models.tokenizer import VQTokenizer

FIDELITY = Knob("fidelity", float, 1.0, 0.0, 1.0, "0 = most quality (the codebook's answer), 1 = most fidelity")
QUALITY = Knob(
    "quality",
    float,
    DEFAULT_QUALITY,
    0.0,
    1.0,
    "target quality score (the prior's, in 10 bins; 1 = the best attainable, the same bin as IQPIR's 0.9)",
)


def lookup_knobs(conditioned: bool, keep_input: float | None = None) -> tuple[Knob, ...]:
    """The knobs of a lookup model: `fidelity`, `quality` when it is quality-conditioned, and `keep_input` (with
    this default) when its method blends the input back in."""
    knobs = (FIDELITY, QUALITY) if conditioned else (FIDELITY,)
    return knobs if keep_input is None else (*knobs, keep_input_knob(keep_input))


@dataclass
class CodePrediction:
    logits: torch.Tensor  # b (h w) n
    latent: torch.Tensor  # b d h w, the encoder's latent (the transformer read it plus any quality condition)
    indices: torch.Tensor  # b h w, predicted codes
    images: torch.Tensor | None = None  # b 3 H W, when decoded
    target_indices: torch.Tensor | None = None  # b h w, the HQ face's codes (when `hq` is given)
    target_codes: torch.Tensor | None = None  # b d h w, their codebook vectors

    def code_accuracies(self) -> dict[str, float]:
        """The share of the HQ face's codes predicted (`code_acc`), by log name; a method whose model predicts
        more code sequences adds theirs (`target_indices` given)."""
        return {"code_acc": (self.indices == self.target_indices).float().mean().item()}

    def code_cross_entropy(self) -> torch.Tensor:
        """Cross-entropy of the logits on the HQ face's codes; a method whose model predicts more code sequences
        adds theirs (`target_indices` given)."""
        return F.cross_entropy(self.logits.transpose(1, 2).float(), self.target_indices.flatten(1))


def argmax_codes(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Logits `b (h w) n` → the likeliest codes `b h w`."""
    return logits.argmax(dim=-1).view(-1, height, width)


def predict_codes(
    transformer: CodeTransformer,
    tokenizer: VQTokenizer,
    fusion: FidelityFusion,
    latent: torch.Tensor,
    features: list[torch.Tensor],
    fidelity: torch.Tensor | float | None = None,
    hq: torch.Tensor | None = None,
    condition: torch.Tensor | None = None,
) -> CodePrediction:
    """The transformer's codes for `latent` (`b d h w`, plus `condition` when given); decoded by `tokenizer` with
    `features` (one per level) fused in when `fidelity` (a float or `b`) is given; the HQ faces' codes when `hq`
    is given."""
    logits = transformer(latent if condition is None else latent + condition)
    out = CodePrediction(logits, latent, argmax_codes(logits, *latent.shape[2:]))
    if hq is not None:
        with torch.no_grad():
            out.target_indices = tokenizer.encode_indices(hq)
            out.target_codes = tokenizer.quantizer.lookup(out.target_indices)
    if fidelity is not None:
        out.images = decode_with_fusion(tokenizer, fusion, out.indices, features, fidelity)
    return out


class LookupNetwork(nn.Module):
    """What the restorer runs (and ONNX export writes): `b 3 S S` LQ faces and `b` fidelities → restored faces."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, faces: torch.Tensor, fidelity: torch.Tensor) -> torch.Tensor:
        return self.model(faces, fidelity=fidelity).images


class ConditionedLookupNetwork(LookupNetwork):
    """The network of a quality-conditioned lookup model: `b` target scores too."""

    def forward(self, faces: torch.Tensor, fidelity: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        return self.model(faces, fidelity=fidelity, quality=quality).images


class LookupRestorer(WeightsRestorer):
    """A restorer of a lookup model; a method's subclass sets `name`, `kind`, `config_class` and `model_class`
    (and `knobs = lookup_knobs(True)` when its models are always quality-conditioned; `default_keep_input` when
    its output mixes the input back in)."""

    default_keep_input: ClassVar[float | None] = None
    knobs = lookup_knobs(False)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "knobs" not in cls.__dict__:  # the class-level knobs (an unconditioned model's) follow its blend default
            cls.knobs = lookup_knobs(False, cls.default_keep_input)

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.conditioned = model.quality_embedding is not None
        self.knobs = lookup_knobs(self.conditioned, self.default_keep_input)
        network = ConditionedLookupNetwork if self.conditioned else LookupNetwork
        self.networks = {"restore": network(self.model)}

    def network_specs(self, batch: int = 1) -> dict[str, NetworkSpec]:
        inputs = {"faces": torch.rand(batch, 3, self.face_size, self.face_size), "fidelity": torch.ones(batch)}
        if self.conditioned:
            inputs["quality"] = torch.full((batch,), DEFAULT_QUALITY)
        return {"restore": NetworkSpec(inputs, ("restored",))}

    def _per_face(self, faces: torch.Tensor, value: float | None) -> torch.Tensor | None:
        return None if value is None else torch.full((faces.shape[0],), float(value), device=faces.device)

    def restore_faces(
        self, faces: torch.Tensor, *, fidelity: float, quality: float | None = None, keep_input: float = 0.0
    ) -> torch.Tensor:
        weight, target = self._per_face(faces, fidelity), self._per_face(faces, quality)
        inputs = (weight,) if target is None else (weight, target)
        restored = self.networks["restore"](resize_faces(faces, self.face_size), *inputs)
        return blend_with_input(faces, restored, keep_input)

    def code_accuracy(self, faces: torch.Tensor, targets: torch.Tensor, **knobs: float | int) -> torch.Tensor:
        """The share of the HQ codes predicted (iqpfr: of its common codebook's), at the `quality` knob's value."""
        quality = self._per_face(faces, knobs.get("quality")) if self.conditioned else None
        with torch.inference_mode():
            size = self.face_size
            out = self.model(resize_faces(faces.float(), size), hq=resize_faces(targets.float(), size), quality=quality)
        return (out.indices == out.target_indices).float().mean(dim=(1, 2))

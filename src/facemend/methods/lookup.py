"""One-shot code lookup (CodeFormer's), shared by the restorers that predict every HQ code at once (baseline,
daefr): a transformer's logits over the HQ codebook → argmax codes → the frozen HQ decoder, with LQ encoder
features fused in at weight `fidelity` (`models/fusion.py`).

Not a method: the parts those methods have in common. A lookup model has `forward(lq, fidelity=None, hq=None)`
returning a `CodePrediction`; `LookupRestorer` runs any such model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facemend.methods.base import Knob, NetworkSpec, WeightsRestorer, resize_faces
from facemend.models.code_transformer import CodeTransformer
from facemend.models.fusion import FidelityFusion, decode_with_fusion
from facemend.models.tokenizer import VQTokenizer


@dataclass
class CodePrediction:
    logits: torch.Tensor  # b (h w) n
    latent: torch.Tensor  # b d h w, what the transformer read
    indices: torch.Tensor  # b h w, predicted codes
    images: torch.Tensor | None = None  # b 3 H W, when decoded
    target_indices: torch.Tensor | None = None  # b h w, the HQ face's codes (when `hq` is given)
    target_codes: torch.Tensor | None = None  # b d h w, their codebook vectors


def predict_codes(
    transformer: CodeTransformer,
    tokenizer: VQTokenizer,
    fusion: FidelityFusion,
    latent: torch.Tensor,
    features: list[torch.Tensor],
    fidelity: torch.Tensor | float | None = None,
    hq: torch.Tensor | None = None,
) -> CodePrediction:
    """The transformer's codes for `latent` (`b d h w`); decoded by `tokenizer` with `features` (one per level)
    fused in when `fidelity` (a float or `b`) is given; the HQ faces' codes when `hq` is given."""
    logits = transformer(latent)
    height, width = latent.shape[2:]
    out = CodePrediction(logits, latent, logits.argmax(dim=-1).view(-1, height, width))
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


class LookupRestorer(WeightsRestorer):
    """A restorer of a lookup model; a method's subclass sets `name`, `kind`, `config_class` and `model_class`."""

    knobs = (Knob("fidelity", float, 1.0, 0.0, 1.0, "0 = most quality (the codebook's answer), 1 = most fidelity"),)

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.networks = {"restore": LookupNetwork(self.model)}

    def network_specs(self, batch: int = 1) -> dict[str, NetworkSpec]:
        faces = torch.rand(batch, 3, self.face_size, self.face_size)
        return {"restore": NetworkSpec({"faces": faces, "fidelity": torch.ones(batch)}, ("restored",))}

    def restore_faces(self, faces: torch.Tensor, *, fidelity: float) -> torch.Tensor:
        weight = torch.full((faces.shape[0],), float(fidelity), device=faces.device)
        restored = self.networks["restore"](resize_faces(faces, self.face_size), weight)
        return resize_faces(restored, faces.shape[-1])

    def code_accuracy(self, faces: torch.Tensor, targets: torch.Tensor, **knobs: float | int) -> torch.Tensor:
        with torch.inference_mode():
            size = self.face_size
            out = self.model(resize_faces(faces.float(), size), hq=resize_faces(targets.float(), size))
        return (out.indices == out.target_indices).float().mean(dim=(1, 2))

"""`baseline`: CodeFormer-style lookup. An LQ encoder (initialised from the tokenizer's encoder) feeds a
transformer that predicts the HQ face's code indices; the frozen HQ decoder decodes the looked-up codes, while
a controllable fusion blends LQ encoder features into it with weight `fidelity` (0 = the codebook's answer,
most quality; 1 = most faithful to the input)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from facemend.methods.base import Knob, NetworkSpec, WeightsRestorer, resize_faces
from facemend.models.code_transformer import CodeTransformer, CodeTransformerConfig
from facemend.models.fusion import FidelityFusion, decode_with_fusion
from facemend.models.tokenizer import Encoder, TokenizerConfig, VQTokenizer

KIND = "baseline"


@dataclass
class BaselineConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    transformer: CodeTransformerConfig = field(default_factory=CodeTransformerConfig)
    fusion_levels: tuple[int, ...] = (0, 1, 2)  # tokenizer levels (0 = full resolution) that take LQ features

    def __post_init__(self) -> None:
        self.fusion_levels = tuple(self.fusion_levels)
        levels = len(self.tokenizer.channel_mults)
        bad = [level for level in self.fusion_levels if not 0 <= level < levels]
        if bad:
            raise ValueError(f"fusion_levels: {bad[0]} is not a tokenizer level (0..{levels - 1})")


@dataclass
class BaselineOutput:
    logits: torch.Tensor  # b (h w) n
    lq_latent: torch.Tensor  # b d h w, the LQ encoder's output
    indices: torch.Tensor  # b h w, predicted codes
    images: torch.Tensor | None = None  # b 3 H W, when decoded
    target_indices: torch.Tensor | None = None  # b h w, the HQ face's codes (when `hq` is given)
    target_codes: torch.Tensor | None = None  # b d h w, their codebook vectors


class BaselineModel(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        self.config = config
        tokens = config.tokenizer
        self.tokenizer = VQTokenizer(tokens)  # the HQ prior: frozen after its own training
        self.lq_encoder = Encoder(tokens)
        self.transformer = CodeTransformer(
            config.transformer, tokens.codebook_dim, tokens.codebook_size, tokens.token_grid
        )
        self.fusion = FidelityFusion(tokens.widths(), config.fusion_levels)

    def forward(
        self, lq: torch.Tensor, fidelity: torch.Tensor | float | None = None, hq: torch.Tensor | None = None
    ) -> BaselineOutput:
        """`b 3 H W` LQ faces in [0, 1] → code logits; decoded images too when `fidelity` (a float or `b`) is
        given; the HQ faces' codes when `hq` is given."""
        lq_latent, features = self.lq_encoder(lq, return_features=True)
        logits = self.transformer(lq_latent)
        height, width = lq_latent.shape[2:]
        indices = logits.argmax(dim=-1).view(-1, height, width)
        out = BaselineOutput(logits, lq_latent, indices)
        if hq is not None:
            with torch.no_grad():
                out.target_indices = self.tokenizer.encode_indices(hq)
                out.target_codes = self.tokenizer.quantizer.lookup(out.target_indices)
        if fidelity is not None:
            out.images = decode_with_fusion(self.tokenizer, self.fusion, indices, features, fidelity)
        return out


class BaselineNetwork(nn.Module):
    """What the restorer runs (and ONNX export writes): `b 3 S S` LQ faces and `b` fidelities → restored faces."""

    def __init__(self, model: BaselineModel):
        super().__init__()
        self.model = model

    def forward(self, faces: torch.Tensor, fidelity: torch.Tensor) -> torch.Tensor:
        return self.model(faces, fidelity=fidelity).images


class BaselineRestorer(WeightsRestorer):
    name = "baseline"
    kind = KIND
    config_class = BaselineConfig
    model_class = BaselineModel
    knobs = (Knob("fidelity", float, 1.0, 0.0, 1.0, "0 = most quality (the codebook's answer), 1 = most fidelity"),)

    def __init__(self, model: BaselineModel):
        super().__init__(model)
        self.networks = {"restore": BaselineNetwork(self.model)}

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

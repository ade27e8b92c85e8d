"""`artfr`: restoration as conditional generation in the HQ token space (ART-FR). No public code exists; the
paper's abstract fixes the idea (a masked generative transformer with iterative sampling), the rest is ours:

- Tokens: the shared HQ tokenizer (frozen prior) and its decoder; its codebook is the vocabulary, plus one
  [MASK] id (`mask_token_id` = codebook_size).
- Condition: an LQ encoder (a copy of the tokenizer's encoder, fine-tuned) gives a latent on the same token
  grid; `condition: add` adds it, projected, to every token embedding; `cross` lets the tokens cross-attend to
  it (`methods/artfr/masked_transformer.py`). The grid positions correspond one to one, which `add` uses directly.
  Measured (`experiments/artfr/condition.py`: the `tokens` stage alone from the same prior and seed, 150 steps at
  batch 16): `add` reached a training CE of 6.17 and 1.9% val code accuracy, `cross` 6.71 and 0.9%, at the
  same ~5 s/step; so `add` is the default.
- Training (`methods/artfr/recipe.py`): mask a share γ(r), r ~ U(0, 1), of the HQ face's codes (γ = the
  cosine schedule of `samplers/maskgit.py`), predict them from the visible codes and the LQ latent;
  cross-entropy on the masked positions only, plus the baseline's MSE pulling the LQ latent toward the HQ
  codes (it makes the condition carry code information from the first step).
- Sampling: MaskGIT's scheduler (`samplers/maskgit.py`), knobs `steps` (1 = one-shot prediction, the default:
  measured best on the bundled model, whose predictor is right for too few tokens to build on its first picks),
  `temperature` (0 = greedy, deterministic), `top_k` (0 = off) and `seed`.
- Fidelity: the shared controllable fusion (CodeFormer's) blends LQ encoder features into the decoder at weight
  `fidelity`, trained afterwards on the sampled codes as for the baseline: pure code decoding cannot beat the
  tokenizer's own reconstruction, which loses identity at this size.
- Input blend: `keep_input` mixes the input image back into the output (`blend_with_input`, as idm and
  classical do): the bundled predictor gets too few codes right (18% on `medium`) to beat the input's identity
  on its own. 0.8 was chosen on facemend-val from {0, 0.4, 0.55, 0.7, 0.8, 0.85}: IDD and FD-dlib best, or
  within 0.0002 of the best, on both presets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from facemend.methods.artfr.masked_transformer import CONDITIONS, MaskedCodeTransformer
from facemend.methods.base import Knob, NetworkSpec, WeightsRestorer, blend_with_input, keep_input_knob, resize_faces
from facemend.models.code_transformer import CodeTransformerConfig
from facemend.models.fusion import FidelityFusion, check_fusion_levels, decode_with_fusion
from facemend.models.tokenizer import Encoder, TokenizerConfig, VQTokenizer
from facemend.samplers.maskgit import MaskGitScheduler

KIND = "artfr"
DEFAULT_KEEP_INPUT = 0.5  # chosen on facemend-val for the identity stage's weights (docs/identity-stage.md)


@dataclass
class ArtfrConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    transformer: CodeTransformerConfig = field(default_factory=CodeTransformerConfig)
    condition: str = "add"  # how the LQ latent enters the transformer: "add" or "cross"
    fusion_levels: tuple[int, ...] = (0, 1, 2)  # tokenizer levels (0 = full resolution) that take LQ features

    def __post_init__(self) -> None:
        self.fusion_levels = check_fusion_levels(self.fusion_levels, len(self.tokenizer.channel_mults))
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {self.condition!r}")


class ArtfrModel(nn.Module):
    def __init__(self, config: ArtfrConfig):
        super().__init__()
        self.config = config
        tokens = config.tokenizer
        self.tokenizer = VQTokenizer(tokens)  # the HQ prior: frozen after its own training
        self.lq_encoder = Encoder(tokens)
        self.transformer = MaskedCodeTransformer(
            config.transformer, tokens.codebook_dim, tokens.codebook_size, tokens.token_grid, config.condition
        )
        self.fusion = FidelityFusion(tokens.widths(), config.fusion_levels)

    @property
    def mask_token_id(self) -> int:
        return self.transformer.mask_token_id

    def encode_lq(self, lq: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`b 3 H W` LQ faces → the LQ latent `b d h w` and each level's features (for the fusion)."""
        return self.lq_encoder(lq, return_features=True)

    def predict(self, tokens: torch.Tensor, lq_latent: torch.Tensor) -> torch.Tensor:
        """`b n` tokens with [MASK]s and the LQ latent → logits `b n k`."""
        return self.transformer(tokens, lq_latent)

    def sample(
        self,
        lq_latent: torch.Tensor,
        steps: int,
        temperature: float = 0.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
        predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Code indices `b h w` by iterative parallel decoding from a fully masked grid; `predict` (default:
        this model's) maps tokens and the LQ latent to logits."""
        predict = predict or self.predict
        batch, _, height, width = lq_latent.shape
        scheduler = MaskGitScheduler(self.mask_token_id)
        scheduler.set_timesteps(steps)
        sample = scheduler.initial_sample(batch, height * width, lq_latent.device)
        for t in scheduler.timesteps:
            logits = predict(sample, lq_latent)
            sample = scheduler.step(logits, t, sample, generator, temperature, top_k).prev_sample
        return rearrange(sample, "b (h w) -> b h w", h=height, w=width)

    def decode(
        self, indices: torch.Tensor, lq_features: list[torch.Tensor], fidelity: torch.Tensor | float
    ) -> torch.Tensor:
        """Code indices `b h w` → images, with LQ features fused in at `fidelity`."""
        return decode_with_fusion(self.tokenizer, self.fusion, indices, lq_features, fidelity)


class ArtfrEncode(nn.Module):
    """`b 3 S S` LQ faces → (LQ latent `b d h w`, each level's features…)."""

    def __init__(self, model: ArtfrModel):
        super().__init__()
        self.model = model

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, ...]:
        latent, features = self.model.encode_lq(faces)
        return (latent, *features)


class ArtfrPredict(nn.Module):
    """`b n` tokens with [MASK]s + LQ latent → logits `b n k`: the network of one sampler step."""

    def __init__(self, model: ArtfrModel):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, lq_latent: torch.Tensor) -> torch.Tensor:
        return self.model.predict(tokens, lq_latent)


class ArtfrDecode(nn.Module):
    """Code indices `b h w`, fidelities `b` and the LQ features → restored faces `b 3 S S`."""

    def __init__(self, model: ArtfrModel):
        super().__init__()
        self.model = model

    def forward(self, indices: torch.Tensor, fidelity: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:
        return self.model.decode(indices, list(features), fidelity)


class ArtfrRestorer(WeightsRestorer):
    name = "artfr"
    kind = KIND
    config_class = ArtfrConfig
    model_class = ArtfrModel
    knobs = (
        # 1: on the bundled model greedy 8-step decoding was worse than one-shot on every metric (docs/methods/artfr.md)
        Knob("steps", int, 1, 1, 64, "sampler steps (1 = one-shot prediction)"),
        Knob("temperature", float, 0.0, 0.0, 2.0, "sampling temperature (0 = greedy, deterministic)"),
        Knob("top_k", int, 0, 0, 65536, "sample among the k likeliest codes (0 = all)"),
        Knob("seed", int, 0, 0, 2**31 - 1, "random seed of the sampler"),
        Knob("fidelity", float, 1.0, 0.0, 1.0, "0 = the sampled codes only, 1 = most fidelity to the input"),
        keep_input_knob(DEFAULT_KEEP_INPUT),
    )

    def __init__(self, model: ArtfrModel):
        super().__init__(model)
        self.networks = {"encode": ArtfrEncode(model), "predict": ArtfrPredict(model), "decode": ArtfrDecode(model)}

    def network_specs(self, batch: int = 1) -> dict[str, NetworkSpec]:
        size, grid = self.face_size, self.model.config.tokenizer.token_grid
        faces = torch.rand(batch, 3, size, size)
        with torch.no_grad():
            latent, *features = self.networks["encode"](faces)
        tokens = torch.randint(0, self.model.mask_token_id + 1, (batch, grid * grid))
        indices = torch.randint(0, self.model.mask_token_id, (batch, grid, grid))
        feature_names = [f"features_{level}" for level in range(len(features))]
        return {
            "encode": NetworkSpec({"faces": faces}, ("lq_latent", *feature_names)),
            "predict": NetworkSpec({"tokens": tokens, "lq_latent": latent}, ("logits",)),
            "decode": NetworkSpec(
                {"indices": indices, "fidelity": torch.ones(batch), **dict(zip(feature_names, features, strict=True))},
                ("restored",),
            ),
        }

    def _sample(self, faces: torch.Tensor, knobs: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
        generator = torch.Generator(faces.device).manual_seed(int(knobs["seed"]))
        latent, *features = self.networks["encode"](faces)
        indices = self.model.sample(
            latent, knobs["steps"], knobs["temperature"], knobs["top_k"], generator, self.networks["predict"]
        )
        return indices, features

    def restore_faces(self, faces: torch.Tensor, **knobs: float | int) -> torch.Tensor:
        resized = resize_faces(faces, self.face_size)
        indices, features = self._sample(resized, knobs)
        fidelity = torch.full((faces.shape[0],), float(knobs["fidelity"]), device=faces.device)
        return blend_with_input(faces, self.networks["decode"](indices, fidelity, *features), knobs["keep_input"])

    def code_accuracy(self, faces: torch.Tensor, targets: torch.Tensor, **knobs: float | int) -> torch.Tensor:
        knobs = self.resolve_knobs(**knobs)
        with torch.inference_mode():
            indices, _ = self._sample(resize_faces(faces.float(), self.face_size), knobs)
            target = self.model.tokenizer.encode_indices(resize_faces(targets.float(), self.face_size))
        return (indices == target).float().mean(dim=(1, 2))

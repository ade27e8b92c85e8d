"""How the VQ tokenizer — the HQ prior of the codebook methods — is trained: reconstruct HQ faces with L1 +
perceptual (MobileNetV2-ImageNet) + hinge adversarial (adaptive weight, after a warm-up) + commitment losses.
Not a restorer itself: the methods load its exported weights.

`tokenizer-lq` trains the same tokenizer on LQ faces (degraded on the fly by the training data's degradation
model) by self-reconstruction: DAEFR's LQ autoencoder, with its own codebook. The two recipes differ only in the
batch entry they reconstruct (`images`)."""

from __future__ import annotations

from typing import ClassVar

from facemend.metrics.pixel import psnr
from facemend.models.quantizer import codebook_usage
from facemend.models.tokenizer import TokenizerConfig, VQTokenizer
from facemend.training.config import StageConfig
from facemend.training.recipe import Recipe, StepOutput, reconstruction_step


class TokenizerRecipe(Recipe):
    name = "tokenizer"
    kind = "tokenizer"
    config_class = TokenizerConfig
    model_class = VQTokenizer
    losses = frozenset({"l1", "perceptual", "adversarial", "commitment"})
    images: ClassVar[str] = "hq"  # the batch entry reconstructed

    def generator_step(self, model, batch, stage: StageConfig, discriminator) -> StepOutput:
        images = batch[self.images]
        reconstruction, quantized = model(images)
        loss = stage.weight("commitment") * quantized.commitment_loss + quantized.codebook_loss
        logs = {"commitment": quantized.commitment_loss.item()}
        return reconstruction_step(self, reconstruction, images, model.last_layer, stage, discriminator, loss, logs)

    def validate(self, model: VQTokenizer, batch):
        images = batch[self.images]
        reconstruction, quantized = model(images)
        used, perplexity = codebook_usage(quantized.indices, self.config.codebook_size)
        scores = {
            "psnr_rgb": float(psnr(reconstruction.clamp(0, 1), images).mean()),
            "l1": float((reconstruction - images).abs().mean()),
            "codes_used": used,
            "perplexity": perplexity,
        }
        return scores, [images, reconstruction]


class LqTokenizerRecipe(TokenizerRecipe):
    """The tokenizer of LQ faces (DAEFR's LQ branch); its weights are of kind `tokenizer` too."""

    name = "tokenizer-lq"
    paired = True  # batches carry "lq" beside "hq"
    images = "lq"

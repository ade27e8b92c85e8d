"""Networks: shapes, quantizer invariants, fusion semantics, resolution independence."""

from __future__ import annotations

import pytest
import torch

from facemend.models.blocks import GridPositionEmbedding
from facemend.models.code_transformer import CodeTransformer, CodeTransformerConfig
from facemend.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from facemend.models.fusion import FidelityFusion
from facemend.models.quantizer import VectorQuantizer, codebook_usage
from facemend.models.tokenizer import TokenizerConfig, VQTokenizer

SMALL = TokenizerConfig(image_size=32, channels=8, channel_mults=(1, 2, 2), codebook_size=64, codebook_dim=16)


def test_quantizer_lookup_of_indices_reproduces_quantized_output():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(64, 16).eval()
    z = torch.randn(2, 16, 4, 5)
    out = quantizer(z)
    assert out.indices.shape == (2, 4, 5)
    torch.testing.assert_close(quantizer.lookup(out.indices), out.quantized, rtol=0, atol=1e-6)
    # each index is the code with the highest cosine similarity
    vectors = torch.nn.functional.normalize(z.permute(0, 2, 3, 1).reshape(-1, 16), dim=1)
    sims = vectors @ quantizer.normalized_codebook().t()
    assert torch.equal(sims.argmax(1), out.indices.flatten())


def test_quantizer_gradients_flow_straight_through():
    quantizer = VectorQuantizer(64, 16)
    z = torch.randn(1, 16, 2, 2, requires_grad=True)
    out = quantizer(z)
    (out.quantized.sum() + out.codebook_loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert quantizer.codebook.grad is not None and quantizer.codebook.grad.abs().sum() > 0


def test_dead_codes_are_restarted_at_encoder_vectors():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(32, 8, dead_code_steps=2).train()
    z = torch.randn(1, 8, 1, 1).expand(4, 8, 4, 4).contiguous()  # one vector everywhere: one code used
    used = quantizer.eval()(z).indices.unique()
    assert used.numel() == 1
    quantizer.train()
    for _ in range(2):
        quantizer(z)
    # the 31 codes that went unused for 2 steps were restarted at that vector; the used one stayed
    direction = torch.nn.functional.normalize(z[0, :, 0, 0], dim=0)
    similarity = quantizer.normalized_codebook() @ direction
    restarted = similarity > 0.999
    assert restarted.sum() == 31 and not restarted[used]
    assert codebook_usage(torch.arange(32), 32) == (1.0, pytest.approx(32.0))


def test_tokenizer_round_trip_shapes_and_any_resolution():
    torch.manual_seed(0)
    model = VQTokenizer(SMALL).eval()
    for size in (32, 48):
        images = torch.rand(2, 3, size, size)
        reconstruction, quantized = model(images)
        assert reconstruction.shape == images.shape
        assert quantized.indices.shape == (2, size // 4, size // 4)
        torch.testing.assert_close(model.decode_indices(quantized.indices), reconstruction)


def test_code_transformer_logits_and_position_resizing():
    transformer = CodeTransformer(CodeTransformerConfig(width=32, layers=1, heads=4), 16, 64, grid=4)
    assert transformer(torch.randn(2, 16, 4, 4)).shape == (2, 16, 64)
    assert transformer(torch.randn(1, 16, 6, 6)).shape == (1, 36, 64)


def test_grid_position_embedding_is_its_weight_at_the_trained_grid_and_resizes_for_others():
    position = GridPositionEmbedding(8, grid=4)
    torch.testing.assert_close(position(4, 4), position.weight.flatten(2).transpose(1, 2))
    assert position(6, 3).shape == (1, 18, 8)


def test_fusion_weight_zero_leaves_decoder_features_untouched():
    torch.manual_seed(0)
    fusion = FidelityFusion([8, 16], levels=(0,))
    for block in fusion.blocks.values():  # leave the identity initialisation, as after training
        torch.nn.init.normal_(block.scale.weight)
        torch.nn.init.normal_(block.shift.weight)
    decoded, encoded = torch.randn(2, 8, 6, 6), [torch.randn(2, 8, 6, 6), torch.randn(2, 16, 3, 3)]
    assert torch.equal(fusion(0, decoded, encoded, torch.zeros(2, 1, 1, 1)), decoded)
    assert not torch.allclose(fusion(0, decoded, encoded, torch.ones(2, 1, 1, 1)), decoded)
    other = torch.randn(2, 16, 3, 3)
    assert torch.equal(fusion(1, other, encoded, torch.ones(2, 1, 1, 1)), other)  # level 1 is not fused


def test_discriminator_gives_patch_logits():
    logits = PatchDiscriminator(DiscriminatorConfig(channels=8, layers=3))(torch.rand(2, 3, 64, 64))
    assert logits.shape[:2] == (2, 1) and logits.shape[2] > 1


def test_patches_keep_every_token_in_its_place():
    from facemend.models.code_transformer import patchify, unpatchify_logits

    grid = torch.arange(2 * 3 * 8 * 6, dtype=torch.float32).view(2, 3, 8, 6)  # b c h w, three "codes"
    patches = patchify(grid, 2)
    assert patches.shape == (2, 4 * 3, 2 * 2 * 3)
    per_token = unpatchify_logits(patches, 8, 6, 2)  # each patch's (p p c) read back as per-token c
    assert torch.equal(per_token, grid.flatten(2).transpose(1, 2))


@pytest.mark.parametrize("condition", ["add", "cross"])
def test_patched_transformers_predict_every_token(condition):
    from facemend.methods.artfr.masked_transformer import MaskedCodeTransformer

    config = CodeTransformerConfig(width=32, layers=1, heads=4, patch_size=2)
    lookup = CodeTransformer(config, latent_dim=8, codebook_size=16, grid=8)
    assert lookup(torch.rand(2, 8, 8, 8)).shape == (2, 64, 16)
    masked = MaskedCodeTransformer(config, latent_dim=8, codebook_size=16, grid=8, condition=condition)
    tokens = torch.randint(0, 17, (2, 64))
    latent = torch.rand(2, 8, 8, 8)
    logits = masked(tokens, latent)
    assert logits.shape == (2, 64, 16)
    changed = tokens.clone()
    changed[:, 0] = (tokens[:, 0] + 1) % 17
    assert not torch.allclose(masked(changed, latent), logits)  # the tokens reach the prediction
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        lookup(torch.rand(1, 8, 7, 8))

"""residual-unet: starts as its input, folds IDM's one-step estimate exactly, trains with the identity loss and
resumes exactly after an interruption, and restores through the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facemend.config import ConfigError, build
from facemend.methods.idm.model import IdmConfig, IdmModel
from facemend.methods.residual_unet.model import ResidualUNetConfig, ResidualUNetModel, ResidualUNetRestorer
from facemend.methods.residual_unet.recipe import fold_idm_one_step, grow_state
from facemend.models.unet import UNetConfig
from facemend.training.config import load_train_config
from facemend.training.trainer import train
from facemend.weights import bundled, load_into
from test_training import small_config as tokenizer_config

SMALL_UNET = {"channels": 8, "channel_mults": [1, 2], "attention_levels": [], "time_dim": 0, "condition_channels": 0}


def small_config(root, runs, steps: int = 5) -> dict:
    """test_training's small run (32-px faces, batch 2), as a residual-unet with every loss weighted."""
    config = tokenizer_config(root, runs)
    config.update(name="small-residual-unet", recipe="residual-unet", model={"image_size": 32, "unet": SMALL_UNET})
    config["trainer"]["sample_every"] = 3
    losses = {"l1": 1.0, "perceptual": 0.5, "identity": 0.5, "adversarial": 0.1}
    config["stages"] = [
        {"name": "restore", "steps": steps, "trainable": ["unet"], "losses": losses, "lr": 1e-3, "disc_start": 1}
    ]
    return config


def run(config: dict, **kwargs):
    from facemend.methods.registry import recipe_for

    loaded = load_train_config(config)
    return train(loaded, recipe_for(loaded), **kwargs)


def test_an_untrained_model_returns_its_input():
    model = ResidualUNetModel(ResidualUNetConfig(unet=UNetConfig(**SMALL_UNET), image_size=32)).eval()
    faces = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(faces), faces)


def test_folding_idm_gives_its_one_step_estimate_exactly():
    weights = bundled("idm-tiny")
    idm = IdmModel(build(IdmConfig, weights.config))
    load_into(idm, {key: value.float() for key, value in weights.state_dict.items()}, "idm-tiny")
    unet = {**weights.config["unet"], "time_dim": 0, "condition_channels": 0}
    config = build(ResidualUNetConfig, {"image_size": 128, "unet": unet})
    model = ResidualUNetModel(config)
    load_into(model, fold_idm_one_step(weights, config), "folded")
    lq = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = idm.eval().sample(lq, 1, torch.Generator().manual_seed(0), noise_scale=0.0)
        folded = model.eval()(lq).clamp(0, 1)
    assert (expected - folded).abs().max() < 1e-5
    assert (expected - lq).abs().mean() > 0.01  # the estimate is not the input: the fold carries the network


def test_folding_refuses_an_idm_of_another_shape():
    from facemend.errors import FacemendError

    config = build(ResidualUNetConfig, {"image_size": 128, "unet": {**SMALL_UNET, "channel_mults": [1, 2]}})
    with pytest.raises(FacemendError, match="model.unet.channels"):
        fold_idm_one_step(bundled("idm-tiny"), config)


def test_a_model_grown_from_the_bundled_weights_computes_what_they_did():
    weights = bundled("residual-unet-tiny")
    trained = ResidualUNetModel(build(ResidualUNetConfig, weights.config))
    load_into(trained, {key: value.float() for key, value in weights.state_dict.items()}, "bundled")
    deeper = {**weights.config, "unet": {**weights.config["unet"], "blocks_per_level": [1, 1, 2, 3]}}
    grown = ResidualUNetModel(build(ResidualUNetConfig, deeper))
    load_into(grown, grow_state(grown, weights), "grown")
    assert sum(p.numel() for p in grown.parameters()) > 1.5 * sum(p.numel() for p in trained.parameters())
    lq = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (grown.eval()(lq) - trained.eval()(lq)).abs().max() < 1e-5
    # the new blocks are identities only through their last layers: the rest is random and trainable
    assert grown.unet.down[3][2].conv1.weight.abs().sum() > 0


def test_a_model_widened_and_deepened_at_full_resolution_computes_what_the_bundled_did():
    weights = bundled("residual-unet-tiny")
    trained = ResidualUNetModel(build(ResidualUNetConfig, weights.config))
    load_into(trained, {key: value.float() for key, value in weights.state_dict.items()}, "bundled")
    wider = {"channels": 16, "channel_mults": [3, 4, 6, 8], "blocks_per_level": [2, 1, 1, 1]}  # 32 → 48 at 128 px
    grown = ResidualUNetModel(
        build(ResidualUNetConfig, {**weights.config, "unet": {**weights.config["unet"], **wider}})
    )
    load_into(grown, grow_state(grown, weights), "grown")
    assert grown.unet.config.widths() == [48, 64, 96, 128]
    lq = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (grown.eval()(lq) - trained.eval()(lq)).abs().max() < 1e-5
    # channels 32..47 copy channels 0..15: their readers split each weight between the two copies, unequally
    reader, old_reader = grown.unet.down[1][0].conv1.weight, trained.unet.down[1][0].conv1.weight
    torch.testing.assert_close(reader[:, :16] + reader[:, 32:48], old_reader[:, :16], atol=1e-6, rtol=0)
    assert (reader[:, :16] - reader[:, 32:48]).abs().mean() > 0.1 * old_reader[:, :16].abs().mean()
    torch.testing.assert_close(reader[:, 16:32], old_reader[:, 16:32])  # channels with one copy keep their weights
    # a copied channel's own weights (and its GroupNorm's) are the trained channel's
    torch.testing.assert_close(grown.unet.conv_in.weight[32:48], trained.unet.conv_in.weight[:16])


def test_growing_refuses_what_would_not_compute_the_same():
    from facemend.errors import FacemendError
    from facemend.weights import Weights

    def model_with(**unet) -> ResidualUNetModel:
        return ResidualUNetModel(build(ResidualUNetConfig, {"image_size": 32, "unet": {**SMALL_UNET, **unet}}))

    trained = model_with(blocks_per_level=[2, 1])
    torch.nn.init.normal_(trained.unet.conv_out.weight, std=0.1)  # a fresh UNet's output is zero: make it not
    weights = Weights(
        "residual-unet",
        {"image_size": 32, "unet": {**SMALL_UNET, "blocks_per_level": [2, 1]}},
        trained.state_dict(),
        {},
    )
    with pytest.raises(FacemendError, match="model.unet.channels: widths"):  # narrower
        grow_state(model_with(channels=4, blocks_per_level=[2, 1]), weights)
    with pytest.raises(FacemendError, match="fewer blocks"):
        grow_state(model_with(blocks_per_level=[1, 2]), weights)
    with pytest.raises(FacemendError, match="shortcut"):  # widths 16, 16: level 1's projection would vanish
        grow_state(model_with(channel_mults=[2, 2], blocks_per_level=[2, 1]), weights)
    with pytest.raises(FacemendError, match="GroupNorm groups"):  # 8 → 10 at level 0: groups of 4 → of 5
        grow_state(model_with(channels=2, channel_mults=[5, 8], blocks_per_level=[2, 1]), weights)
    with pytest.raises(FacemendError, match="level 1 has self-attention"):  # the middle's attention reads it
        grow_state(model_with(channels=16, channel_mults=[1, 2], blocks_per_level=[2, 1]), weights)
    faces = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = trained.eval()(faces)
    assert (expected - faces).abs().mean() > 0.01
    for grown in (
        model_with(blocks_per_level=[2, 2]),
        model_with(channels=4, channel_mults=[3, 4], blocks_per_level=[3, 1]),
    ):
        load_into(grown, grow_state(grown, weights), "grown")
        with torch.no_grad():
            assert torch.allclose(grown.eval()(faces), expected, atol=1e-5)


def test_bad_model_configs_name_the_field():
    with pytest.raises(ConfigError, match="unet"):
        build(ResidualUNetConfig, {"unet": {"time_dim": 128}}, "model")
    with pytest.raises(ConfigError, match="image_size"):
        build(ResidualUNetConfig, {"image_size": 31, "unet": SMALL_UNET}, "model")
    with pytest.raises(ConfigError, match="blocks_per_level"):
        build(ResidualUNetConfig, {"unet": {**SMALL_UNET, "blocks_per_level": [1, 1, 1]}}, "model")


def test_interrupt_and_resume_with_the_identity_loss_equals_an_uninterrupted_run(prepared_faces, tmp_path):
    whole = run(small_config(prepared_faces, tmp_path / "whole"))
    assert whole.finished
    stop = int(np.random.default_rng().integers(1, 5))  # a random step, adversarial on from step 1
    parts = small_config(prepared_faces, tmp_path / "parts")
    first = run(parts, stop_after=stop)
    assert not first.finished and first.step == stop
    assert run(parts, resume=True).finished
    a = load_file(whole.run_dir / "restore" / "model.safetensors")
    b = load_file(first.run_dir / "restore" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), (key, stop)
    with open(next((whole.run_dir / "csv").glob("version_*/metrics.csv"))) as file:
        header = file.readline()
    assert "restore/identity" in header and "restore/val_idd" in header and "restore/val_ids_sface" in header


def test_a_trained_folder_restores_through_the_registry(prepared_faces, tmp_path):
    from facemend.methods.registry import resolve_model

    done = run(small_config(prepared_faces, tmp_path / "runs", steps=2))
    assert done.finished and (done.run_dir / "restore" / "config.json").is_file(), done
    restorer, knobs = resolve_model(f"{done.run_dir / 'restore'}:keep_input=0.25")
    assert isinstance(restorer, ResidualUNetRestorer) and knobs == {"keep_input": 0.25}
    faces = torch.rand(3, 3, 48, 48)
    out = restorer(faces, **knobs)
    assert out.shape == faces.shape and out.min() >= 0 and out.max() <= 1
    unchanged = restorer(faces, keep_input=1.0)
    assert torch.allclose(unchanged, faces, atol=1e-6)


def test_the_bundled_model_is_the_default_and_restores_a_degraded_face(astronaut_face):
    """The default model is the bundled residual-unet; on a medium-degraded face it moves the face towards the
    clean one (PSNR) rather than returning the input."""
    from facemend.data.degradation import PRESETS, degrade, image_rng, sample_params
    from facemend.methods.registry import DEFAULT_MODEL, load_restorer
    from facemend.metrics.pixel import psnr

    assert DEFAULT_MODEL == "residual-unet"
    restorer = load_restorer(DEFAULT_MODEL)
    assert isinstance(restorer, ResidualUNetRestorer) and restorer.face_size == 128
    rng = image_rng(0, "astronaut")
    lq = degrade(astronaut_face, sample_params(rng, PRESETS["medium"], 128), rng)
    clean, lq = (torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 for x in (astronaut_face, lq))
    restored = restorer(lq)
    assert psnr(restored, clean).item() > psnr(lq, clean).item() + 0.5

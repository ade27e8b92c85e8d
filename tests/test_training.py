"""The training engine: tiny configs learn, interrupt + resume equals an uninterrupted run, DDP on 2 CPU
processes, paper-scale configs build and take a step, bad configs stop with the field named."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import REPO, config_path
from facemend.config import ConfigError
from facemend.methods.registry import recipe_for
from facemend.training.config import load_train_config
from facemend.training.trainer import train

SMALL_MODEL = {
    "image_size": 32,
    "channels": 8,
    "channel_mults": [1, 2, 2],
    "codebook_size": 64,
    "codebook_dim": 8,
    "dead_code_steps": 2,
}


def small_config(root: Path, runs: Path, **data) -> dict:
    return {
        "name": "small",
        "recipe": "tokenizer",
        "model": SMALL_MODEL,
        "discriminator": {"channels": 8, "layers": 2},
        "data": {
            "root": str(root),
            "size": 32,
            "batch_size": 2,
            "workers": 0,
            "val_faces": 2,
            "cache_dir": str(runs / "cache"),
            **data,
        },
        "trainer": {"runs_dir": str(runs), "log_every": 1, "sample_every": 2, "ema_decay": 0.9},
        "stages": [
            {
                "name": "reconstruct",
                "steps": 3,
                "trainable": ["encoder", "quantizer", "decoder"],
                "losses": {"l1": 1.0, "perceptual": 1.0, "commitment": 0.25},
                "lr": 1e-3,
            },
            {
                "name": "adversarial",
                "steps": 3,
                "trainable": ["encoder", "quantizer", "decoder"],
                "losses": {"l1": 1.0, "commitment": 0.25, "adversarial": 0.5},
                "lr": 1e-3,
                "disc_start": 1,
            },
        ],
    }


def run(config: dict, **kwargs):
    loaded = load_train_config(config)
    return train(loaded, recipe_for(loaded), **kwargs)


def stage_losses(run_dir: Path, stage: str, key: str = "loss") -> list[float]:
    with open(next((run_dir / "csv").glob("version_*/metrics.csv"))) as file:
        rows = list(csv.DictReader(file))
    column = f"{stage}/{key}"
    return [float(row[column]) for row in rows if row.get(column)]


def tiny(name: str, root: Path, runs: Path, steps: int) -> dict:
    config = yaml.safe_load(config_path(name).read_text())
    config["data"].update(root=str(root), batch_size=4, workers=0, val_faces=4, cache_dir=str(runs / "cache"))
    config["trainer"].update(runs_dir=str(runs), log_every=1, sample_every=1000)
    for stage in config["stages"]:
        stage.update(steps=steps, warmup_steps=0, cosine_decay=False, disc_start=0)
    return config


def test_tiny_tokenizer_config_learns(prepared_faces, tmp_path):
    config = tiny("tokenizer-tiny", prepared_faces, tmp_path, steps=12)
    config["stages"] = config["stages"][:1]
    result = run(config)
    losses = stage_losses(result.run_dir, "reconstruct")
    assert len(losses) == 12
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])
    assert (result.run_dir / "reconstruct" / "model.safetensors").exists()
    assert list((result.run_dir / "samples").glob("reconstruct_*.jpg"))


def train_on_a_random_tokenizer(name: str, prepared_faces: Path, tmp_path: Path):
    """Run the tiny config `name` for 10 steps a stage, its first stage starting from random tokenizer weights."""
    from facemend.config import to_dict
    from facemend.models.tokenizer import TokenizerConfig, VQTokenizer
    from facemend.weights import save_weights

    config = tiny(name, prepared_faces, tmp_path, steps=10)
    tokenizer_config = TokenizerConfig(**config["model"]["tokenizer"])
    torch.manual_seed(0)
    save_weights(
        tmp_path / "tokenizer", "tokenizer", to_dict(tokenizer_config), VQTokenizer(tokenizer_config).state_dict()
    )
    config["stages"][0]["init"] = str(tmp_path / "tokenizer")
    return run(config)


def test_tiny_baseline_config_learns(prepared_faces, tmp_path):
    from facemend.weights import load_weights

    result = train_on_a_random_tokenizer("baseline-tiny", prepared_faces, tmp_path)
    ce = stage_losses(result.run_dir, "lookup", "ce")
    assert sum(ce[-3:]) < 0.9 * sum(ce[:3])
    l1 = stage_losses(result.run_dir, "fusion", "l1")
    assert sum(l1[-3:]) < sum(l1[:3])
    # the fusion stage trains `fusion` and `tokenizer.decoder` only: the lookup stage's parts come through intact
    lookup, fusion = (load_weights(result.run_dir / stage, "baseline").state_dict for stage in ("lookup", "fusion"))
    changed = {".".join(key.split(".")[:2]) for key in lookup if not torch.equal(lookup[key], fusion[key])}
    assert "tokenizer.decoder" in changed and {key for key in changed if key.startswith("fusion.")}
    assert not {key for key in changed if key.split(".")[0] in ("lq_encoder", "transformer")}
    assert not {key for key in changed if key.startswith(("tokenizer.encoder", "tokenizer.quantizer"))}


def test_tiny_artfr_config_learns(prepared_faces, tmp_path):
    from facemend.weights import load_weights

    result = train_on_a_random_tokenizer("artfr-tiny", prepared_faces, tmp_path)
    ce = stage_losses(result.run_dir, "tokens", "ce")
    assert sum(ce[-3:]) < 0.9 * sum(ce[:3])
    l1 = stage_losses(result.run_dir, "fusion", "l1")
    assert sum(l1[-3:]) < sum(l1[:3])
    tokens, fusion = (load_weights(result.run_dir / stage, "artfr").state_dict for stage in ("tokens", "fusion"))
    changed = {key.split(".")[0] for key in tokens if not torch.equal(tokens[key], fusion[key])}
    assert changed == {"tokenizer", "fusion"}  # the decoder and the fusion; the transformer stays as trained
    identity = stage_losses(result.run_dir, "identity", "identity")  # SFace's cosine distance, after refine
    assert len(identity) == 10 and all(0 <= value <= 2 for value in identity)


@pytest.mark.parametrize("workers", [0, 1])
def test_interrupt_and_resume_equals_an_uninterrupted_run(prepared_faces, tmp_path, workers):
    whole = run(small_config(prepared_faces, tmp_path / "whole", workers=workers))
    assert whole.finished

    parts = small_config(prepared_faces, tmp_path / "parts", workers=workers)
    first = run(parts, stop_after=4)  # stops inside the adversarial stage, after its first step
    assert not first.finished and (first.stage, first.step) == ("adversarial", 1)
    with pytest.raises(Exception, match="pass --resume"):
        run(parts)
    assert run(parts, resume=True).finished

    checkpoint = torch.load(whole.run_dir / "checkpoint.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["model"]["quantizer.idle_steps"].max() > 0  # trained in train mode: usage is tracked

    for stage in ("reconstruct", "adversarial"):
        a = load_file(whole.run_dir / stage / "model.safetensors")
        b = load_file(first.run_dir / stage / "model.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_a_stage_starts_from_committed_weights(prepared_faces, tmp_path):
    done = run(small_config(prepared_faces, tmp_path / "first"))
    config = small_config(prepared_faces, tmp_path / "second")
    config["stages"][1]["init"] = str(done.run_dir / "reconstruct")
    result = run(config, start_stage="adversarial")
    assert result.finished
    assert not (result.run_dir / "reconstruct").exists() and (result.run_dir / "adversarial").exists()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "facemend", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


def test_ddp_with_two_cpu_processes(prepared_faces, tmp_path):
    config = small_config(prepared_faces, tmp_path / "runs")
    config["stages"][0]["steps"] = 2
    config["stages"][1]["steps"] = 2
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _cli("train", str(path), "--devices", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size: 2" in result.stderr + result.stdout or "Initializing distributed" in result.stderr
    run_dir = tmp_path / "runs" / "small"
    weights = load_file(run_dir / "adversarial" / "model.safetensors")
    assert all(torch.isfinite(value).all() for value in weights.values())


def test_bad_training_configs_stop_with_the_field_named(prepared_faces, tmp_path):
    config = small_config(prepared_faces, tmp_path / "runs")
    config["stages"][0]["losses"]["sharpness"] = 1.0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _cli("train", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "stages[0].losses.sharpness: unknown loss" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    config = small_config(prepared_faces, tmp_path / "runs")
    config["stages"][0]["trainable"] = ["encoder", "transformer"]
    path.write_text(yaml.safe_dump(config))
    result = _cli("train", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "stages[0].trainable: no module 'transformer'" in result.stderr
    config["stages"][0]["trainable"] = ["encoder", "decoder.nope"]
    path.write_text(yaml.safe_dump(config))
    result = _cli("train", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "stages[0].trainable: no module 'decoder.nope'" in result.stderr

    config = small_config(prepared_faces, tmp_path / "runs")
    config["stages"][0]["fidelity_one_share"] = 1.5
    with pytest.raises(ConfigError, match=r"stages\[0\]: fidelity_one_share must be in \[0, 1\]"):
        load_train_config(config)

    result = _cli("train", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert result.returncode == 2 and "no such config file" in result.stderr
    path.write_text(yaml.safe_dump(small_config(prepared_faces, tmp_path / "runs")))
    result = _cli("train", str(path), "--init", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "--init needs --stage" in result.stderr
    result = _cli("train", str(path), "--resume", cwd=tmp_path)
    assert result.returncode == 2 and "nothing to resume" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["tokenizer/base", "baseline/base", "artfr/base"])
def test_base_configs_build_and_take_one_training_step(name):
    config = load_train_config(REPO / "configs" / f"{name}.yaml")
    recipe = recipe_for(config)
    model = recipe.build_model().train()
    discriminator = recipe.build_discriminator()
    size = config.data.size
    torch.manual_seed(0)
    batch = {"hq": torch.rand(1, 3, size, size), "lq": torch.rand(1, 3, size, size)}
    for stage in config.stages:
        model.requires_grad_(False)
        for module in stage.trainable:
            model.get_submodule(module).requires_grad_(True)
        model.zero_grad()
        out = recipe.generator_step(model, batch, stage, discriminator if stage.weight("adversarial") else None)
        out.loss.backward()
        assert torch.isfinite(out.loss)
        trained = [p for module in stage.trainable for p in model.get_submodule(module).parameters()]
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(monkeypatch):
    from facemend.training.config import TrainerConfig
    from facemend.training.trainer import fabric_precision

    assert TrainerConfig().precision == "auto"
    assert fabric_precision(TrainerConfig(precision="32-true")) == "32-true"
    for native, expected in ((True, "bf16-mixed"), (False, "32-true")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda native=native: native)
        assert fabric_precision(TrainerConfig()) == expected
    with pytest.raises(ValueError, match="precision must be one of auto, bf16-mixed"):
        TrainerConfig(precision="fp8")


def test_precision_override_on_the_command_line_is_checked(tmp_path):
    result = _cli("train", str(REPO / "configs" / "tokenizer" / "tiny.yaml"), "--precision", "fp8", cwd=tmp_path)
    assert result.returncode == 2
    assert "command-line override of trainer: precision must be one of auto" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

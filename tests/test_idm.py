"""`idm`: the DDIM scheduler on dummy model functions, the noise schedule, the UNet, the restorer's knobs and
weights, a short training run, `idm-base`, and `facemend clean` (one round and `--rounds`)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO
from facemend.cli import main
from facemend.config import ConfigError, build, to_dict
from facemend.data import parallel
from facemend.data.datasets import face_files, first_by_hash
from facemend.errors import FacemendError
from facemend.methods.base import resize_faces
from facemend.methods.idm.model import (
    DEFAULT_KEEP_INPUT,
    DEFAULT_NOISE_SCALE,
    DEFAULT_STEPS,
    IdmConfig,
    IdmModel,
    IdmRestorer,
)
from facemend.methods.registry import recipe_for, resolve_model
from facemend.models.unet import UNet, UNetConfig
from facemend.pipelines.clean import clean_dataset
from facemend.samplers.ddim import PREDICTION_TYPES, DDIMScheduler, cosine_alphas_cumprod
from facemend.training.config import load_train_config
from facemend.weights import load_weights, save_weights
from test_training import run, stage_losses

T = 1000
ALPHAS = cosine_alphas_cumprod(T)
DEFAULT_KNOBS = {
    "steps": DEFAULT_STEPS,
    "seed": 0,
    "noise_scale": DEFAULT_NOISE_SCALE,
    "keep_input": DEFAULT_KEEP_INPUT,
}


def test_cosine_schedule_decreases_inside_the_unit_interval():
    assert ALPHAS.shape == (T,) and ALPHAS.dtype == torch.float64
    assert (ALPHAS > 0).all() and (ALPHAS < 1).all()
    assert (ALPHAS[1:] < ALPHAS[:-1]).all()
    assert ALPHAS[0] > 0.9999 and ALPHAS[-1] < 1e-6  # sampling starts from (almost) pure noise


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 10, 50, 1000])
def test_timesteps_descend_from_the_last_training_step(steps):
    scheduler = DDIMScheduler(ALPHAS)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.tolist()
    assert len(timesteps) == steps and timesteps[0] == T - 1
    assert all(a > b for a, b in zip(timesteps, timesteps[1:], strict=False)) and timesteps[-1] >= 0
    for bad in (0, T + 1):
        with pytest.raises(ValueError, match="num_inference_steps"):
            scheduler.set_timesteps(bad)


def images(seed: int, shape=(2, 3, 8, 8)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_targets_invert_to_the_clean_image(prediction_type):
    scheduler = DDIMScheduler(ALPHAS, prediction_type)
    original, noise = images(0), torch.randn(2, 3, 8, 8)
    timesteps = torch.tensor([3, 900])
    noisy = scheduler.add_noise(original, noise, timesteps)
    alpha = ALPHAS[timesteps].float().view(-1, 1, 1, 1)
    assert torch.allclose(noisy, alpha.sqrt() * original + (1 - alpha).sqrt() * noise)
    for t in range(2):
        target = scheduler.training_target(original, noise, timesteps)[t : t + 1]
        estimate, _ = scheduler.predict_original(target, int(timesteps[t]), noisy[t : t + 1])
        assert torch.allclose(estimate, original[t : t + 1], atol=1e-3 if prediction_type == "epsilon" else 1e-5)


def oracle(scheduler: DDIMScheduler, original: torch.Tensor):
    """A dummy model function that knows x0: it returns the exact v / ε / x0 for any x_t."""

    def predict(sample: torch.Tensor, t: int) -> torch.Tensor:
        noise = (sample - ALPHAS[t].sqrt().float() * original) / (1 - ALPHAS[t]).sqrt().float()
        return scheduler.training_target(original, noise, torch.full((len(sample),), t))

    return predict


def sample(model_fn, scheduler: DDIMScheduler, steps: int, start: torch.Tensor, eta=0.0, generator=None):
    """The loop a method owns."""
    scheduler.set_timesteps(steps)
    x = start
    for t in scheduler.timesteps:
        x = scheduler.step(model_fn(x, int(t)), t, x, generator=generator, eta=eta).prev_sample
    return x


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("steps", [1, 4, 25])
def test_an_oracle_reproduces_the_image(prediction_type, steps):
    scheduler = DDIMScheduler(ALPHAS, prediction_type)
    original, start = images(1), torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    atol = 1e-2 if prediction_type == "epsilon" else 1e-5  # fp32 ε is divided by √ᾱ ≈ 5e-5 at the first step
    assert torch.allclose(sample(oracle(scheduler, original), scheduler, steps, start), original, atol=atol)
    stochastic = sample(oracle(scheduler, original), scheduler, steps, start, 1.0, torch.Generator().manual_seed(3))
    assert torch.allclose(stochastic, original, atol=atol)


def test_one_step_returns_the_x0_estimate_and_eta_zero_is_deterministic():
    scheduler = DDIMScheduler(ALPHAS)
    start = torch.randn(2, 3, 8, 8)

    def model_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        return torch.tanh(x.flip(-1) * 3 + t / T)

    scheduler.set_timesteps(1)
    out = scheduler.step(model_fn(start, T - 1), T - 1, start)
    assert torch.equal(out.prev_sample, out.pred_original_sample)
    assert out.pred_original_sample.abs().max() <= 1.0
    first = sample(model_fn, scheduler, 5, start, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, sample(model_fn, scheduler, 5, start, generator=torch.Generator().manual_seed(1)))
    a = sample(model_fn, scheduler, 5, start, 1.0, torch.Generator().manual_seed(0))
    assert not torch.equal(a, sample(model_fn, scheduler, 5, start, 1.0, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="not one of the 5 set timesteps"):
        scheduler.step(start, 500, start)


SMALL_UNET = UNetConfig(channels=8, channel_mults=(1, 2), attention_levels=(1,), time_dim=16)
SMALL = IdmConfig(unet=SMALL_UNET, image_size=32)


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Away from the zero-initialised output layer, as after training."""
    torch.nn.init.normal_(model.get_submodule("unet.conv_out" if hasattr(model, "unet") else "conv_out").weight)
    return model


def test_the_unet_takes_any_multiple_of_its_stride_and_keeps_the_shape():
    torch.manual_seed(0)
    unet = perturbed(UNet(SMALL_UNET)).eval()
    for height, width in ((16, 16), (24, 40)):
        x, condition = torch.randn(2, 3, height, width), torch.randn(2, 3, height, width)
        out = unet(x, torch.tensor([0, 999]), condition)
        assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(unet(x, torch.tensor([5, 5]), condition), unet(x, torch.tensor([900, 900]), condition))
    assert not torch.allclose(out, unet(x, torch.tensor([0, 999]), torch.zeros_like(condition)))  # the LQ face counts


def test_bad_model_configs_name_the_field():
    with pytest.raises(ConfigError, match="prediction_type must be one of"):
        build(IdmConfig, {"prediction_type": "noise"}, "model")
    with pytest.raises(ConfigError, match="multiple of the stride 8"):
        build(IdmConfig, {"image_size": 100}, "model")
    with pytest.raises(ConfigError, match=r"model.unet: attention_levels: 4 is not a level"):
        build(IdmConfig, {"unet": {"attention_levels": [4]}}, "model")
    with pytest.raises(ConfigError, match="diffuse must be one of face, residual"):
        build(IdmConfig, {"diffuse": "noise"}, "model")
    with pytest.raises(ConfigError, match="residual_scale must be > 0"):
        build(IdmConfig, {"diffuse": "residual", "residual_scale": 0}, "model")


def test_per_pixel_bounds_clip_the_estimate():
    scheduler = DDIMScheduler(ALPHAS)
    low, high = -images(3).abs(), images(4).abs()
    output, sample = torch.full((2, 3, 8, 8), -5.0), torch.zeros(2, 3, 8, 8)
    estimate, _ = scheduler.predict_original(output, T - 1, sample, (low, high))
    assert torch.equal(estimate, high)  # v = −5 at the last step means x̂0 ≈ +5


@pytest.mark.parametrize("steps", [1, 4])
def test_residual_diffusion_restores_the_face_its_residual_stands_for(steps):
    model = IdmModel(IdmConfig(unet=SMALL_UNET, image_size=32, diffuse="residual", residual_scale=3.0))
    hq, lq = images(5, (2, 3, 32, 32)), images(6, (2, 3, 32, 32))
    original = model.to_diffused(hq, lq)
    assert torch.allclose(original, (hq - lq) * 3) and torch.allclose(model.from_diffused(original, lq), hq, atol=1e-6)
    low, high = model.diffused_bounds(lq)
    assert torch.allclose(model.from_diffused(low, lq), torch.full_like(lq, -1.0), atol=1e-6)
    assert torch.allclose(model.from_diffused(high, lq), torch.ones_like(lq), atol=1e-6)
    scheduler = DDIMScheduler(ALPHAS)
    knows_x0 = oracle(scheduler, original)
    restored = model.sample((lq + 1) / 2, steps, predict=lambda x, condition, t: knows_x0(x, int(t[0])))
    assert torch.allclose(restored, (hq + 1) / 2, atol=1e-5)
    face_model = IdmModel(IdmConfig(unet=SMALL_UNET, image_size=32))
    assert torch.equal(face_model.to_diffused(hq, lq), hq) and face_model.diffused_bounds(lq) == (-1.0, 1.0)


@pytest.fixture
def weights_folder(tmp_path) -> Path:
    torch.manual_seed(0)
    save_weights(tmp_path / "idm", "idm", to_dict(SMALL), perturbed(IdmModel(SMALL)).state_dict())
    return tmp_path / "idm"


def test_restorer_seeds_steps_and_knobs(weights_folder):
    restorer, knobs = resolve_model(str(weights_folder))
    assert isinstance(restorer, IdmRestorer) and restorer.face_size == 32
    assert knobs == DEFAULT_KNOBS
    faces = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    out = restorer(faces, steps=3, seed=7, noise_scale=1, keep_input=0)
    assert out.shape == faces.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, restorer(faces, steps=3, seed=7, noise_scale=1, keep_input=0))
    assert not torch.equal(out, restorer(faces, steps=3, seed=8, noise_scale=1, keep_input=0))
    assert not torch.equal(out, restorer(faces, steps=4, seed=7, noise_scale=1, keep_input=0))
    cool = restorer(faces, steps=3, seed=7, noise_scale=0.5, keep_input=0)
    assert not torch.equal(out, cool)
    assert torch.equal(cool, restorer(faces, steps=3, seed=7, noise_scale=0.5, keep_input=0))
    deterministic = restorer(faces, steps=3, seed=7, noise_scale=0)  # no noise: the seed no longer matters
    assert torch.equal(deterministic, restorer(faces, steps=3, seed=8, noise_scale=0))
    # keep_input blends the sample with the input: 1 gives the input back, 0.25 a quarter of the way to it
    assert torch.allclose(restorer(faces, steps=3, seed=7, noise_scale=1, keep_input=1), faces)
    assert torch.allclose(
        restorer(faces, steps=3, seed=7, noise_scale=1, keep_input=0.25), 0.25 * faces + 0.75 * out, atol=1e-6
    )
    with torch.inference_mode():  # one step: the one-shot x0 estimate from the seeded noise at t = T − 1
        lq = resize_faces(faces, 32) * 2 - 1
        noise = torch.randn((1, *lq.shape[1:]), generator=torch.Generator().manual_seed(7)).expand_as(lq)
        v = restorer.model(noise, lq, torch.full((3,), T - 1))
        alpha = ALPHAS[-1].float()
        expected = resize_faces(((alpha.sqrt() * noise - (1 - alpha).sqrt() * v).clamp(-1, 1) + 1) / 2, 48)
    assert torch.allclose(restorer(faces, steps=1, seed=7, noise_scale=1, keep_input=0), expected, atol=1e-5)
    alone = restorer(
        faces[2:], steps=3, seed=7, noise_scale=1, keep_input=0
    )  # a face's result does not depend on its batch
    assert torch.allclose(alone, out[2:], atol=1e-5)
    for bad, message in [
        ({"steps": 0}, "steps"),
        ({"steps": 1001}, "steps"),
        ({"seed": -1}, "seed"),
        ({"noise_scale": 1.5}, "noise_scale"),
        ({"keep_input": -0.1}, "keep_input"),
    ]:
        with pytest.raises(FacemendError, match=message):
            restorer(faces, **bad)
    with pytest.raises(FacemendError, match=r"no knob 'quality'; its knobs: steps \(int.*seed \(int"):
        restorer(faces, quality=0.5)
    short = IdmRestorer(IdmModel(IdmConfig(unet=SMALL_UNET, image_size=32, num_train_timesteps=10)))
    with pytest.raises(FacemendError, match=r"knob 'steps' must be in \[1, 10\], got 11"):  # a model's own T
        short(faces, steps=11)
    specs = restorer.network_specs(batch=2)
    assert list(specs) == ["denoise"] and list(specs["denoise"].inputs) == ["noisy", "lq", "timesteps"]
    assert restorer.networks["denoise"](*specs["denoise"].inputs.values()).shape == (2, 3, 32, 32)


def test_weights_round_trip(weights_folder, tmp_path):
    restorer = IdmRestorer.from_folder(weights_folder)
    save_weights(tmp_path / "again", "idm", to_dict(restorer.model.config), restorer.model.state_dict())
    again = IdmRestorer.from_folder(tmp_path / "again")
    saved = load_weights(weights_folder).state_dict
    assert all(torch.equal(value, again.model.state_dict()[key]) for key, value in saved.items())
    faces = torch.rand(2, 3, 32, 32)
    assert torch.equal(restorer(faces, steps=2), again(faces, steps=2))
    save_weights(tmp_path / "other", "idm", to_dict(IdmConfig(unet=SMALL_UNET, image_size=64)), saved)
    assert IdmRestorer.from_folder(tmp_path / "other").face_size == 64  # the UNet is resolution-agnostic


def test_idm_is_bundled_and_idm_base_says_how_to_get_it():
    restorer, knobs = resolve_model("idm")
    assert isinstance(restorer, IdmRestorer) and restorer.face_size == 128
    assert knobs == DEFAULT_KNOBS
    faces = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    first = restorer(faces, **knobs)
    assert first.shape == faces.shape and torch.equal(first, restorer(faces, **knobs))
    assert not torch.allclose(first, faces, atol=1e-3)  # the trained model changes the faces at its defaults
    with pytest.raises(FacemendError, match=r"'idm-base' has no bundled weights: train it .*configs/idm/base.yaml"):
        resolve_model("idm-base")


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A `facemend prepare`-style folder of random 40-px faces: train 5, val 2, test 2."""
    root = tmp_path / "prepared"
    rng = np.random.default_rng(0)
    rows = []
    for split, count in (("train", 5), ("val", 2), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            file = f"{split}/src__face{i}.png"
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / file)
            rows.append({"file": file, "source": "src", "identity": f"{split}{i}", "split": split})
    (root / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture
def in_process_loading(monkeypatch):
    """Faces load in this process (the training engine would start a pool on every core)."""
    monkeypatch.setattr("facemend.data.datasets.parallel_map", functools.partial(parallel.parallel_map, workers=1))


def small_train_config(root: Path, runs: Path, steps: int = 3) -> dict:
    """configs/idm/tiny.yaml with a small UNet on 32-px faces."""
    config = yaml.safe_load((REPO / "configs" / "idm" / "tiny.yaml").read_text())
    config["model"].update(image_size=32, unet=to_dict(SMALL_UNET))
    config["data"].update(root=str(root), size=32, batch_size=2, workers=0, val_faces=2, cache_dir=str(runs / "c"))
    config["trainer"].update(runs_dir=str(runs), log_every=1, sample_every=1000)
    for stage in config["stages"]:
        stage.update(steps=steps, warmup_steps=0)
    return config


def test_a_short_training_run_exports_a_restorer(dataset, tmp_path, in_process_loading):
    config = small_train_config(dataset, tmp_path / "runs")
    sharpen = {**config["stages"][0], "name": "sharpen", "losses": {"diffusion": 1.0, "l1": 1.0, "perceptual": 1.0}}
    config["stages"].append(sharpen)
    result = run(config)
    assert result.finished
    losses = stage_losses(result.run_dir, "denoise", "diffusion")
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert list((result.run_dir / "samples").glob("denoise_*.jpg"))
    identity = stage_losses(result.run_dir, "identity", "identity")  # SFace's cosine distance on x0's face
    assert len(identity) == 3 and all(0 < value <= 2 for value in identity)
    # a stage may add L1 and perceptual losses on the face of the x0 estimate to the diffusion loss
    for key in ("diffusion", "l1", "perceptual"):
        losses = stage_losses(result.run_dir, "sharpen", key)
        assert len(losses) == 3 and all(np.isfinite(losses)) and min(losses) > 0
    restorer, _ = resolve_model(str(result.run_dir / "sharpen"))
    assert isinstance(restorer, IdmRestorer) and restorer(torch.rand(1, 3, 40, 40), steps=2).shape == (1, 3, 40, 40)


def test_idm_base_builds_and_takes_one_training_step():
    """At 64 px, not 512: the UNet is resolution-agnostic, and a 512-px step on CPU would take a minute."""
    config = load_train_config(REPO / "configs" / "idm" / "base.yaml")
    assert config.model["image_size"] == 512 and config.data.size == 512
    recipe = recipe_for(config)
    model = recipe.build_model().train()
    assert 50e6 < sum(p.numel() for p in model.parameters()) < 70e6
    assert recipe.build_discriminator() is None
    torch.manual_seed(0)
    batch = {"hq": torch.rand(1, 3, 64, 64), "lq": torch.rand(1, 3, 64, 64)}
    stage = config.stages[0]
    out = recipe.generator_step(model, batch, stage, None)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.get_submodule("unet").parameters())


# --- facemend clean ---------------------------------------------------------------------------------------------


def test_clean_restores_train_and_copies_val_and_test(dataset, weights_folder, tmp_path):
    out = tmp_path / "cleaned"
    summary = clean_dataset(dataset, out, str(weights_folder), {"steps": 2}, batch_size=2, progress=False)
    assert (summary.cleaned, summary.kept, summary.copied) == (5, 0, 4)
    for row in manifest(dataset):
        original, written = dataset / row["file"], out / row["file"]
        assert Image.open(written).size == Image.open(original).size
        same = original.read_bytes() == written.read_bytes()
        assert same == (row["split"] != "train")
    rows = manifest(out)
    assert [row["file"] for row in rows] == [row["file"] for row in manifest(dataset)]
    knobs = {**DEFAULT_KNOBS, "steps": 2}
    by = {"model": str(weights_folder), "knobs": knobs}
    assert all(row["cleaned_by"] == (by if row["split"] == "train" else None) for row in rows)

    with pytest.raises(FacemendError, match="not empty: pass --resume"):
        clean_dataset(dataset, out, str(weights_folder), {"steps": 2}, progress=False)
    with pytest.raises(FacemendError, match="no clean with these settings"):
        clean_dataset(dataset, out, str(weights_folder), {"steps": 3}, resume=True, progress=False)
    first = out / rows[-1]["file"]
    first_bytes = first.read_bytes()
    (out / "train" / "src__face0.png").unlink()
    summary = clean_dataset(dataset, out, str(weights_folder), {"steps": 2}, resume=True, progress=False)
    assert (summary.cleaned, summary.kept, summary.copied) == (1, 4, 0)
    assert first.read_bytes() == first_bytes and manifest(out) == rows


def test_clean_limit_takes_a_fixed_subset(dataset, weights_folder, tmp_path):
    import hashlib

    clean_dataset(dataset, tmp_path / "a", str(weights_folder), limit=2, progress=False)
    train = sorted(p.name for p in (tmp_path / "a" / "train").iterdir())
    files = [f"train/src__face{i}.png" for i in range(5)]
    first = sorted(files, key=lambda file: hashlib.sha256(file.encode()).hexdigest())[:2]
    assert train == sorted(Path(file).name for file in first)
    assert [row["split"] for row in manifest(tmp_path / "a")].count("train") == 2


def test_train_faces_trains_on_the_subset_clean_limit_cleans(dataset, weights_folder, tmp_path, in_process_loading):
    """The "beyond" comparison of issue 8: a run on the original faces sees the same faces as one on CLEANED."""
    clean_dataset(dataset, tmp_path / "cleaned", str(weights_folder), limit=3, progress=False)
    files = face_files(dataset / "train")
    assert {files[i].name for i in first_by_hash(files, 3)} == {p.name for p in (tmp_path / "cleaned/train").iterdir()}
    config = small_train_config(dataset, tmp_path / "runs", steps=1)
    config["data"]["train_faces"] = 3
    assert run(config).finished
    config = small_train_config(dataset, tmp_path / "runs-too-many", steps=1)
    config["data"]["train_faces"] = 6
    with pytest.raises(FacemendError, match=r"data.train_faces: 6, but .*/train holds 5"):
        run(config)
    config["data"]["train_faces"] = 0
    with pytest.raises(ConfigError, match=r"train_faces must be >= 1, got 0"):
        run(config)


def test_clean_errors_are_one_line_and_leave_nothing(dataset, weights_folder, tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "bare").mkdir()
    cases = [
        ([str(tmp_path / "missing"), "--model", str(weights_folder)], "no such folder"),
        ([str(tmp_path / "bare"), "--model", str(weights_folder)], "not a `facemend prepare` folder"),
        ([str(dataset), "--model", "nope"], "unknown model 'nope'"),
        ([str(dataset), "--model", str(weights_folder), "--steps", "0"], "knob 'steps' must be in"),
        ([str(dataset), "--model", str(weights_folder), "--splits", "train,dev"], "splits must be some of"),
        ([str(dataset), "--model", str(weights_folder), "--rounds", "2"], "--rounds needs --config"),
    ]
    for args, message in cases:
        code = main(["clean", *args, "-o", str(out), "-q"])
        error = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(error) == 1 and message in error[0], error
        assert not out.exists()


def test_clean_rounds_train_on_each_cleaned_set(dataset, weights_folder, tmp_path, in_process_loading, capsys):
    config = small_train_config(dataset, tmp_path / "runs", steps=2)
    config_path = tmp_path / "idm-small.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "cleaned"
    args = ["clean", str(dataset), "-o", str(out), "--model", str(weights_folder), "--steps", "1", "-q"]
    assert main([*args, "--rounds", "2", "--config", str(config_path)]) == 0
    last = config["stages"][-1]["name"]  # a round's model: its last stage's export
    second = tmp_path / "runs" / "idm-tiny-round-2" / last
    assert f"the last round's model: {second}" in capsys.readouterr().err
    for k in (1, 2):
        assert (tmp_path / "runs" / f"idm-tiny-round-{k}" / last / "model.safetensors").exists()
        run_config = yaml.safe_load((tmp_path / "runs" / f"idm-tiny-round-{k}" / "config.yaml").read_text())
        assert run_config["data"]["root"] == str(out / f"round-{k}")
    models = {row["cleaned_by"]["model"] for row in manifest(out / "round-2") if row["cleaned_by"]}
    assert models == {str(tmp_path / "runs" / "idm-tiny-round-1" / last)}  # round 2 cleans with round 1's
    assert main([*args, "--rounds", "2", "--config", str(config_path)]) == 2  # started before: needs --resume
    assert main([*args, "--rounds", "2", "--config", str(config_path), "--resume"]) == 0  # all done: no work


def test_onnx_export_runs_the_sampler_loop_in_python(weights_folder, tmp_path):
    from facemend.runtime import export_onnx, with_runtime

    restorer = IdmRestorer.from_folder(weights_folder)
    assert [path.name for path in export_onnx(restorer, tmp_path / "idm.onnx")] == ["idm.onnx"]
    onnx_restorer = with_runtime(restorer, "onnx", onnx_path=tmp_path / "idm.onnx")
    faces = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    for knobs in ({"steps": 1}, {"steps": 3, "seed": 5}):
        assert (onnx_restorer(faces, **knobs) - restorer(faces, precision="fp32", **knobs)).abs().max() < 1e-3

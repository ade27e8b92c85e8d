"""`artfr`: the MaskGIT scheduler on dummy model functions, training masks, and the restorer's knobs."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from conftest import REPO
from facemend.config import to_dict
from facemend.errors import FacemendError
from facemend.methods.artfr.model import ArtfrConfig, ArtfrModel, ArtfrRestorer
from facemend.methods.artfr.recipe import random_mask
from facemend.methods.base import resize_faces
from facemend.methods.registry import resolve_model
from facemend.models.code_transformer import CodeTransformerConfig
from facemend.models.tokenizer import TokenizerConfig
from facemend.samplers.maskgit import MaskGitScheduler, cosine_mask_ratio
from facemend.weights import save_weights

VOCABULARY, LENGTH = 16, 64
MASK = VOCABULARY


def fixed_logits(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, LENGTH, VOCABULARY, generator=torch.Generator().manual_seed(seed)) * 3


def decode(model_fn, steps: int, batch: int = 2, **options) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loop a method owns, around a dummy model function; also returns every intermediate sample."""
    scheduler = MaskGitScheduler(MASK)
    scheduler.set_timesteps(steps)
    sample = scheduler.initial_sample(batch, LENGTH)
    history = []
    for t in scheduler.timesteps:
        sample = scheduler.step(model_fn(sample), t, sample, **options).prev_sample
        history.append(sample)
    return sample, history


def test_cosine_schedule_ends():
    assert cosine_mask_ratio(0.0) == pytest.approx(1.0)
    assert cosine_mask_ratio(1.0) == pytest.approx(0.0, abs=1e-6)
    assert cosine_mask_ratio(0.5) == pytest.approx(math.cos(math.pi / 4))


def test_one_step_is_one_shot_argmax():
    logits = fixed_logits()
    sample, _ = decode(lambda _: logits, steps=1)
    assert torch.equal(sample, logits.argmax(-1))


@pytest.mark.parametrize("steps", [2, 4, 8, 16])
def test_masked_share_follows_the_schedule_and_kept_tokens_stay(steps):
    logits = fixed_logits()
    sample, history = decode(lambda _: logits, steps=steps)
    previous = torch.full((2, LENGTH), MASK)
    for t, current in enumerate(history):
        masked = (current == MASK).sum(dim=1)
        expected = min(math.floor(LENGTH * math.cos(math.pi / 2 * (t + 1) / steps)), LENGTH - t - 1)
        assert (masked == max(expected, 0)).all()
        kept_before = previous != MASK
        assert torch.equal(current[kept_before], previous[kept_before])  # never re-masked, never changed
        previous = current
    assert not (sample == MASK).any()
    assert torch.equal(sample, logits.argmax(-1))  # a context-free model: greedy decoding = argmax everywhere


def test_the_most_confident_tokens_are_kept_first():
    logits = fixed_logits(batch=1)
    scheduler = MaskGitScheduler(MASK)
    scheduler.set_timesteps(4)
    out = scheduler.step(logits, 0, scheduler.initial_sample(1, LENGTH))
    confidence = logits.log_softmax(-1).max(-1).values[0]
    kept = out.prev_sample[0] != MASK
    assert kept.any() and (~kept).any()
    assert confidence[kept].min() >= confidence[~kept].max()
    assert torch.equal(out.pred_original_sample, logits.argmax(-1))


def test_the_model_sees_what_was_kept():
    """A model function that copies its left neighbour: later steps must build on earlier ones."""

    def copy_left(sample: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(sample.shape[0], LENGTH, VOCABULARY)
        logits[:, 0, 3] = 10.0  # position 0 is sure of code 3
        known = sample[:, :-1] != MASK
        left = sample[:, :-1].clamp(max=VOCABULARY - 1)
        logits[:, 1:].scatter_(2, left.unsqueeze(-1), torch.where(known, 10.0, 0.0).unsqueeze(-1))
        return logits

    sample, _ = decode(copy_left, steps=LENGTH, batch=1)
    assert (sample == 3).all()  # code 3 spread one position per step


def test_seeds_and_temperature():
    logits = fixed_logits() / 3

    def run(seed: int, **options) -> torch.Tensor:
        return decode(lambda _: logits, steps=4, generator=torch.Generator().manual_seed(seed), **options)[0]

    assert torch.equal(run(1, temperature=1.0), run(1, temperature=1.0))
    assert not torch.equal(run(1, temperature=1.0), run(2, temperature=1.0))
    assert torch.equal(run(1), run(2))  # temperature 0: no randomness at all
    assert torch.equal(run(1, temperature=1.0, top_k=1), logits.argmax(-1))  # top-1 sampling is greedy
    sample = run(3, temperature=2.0, top_k=2)
    allowed = logits.topk(2, dim=-1).indices
    assert (allowed == sample.unsqueeze(-1)).any(-1).all()


def test_training_masks_follow_the_cosine_schedule():
    torch.manual_seed(0)
    masks = random_mask(torch.zeros(20000, LENGTH, dtype=torch.long))
    counts = masks.sum(dim=1)
    assert counts.min() >= 1 and counts.max() <= LENGTH
    assert masks.float().mean().item() == pytest.approx(2 / math.pi, abs=0.01)  # E[cos(πr/2)], r ~ U(0, 1)


SMALL = ArtfrConfig(
    tokenizer=TokenizerConfig(image_size=32, channels=8, channel_mults=(1, 2, 2), codebook_size=32, codebook_dim=8),
    transformer=CodeTransformerConfig(width=32, layers=1, heads=4),
    fusion_levels=(0, 1),
)


@pytest.fixture
def weights_folder(tmp_path):
    torch.manual_seed(0)
    model = ArtfrModel(SMALL)
    for block in model.fusion.blocks.values():  # away from the identity initialisation, as after training
        torch.nn.init.normal_(block.shift.weight, std=0.1)
    save_weights(tmp_path / "artfr", "artfr", to_dict(SMALL), model.state_dict())
    return tmp_path / "artfr"


def test_restorer_knobs_seed_and_steps(weights_folder):
    restorer, _ = resolve_model(str(weights_folder))
    assert isinstance(restorer, ArtfrRestorer)
    faces = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    out = restorer(faces, steps=4, temperature=1.0, seed=7)
    assert out.shape == faces.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, restorer(faces, steps=4, temperature=1.0, seed=7))
    assert not torch.equal(out, restorer(faces, steps=4, temperature=1.0, seed=8))
    assert torch.equal(restorer(faces, seed=1), restorer(faces, seed=2))  # default temperature 0: deterministic
    with torch.inference_mode():  # one step = one-shot prediction from a fully masked grid
        small = resize_faces(faces, SMALL.tokenizer.image_size)
        latent, features = restorer.model.encode_lq(small)
        masked = torch.full((3, SMALL.tokenizer.token_grid**2), restorer.model.mask_token_id)
        indices = restorer.model.predict(masked, latent).argmax(-1).view(3, *latent.shape[2:])
        expected = resize_faces(restorer.model.decode(indices, features, 1.0), 48).clamp(0, 1)
    assert torch.allclose(restorer(faces, steps=1, keep_input=0.0), expected, atol=1e-6)
    assert torch.allclose(restorer(faces, keep_input=1.0), faces, atol=1e-6)
    halfway = restorer(faces, steps=1, keep_input=0.5)
    assert torch.allclose(halfway, (faces + expected) / 2, atol=1e-6)
    accuracy = restorer.code_accuracy(faces, faces, steps=2)
    assert accuracy.shape == (3,) and ((accuracy >= 0) & (accuracy <= 1)).all()
    for bad, message in [({"steps": 0}, "steps"), ({"top_k": -1}, "top_k"), ({"temperature": 3}, "temperature")]:
        with pytest.raises(FacemendError, match=message):
            restorer(faces, **bad)


def test_artfr_is_bundled_and_artfr_base_says_how_to_get_it():
    restorer, knobs = resolve_model("artfr")
    assert isinstance(restorer, ArtfrRestorer) and knobs["steps"] >= 1
    faces = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    first, again = restorer(faces, **knobs), restorer(faces, **knobs)
    assert first.shape == faces.shape and torch.equal(first, again)
    with pytest.raises(FacemendError, match=r"'artfr-base' has no bundled weights: train it"):
        resolve_model("artfr-base")


def _script(path: str):
    """The script at `path` (from the repository's root, without .py) as a module."""
    spec = importlib.util.spec_from_file_location(path.replace("/", "_"), REPO / f"{path}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steps_sweep_writes_one_table_and_a_plot(tmp_path):
    script = _script("scripts/steps_sweep")
    specs = script.sweep_specs("artfr", [1, 2, 4], "temperature=1")
    assert list(specs) == [f"artfr:steps={n},temperature=1" for n in (1, 2, 4)]
    results = {}
    for offset, preset in enumerate(script.PRESETS):
        rows = {"lq-input": {**dict.fromkeys(script.COLUMNS, 0.5), "s_per_face": None}, "baseline": {}}
        for n, spec in zip((1, 2, 4), specs, strict=True):
            rows[spec] = {**dict.fromkeys(script.COLUMNS, 0.1 * n + offset), "s_per_face": 0.01 * n}
        rows["baseline"] = {**dict.fromkeys(script.COLUMNS, 0.3), "s_per_face": 0.02}
        results[preset] = {"models": rows, "faces": 10, "timing": "batch 16"}
    table = script.sweep_markdown(results, "artfr", specs, ["baseline"], ["daefr"])
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(script.PRESETS) * (1 + len(specs) + 1)
    assert "| heavy | artfr | 4 | 1.40 | 1.4000 |" in table and "| medium | LQ input | – | 0.50 |" in table
    assert "Left out (not trained or not landed yet): daefr" in table
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    script.sweep_plot(results, "artfr", specs, ["baseline"], tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


def test_condition_comparison_trains_the_tokens_stage_alone():
    import yaml

    from facemend.methods.registry import recipe_for
    from facemend.training.config import load_train_config

    script = _script("experiments/artfr/condition")
    base = yaml.safe_load((REPO / "configs" / "artfr" / "tiny.yaml").read_text())
    for condition in script.CONDITIONS:
        config = load_train_config(script.condition_config(base, condition, 40))
        assert config.name == f"artfr-tiny-condition-{condition}"
        assert config.model["condition"] == condition
        recipe_for(config).build_model()  # the variant builds
        assert [(s.name, s.steps, s.warmup_steps) for s in config.stages] == [("tokens", 40, 10)]
        assert config.stages[0].init == base["stages"][0]["init"]
    assert base["model"]["condition"] == "add"  # the base config is left alone


def test_oracle_codes_decode_the_hq_faces_own_codes(weights_folder):
    script = _script("experiments/artfr/oracle_codes")
    restorer, _ = resolve_model(str(weights_folder))
    model, size = restorer.model, SMALL.tokenizer.image_size
    lq, hq = (torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(s)) for s in (0, 1))
    with torch.inference_mode():
        decoded = script.decode_sources(model, lq, hq)
        latent, features = model.encode_lq(lq)
        oracle = model.decode(model.tokenizer.encode_indices(hq), features, 1.0).clamp(0, 1)
        predicted = model.decode(model.sample(latent, 1), features, 0.0).clamp(0, 1)
    assert set(decoded) == {(source, w) for source in script.SOURCES for w in (0.0, 1.0)}
    assert torch.allclose(decoded["oracle", 1.0], oracle, atol=1e-6)
    assert torch.allclose(decoded["predicted", 0.0], predicted, atol=1e-6)
    assert not torch.allclose(decoded["oracle", 1.0], decoded["predicted", 1.0])
    row = {"psnr_y": 30.0, "idd": 0.4, "fd_dlib": 0.05}
    table = script.oracle_markdown({"medium": {"LQ input": row, "oracle, fidelity 1": row}}, 10)
    assert "| medium | PSNR-Y | IDD | FD-dlib |" in table and "| oracle, fidelity 1 | 30.00 | 0.4000 | 0.050 |" in table

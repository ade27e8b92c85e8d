"""`daefr`: the patch association loss, the learned temperature, the cross-attention, config errors, the LQ
tokenizer's recipe, training through the real trainer, the restorer, and the paper-scale config."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
import yaml
from einops import rearrange

from conftest import REPO
from facemend.config import ConfigError, build, to_dict
from facemend.errors import FacemendError
from facemend.methods.daefr.association import patch_association_loss
from facemend.methods.daefr.cross_attention import CrossAttention
from facemend.methods.daefr.model import MAX_LOGIT_SCALE, DaefrConfig, DaefrModel, DaefrRestorer
from facemend.methods.registry import recipe_for, resolve_model
from facemend.models.code_transformer import CodeTransformerConfig
from facemend.models.quality_conditioning import QualityConditioningConfig
from facemend.models.tokenizer import TokenizerConfig, VQTokenizer
from facemend.pipelines.benchmark import slug
from facemend.quality.prior import QualityPriorConfig
from facemend.training.config import StageConfig, load_train_config
from facemend.training.tokenizer_recipe import LqTokenizerRecipe
from facemend.training.trainer import check_config
from facemend.weights import load_weights, save_weights
from test_training import run, stage_losses, tiny

TOKENIZER = TokenizerConfig(image_size=32, channels=8, channel_mults=(1, 2, 2), codebook_size=32, codebook_dim=8)
CALIBRATED_PRIOR = QualityPriorConfig(metric="brisque", centre=30.0, scale=10.0)  # any calibration: daefr-q builds


def small(combine: str = "mhca") -> DaefrConfig:
    return DaefrConfig(
        tokenizer=TOKENIZER,
        transformer=CodeTransformerConfig(width=32, layers=1, heads=4, patch_size=2),
        combine=combine,
        attention_heads=2,
        fusion_levels=(0, 1),
    )


def shuffle_positions(features: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """`b d h w` with the h w positions permuted (the same permutation for every face)."""
    height = features.shape[2]
    order = torch.randperm(features.shape[2] * features.shape[3], generator=torch.Generator().manual_seed(seed))
    flat = rearrange(features, "b d h w -> b d (h w)")[:, :, order]
    return rearrange(flat, "b d (h w) -> b d h w", h=height)


def test_association_loss_is_clip_symmetric_cross_entropy_over_patches():
    torch.manual_seed(0)
    hq, lq = torch.randn(3, 16, 4, 4), torch.randn(3, 16, 4, 4)
    expected = []
    for a, b in zip(hq, lq, strict=True):  # one face at a time, as written in the papers
        a, b = F.normalize(a.flatten(1).t(), dim=1), F.normalize(b.flatten(1).t(), dim=1)
        similarity = 14.0 * a @ b.t()  # n n
        diagonal = torch.arange(16)
        expected.append((F.cross_entropy(similarity, diagonal) + F.cross_entropy(similarity.t(), diagonal)) / 2)
    loss = patch_association_loss(hq, lq, torch.tensor(14.0))
    torch.testing.assert_close(loss, torch.stack(expected).mean())
    torch.testing.assert_close(loss, patch_association_loss(lq, hq, 14.0))  # symmetric in the two branches


def test_association_loss_is_least_when_features_match_position_wise():
    torch.manual_seed(0)
    features = torch.randn(2, 32, 4, 4)
    matched = patch_association_loss(features, features, MAX_LOGIT_SCALE)
    noisy = patch_association_loss(features, features + 2.0 * torch.randn_like(features), MAX_LOGIT_SCALE)
    shuffled = patch_association_loss(features, shuffle_positions(features), MAX_LOGIT_SCALE)
    assert matched < 1e-3 and matched < noisy < shuffled
    assert patch_association_loss(features, features, 1.0) == pytest.approx(
        patch_association_loss(features, 3.0 * features, 1.0).item()  # scale-free: cosine similarities
    )


def test_temperature_is_a_learned_parameter_starting_at_clips_value():
    model = DaefrModel(small())
    assert model.association().item() == pytest.approx(1 / 0.07)
    assert model.association.log_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert "association.log_scale" in model.state_dict()
    hq, lq = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    patch_association_loss(hq, lq, model.association()).backward()
    assert model.association.log_scale.grad.abs() > 0
    with torch.no_grad():
        model.association.log_scale.fill_(10.0)
    assert model.association().item() == MAX_LOGIT_SCALE  # clamped as in CLIP
    assert not hasattr(DaefrModel(small("hq_only")), "association")


def test_cross_attention_shapes_and_that_the_context_counts():
    torch.manual_seed(0)
    attention = CrossAttention(16, 4, grid=4).eval()
    query, context = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
    out = attention(query, context)
    assert out.shape == query.shape
    other = context.clone()
    other[1] = torch.randn(16, 4, 4)
    changed = attention(query, other)
    assert torch.equal(changed[0], out[0])  # faces do not mix
    assert (changed[1] - out[1]).abs().max() > 1e-3  # keys and values reach the output
    assert (attention(query, shuffle_positions(context)) - out).abs().max() > 1e-3  # positions matter
    assert attention(torch.randn(1, 16, 6, 6), torch.randn(1, 16, 6, 6)).shape == (1, 16, 6, 6)  # other grids
    with pytest.raises(ValueError, match="context grid"):
        attention(query, torch.randn(2, 16, 2, 2))
    with pytest.raises(ValueError, match="not divisible by heads"):
        CrossAttention(16, 3, grid=4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"combine": "sum"}, r"model: combine must be one of mhca, add, hq_only, got 'sum'"),
        ({"attention_heads": 3}, r"model: attention_heads must divide tokenizer.codebook_dim \(8\), got 3"),
        ({"fusion_levels": [0, 5]}, r"model: fusion_levels: 5 is not a tokenizer level"),
        ({"heads": 2}, r"model.heads: unknown key"),
    ],
)
def test_config_errors_name_the_field(change, message):
    with pytest.raises(ConfigError, match=message):
        build(DaefrConfig, to_dict(small()) | change, "model")


def small_train_config(name: str, prepared_faces, tmp_path, steps: int = 2) -> dict:
    """The stages of configs/NAME.yaml (shortened) on a small model and 32-px faces, starting from random HQ and
    LQ tokenizers saved under `tmp_path`."""
    config = tiny(name, prepared_faces, tmp_path, steps=steps)
    config["data"].update(size=32, batch_size=2, val_faces=2)
    config["discriminator"] = {"channels": 8, "layers": 2}
    for part, seed in (("hq", 0), ("lq", 1)):
        torch.manual_seed(seed)
        save_weights(tmp_path / part, "tokenizer", to_dict(TOKENIZER), VQTokenizer(TOKENIZER).state_dict())
    if config["recipe"] == "daefr":
        config["model"] = to_dict(small(config["model"]["combine"]))
        first = config["stages"][0]
        first["init"] = str(tmp_path / "hq")
        if "init_parts" in first:
            first["init_parts"] = {"lq_tokenizer": str(tmp_path / "lq")}
    else:
        config["model"] = to_dict(TOKENIZER)
        config["stages"][0]["init"] = str(tmp_path / "hq")
    return config


def changed_parts(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], trainable: list[str]) -> set[str]:
    """The trainable paths (e.g. `hq_tokenizer.decoder`) with a changed weight; fails on a change elsewhere."""
    changed = set()
    for key, value in after.items():
        if not torch.equal(before[key], value):
            owner = [path for path in trainable if key.startswith(f"{path}.")]
            assert owner, f"{key} changed, but only {trainable} train"
            changed.add(owner[0])
    return changed


@pytest.mark.parametrize(
    "name",
    [
        "daefr-tiny",
        "daefr-tiny-ablation-hq-only",
        "daefr-tiny-ablation-no-association",
        "daefr-tiny-ablation-association",
        "daefr-tiny-ablation-association-kept",
    ],
)
def test_each_stage_trains_what_it_names_through_the_trainer(name, prepared_faces, tmp_path):
    config = small_train_config(name, prepared_faces, tmp_path)
    result = run(config)
    assert result.finished
    stages = config["stages"]
    exports = {stage["name"]: load_weights(result.run_dir / stage["name"], "daefr").state_dict for stage in stages}
    first = exports[stages[0]["name"]]
    parts = ("hq", "lq") if config["model"]["combine"] != "hq_only" else ("hq",)
    for part in parts:
        prior = load_weights(tmp_path / part).state_dict  # the tokenizers come in as saved and stay frozen
        assert all(torch.equal(first[f"{part}_tokenizer.{key}"], value) for key, value in prior.items())
        prefix = f"{part}_branch_encoder."  # started as a copy of its tokenizer's encoder, then trained
        copied = [
            torch.equal(value, prior[f"encoder.{key.removeprefix(prefix)}"])
            for key, value in first.items()
            if key.startswith(prefix)
        ]
        assert copied and not all(copied)
    for previous, stage in zip(stages, stages[1:], strict=False):
        changed = changed_parts(exports[previous["name"]], exports[stage["name"]], stage["trainable"])
        assert changed == set(stage["trainable"]), stage["name"]
    if stages[0]["name"] == "associate":
        assert len(stage_losses(result.run_dir, "associate", "association")) == 2
        assert stage_losses(result.run_dir, "associate", "l1") and stage_losses(
            result.run_dir, "associate", "commitment"
        )
    assert stage_losses(result.run_dir, "predict", "ce")
    predict = next(stage for stage in stages if stage["name"] == "predict")
    kept = stage_losses(result.run_dir, "predict", "association")  # the fix's term beside the code losses
    assert len(kept) == (2 if "association" in predict["losses"] else 0)
    for stage in stages[1:]:
        if "fusion" in stage["trainable"]:  # the fusion stages, and the identity stage after them
            for loss in ("l1", "identity"):
                if loss in stage["losses"]:
                    assert stage_losses(result.run_dir, stage["name"], loss), (stage["name"], loss)


def test_the_lq_tokenizer_recipe_reconstructs_the_lq_faces(prepared_faces, tmp_path):
    recipe = recipe_for(load_train_config(small_train_config("tokenizer-lq-tiny-32", prepared_faces, tmp_path)))
    assert isinstance(recipe, LqTokenizerRecipe) and recipe.paired and recipe.kind == "tokenizer"
    torch.manual_seed(0)
    model = recipe.build_model().eval()
    batch = {"hq": torch.rand(2, 3, 32, 32), "lq": torch.rand(2, 3, 32, 32)}
    stage = StageConfig(name="reconstruct", steps=1, trainable=("encoder",), losses={"l1": 1.0, "commitment": 0.25})
    out = recipe.generator_step(model, batch, stage, None)
    with torch.no_grad():
        reconstruction, quantized = model(batch["lq"])
    l1 = (reconstruction - batch["lq"]).abs().mean()
    torch.testing.assert_close(out.loss, l1 + 0.25 * quantized.commitment_loss + quantized.codebook_loss)
    assert out.logs["l1"] == pytest.approx(l1.item())
    assert out.logs["l1"] != pytest.approx((model(batch["hq"])[0] - batch["hq"]).abs().mean().item())
    assert torch.equal(out.real, batch["lq"])  # the discriminator, when on, sees LQ faces as the real ones


def test_the_lq_tokenizer_trains_and_exports_tokenizer_weights(prepared_faces, tmp_path):
    result = run(small_train_config("tokenizer-lq-tiny-32", prepared_faces, tmp_path))
    exported = load_weights(result.run_dir / "reconstruct", "tokenizer")
    assert exported.info["training"]["recipe"] == "tokenizer-lq"
    assert len(stage_losses(result.run_dir, "reconstruct", "l1")) == 2


def check(config: dict) -> None:
    loaded = load_train_config(config)
    check_config(loaded, recipe_for(loaded))


def test_stage_errors_name_the_field(prepared_faces, tmp_path):
    config = small_train_config("daefr-tiny", prepared_faces, tmp_path)
    check(config)
    bad = yaml.safe_load(yaml.safe_dump(config))
    bad["stages"][0]["losses"] = {
        **bad["stages"][0]["losses"],
        "association": 1.0,
        "feature_mse": 0.0,
        "adversarial": 1.0,
    }
    with pytest.raises(ConfigError, match=r"stages\[0\]\.losses\.adversarial: an association stage .* takes only"):
        check(bad)
    bad["stages"][0]["losses"]["code_ce"] = 1.0  # with a lookup loss, a predict stage keeping the association
    with pytest.raises(ConfigError, match=r"stages\[0\]\.losses\.adversarial: a predict stage that keeps the"):
        check(bad)
    bad = yaml.safe_load(yaml.safe_dump(config))
    bad["stages"][1]["losses"]["commitment"] = 1.0
    with pytest.raises(ConfigError, match=r"stages\[1\]\.losses\.commitment: only an association stage"):
        check(bad)
    kept = yaml.safe_load(yaml.safe_dump(config))
    kept["stages"][1]["losses"]["association"] = 1.0  # a predict stage keeping the association: fine
    check(kept)
    kept["stages"][1]["losses"]["l1"] = 1.0
    with pytest.raises(ConfigError, match=r"stages\[1\]\.losses\.l1: a predict stage that keeps the association"):
        check(kept)
    bad = yaml.safe_load(yaml.safe_dump(config))
    bad["stages"][0]["init_parts"]["lq_tokeniser"] = bad["stages"][0]["init_parts"].pop("lq_tokenizer")
    with pytest.raises(ConfigError, match=r"stages\[0\]\.init_parts\.lq_tokeniser: unknown part .* \(lq_tokenizer\)"):
        check(bad)
    bad = yaml.safe_load(yaml.safe_dump(config))
    bad["stages"][1]["init_parts"] = {"lq_tokenizer": "somewhere"}
    with pytest.raises(ConfigError, match=r"stages\[1\]: init_parts \(lq_tokenizer\) load beside init: set init"):
        check(bad)
    bad = yaml.safe_load(yaml.safe_dump(config))
    bad["model"]["combine"] = "hq_only"
    bad["stages"][0]["trainable"] = ["hq_branch_encoder"]
    with pytest.raises(ConfigError, match=r"stages\[0\]\.init_parts: combine hq_only has no LQ tokenizer"):
        check(bad)
    del bad["stages"][0]["init_parts"]
    with pytest.raises(ConfigError, match=r"stages\[0\]\.losses\.association: combine hq_only has one encoder"):
        check(bad)
    bad = small_train_config("tokenizer-lq-tiny-32", prepared_faces, tmp_path)
    bad["stages"][0]["init_parts"] = {"lq_tokenizer": str(tmp_path / "lq")}
    with pytest.raises(ConfigError, match=r"init_parts\.lq_tokenizer: unknown part for recipe 'tokenizer-lq' \(none\)"):
        check(bad)


def test_starting_weights_are_checked(tmp_path):
    from facemend.methods.daefr.recipe import DaefrRecipe

    recipe = DaefrRecipe(to_dict(small()), {})
    model = recipe.build_model()
    stage = StageConfig(name="associate", steps=1, trainable=("association",), losses={"association": 1.0})
    save_weights(tmp_path / "hq", "tokenizer", to_dict(TOKENIZER), VQTokenizer(TOKENIZER).state_dict())
    save_weights(tmp_path / "daefr", "daefr", to_dict(small()), model.state_dict())
    with pytest.raises(FacemendError, match="starts from trained tokenizer weights"):
        recipe.initialize(model, None, stage)
    with pytest.raises(FacemendError, match=r"'mhca' starts from the LQ tokenizer's weights too \(set init_parts"):
        recipe.initialize(model, load_weights(tmp_path / "hq"), stage)
    with pytest.raises(FacemendError, match="init_parts load beside tokenizer weights only"):
        recipe.initialize(
            model, load_weights(tmp_path / "daefr"), stage, {"lq_tokenizer": load_weights(tmp_path / "hq")}
        )
    recipe.initialize(model, load_weights(tmp_path / "daefr"), stage)  # a later stage: daefr weights, strictly
    add_model = DaefrModel(small("add"))
    fresh_combine = {key: value.clone() for key, value in add_model.combine.state_dict().items()}
    DaefrRecipe(to_dict(small("add")), {}).initialize(add_model, load_weights(tmp_path / "daefr"), stage)
    loaded = add_model.state_dict()  # mhca weights into an add model: all but the combine module
    assert all(torch.equal(loaded[key], value) for key, value in model.state_dict().items() if key in loaded)
    assert all(torch.equal(loaded[f"combine.{key}"], value) for key, value in fresh_combine.items())
    conditioned = replace(small(), quality_conditioning=QualityConditioningConfig(prior=CALIBRATED_PRIOR))
    q_model = DaefrModel(conditioned)  # daefr-q from unconditioned daefr weights: all but the quality embedding
    fresh_embedding = {key: value.clone() for key, value in q_model.quality_embedding.state_dict().items()}
    DaefrRecipe(to_dict(conditioned), {}).initialize(q_model, load_weights(tmp_path / "daefr"), stage)
    loaded = q_model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in model.state_dict().items())
    assert all(torch.equal(loaded[f"quality_embedding.{key}"], value) for key, value in fresh_embedding.items())
    hq_only = DaefrModel(small("hq_only"))
    save_weights(tmp_path / "hq_only", "daefr", to_dict(small("hq_only")), hq_only.state_dict())
    with pytest.raises(FacemendError, match="weights do not fit the model"):
        DaefrRecipe(to_dict(small("add")), {}).initialize(add_model, load_weights(tmp_path / "hq_only"), stage)


def test_a_fusion_stage_starts_from_restoring_weights_that_leave_out_the_training_only_parts(tmp_path):
    """Bundled weights leave out the LQ tokenizer and the association: a stage that needs neither (fusion,
    identity) starts from them with those parts fresh; one that trains or uses them says which part is missing."""
    from facemend.methods.daefr.recipe import DaefrRecipe

    recipe = DaefrRecipe(to_dict(small()), {})
    torch.manual_seed(0)
    trained = recipe.build_model()
    save_weights(tmp_path / "bundled", "daefr", to_dict(small()), DaefrRestorer.inference_state(trained.state_dict()))
    fusion = StageConfig(name="identity", steps=1, trainable=("fusion", "hq_tokenizer.decoder"), losses={"l1": 1.0})
    model = recipe.build_model()
    recipe.initialize(model, load_weights(tmp_path / "bundled"), fusion)
    loaded, kept = model.state_dict(), trained.state_dict()
    assert all(torch.equal(loaded[key], kept[key]) for key in DaefrRestorer.inference_state(kept))
    assert not torch.equal(loaded["lq_tokenizer.decoder.conv_in.weight"], kept["lq_tokenizer.decoder.conv_in.weight"])
    associate = StageConfig(name="associate", steps=1, trainable=("association",), losses={"association": 1.0})
    kept_association = replace(fusion, name="predict", trainable=("transformer",), losses={"association": 1.0})
    for stage, part in ((associate, "association"), (kept_association, "lq_tokenizer")):
        with pytest.raises(FacemendError, match=f"leave out {part} .*: start it from a run's export"):
            recipe.initialize(recipe.build_model(), load_weights(tmp_path / "bundled"), stage)


def test_an_export_leaves_out_the_parts_its_stage_started_fresh_also_after_a_resume(
    prepared_faces, tmp_path, monkeypatch
):
    """The identity stage started from restoring weights: its export holds what it trained and loaded, not the
    random LQ tokenizer and association it filled in, and says so; a resumed run remembers them."""
    config = small_train_config("daefr-tiny", prepared_faces, tmp_path)
    fusion = load_weights(run(config).run_dir / "fusion", "daefr")
    save_weights(tmp_path / "bundled", "daefr", fusion.config, DaefrRestorer.inference_state(fusion.state_dict))
    identity = next(stage for stage in config["stages"] if stage["name"] == "identity")
    identity["init"] = str(tmp_path / "bundled")
    first = run(config, start_stage="identity", stop_after=1)
    assert not first.finished
    spec = importlib.util.spec_from_file_location("snapshot_weights", REPO / "scripts" / "snapshot_weights.py")
    snapshot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snapshot)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setattr("sys.argv", ["snapshot_weights.py", str(tmp_path / "config.yaml"), "-o", str(tmp_path / "mid")])
    snapshot.main()  # the mid-stage snapshot leaves them out too
    mid = load_weights(tmp_path / "mid", "daefr")
    assert mid.info["training"]["left_out"] == list(DaefrRestorer.training_only)
    assert mid.state_dict.keys() == DaefrRestorer.inference_state(fusion.state_dict).keys()
    result = run(config, resume=True)
    exported = load_weights(result.run_dir / "identity", "daefr")
    assert exported.info["training"]["left_out"] == list(DaefrRestorer.training_only)
    kept = DaefrRestorer.inference_state(fusion.state_dict)
    assert exported.state_dict.keys() == kept.keys()
    assert not any(key.startswith(("lq_tokenizer.", "association.")) for key in exported.state_dict)
    associate = StageConfig(name="associate", steps=1, trainable=("association",), losses={"association": 1.0})
    with pytest.raises(FacemendError, match="leave out association"):  # a stage that needs them still says so
        recipe_for(load_train_config(config)).initialize(
            DaefrModel(build(DaefrConfig, config["model"], "model")), exported, associate
        )


@pytest.fixture(params=["mhca", "add", "hq_only"])
def weights_folder(request, tmp_path):
    torch.manual_seed(0)
    config = small(request.param)
    model = DaefrModel(config)
    for block in model.fusion.blocks.values():  # away from the identity initialisation, as after training
        torch.nn.init.normal_(block.shift.weight, std=0.1)
    save_weights(tmp_path / "daefr", "daefr", to_dict(config), model.state_dict())
    return tmp_path / "daefr"


def test_restorer_round_trip_fidelity_and_code_accuracy(weights_folder):
    restorer, knobs = resolve_model(f"{weights_folder}:fidelity=0.5,keep_input=0")
    assert isinstance(restorer, DaefrRestorer) and knobs == {"fidelity": 0.5, "keep_input": 0.0}
    assert restorer.face_size == 32
    saved = DaefrRestorer.inference_state(load_weights(weights_folder, "daefr").state_dict)
    state = restorer.model.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[key], value) for key, value in saved.items())
    faces, targets = torch.rand(3, 3, 48, 48), torch.rand(3, 3, 32, 32)
    out = restorer(faces, **knobs)
    assert out.shape == faces.shape and out.min() >= 0 and out.max() <= 1
    small_faces = torch.nn.functional.interpolate(faces, size=32, mode="bicubic", antialias=True).clamp(0, 1)
    with torch.inference_mode():
        decoded = restorer.model.hq_tokenizer.decode_indices(restorer.model(small_faces).indices)
    codes_only = decoded.clamp(0, 1)
    at_zero = restorer(small_faces, fidelity=0.0, keep_input=0.0)
    torch.testing.assert_close(at_zero, codes_only)  # w = 0: the predicted codes, decoded
    assert (restorer(small_faces, fidelity=1.0, keep_input=0.0) - at_zero).abs().mean() > 1e-3
    torch.testing.assert_close(restorer(small_faces, fidelity=0.0, keep_input=1.0), small_faces)
    blended = restorer(small_faces, fidelity=0.0)  # the default keep_input
    keep = DaefrRestorer.default_keep_input
    torch.testing.assert_close(blended, (keep * small_faces + (1 - keep) * decoded).clamp(0, 1))
    accuracy = restorer.code_accuracy(small_faces, targets)
    with torch.inference_mode():
        target_indices = restorer.model.hq_tokenizer.encode_indices(targets)  # the HQ prior's codes of the targets
        expected = (restorer.model(small_faces).indices == target_indices).float().mean(dim=(1, 2))
    torch.testing.assert_close(accuracy, expected)
    with pytest.raises(FacemendError, match=r"knob 'fidelity' must be in \[0.0, 1.0\]"):
        restorer(faces, fidelity=2.0)
    specs = restorer.network_specs(batch=2)
    assert restorer.networks["restore"](*specs["restore"].inputs.values()).shape == (2, 3, 32, 32)


def test_restoring_drops_the_training_only_parts(weights_folder, tmp_path):
    restorer = DaefrRestorer.from_folder(weights_folder)
    assert not hasattr(restorer.model, "lq_tokenizer") and not hasattr(restorer.model, "association")
    weights = load_weights(weights_folder, "daefr")
    kept = DaefrRestorer.inference_state(weights.state_dict)
    assert not any(key.startswith(("lq_tokenizer.", "association.")) for key in kept)
    assert any(key.startswith("hq_tokenizer.encoder.") for key in kept)  # code accuracy needs the HQ codes
    save_weights(tmp_path / "bundled", "daefr", weights.config, kept)  # as scripts/bundle_weights.py writes them
    faces = torch.rand(2, 3, 32, 32)
    assert torch.equal(DaefrRestorer.from_folder(tmp_path / "bundled")(faces), restorer(faces))


def test_onnx_export_matches_pytorch(tmp_path):
    from facemend.runtime import export_onnx, with_runtime

    torch.manual_seed(0)
    save_weights(tmp_path / "daefr", "daefr", to_dict(small()), DaefrModel(small()).state_dict())
    restorer = DaefrRestorer.from_folder(tmp_path / "daefr")
    export_onnx(restorer, tmp_path / "daefr.onnx")
    onnx_restorer = with_runtime(restorer, "onnx", onnx_path=tmp_path / "daefr.onnx")
    faces = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for fidelity in (0.0, 0.7):
        expected = restorer(faces, precision="fp32", fidelity=fidelity)
        assert (onnx_restorer(faces, fidelity=fidelity) - expected).abs().max().item() < 1e-3


def test_paper_scale_model_says_how_to_get_it():
    with pytest.raises(FacemendError, match=r"'daefr-base' has no bundled weights: train it .*configs/daefr/base.yaml"):
        resolve_model("daefr-base")


def test_bundled_daefr_restores_at_its_defaults():
    restorer, knobs = resolve_model("daefr")
    assert isinstance(restorer, DaefrRestorer) and restorer.face_size == 128
    assert knobs == {"fidelity": 1.0, "keep_input": DaefrRestorer.default_keep_input}
    assert not hasattr(restorer.model, "lq_tokenizer")  # bundled without the training-only parts
    faces = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    out = restorer(faces, precision="fp32")
    restoration = restorer(faces, precision="fp32", keep_input=0.0)
    keep = DaefrRestorer.default_keep_input
    expected = keep * faces + (1 - keep) * restoration  # equal up to where the network's output was clamped
    assert (out - expected).abs().mean() < 1e-3
    assert (restoration - faces).abs().mean() > 0.01  # the model changes the face


def paper_scale_step(name: str, stage_name: str, prior: dict | None = None):
    """configs/NAME.yaml's recipe and model (with `prior` as its quality prior, if given: the committed configs
    wait for a calibration), after one generator step of its stage STAGE_NAME on one random face pair (that
    stage's modules trainable) and its backward; checks the loss is finite and reaches every trainable module.
    Returns (recipe, model, step output)."""
    config = load_train_config(REPO / "configs" / f"{name}.yaml")
    if prior is not None:
        config.model["quality_conditioning"]["prior"] = prior
    recipe = recipe_for(config)
    model = recipe.build_model()
    stage = next(stage for stage in config.stages if stage.name == stage_name)
    model.requires_grad_(False)
    for module in stage.trainable:
        model.get_submodule(module).requires_grad_(True)
    torch.manual_seed(0)
    size = config.data.size
    batch = {"hq": torch.rand(1, 3, size, size), "lq": torch.rand(1, 3, size, size)}
    out = recipe.generator_step(model, batch, stage, None)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    for module in stage.trainable:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.get_submodule(module).parameters())
    return recipe, model, out


def test_paper_scale_config_builds_and_takes_a_predict_step_at_batch_1():
    recipe, _, _ = paper_scale_step("daefr/base", "predict")
    assert recipe.config.tokenizer.token_grid == 16 and recipe.config.tokenizer.codebook_dim == 256


def test_ablation_script_writes_one_table(tmp_path):
    spec = importlib.util.spec_from_file_location("daefr_ablation", REPO / "experiments" / "daefr" / "ablation.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    row = dict.fromkeys(script.COLUMNS, 0.5)
    specs = {
        f"runs/{run}/predict:{script.CODES_ALONE}": (label, "codes alone") for label, (_, run) in script.ROWS.items()
    }
    specs["daefr"] = ("bundled daefr, defaults", "defaults")
    results = {preset: {"models": {"lq-input": row, **dict.fromkeys(specs, row)}} for preset in script.PRESETS}
    table = script.ablation_markdown(results, specs, dict.fromkeys(script.ROWS, "batch 8, predict 1000 steps"))
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(script.PRESETS) * (1 + len(specs))  # header, then LQ input + 5 rows per preset
    assert "| heavy | + fusion (full DAEFR) | codes alone | 0.5000 |" in table
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    run = tmp_path / "run"
    (run / "predict").mkdir(parents=True)
    stages = [{"name": name, "steps": steps} for name, steps in (("associate", 300), ("predict", 1000), ("fusion", 9))]
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"batch_size": 8}, "stages": stages}))
    assert script.budget_of(run / "predict") == "batch 8, associate 300, predict 1000 steps"  # up to its stage
    faces = {  # per-face metrics: the row is better on IDD on 2 of 3 faces, by 0.1 on average
        "baseline": [("a", 0.5, 30.0), ("b", 0.6, 28.0), ("c", 0.7, 26.0)],
        "row": [("a", 0.3, 31.0), ("b", 0.5, 28.0), ("c", 0.7, 24.0)],
    }
    specs = {"base:w=0": ("baseline", "codes alone"), "row:w=0": ("row", "codes alone"), "daefr": ("bundled", "x")}
    for preset in script.PRESETS:
        for spec, name in (("base:w=0", "baseline"), ("row:w=0", "row")):
            folder = tmp_path / "out" / preset / slug(spec)
            folder.mkdir(parents=True)
            rows = "".join(f"{stem},{psnr},0.9,{idd},0.01,20\n" for stem, idd, psnr in faces[name])
            (folder / "metrics.csv").write_text("stem,psnr_y,ssim_y,idd,lmd,niqe\n" + rows)
    paired = [line for line in script.paired_markdown(tmp_path / "out", specs, "base:w=0") if line.startswith("| ")]
    assert len(paired) == 1 + len(script.PRESETS)  # header, then the one ablation row per preset
    assert paired[-1] == "| heavy | row | -0.1000 ± 0.0577 (2/3) | -0.3333 ± 0.8819 (1/3) |"

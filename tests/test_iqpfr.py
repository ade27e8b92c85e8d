"""`iqpfr` and IQPFR's quality conditioning: the quality prior and its calibration, `facemend score`, the data
filter by score, the conditioning (and that it leaves unconditioned models as they were), the dual codebook, the
discrete quality optimisation, the restorers' knobs, training through the real trainer, the paper-scale config."""

from __future__ import annotations

import importlib.util
import json
import time

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from facemend.cli import main
from facemend.config import ConfigError, build, to_dict
from facemend.errors import FacemendError
from facemend.methods.base import keep_input_knob
from facemend.methods.baseline.model import BaselineConfig, BaselineModel, BaselineRestorer
from facemend.methods.daefr.model import DaefrConfig, DaefrModel
from facemend.methods.iqpfr.model import IqpfrConfig, IqpfrModel, IqpfrRestorer
from facemend.methods.iqpfr.recipe import IqpfrRecipe, straight_through_codes
from facemend.methods.lookup import FIDELITY, QUALITY
from facemend.methods.registry import MODELS, recipe_for, resolve_model
from facemend.models.code_transformer import CodeTransformerConfig
from facemend.models.quality_conditioning import QualityConditioningConfig, quality_bins
from facemend.models.tokenizer import TokenizerConfig, VQTokenizer
from facemend.pipelines.benchmark import slug
from facemend.pipelines.score import read_calibration
from facemend.quality.prior import DEFAULT_SIZES, QualityPrior, QualityPriorConfig, calibrated_score, fit_calibration
from facemend.training.config import load_train_config
from facemend.weights import bundled, load_weights, save_weights
from test_daefr import changed_parts, check, paper_scale_step
from test_daefr import small_train_config as daefr_train_config
from test_training import run, stage_losses, tiny

TOKENIZER = TokenizerConfig(image_size=32, channels=8, channel_mults=(1, 2, 2), codebook_size=32, codebook_dim=8)
TRANSFORMER = CodeTransformerConfig(width=32, layers=1, heads=4, patch_size=2)
CONDITIONING = QualityConditioningConfig(prior=QualityPriorConfig(size=194, centre=8.0, scale=2.0))  # 194: cheap


def small(hqplus: bool = True) -> IqpfrConfig:
    return IqpfrConfig(
        tokenizer=TOKENIZER,
        transformer=TRANSFORMER,
        quality_conditioning=CONDITIONING,
        hqplus=hqplus,
        fusion_levels=(0, 1),
    )


def small_baseline(conditioned: bool) -> BaselineConfig:
    return BaselineConfig(
        tokenizer=TOKENIZER,
        transformer=TRANSFORMER,
        fusion_levels=(0, 1),
        quality_conditioning=CONDITIONING if conditioned else None,
    )


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def damaged_faces(astronaut_face) -> dict[str, np.ndarray]:
    """The 128-px astronaut face clean, blurred and noised (uint8 RGB)."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 20, astronaut_face.shape)
    return {
        "clean": astronaut_face,
        "blurred": cv2.GaussianBlur(astronaut_face, (0, 0), 2.0),
        "noised": np.clip(astronaut_face + noise, 0, 255).astype(np.uint8),
    }


@pytest.mark.parametrize("metric", ["niqe", "brisque"])
def test_prior_is_a_differentiable_score_in_0_1_lower_for_damaged_faces(metric, damaged_faces):
    prior = QualityPrior(QualityPriorConfig(metric=metric, size=DEFAULT_SIZES[metric]))  # NIQE 512, BRISQUE 128
    faces = torch.cat([as_tensor(face) for face in damaged_faces.values()])
    values = prior.values(faces)
    prior.config = fit_calibration(values.numpy(), metric, prior.config.size)  # in the faces' range: no saturation
    faces.requires_grad_(True)
    scores = prior(faces)
    assert scores.shape == (3,) and ((scores > 0) & (scores < 1)).all()
    clean, blurred, noised = scores.tolist()
    assert clean > noised
    if metric == "brisque":  # NIQE upsampled from 128 to 512 px prefers the blurred face (quality/prior.py)
        assert clean > blurred
    scores.sum().backward()
    assert torch.isfinite(faces.grad).all() and faces.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the prior computes in float32 under autocast too
        torch.testing.assert_close(prior(faces.detach()), scores.detach())


def test_calibration_fit_and_round_trip(tmp_path):
    values = np.random.default_rng(0).gamma(4.0, 1.5, 1000)
    calibration = fit_calibration(values, "niqe", 288)
    low, median, high = np.quantile(values, [0.25, 0.5, 0.75])
    half = (high - low) / 2
    scores = calibrated_score(torch.tensor([median - half, median, median + half, 100.0, -100.0]), calibration)
    torch.testing.assert_close(scores, torch.tensor([0.75, 0.5, 0.25, 0.0, 1.0], dtype=torch.float64))
    assert (
        0.5 < calibrated_score(torch.tensor(low), calibration) < 1
        and 0 < calibrated_score(torch.tensor(high), calibration) < 0.5
    )
    assert (calibration.metric, calibration.size) == ("niqe", 288) and build(
        QualityPriorConfig, to_dict(calibration)
    ) == calibration
    (tmp_path / "summary.json").write_text(json.dumps({"count": 1000, "calibration": to_dict(calibration)}))
    assert read_calibration(tmp_path / "summary.json") == calibration
    (tmp_path / "bare.json").write_text(json.dumps(to_dict(calibration)))
    assert read_calibration(tmp_path / "bare.json") == calibration
    assert fit_calibration([5.0, 5.0]).scale > 0  # no spread: the scale's floor
    (tmp_path / "bad.json").write_text(json.dumps({"calibration": {"size": 512, "centre": 5.0, "scale": 0}}))
    with pytest.raises(FacemendError, match=r"bad.json: calibration: scale must be > 0"):
        read_calibration(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match=r"model.quality_conditioning.prior: size must be >= 194 for niqe"):
        build(IqpfrConfig, {"quality_conditioning": {"prior": {"size": 128}}}, "model")
    with pytest.raises(ConfigError, match=r"model.quality_conditioning.prior: metric must be one of niqe, brisque"):
        build(IqpfrConfig, {"quality_conditioning": {"prior": {"metric": "musiq"}}}, "model")
    with pytest.raises(ConfigError, match=r"model.quality_conditioning: bins must be >= 2"):
        build(IqpfrConfig, {"quality_conditioning": {"bins": 1}}, "model")


@pytest.mark.parametrize("name", ["iqpfr/tiny", "baseline/q-tiny", "daefr/q-tiny"])
def test_training_refuses_a_prior_that_was_never_calibrated(name):
    from facemend.training.trainer import check_config

    committed = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    check_config(config := load_train_config(committed), recipe_for(config))  # calibrated by `facemend score`
    committed["model"]["quality_conditioning"]["prior"].update(centre=None, scale=None)
    config = load_train_config(committed)
    with pytest.raises(ConfigError, match=r"model\.quality_conditioning\.prior: not calibrated"):
        check_config(config, recipe_for(config))
    with pytest.raises(ValueError, match="not calibrated"):
        calibrated_score(torch.tensor([5.0]), QualityPriorConfig())
    with pytest.raises(ConfigError, match="centre and scale are fitted together"):
        build(QualityPriorConfig, {"centre": 5.0}, "prior")


def test_score_command_writes_scores_summary_and_histogram(damaged_faces, tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    for name, face in damaged_faces.items():
        cv2.imwrite(str(folder / f"{name}.png"), face[..., ::-1])
    out = tmp_path / "out"
    assert main(["score", str(folder), "-o", str(out), "--face-size", "128", "--metric", "brisque", "-q"]) == 0
    assert "prior: {metric: brisque, size: null, centre:" in capsys.readouterr().err
    lines = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [line["file"] for line in lines] == ["blurred.png", "clean.png", "noised.png"]
    assert all(set(line) == {"file", "brisque", "score"} for line in lines)
    by_file = {line["file"]: line["score"] for line in lines}
    assert by_file["clean.png"] > by_file["blurred.png"] and by_file["clean.png"] > by_file["noised.png"]  # as above
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 3 and summary["calibration_fitted"] and summary["face_size"] == 128
    assert summary["score"]["q50"] == pytest.approx(0.5, abs=1e-6)  # fitted to these faces: the median scores 0.5
    assert (out / "histogram.png").read_bytes().startswith(b"\x89PNG")

    summary_path = str(out / "summary.json")
    again = tmp_path / "again"
    assert main(["score", str(folder), "-o", str(again), "--face-size", "128", "--calibration", summary_path]) == 0
    assert json.loads((again / "scores.jsonl").read_text().splitlines()[0]) == lines[0]
    assert not json.loads((again / "summary.json").read_text())["calibration_fitted"]
    assert main(["score", str(folder), "-o", str(tmp_path / "niqe"), "-q"]) == 0  # the default: NIQE at 512 px
    assert json.loads((tmp_path / "niqe" / "summary.json").read_text())["calibration"]["size"] == 512

    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    for args in (
        ["score", str(tmp_path / "empty")],
        ["score", str(tmp_path / "nowhere")],
        ["score", str(folder), "--calibration", summary_path, "--size", "300"],
        ["score", str(folder), "--size", "100"],
    ):
        assert main([*args, "-o", str(tmp_path / "none")]) == 2
        error = capsys.readouterr().err
        assert error.startswith("facemend: error: ") and len(error.strip().splitlines()) == 1
        assert not (tmp_path / "none").exists()


def test_the_data_filter_keeps_exactly_the_faces_at_or_above_the_threshold(prepared_faces, tmp_path):
    from facemend.data.datasets import face_files, faces_scoring, read_scores

    files = face_files(prepared_faces / "train")
    scores_path = tmp_path / "scores.jsonl"
    scores_path.write_text("".join(json.dumps({"file": f.name, "score": i / 8}) + "\n" for i, f in enumerate(files)))
    scores = read_scores(scores_path)
    assert faces_scoring(files, scores, 0.5).tolist() == [4, 5, 6, 7]  # 0.5 itself is kept
    assert faces_scoring(files, scores, 0.0).tolist() == list(range(8))
    assert faces_scoring(files, scores, 1.0).tolist() == []
    with pytest.raises(FacemendError, match=r"data.scores: 1 of 8 training faces have no score \(first: face_07"):
        faces_scoring(files, {name: s for name, s in scores.items() if name != "face_07.png"}, 0.5)
    scores_path.write_text('{"file": "face_00.png"}\n')
    with pytest.raises(FacemendError, match=r"data.scores: .*scores.jsonl line 1: expected"):
        read_scores(scores_path)
    with pytest.raises(FacemendError, match=r"data.scores: .*missing.jsonl: cannot read"):
        read_scores(tmp_path / "missing.jsonl")

    config = train_config("iqpfr-tiny", prepared_faces, tmp_path)
    recipe_for(load_train_config(config))
    bad = yaml.safe_load(yaml.safe_dump(config))
    del bad["data"]["scores"]
    with pytest.raises(ConfigError, match=r"stages\[0\]\.method\.min_score: needs data.scores"):
        recipe_for(load_train_config(bad))
    bad = yaml.safe_load(yaml.safe_dump(config))
    bad["stages"][0]["method"]["min_score"] = 1.5
    with pytest.raises(ConfigError, match=r"stages\[0\]\.method: min_score must be in \[0, 1\], got 1.5"):
        recipe_for(load_train_config(bad))
    bad = yaml.safe_load(yaml.safe_dump(config))
    bad["data"]["scores"] = "scores.csv"
    with pytest.raises(ConfigError, match=r"data: scores must be a .jsonl file"):
        load_train_config(bad)


def test_quality_conditioning_moves_the_logits_by_bin_and_is_absent_when_off():
    scores, bins = [0.0, 0.05, 0.1, 0.2, 0.3, 0.7, 0.9, 0.95, 1.0], [0, 0, 1, 2, 3, 7, 9, 9, 9]
    assert quality_bins(torch.tensor(scores), 10).tolist() == bins  # knob values on a bin edge stay in that bin
    torch.manual_seed(0)
    lq = torch.rand(2, 3, 32, 32)
    for model in (BaselineModel(small_baseline(True)), DaefrModel(daefr_config(True)), IqpfrModel(small())):
        model.eval()
        with torch.no_grad():
            low, high, top, default = (model(lq, quality=q).logits for q in (0.1, 0.9, 1.0, None))
            per_face = model(lq, quality=torch.tensor([0.1, 0.9])).logits
        assert (low - high).abs().max() > 1e-4  # another bin: other logits
        assert torch.equal(high, top) and torch.equal(top, default)  # 0.9 and 1.0 share the top bin, the default
        torch.testing.assert_close(per_face, torch.stack([low[0], high[1]]))

    plain, conditioned = BaselineModel(small_baseline(False)), BaselineModel(small_baseline(True))
    keys = set(conditioned.state_dict())
    assert set(plain.state_dict()) == {key for key in keys if not key.startswith("quality_embedding.")} != keys
    assert plain.quality_embedding is None and set(DaefrModel(daefr_config(False)).state_dict()) == set(
        DaefrModel(daefr_config(True)).state_dict()
    ) - {"quality_embedding.embedding.weight"}
    with pytest.raises(ValueError, match="without quality conditioning"):
        plain(lq, quality=0.5)
    restorer = BaselineRestorer.from_weights(bundled("baseline-tiny"))  # its config has no such field: loads as before
    assert restorer.knobs == (FIDELITY,) and restorer.model.quality_embedding is None


def daefr_config(conditioned: bool) -> DaefrConfig:
    return DaefrConfig(
        tokenizer=TOKENIZER,
        transformer=TRANSFORMER,
        combine="hq_only",
        attention_heads=2,
        fusion_levels=(0, 1),
        quality_conditioning=CONDITIONING if conditioned else None,
    )


def test_the_dual_codebook_decodes_08_hqplus_plus_1_common():
    torch.manual_seed(0)
    model = IqpfrModel(small()).eval()
    with torch.no_grad():
        model.hqplus.codebook.normal_()  # a codebook of its own, as after the HQ+ stage
    common, hqplus = torch.randint(0, 32, (2, 8, 8)), torch.randint(0, 32, (2, 8, 8))
    expected = model.tokenizer.quantizer.lookup(common) + 0.8 * model.hqplus.lookup(hqplus)
    torch.testing.assert_close(model.codes(common, hqplus), expected)
    lq, hq = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(lq, fidelity=0.0, hq=hq)
        decoded = model.tokenizer.decoder(model.codes(out.indices, out.hqplus_indices))
        latent = model.tokenizer.encoder(hq)
    assert out.logits.shape == out.hqplus_logits.shape == (2, 64, 32) and out.hqplus_indices.shape == (2, 8, 8)
    torch.testing.assert_close(out.images, decoded)  # w = 0: the combined codes, decoded
    assert torch.equal(out.target_indices, model.tokenizer.quantizer(latent).indices)  # each codebook's nearest
    assert torch.equal(out.hqplus_target_indices, model.hqplus.indices(latent))
    assert not torch.equal(out.target_indices, out.hqplus_target_indices)

    ablation = IqpfrModel(small(hqplus=False)).eval()
    assert not hasattr(ablation, "hqplus") and ablation.transformer.head.out_features == 32 * 4  # 2×2 patches
    with torch.no_grad():
        out = ablation(lq, fidelity=0.0)
    assert out.hqplus_logits is None and out.hqplus_indices is None
    torch.testing.assert_close(out.images, ablation.tokenizer.decoder(ablation.tokenizer.quantizer.lookup(out.indices)))


def test_the_quality_loss_decodes_the_argmax_codes_and_reaches_the_transformer():
    torch.manual_seed(0)
    recipe = IqpfrRecipe(to_dict(small()), {})
    model = recipe.build_model().eval().requires_grad_(False)
    model.transformer.requires_grad_(True)
    lq, hq = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    out = model(lq, hq=hq, quality=torch.tensor([0.3, 0.8]))
    codebook = model.tokenizer.quantizer.normalized_codebook()
    codes = straight_through_codes(out.logits, codebook, 8, 8)
    torch.testing.assert_close(codes, model.tokenizer.quantizer.lookup(out.indices))  # forward: the argmax codes
    loss, score = recipe.quality_loss(model, out, torch.ones(2))
    with torch.no_grad():
        decoded = model.tokenizer.decoder(model.codes(out.indices, out.hqplus_indices)).clamp(0, 1)
        expected = recipe.quality_prior(CONDITIONING.prior, decoded.device)(decoded)
    # forward, the codes are the argmax codes up to rounding (a + (b − a) ≠ b), which float32 NIQE feels a little
    torch.testing.assert_close(score, expected, atol=1e-2, rtol=0)
    torch.testing.assert_close(loss, (1 - score).mean())
    loss.backward()
    assert model.transformer.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.tokenizer.parameters())
    low, _ = recipe.quality_loss(model, out, torch.zeros(2))
    assert low.item() == 0.0  # a target already met asks for nothing


@pytest.fixture
def weights_folder(tmp_path):
    torch.manual_seed(0)
    model = IqpfrModel(small())
    for block in model.fusion.blocks.values():  # away from the identity initialisation, as after training
        torch.nn.init.normal_(block.shift.weight, std=0.1)
    with torch.no_grad():
        model.quality_embedding.embedding.weight.mul_(50)  # a conditioning that moves the codes, as after training
    save_weights(tmp_path / "iqpfr", "iqpfr", to_dict(small()), model.state_dict())
    return tmp_path / "iqpfr"


def test_restorer_knobs_round_trip_without_the_training_only_encoder(weights_folder, tmp_path):
    restorer, knobs = resolve_model(f"{weights_folder}:quality=0.3,fidelity=0.5")
    keep = IqpfrRestorer.default_keep_input
    assert isinstance(restorer, IqpfrRestorer) and knobs == {"fidelity": 0.5, "quality": 0.3, "keep_input": keep}
    assert restorer.knobs == (FIDELITY, QUALITY, keep_input_knob(keep)) and QUALITY.default == 1.0
    saved = IqpfrRestorer.inference_state(load_weights(weights_folder, "iqpfr").state_dict)
    assert not hasattr(restorer.model.tokenizer, "encoder")  # training-only: it gives the HQ faces' codes
    assert not any(key.startswith("tokenizer.encoder.") for key in saved) and "hqplus.codebook" in saved
    state = restorer.model.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[key], value) for key, value in saved.items())
    faces = torch.rand(3, 3, 48, 48)
    out = restorer(faces, **knobs)
    assert out.shape == faces.shape and out.min() >= 0 and out.max() <= 1
    by_quality = {q: restorer(faces, fidelity=0.0, quality=q) for q in (0.1, 0.9, 1.0)}
    assert (by_quality[0.1] - by_quality[0.9]).abs().mean() > 1e-4
    assert torch.equal(by_quality[0.9], by_quality[1.0]) and torch.equal(restorer(faces, fidelity=0.0), by_quality[1.0])
    assert (restorer(faces, fidelity=1.0) - by_quality[1.0]).abs().mean() > 1e-4
    assert restorer.code_accuracy(faces, torch.rand(3, 3, 32, 32), quality=0.3) is None
    with pytest.raises(FacemendError, match=r"knob 'quality' must be in \[0.0, 1.0\]"):
        restorer(faces, quality=1.5)
    specs = restorer.network_specs(batch=2)["restore"]
    assert list(specs.inputs) == ["faces", "fidelity", "quality"]
    assert restorer.networks["restore"](*specs.inputs.values()).shape == (2, 3, 32, 32)

    for conditioned in (True, False):  # the plug-in: a baseline-q weights folder has the knob, a baseline one not
        config = small_baseline(conditioned)
        folder = tmp_path / f"baseline-{conditioned}"
        save_weights(folder, "baseline", to_dict(config), BaselineModel(config).state_dict())
        if conditioned:
            restorer, knobs = resolve_model(f"{folder}:quality=0.2")
            assert knobs == {"fidelity": 1.0, "quality": 0.2} and restorer(faces, **knobs).shape == faces.shape
        else:
            with pytest.raises(FacemendError, match=r"has no knob 'quality'; its knobs: fidelity"):
                resolve_model(f"{folder}:quality=0.2")


def test_onnx_export_takes_quality_as_an_input(weights_folder, tmp_path):
    from facemend.runtime import export_onnx, with_runtime

    restorer = IqpfrRestorer.from_folder(weights_folder)
    export_onnx(restorer, tmp_path / "iqpfr.onnx")
    onnx_restorer = with_runtime(restorer, "onnx", onnx_path=tmp_path / "iqpfr.onnx")
    faces = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for quality in (0.2, 1.0):
        expected = restorer(faces, precision="fp32", fidelity=0.0, quality=quality)
        assert (onnx_restorer(faces, fidelity=0.0, quality=quality) - expected).abs().max().item() < 1e-3


def train_config(name: str, prepared_faces, tmp_path) -> dict:
    """configs/NAME.yaml on a small model, 32-px faces and a prior at 194 px, 2 steps a stage, starting from a
    random tokenizer; train faces scored i / 8 (face_0i.png) in a scores.jsonl."""
    config = tiny(name, prepared_faces, tmp_path, steps=2)
    config["data"].update(size=32, batch_size=2, val_faces=2)
    config["discriminator"] = {"channels": 8, "layers": 2}
    torch.manual_seed(0)
    save_weights(tmp_path / "hq", "tokenizer", to_dict(TOKENIZER), VQTokenizer(TOKENIZER).state_dict())
    model = small(config["model"].get("hqplus", True)) if config["recipe"] == "iqpfr" else small_baseline(True)
    config["model"] = to_dict(model)
    config["stages"][0]["init"] = str(tmp_path / "hq")
    if "scores" in config["data"]:
        scores = tmp_path / "scores.jsonl"
        scores.write_text("".join(json.dumps({"file": f"face_{i:02d}.png", "score": i / 8}) + "\n" for i in range(8)))
        config["data"]["scores"] = str(scores)
        config["stages"][0]["method"] = {"min_score": 0.5}
    return config


@pytest.mark.parametrize("name", ["iqpfr-tiny", "iqpfr-tiny-ablation-no-hqplus", "baseline-q-tiny", "daefr-q-tiny"])
def test_each_stage_trains_what_it_names_through_the_trainer(name, prepared_faces, tmp_path, capsys):
    if name == "daefr-q-tiny":
        config = daefr_train_config(name, prepared_faces, tmp_path)
        config["model"]["quality_conditioning"] = to_dict(CONDITIONING)
    else:
        config = train_config(name, prepared_faces, tmp_path)
    result = run(config)
    assert result.finished
    stages = config["stages"]
    kind = config["recipe"]
    exports = {stage["name"]: load_weights(result.run_dir / stage["name"], kind).state_dict for stage in stages}
    for previous, stage in zip(stages, stages[1:], strict=False):
        assert changed_parts(exports[previous["name"]], exports[stage["name"]], stage["trainable"]) == set(
            stage["trainable"]
        )
    if name == "iqpfr-tiny":
        assert "hqplus: 4 of 8 training faces (50.0%) score >= 0.5" in capsys.readouterr().out
        prior, hqplus = load_weights(tmp_path / "hq").state_dict, exports["hqplus"]
        unchanged = {key: torch.equal(hqplus[f"tokenizer.{key}"], value) for key, value in prior.items()}
        assert all(same for key, same in unchanged.items() if not key.startswith("decoder."))  # encoder, codebook
        assert not all(same for key, same in unchanged.items() if key.startswith("decoder."))  # fine-tuned
        assert not torch.equal(hqplus["hqplus.codebook"], prior["quantizer.codebook"])  # started as a copy, learned
        assert stage_losses(result.run_dir, "hqplus", "l1") and stage_losses(result.run_dir, "predict", "hqplus_acc")
    if kind == "iqpfr":
        assert len(stage_losses(result.run_dir, "predict", "quality")) == 2
    assert stage_losses(result.run_dir, stages[-1]["name"], "l1")
    if "identity" in stages[-1]["losses"]:  # the identity stage after the fusion
        assert stage_losses(result.run_dir, stages[-1]["name"], "identity")


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("iqpfr-tiny", {"method": {}}, r"stages\[0\]\.method\.min_score: the HQ\+ stage .* learns from the faces"),
        ("iqpfr-tiny", {"losses": {"l1": 1.0, "code_ce": 1.0}}, r"stages\[0\]\.losses\.code_ce: the HQ\+ stage"),
        ("iqpfr-tiny-ablation-no-hqplus", {"trainable": ["hqplus"]}, r"stages\[0\]\.trainable: no module 'hqplus'"),
    ],
)
def test_stage_errors_name_the_field(name, change, message, prepared_faces, tmp_path):
    config = train_config(name, prepared_faces, tmp_path)
    check(config)
    config["stages"][0].update(change)
    with pytest.raises(ConfigError, match=message):
        check(config)


def test_untrained_models_say_how_to_get_them():
    for name, config in (
        ("iqpfr-base", "iqpfr/base"),
        ("baseline-q", "baseline/q-tiny"),
        ("daefr-q", "daefr/q-tiny"),
    ):
        blends = [] if name == "baseline-q" else ["keep_input"]  # iqpfr's and daefr's input blends
        assert [knob.name for knob in MODELS[name].knobs] == ["fidelity", "quality", *blends]
        with pytest.raises(FacemendError, match=rf"'{name}' has no bundled weights: train it .*configs/{config}.yaml"):
            resolve_model(name)
        assert (REPO / "configs" / f"{config}.yaml").is_file()


def test_bundled_iqpfr_restores_and_its_quality_knob_steers_it():
    restorer, knobs = resolve_model("iqpfr")
    assert isinstance(restorer, IqpfrRestorer) and restorer.face_size == 128
    keep = IqpfrRestorer.default_keep_input
    assert knobs == {"fidelity": 1.0, "quality": 1.0, "keep_input": keep}
    assert not hasattr(restorer.model.tokenizer, "encoder")  # bundled without the training-only encoder
    faces = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    top = restorer(faces, precision="fp32", fidelity=0.0, keep_input=0.0)
    assert (top - faces).abs().mean() > 0.01  # the model changes the face
    assert (restorer(faces, precision="fp32", fidelity=0.0, quality=0.2, keep_input=0.0) - top).abs().mean() > 1e-3
    blended = restorer(faces, precision="fp32", fidelity=0.0)  # the default blend mixes the input back in
    assert (blended - (keep * faces + (1 - keep) * top)).abs().mean() < 1e-3


def test_paper_scale_config_builds_and_takes_a_predict_step_at_batch_1():
    began = time.perf_counter()
    prior = {"metric": "niqe", "size": 512, "centre": 8.0, "scale": 2.0}  # any calibration: the config has none
    recipe, model, out = paper_scale_step("iqpfr/base", "predict", prior)  # 512 px; with the quality loss
    print(f"iqpfr-base: built and one predict step at batch 1 in {time.perf_counter() - began:.1f} s")
    assert recipe.config.tokenizer.token_grid == 16 and recipe.config.tokenizer.codebook_dim == 256
    assert model.transformer.head.out_features == 2 * 1024 and "quality" in out.logs


def report_script():
    spec = importlib.util.spec_from_file_location("iqpfr_report", REPO / "experiments" / "iqpfr" / "report.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_report_script_writes_one_table():
    script = report_script()
    models = {label: f"runs/{option}/fusion" for label, (option, *_) in script.MODELS.items() if label != "daefr-q"}
    rows = script.report_rows(models, [0.0, 1.0])
    assert len(rows) == 2 * (len(script.SWEEP) + len(models)) + 1  # + iqpfr at its defaults, for the bar
    assert rows[-1] == (models["iqpfr"], ("bar", "iqpfr (defaults)", "1", "1"))
    assert all("keep_input=0" in spec for spec, (section, *_) in rows if section == "sweep")
    row = dict.fromkeys(script.COLUMNS, 0.5)
    results = {preset: {"models": {"lq-input": row, **{s: row for s, _ in rows}}} for preset in script.PRESETS}
    table = script.report_markdown(results, rows, {"daefr-q": "runs/daefr-q-tiny/fusion"})
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(script.PRESETS) * (1 + len(rows))
    assert "| heavy | sweep | iqpfr | 0.6 | 1 | " in table and "| medium | comparison | baseline | – | 0 |" in table
    assert "Not trained yet (left out): daefr-q" in table
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_report_script_checks_the_sweep_and_pairs_conditioned_with_unconditioned_models(tmp_path):
    script = report_script()
    ablation = "iqpfr without the HQ+ codebook"
    models = {"baseline": "baseline", "baseline-q": "runs/bq/fusion", "iqpfr": "runs/iq/fusion", ablation: "runs/nh"}
    rows = script.report_rows(models, [0.0])
    niqe = dict(zip(script.SWEEP, (6.0, 5.5, 5.6, 5.0, 4.5), strict=True))  # improves at 3 of the 4 steps
    results = {}
    for preset in script.PRESETS:
        scores = {spec: {"niqe": 5.0, "brisque": 30.0} for spec, _ in rows}
        for quality, value in niqe.items():
            scores[script.spec_of(rows, "sweep", "iqpfr", f"{quality:g}", "0")] = {"niqe": value, "brisque": 30.0}
        results[preset] = {"models": scores}
    sweep = script.sweep_markdown(results, rows)
    assert (
        "- heavy, w = 0: NIQE improves at 3 of 4 steps (6.000 → 4.500); "
        "BRISQUE improves at 0 of 4 steps (30.000 → 30.000)" in sweep
    )
    faces = {  # baseline-q is better than baseline on NIQE on 2 of 3 faces, by 0.2 on average
        "baseline": [("a", 5.0), ("b", 6.0), ("c", 7.0)],
        "runs/bq/fusion:fidelity=0,quality=1": [("a", 4.5), ("b", 5.9), ("c", 7.0)],
    }
    for preset in script.PRESETS:
        for spec, _ in rows:
            folder = tmp_path / preset / slug(spec)
            folder.mkdir(parents=True, exist_ok=True)  # iqpfr at quality 1 is a sweep and a comparison row
            values = faces.get(spec.removesuffix(":fidelity=0"), [("a", 5.0), ("b", 5.0), ("c", 5.0)])
            lines = "".join(f"{stem},30.0,0.4,{value},,\n" for stem, value in values)
            (folder / "metrics.csv").write_text("stem,psnr_y,idd,niqe,brisque,unused\n" + lines)
    paired = [line for line in script.paired_markdown(tmp_path, rows) if line.startswith("| ")]
    # header; per preset: baseline-q − baseline, iqpfr − its ablation, iqpfr at quality 1 − 0.2
    assert len(paired) == 1 + len(script.PRESETS) * 3
    assert paired[2].startswith(f"| medium | 0 | iqpfr (q = 1) | {ablation} (q = 1) | +0.0000")
    assert paired[1] == (
        "| medium | 0 | baseline-q (q = 1) | baseline | +0.0000 ± 0.0000 (0/3) | +0.0000 ± 0.0000 (0/3) "
        "| -0.2000 ± 0.1528 (2/3) | – |"
    )

"""The `baseline` restorer: built from a weights folder, fidelity knob, code accuracy, clear errors."""

from __future__ import annotations

import pytest
import torch

from facemend.config import to_dict
from facemend.errors import FacemendError
from facemend.methods.baseline.model import BaselineConfig, BaselineModel, BaselineRestorer
from facemend.models.code_transformer import CodeTransformerConfig
from facemend.models.tokenizer import TokenizerConfig
from facemend.weights import save_weights

SMALL = BaselineConfig(
    tokenizer=TokenizerConfig(image_size=32, channels=8, channel_mults=(1, 2, 2), codebook_size=64, codebook_dim=8),
    transformer=CodeTransformerConfig(width=32, layers=1, heads=4),
    fusion_levels=(0, 1),
)


@pytest.fixture
def weights_folder(tmp_path):
    torch.manual_seed(0)
    model = BaselineModel(SMALL)
    for block in model.fusion.blocks.values():  # away from the identity initialisation, as after training
        torch.nn.init.normal_(block.shift.weight, std=0.1)
    save_weights(tmp_path / "baseline", "baseline", to_dict(SMALL), model.state_dict())
    return tmp_path / "baseline"


def test_restores_faces_of_any_size_at_its_own(weights_folder):
    restorer = BaselineRestorer.from_folder(weights_folder)
    assert restorer.face_size == 32
    faces = torch.rand(3, 3, 48, 48)
    restored = restorer(faces)
    assert restored.shape == faces.shape
    assert restored.min() >= 0.0 and restored.max() <= 1.0


def test_fidelity_moves_the_output_and_zero_is_the_codebook_answer(weights_folder):
    restorer = BaselineRestorer.from_folder(weights_folder)
    faces = torch.rand(2, 3, 32, 32)
    lookup = restorer(faces, fidelity=0.0)
    with torch.inference_mode():
        out = restorer.model(faces)
        decoded = restorer.model.tokenizer.decode_indices(out.indices).clamp(0, 1)
    torch.testing.assert_close(lookup, decoded)
    assert (restorer(faces, fidelity=1.0) - lookup).abs().mean() > 1e-3
    with pytest.raises(FacemendError, match=r"knob 'fidelity' must be in \[0.0, 1.0\]"):
        restorer(faces, fidelity=1.5)


def test_code_accuracy_compares_predicted_and_target_codes(weights_folder):
    restorer = BaselineRestorer.from_folder(weights_folder)
    faces, targets = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    accuracy = restorer.code_accuracy(faces, targets)
    assert accuracy.shape == (4,) and ((accuracy >= 0) & (accuracy <= 1)).all()
    with torch.inference_mode():
        out = restorer.model(faces, hq=targets)
    assert torch.equal(accuracy, (out.indices == out.target_indices).float().mean(dim=(1, 2)))


def test_wrong_or_damaged_weights_are_refused(weights_folder, tmp_path):
    from facemend.models.tokenizer import VQTokenizer

    save_weights(tmp_path / "tok", "tokenizer", to_dict(SMALL.tokenizer), VQTokenizer(SMALL.tokenizer).state_dict())
    with pytest.raises(FacemendError, match="holds 'tokenizer' weights, expected 'baseline'"):
        BaselineRestorer.from_folder(tmp_path / "tok")
    config = (weights_folder / "config.json").read_text()
    (weights_folder / "config.json").write_text(config.replace('"codebook_size": 64', '"codebook_size": 128'))
    with pytest.raises(FacemendError, match="weights do not fit the model: .*wrong shape"):
        BaselineRestorer.from_folder(weights_folder)
    (weights_folder / "config.json").write_text(config.replace('"codebook_size": 64', '"codebook_size": -1'))
    with pytest.raises(FacemendError, match="codebook_size must be >= 1"):
        BaselineRestorer.from_folder(weights_folder)


def test_a_weights_folder_is_a_model_spec(weights_folder, tmp_path):
    from facemend.methods.registry import resolve_model
    from facemend.models.tokenizer import VQTokenizer

    restorer, knobs = resolve_model(f"{weights_folder}:fidelity=0.25")
    assert isinstance(restorer, BaselineRestorer) and knobs == {"fidelity": 0.25}
    assert restorer(torch.rand(1, 3, 32, 32), **knobs).shape == (1, 3, 32, 32)
    save_weights(tmp_path / "tok", "tokenizer", to_dict(SMALL.tokenizer), VQTokenizer(SMALL.tokenizer).state_dict())
    with pytest.raises(FacemendError, match="holds 'tokenizer' weights, which restore nothing"):
        resolve_model(str(tmp_path / "tok"))
    with pytest.raises(FacemendError, match="not a weights folder"):
        resolve_model(str(tmp_path / "nothing-here"))


def test_paper_scale_model_without_weights_says_how_to_get_them():
    from facemend.methods.registry import resolve_model

    with pytest.raises(FacemendError, match=r"'baseline-base' has no bundled weights: train it .*--model runs/"):
        resolve_model("baseline-base")


def test_bundled_baseline_fidelity_trades_pixels_for_the_prior(astronaut_face):
    from facemend.data.degradation import PRESETS, degrade, image_rng, sample_params
    from facemend.methods.registry import load_restorer
    from facemend.metrics.pixel import psnr

    restorer = load_restorer("baseline")
    assert restorer.face_size == 128
    rng = image_rng(0, "astronaut")
    lq = degrade(astronaut_face, sample_params(rng, PRESETS["medium"], 128), rng)
    clean, lq = (torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 for x in (astronaut_face, lq))
    by_fidelity = {w: restorer(lq, fidelity=w) for w in (0.0, 1.0)}
    assert psnr(by_fidelity[1.0], clean) > psnr(by_fidelity[0.0], clean) + 1.0
    assert psnr(by_fidelity[1.0], clean) > psnr(lq, clean)
    # the LQ encoder of a trained model predicts most of a clean face's own codes
    assert restorer.code_accuracy(clean, clean).item() > 0.4
    # bf16 autocast (the default where the CPU has it) stays close to fp32
    bf16 = restorer(lq, precision="bf16", fidelity=1.0)
    assert bf16.dtype == torch.float32 and psnr(bf16, by_fidelity[1.0]) > 38.0
    assert abs(psnr(bf16, clean) - psnr(by_fidelity[1.0], clean)) < 0.1


def test_precision_is_checked_and_auto_follows_the_cpu():
    from facemend.precision import resolve_precision

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert resolve_precision("auto") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32") == "fp32"
    with pytest.raises(FacemendError, match="precision must be one of auto, bf16, fp32, got 'fp16'"):
        resolve_precision("fp16")


def test_fusion_stage_can_start_from_weights_with_other_fused_levels(weights_folder):
    from facemend.methods.baseline.recipe import BaselineRecipe
    from facemend.training.config import StageConfig
    from facemend.weights import load_weights

    more_levels = to_dict(SMALL) | {"fusion_levels": [0, 1, 2]}
    recipe = BaselineRecipe(more_levels, {})
    model = recipe.build_model()
    fresh_fusion = {key: value.clone() for key, value in model.state_dict().items() if key.startswith("fusion.")}
    stage = StageConfig(name="fusion", steps=1, trainable=("fusion",), losses={"l1": 1.0})
    weights = load_weights(weights_folder, "baseline")
    recipe.initialize(model, weights, stage)
    state = model.state_dict()
    kept = {key: value for key, value in weights.state_dict.items() if not key.startswith("fusion.")}
    assert all(torch.equal(state[key], value) for key, value in kept.items())
    assert all(torch.equal(state[key], value) for key, value in fresh_fusion.items())


def test_fidelity_draw_is_uniform_or_at_the_two_ends():
    from facemend.training.fusion_stage import draw_fidelity

    torch.manual_seed(0)
    uniform = draw_fidelity(4000, None, "cpu")
    assert uniform.min() > 0.0 and uniform.max() < 1.0 and abs(uniform.mean() - 0.5) < 0.03
    ends = draw_fidelity(4000, 0.75, "cpu")
    assert set(ends.unique().tolist()) == {0.0, 1.0} and abs(ends.mean() - 0.75) < 0.03

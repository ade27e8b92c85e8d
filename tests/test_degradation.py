"""Tests for facemend.data.degradation: presets, sampling and scaling, degrading, reproducibility, files."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemend.data.degradation import (
    PRESETS,
    DegradationParams,
    DegradeSummary,
    Preset,
    degrade,
    degrade_file,
    degrade_folder,
    gaussian_kernel,
    get_preset,
    image_rng,
    sample_params,
)
from facemend.errors import FacemendError

PARAM_KEYS = {"blur_sigma_x", "blur_sigma_y", "blur_angle", "scale", "noise_sigma", "jpeg_quality", "gray"}

# ------------------------------------------------------------------------------------------------ helpers


def synthetic_face(size: int | tuple[int, int], seed: int) -> np.ndarray:
    """A face-like H×W×3 uint8 RGB image: smooth gradient background, skin ellipse, eyes, mouth, texture."""
    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    top, bottom = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    image = top + (bottom - top) * (y / max(1, height - 1))[..., None]
    skin = rng.uniform([150, 100, 80], [240, 190, 160])
    centre = (width // 2, height // 2)
    axes = (int(width * 0.3), int(height * 0.4))
    cv2.ellipse(image, centre, axes, 0, 0, 360, skin.tolist(), -1)
    for side in (-1, 1):
        eye = (width // 2 + side * width // 8, int(height * 0.42))
        cv2.circle(image, eye, max(1, width // 24), (30, 30, 30), -1)
        cv2.line(
            image,
            (eye[0] - width // 14, eye[1] - height // 14),
            (eye[0] + width // 14, eye[1] - height // 14),
            (60, 40, 30),
            max(1, width // 64),
        )
    cv2.ellipse(image, (width // 2, int(height * 0.68)), (width // 10, height // 30), 0, 0, 360, (150, 50, 60), -1)
    texture = cv2.GaussianBlur(rng.normal(0, 12, (height, width)).astype(np.float32), (0, 0), 0.7)
    image = image + texture[..., None] + rng.normal(0, 3, (height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path → bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 8 synthetic faces: six at 128 px, two at 512 px (module-scoped, read-only)."""
    folder = tmp_path_factory.mktemp("faces")
    for i in range(6):
        write_png(folder / f"face{i:02d}.png", synthetic_face(128, i))
    for i in range(6, 8):
        write_png(folder / f"face{i:02d}.png", synthetic_face(512, i))
    return folder


def mean_psnr(out: Path) -> float:
    values = [psnr(read_png(out / "lq" / p.name), read_png(p)) for p in sorted((out / "hq").glob("*.png"))]
    assert values
    return float(np.mean(values))


# ------------------------------------------------------------------------------------------------ presets


def test_presets_are_the_contracts_ranges() -> None:
    expected = {
        "mild": Preset((0.1, 5.0), (1.0, 4.0), (0.0, 5.0), (70, 100)),
        "medium": Preset((0.1, 10.0), (1.0, 12.0), (0.0, 15.0), (60, 100)),
        "heavy": Preset((1.0, 15.0), (4.0, 30.0), (0.0, 20.0), (30, 80)),
    }
    assert expected == PRESETS
    assert get_preset("heavy") is PRESETS["heavy"]


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(FacemendError, match="extreme") as info:
        get_preset("extreme")
    assert all(name in str(info.value) for name in PRESETS)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------ rng


def test_image_rng_depends_on_seed_and_stem_only() -> None:
    assert image_rng(3, "abc").random() == image_rng(3, "abc").random()
    assert image_rng(3, "abc").random() != image_rng(4, "abc").random()
    assert image_rng(3, "abc").random() != image_rng(3, "abd").random()
    assert image_rng(0, "").random() != image_rng(0, "a").random()
    with pytest.raises(FacemendError, match="seed"):
        image_rng(-1, "abc")


def test_image_rng_is_stable_across_processes() -> None:
    code = "from facemend.data.degradation import image_rng; print(repr(image_rng(0, 'abc').random()))"
    expected = repr(image_rng(0, "abc").random())
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected


# ------------------------------------------------------------------------------------------------ sampling


def draw(preset: str, size: int, n: int = 2000, gray_prob: float = 0.0) -> list[DegradationParams]:
    rng = np.random.default_rng(123)
    return [sample_params(rng, PRESETS[preset], size, gray_prob) for _ in range(n)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_sampled_ranges_span_the_preset_at_512(name: str) -> None:
    preset = PRESETS[name]
    params = draw(name, 512)
    sigmas = np.array([s for p in params for s in (p.blur_sigma_x, p.blur_sigma_y)])
    scales = np.array([p.scale for p in params])
    noises = np.array([p.noise_sigma for p in params])
    qualities = np.array([p.jpeg_quality for p in params])
    for values, (low, high) in [
        (sigmas, preset.blur_sigma),
        (scales, preset.scale),
        (noises, preset.noise_sigma),
    ]:
        assert low <= values.min() and values.max() <= high
        assert values.min() < low + 0.02 * (high - low) and values.max() > high - 0.02 * (high - low)
    assert qualities.min() == preset.jpeg_quality[0] and qualities.max() == preset.jpeg_quality[1]
    assert qualities.dtype.kind == "i"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_sigma_and_scale_shrink_with_the_face_size(name: str) -> None:
    preset = PRESETS[name]
    params = draw(name, 128)
    sigmas = np.array([s for p in params for s in (p.blur_sigma_x, p.blur_sigma_y)])
    scales = np.array([p.scale for p in params])
    low, high = preset.blur_sigma
    assert low * 0.25 <= sigmas.min() < (low + 0.02 * (high - low)) * 0.25
    assert (high - 0.02 * (high - low)) * 0.25 < sigmas.max() <= high * 0.25
    low, high = preset.scale
    assert scales.min() >= 1.0
    if high * 0.25 <= 1.0:
        assert scales.max() == 1.0
    else:
        assert (high - 0.02 * (high - low)) * 0.25 < scales.max() <= high * 0.25
    # r is clipped to 1, never below: the share at exactly 1 is the share of draws with r × 0.25 < 1
    clipped_share = float(np.mean(scales == 1.0))
    expected_share = float(np.clip((4.0 - low) / (high - low), 0.0, 1.0))
    assert clipped_share == pytest.approx(expected_share, abs=0.04)
    # δ and q do not depend on the size
    assert max(p.noise_sigma for p in params) <= preset.noise_sigma[1]
    assert {p.jpeg_quality for p in params} <= set(range(preset.jpeg_quality[0], preset.jpeg_quality[1] + 1))


def test_mild_never_downsamples_a_128_face() -> None:
    assert {p.scale for p in draw("mild", 128, 500)} == {1.0}


def test_anisotropic_share_is_about_half() -> None:
    params = draw("medium", 512, 4000)
    anisotropic = [p for p in params if p.blur_sigma_x != p.blur_sigma_y or p.blur_angle != 0.0]
    assert len(anisotropic) / len(params) == pytest.approx(0.5, abs=0.03)
    assert all(0.0 <= p.blur_angle < math.pi for p in anisotropic)
    assert all(p.blur_angle == 0.0 for p in params if p.blur_sigma_x == p.blur_sigma_y)
    rng = np.random.default_rng(0)
    assert all(
        p.blur_sigma_x == p.blur_sigma_y for p in (sample_params(rng, PRESETS["mild"], 512, 0, 0) for _ in range(200))
    )


def test_gray_only_with_gray_prob() -> None:
    assert not any(p.gray for p in draw("heavy", 512, 1000))
    share = np.mean([p.gray for p in draw("heavy", 512, 4000, gray_prob=0.3)])
    assert share == pytest.approx(0.3, abs=0.03)
    assert all(p.gray for p in draw("mild", 256, 200, gray_prob=1.0))


def test_gray_prob_does_not_change_the_other_draws() -> None:
    colour = sample_params(image_rng(5, "x"), PRESETS["medium"], 256, 0.0)
    grey = sample_params(image_rng(5, "x"), PRESETS["medium"], 256, 1.0)
    assert grey.gray and not colour.gray
    assert {**grey.to_dict(), "gray": False} == colour.to_dict()


def test_params_to_dict_is_json_ready_with_the_contract_keys() -> None:
    params = sample_params(image_rng(1, "a"), PRESETS["heavy"], 300, 0.5)
    data = params.to_dict()
    assert set(data) == PARAM_KEYS
    assert json.loads(json.dumps(data)) == data
    assert type(data["jpeg_quality"]) is int and type(data["gray"]) is bool
    assert all(type(data[k]) is float for k in PARAM_KEYS - {"jpeg_quality", "gray"})


# ------------------------------------------------------------------------------------------------ degrade


@pytest.mark.parametrize(("sx", "sy", "angle"), [(0.01, 0.01, 0.0), (1.0, 1.0, 0.0), (4.0, 1.0, 0.7)])
def test_gaussian_kernel(sx: float, sy: float, angle: float) -> None:
    kernel = gaussian_kernel(sx, sy, angle)
    size = kernel.shape[0]
    assert kernel.shape == (size, size) and size % 2 == 1
    assert size >= 2 * math.ceil(3 * max(sx, sy)) + 1
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(kernel.argmax(), kernel.shape) == (size // 2, size // 2)
    assert np.allclose(kernel, kernel[::-1, ::-1], atol=1e-7)  # point-symmetric


def test_anisotropic_kernel_is_longer_along_its_angle() -> None:
    horizontal = gaussian_kernel(4.0, 1.0, 0.0)
    vertical = gaussian_kernel(4.0, 1.0, math.pi / 2)
    c = horizontal.shape[0] // 2
    assert horizontal[c, c + 4] > 10 * horizontal[c + 4, c]
    assert np.allclose(vertical, horizontal.T, atol=1e-6)


def test_degrade_keeps_size_and_type() -> None:
    image = synthetic_face((96, 160), 0)
    for name in PRESETS:
        rng = image_rng(0, name)
        params = sample_params(rng, PRESETS[name], 96, gray_prob=0.5)
        lq = degrade(image, params, rng)
        assert lq.shape == image.shape and lq.dtype == np.uint8
    tiny = synthetic_face(8, 1)
    params = DegradationParams(2.0, 2.0, 0.0, 30.0, 5.0, 50, False)  # down to 1×1 px and back
    assert degrade(tiny, params, np.random.default_rng(0)).shape == (8, 8, 3)


def test_degrade_light_params_are_nearly_lossless_and_heavy_ones_are_not() -> None:
    image = synthetic_face(128, 2)
    light = DegradationParams(0.05, 0.05, 0.0, 1.0, 0.0, 100, False)
    assert psnr(degrade(image, light, np.random.default_rng(0)), image) > 30  # q=100 still subsamples chroma
    heavy = DegradationParams(3.0, 3.0, 0.0, 6.0, 15.0, 30, False)
    assert psnr(degrade(image, heavy, np.random.default_rng(0)), image) < 28


def test_degrade_is_deterministic_given_the_rng_and_uses_it_for_noise() -> None:
    image = synthetic_face(128, 3)
    params = DegradationParams(1.0, 2.0, 0.3, 2.0, 8.0, 80, False)
    a = degrade(image, params, np.random.default_rng(7))
    assert np.array_equal(a, degrade(image, params, np.random.default_rng(7)))
    assert not np.array_equal(a, degrade(image, params, np.random.default_rng(8)))


def test_degrade_gray_output_has_equal_channels() -> None:
    params = DegradationParams(1.0, 1.0, 0.0, 2.0, 5.0, 90, True)
    lq = degrade(synthetic_face(64, 4), params, np.random.default_rng(0))
    assert np.array_equal(lq[..., 0], lq[..., 1]) and np.array_equal(lq[..., 1], lq[..., 2])


def test_degrade_rejects_bad_arrays() -> None:
    params = DegradationParams(1.0, 1.0, 0.0, 2.0, 5.0, 90, False)
    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((0, 8, 3), np.uint8)):
        with pytest.raises(ValueError):
            degrade(bad, params, np.random.default_rng(0))


def test_synthetic_psnr_is_ordered_mild_medium_heavy(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(20):
        write_png(src / f"s{i:02d}.png", synthetic_face(128, 100 + i))
    means = {}
    for name in ("mild", "medium", "heavy"):
        degrade_folder(src, tmp_path / name, name, seed=0, workers=1, progress=False)
        means[name] = mean_psnr(tmp_path / name)
    assert means["mild"] > means["medium"] > means["heavy"], means


# ------------------------------------------------------------------------------------------------ folders


def test_same_seed_gives_byte_identical_outputs(faces: Path, tmp_path: Path) -> None:
    first = degrade_folder(faces, tmp_path / "a", "medium", seed=7, gray_prob=0.3, workers=1, progress=False)
    second = degrade_folder(faces, tmp_path / "b", "medium", seed=7, gray_prob=0.3, workers=2, progress=False)
    assert first == second == DegradeSummary(written=8, failed=[])
    a, b = folder_bytes(tmp_path / "a"), folder_bytes(tmp_path / "b")
    assert len(a) == 8 * 2 + 1 and "params.json" in a
    assert a == b


def test_different_seeds_give_different_lq(faces: Path, tmp_path: Path) -> None:
    degrade_folder(faces, tmp_path / "a", "medium", seed=1, workers=1, progress=False)
    degrade_folder(faces, tmp_path / "b", "medium", seed=2, workers=1, progress=False)
    a, b = folder_bytes(tmp_path / "a"), folder_bytes(tmp_path / "b")
    hq = [k for k in a if k.startswith("hq/")]
    lq = [k for k in a if k.startswith("lq/")]
    assert all(a[k] == b[k] for k in hq)  # same HQ
    assert all(a[k] != b[k] for k in lq)  # every LQ differs
    assert a["params.json"] != b["params.json"]


def test_subset_alone_matches_the_full_run(faces: Path, tmp_path: Path) -> None:
    degrade_folder(faces, tmp_path / "full", "heavy", seed=3, size=96, gray_prob=0.5, workers=2, progress=False)
    subset = [faces / "face04.png", faces / "face01.png", faces / "face07.png"]  # another order, too
    degrade_folder(subset, tmp_path / "sub", "heavy", seed=3, size=96, gray_prob=0.5, workers=1, progress=False)
    copy = tmp_path / "copy"  # the same files in a folder of their own
    copy.mkdir()
    for path in subset:
        shutil.copy(path, copy / path.name)
    degrade_folder(copy, tmp_path / "sub2", "heavy", seed=3, size=96, gray_prob=0.5, workers=2, progress=False)
    full, sub, sub2 = (folder_bytes(tmp_path / name) for name in ("full", "sub", "sub2"))
    assert set(sub) == set(sub2) == {f"{d}/{p.name}" for d in ("hq", "lq") for p in subset} | {"params.json"}
    for key in set(sub) - {"params.json"}:
        assert sub[key] == full[key] == sub2[key], key
    full_params = json.loads(full["params.json"])
    sub_params = json.loads(sub["params.json"])
    assert sub_params == {p.stem: full_params[p.stem] for p in subset}
    assert sub["params.json"] == sub2["params.json"]


def test_params_json_matches_sample_params(faces: Path, tmp_path: Path) -> None:
    degrade_folder(faces, tmp_path / "out", "mild", seed=11, gray_prob=0.5, workers=1, progress=False)
    text = (tmp_path / "out" / "params.json").read_text()
    params = json.loads(text)
    assert text == json.dumps(params, sort_keys=True, indent=2) + "\n"
    assert sorted(params) == [f"face{i:02d}" for i in range(8)]
    for stem, entry in params.items():
        assert set(entry) == PARAM_KEYS
        size = read_png(faces / f"{stem}.png").shape[0]
        expected = sample_params(image_rng(11, stem), PRESETS["mild"], size, 0.5)
        assert entry == expected.to_dict()
        hq, lq = (
            read_png(tmp_path / "out" / "hq" / f"{stem}.png"),
            read_png(tmp_path / "out" / "lq" / f"{stem}.png"),
        )
        rng = image_rng(11, stem)
        sample_params(rng, PRESETS["mild"], size, 0.5)  # the noise is drawn after the parameters
        assert np.array_equal(lq, degrade(hq, expected, rng))


def test_params_json_merges_with_an_existing_one(faces: Path, tmp_path: Path) -> None:
    files = sorted(faces.glob("*.png"))
    degrade_folder(files, tmp_path / "full", "medium", seed=5, workers=1, progress=False)
    degrade_folder(files[:3], tmp_path / "merged", "medium", seed=5, workers=1, progress=False)
    assert len(json.loads((tmp_path / "merged" / "params.json").read_text())) == 3
    degrade_folder(files[2:], tmp_path / "merged", "medium", seed=5, workers=2, progress=False)
    assert folder_bytes(tmp_path / "merged") == folder_bytes(tmp_path / "full")
    # entries written now replace the old ones; the others are kept
    degrade_folder(files[:1], tmp_path / "merged", "heavy", seed=5, workers=1, progress=False)
    merged = json.loads((tmp_path / "merged" / "params.json").read_text())
    full = json.loads((tmp_path / "full" / "params.json").read_text())
    assert merged[files[0].stem] != full[files[0].stem]
    assert {k: v for k, v in merged.items() if k != files[0].stem} == {
        k: v for k, v in full.items() if k != files[0].stem
    }


def test_corrupt_params_json_is_an_error(faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "params.json").write_text("{not json")
    with pytest.raises(FacemendError, match="params.json"):
        degrade_folder(faces, out, "mild", seed=0, workers=1, progress=False)


def test_lq_has_the_hq_size_and_size_resizes_hq(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_png(src / "wide.png", synthetic_face((96, 160), 0))
    write_png(src / "small.png", synthetic_face(40, 1))
    write_png(src / "big.png", synthetic_face(200, 2))
    degrade_folder(src, tmp_path / "own", "heavy", seed=0, workers=1, progress=False)
    for stem, shape in {"wide": (96, 160, 3), "small": (40, 40, 3), "big": (200, 200, 3)}.items():
        assert read_png(tmp_path / "own" / "hq" / f"{stem}.png").shape == shape
        assert read_png(tmp_path / "own" / "lq" / f"{stem}.png").shape == shape
    assert np.array_equal(read_png(tmp_path / "own" / "hq" / "wide.png"), synthetic_face((96, 160), 0))
    # the face size is min(H, W): r for the 96×160 image is scaled by 96/512
    wide = json.loads((tmp_path / "own" / "params.json").read_text())["wide"]
    assert wide == sample_params(image_rng(0, "wide"), PRESETS["heavy"], 96).to_dict()

    degrade_folder(src, tmp_path / "sized", "heavy", seed=0, size=64, workers=1, progress=False)
    for stem in ("wide", "small", "big"):
        assert read_png(tmp_path / "sized" / "hq" / f"{stem}.png").shape == (64, 64, 3)
        assert read_png(tmp_path / "sized" / "lq" / f"{stem}.png").shape == (64, 64, 3)
    params = json.loads((tmp_path / "sized" / "params.json").read_text())
    assert params["big"] == sample_params(image_rng(0, "big"), PRESETS["heavy"], 64).to_dict()
    big = cv2.resize(synthetic_face(200, 2), (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(read_png(tmp_path / "sized" / "hq" / "big.png"), big)
    small = cv2.resize(synthetic_face(40, 1), (64, 64), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(read_png(tmp_path / "sized" / "hq" / "small.png"), small)


def test_corrupt_file_is_reported_and_skipped(faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "src"
    shutil.copytree(faces, src)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (src / "empty.jpg").write_bytes(b"")
    summary = degrade_folder(src, tmp_path / "out", "mild", seed=0, workers=2, progress=False)
    assert summary.written == 8
    assert sorted(Path(f).name for f, _ in summary.failed) == ["broken.png", "empty.jpg"]
    for file, message in summary.failed:
        assert Path(file).name in message and "\n" not in message
    err = capsys.readouterr().err
    assert "broken.png" in err and "empty.jpg" in err
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "hq").iterdir()) == [f"face{i:02d}.png" for i in range(8)]
    assert sorted(p.name for p in (out / "lq").iterdir()) == [f"face{i:02d}.png" for i in range(8)]
    assert set(json.loads((out / "params.json").read_text())) == {f"face{i:02d}" for i in range(8)}


def test_degrade_file_returns_an_error_and_writes_nothing_for_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    stem, result = degrade_file(bad, tmp_path / "out", PRESETS["mild"], 0)
    assert stem == "bad" and isinstance(result, str) and "bad.jpg" in result
    assert not (tmp_path / "out").exists()
    good = write_png(tmp_path / "good.png", synthetic_face(32, 0))
    stem, result = degrade_file(good, tmp_path / "out", PRESETS["mild"], 0, size=48)
    assert stem == "good" and result == sample_params(image_rng(0, "good"), PRESETS["mild"], 48).to_dict()
    assert read_png(tmp_path / "out" / "lq" / "good.png").shape == (48, 48, 3)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"preset": "extreme"}, "preset"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"size": 4}, "size"),
        ({"size": 0}, "size"),
        ({"gray_prob": 1.5}, "gray_prob"),
        ({"gray_prob": -0.1}, "gray_prob"),
        ({"gray_prob": float("nan")}, "gray_prob"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments_name_the_argument(faces: Path, tmp_path: Path, kwargs: dict, word: str) -> None:
    arguments = {"preset": "mild", "seed": 0, **kwargs}
    with pytest.raises(FacemendError, match=word):
        degrade_folder(faces, tmp_path / "out", progress=False, **arguments)
    assert not (tmp_path / "out").exists()


def test_bad_sources_and_duplicate_stems(tmp_path: Path) -> None:
    with pytest.raises(FacemendError, match="missing"):
        degrade_folder(tmp_path / "missing", tmp_path / "out", "mild", 0, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacemendError, match="no images"):
        degrade_folder(tmp_path / "empty", tmp_path / "out", "mild", 0, progress=False)
    write_png(tmp_path / "a" / "x.png", synthetic_face(16, 0))
    write_png(tmp_path / "a" / "sub" / "x.png", synthetic_face(16, 1))
    with pytest.raises(FacemendError, match="'x'"):
        degrade_folder(tmp_path / "a", tmp_path / "out", "mild", 0, progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(FacemendError, match="not a folder"):
        degrade_folder(tmp_path / "a" / "x.png", tmp_path / "file", "mild", 0, progress=False)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ real faces


@pytest.mark.data
def test_real_face_psnr_is_ordered_mild_medium_heavy(shared_data: Path, tmp_path: Path) -> None:
    people = sorted(p for p in (shared_data / "lfw").iterdir() if p.is_dir())
    src = tmp_path / "src"
    src.mkdir()
    count = 0
    for person in people:
        files = sorted(person.glob("*.jpg"))
        if not files:
            continue
        image = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] == (250, 250), files[0]
        crop = cv2.resize(image[45:205, 45:205], (128, 128), interpolation=cv2.INTER_AREA)
        assert cv2.imwrite(str(src / f"{files[0].stem}.png"), crop)
        count += 1
        if count == 100:
            break
    assert count == 100
    means = {}
    for name in ("mild", "medium", "heavy"):
        summary = degrade_folder(src, tmp_path / name, name, seed=0, workers=2, progress=False)
        assert summary == DegradeSummary(written=100, failed=[])
        means[name] = mean_psnr(tmp_path / name)
    print("\nmean PSNR(lq, hq) over 100 LFW faces at 128 px:", {k: round(v, 2) for k, v in means.items()})
    assert means["mild"] > means["medium"] > means["heavy"], means


# ------------------------------------------------------------------------------------------------ command


def test_degrade_command(faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from facemend.cli import main

    out = tmp_path / "out"
    args = ["degrade", str(faces), "-o", str(out), "--preset", "heavy", "--seed", "4", "--size", "64"]
    assert main([*args, "--workers", "1"]) == 0
    assert "8 pairs written" in capsys.readouterr().err
    assert len(json.loads((out / "params.json").read_text())) == 8
    assert read_png(out / "lq" / "face00.png").shape == (64, 64, 3)
    assert (
        main(
            [
                "degrade",
                str(faces),
                "-o",
                str(tmp_path / "bad"),
                "--preset",
                "heavy",
                "--seed",
                "4",
                "--gray-prob",
                "2",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "gray_prob" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()

"""`facemend restore`, the Python API, the model registry, and every kind of bad input."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import facemend
from conftest import REPO
from facemend.cli import main
from facemend.errors import FacemendError
from facemend.methods.registry import DEFAULT_MODEL, ModelSpec, load_restorer, resolve_model
from facemend.precision import resolve_precision


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def texture(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 3)


@pytest.fixture
def photos(tmp_path, astronaut) -> Path:
    folder = tmp_path / "in"
    save(folder / "face.jpg", astronaut)
    save(folder / "noface.png", texture())
    return folder


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["restore", *args, "--quiet"] if args and args[0] != "--help" else list(args))
    return code, capsys.readouterr().err


def test_restore_folder_keeps_sizes_and_writes_unchanged_photo_without_face(tmp_path, photos, capsys):
    code, err = run(capsys, str(photos), "-o", str(tmp_path / "out"), "--save-faces")
    assert code == 0, err
    restored = np.asarray(Image.open(tmp_path / "out" / "face.png"))
    assert restored.shape == (512, 512, 3)
    original = np.asarray(Image.open(photos / "face.jpg"))
    face = np.s_[80:165, 180:265]  # the astronaut's face
    assert np.abs(restored[face].astype(int) - original[face]).mean() > 0.5  # the face was changed
    unchanged = np.asarray(Image.open(tmp_path / "out" / "noface.png"))
    assert np.array_equal(unchanged, np.asarray(Image.open(photos / "noface.png")))
    assert "no face found" in err and "noface.png" in err
    assert (tmp_path / "out" / "cropped_faces" / "face_00.png").is_file()
    size = load_restorer(DEFAULT_MODEL).face_size  # face crops are saved at the model's face size
    assert Image.open(tmp_path / "out" / "restored_faces" / "face_00.png").size == (size, size)
    assert "2 photos written, 1 faces restored" in err


def test_skip_no_face_and_unique_names(tmp_path, photos, capsys):
    other = save(tmp_path / "other" / "face.png", np.asarray(Image.open(photos / "face.jpg")))
    code, err = run(capsys, str(photos), str(other), "-o", str(tmp_path / "out"), "--skip-no-face")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["face.png", "face_2.png"]


def test_upscale_and_aligned(tmp_path, astronaut, capsys):
    source = save(tmp_path / "photo.png", astronaut[:300, 50:400])
    code, err = run(capsys, str(source), "-o", str(tmp_path / "up"), "--upscale", "2")
    assert code == 0, err
    assert Image.open(tmp_path / "up" / "photo.png").size == (700, 600)
    crop = save(tmp_path / "crop.png", cv2.resize(astronaut[40:260, 110:330], (300, 300)))
    # strength 1: this sharp 300-px crop would otherwise come back as it is, whatever the precision
    code, err = run(capsys, str(crop), "-o", str(tmp_path / "al"), "--aligned", "--strength", "1")
    assert code == 0, err
    assert Image.open(tmp_path / "al" / "crop.png").size == (300, 300)
    fp32_args = ("--aligned", "--precision", "fp32", "--strength", "1")
    code, err = run(capsys, str(crop), "-o", str(tmp_path / "fp32"), *fp32_args)
    assert code == 0, err
    default, fp32 = (np.asarray(Image.open(tmp_path / d / "crop.png")).astype(float) for d in ("al", "fp32"))
    assert 0 < np.abs(default - fp32).mean() < 2.0 or resolve_precision("auto") == "fp32"


def test_grey_rgba_and_16_bit_keep_their_kind(tmp_path, astronaut, capsys):
    grey = save(tmp_path / "in" / "grey.png", cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY))
    alpha = np.dstack([astronaut, np.tile(np.linspace(0, 255, 512, dtype=np.uint8), (512, 1))])
    save(tmp_path / "in" / "rgba.png", alpha)
    cv2.imwrite(str(tmp_path / "in" / "deep.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    code, err = run(capsys, str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert Image.open(tmp_path / "out" / "grey.png").mode == "L"
    assert grey.exists()
    out_alpha = np.asarray(Image.open(tmp_path / "out" / "rgba.png"))
    assert out_alpha.shape == (512, 512, 4) and np.array_equal(out_alpha[..., 3], alpha[..., 3])
    assert cv2.imread(str(tmp_path / "out" / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_files_are_named_good_files_still_processed(tmp_path, astronaut, capsys, workers):
    folder = tmp_path / "mixed"
    save(folder / "good.jpg", astronaut)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    good_bytes = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good_bytes[: len(good_bytes) // 3])
    Image.new("1", (30000, 30000)).save(folder / "huge.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "empty.png").write_bytes(b"earlier result")  # never lost when its input fails
    code, err = run(capsys, str(folder), "-o", str(out), "--workers", workers)
    assert code == 1
    assert (out / "good.png").is_file()
    assert not (out / "notes.png").exists() and not (out / "truncated.png").exists()
    assert not (out / "huge.png").exists()
    assert (out / "empty.png").read_bytes() == b"earlier result"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 4
    for name in ("empty.jpg", "notes.png", "truncated.jpg", "huge.png"):
        assert sum(name in line for line in errors) == 1, err
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_worker_processes_give_the_same_outputs(tmp_path, photos, capsys):
    for workers in ("1", "2"):
        code, err = run(capsys, str(photos), "-o", str(tmp_path / workers), "--workers", workers)
        assert code == 0 and "2 photos written, 1 faces restored" in err
    for name in ("face.png", "noface.png"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()


def test_never_overwrites_an_input(tmp_path, astronaut, capsys):
    source = save(tmp_path / "photos" / "face.png", astronaut)
    before = source.read_bytes()
    code, err = run(capsys, str(tmp_path / "photos"), "-o", str(tmp_path / "photos"))
    assert code == 2 and "would overwrite its own input" in err
    assert source.read_bytes() == before


def test_tiny_face_is_left_alone_with_a_warning(tmp_path, astronaut, capsys):
    small = save(tmp_path / "small.png", cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA))
    code, err = run(capsys, str(small), "-o", str(tmp_path / "out"), "--min-face-size", "60")
    assert code == 0
    assert "smaller than 60 px" in err and "small.png" in err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "small.png")), np.asarray(Image.open(small)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nosuch"], r"unknown model 'nosuch'; available: classical"),
        (["--model", "classical:strength=2"], r"has no knob 'strength'; its knobs: keep_input"),
        (["--steps", "4"], r"has no knob 'steps'"),
        (["--model", "baseline", "--fidelity", "1.5"], r"'fidelity' must be in \[0.0, 1.0\]"),
        (["--model", "classical:keep_input"], r"expected knob=value"),
        (["--upscale", "0"], r"upscale must be"),
        (["--batch", "0"], r"batch size must be"),
        (["--workers", "0"], r"workers must be an integer >= 1"),
    ],
)
def test_bad_options_fail_before_any_work(tmp_path, photos, capsys, args, message):
    code, err = run(capsys, str(photos), "-o", str(tmp_path / "out"), *args)
    assert code == 2
    assert re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_input_and_empty_folder(tmp_path, capsys):
    code, err = run(capsys, str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "out"))
    assert code == 2 and "nope.jpg" in err
    (tmp_path / "empty").mkdir()
    code, err = run(capsys, str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert code == 2 and "no images or videos found" in err


def test_models_lists_knobs(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"{DEFAULT_MODEL} (default)" in out and "keep_input (float, default 0.3, range [0.0, 1.0])" in out


def test_model_spec_parsing():
    assert ModelSpec.parse("artfr:steps=8, seed=1") == ModelSpec("artfr", {"steps": "8", "seed": "1"})
    restorer, knobs = resolve_model("classical:keep_input=0.7")
    assert restorer.name == "classical" and knobs == {"keep_input": 0.7}
    _, knobs = resolve_model("classical:keep_input=0.7", keep_input=0.2)  # explicit flags win over the spec
    assert knobs == {"keep_input": 0.2}


def test_python_api_keeps_type_and_layout(astronaut):
    out = facemend.restore(astronaut, model="classical", keep_input=0.5)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    assert not np.array_equal(out, astronaut)
    # classical at keep_input 1 returns the crop unchanged: only the warp there and back touches the photo
    difference = np.abs(facemend.restore(astronaut, model="classical", keep_input=1.0).astype(int) - astronaut)
    assert difference.mean() < 0.05 and difference.max() <= 6
    pil = facemend.restore(Image.fromarray(astronaut).convert("L"))
    assert isinstance(pil, Image.Image) and pil.mode == "L" and pil.size == (512, 512)
    with pytest.raises(FacemendError, match="has no knob 'quality'"):
        facemend.restore(astronaut, quality=0.5)


def test_readme_restore_command_runs(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    line = next(line for line in readme.splitlines() if "facemend restore" in line and "pip install" in line)
    command = shlex.split(line[line.index("facemend restore") :])
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    args = command[2:]
    args[args.index("-o") + 1] = str(out)
    assert main(["restore", *args, "--quiet"]) == 0, capsys.readouterr().err
    assert len(list(out.glob("*.png"))) == 1


@pytest.mark.data
def test_real_whole_photos(tmp_path, shared_data, capsys):
    folder = shared_data / "real-lq" / "whole"
    code, err = run(capsys, str(folder), "-o", str(tmp_path / "out"))
    assert code == 0, err
    inputs = sorted(folder.iterdir())
    assert len(inputs) == 13
    for path in inputs:
        assert Image.open(tmp_path / "out" / f"{path.stem}.png").size == Image.open(path).size
    faces = [int(m) for m in re.findall(r": (\d+) face\(s\)", err)]
    assert len(faces) >= 12 and sum(faces) >= 20

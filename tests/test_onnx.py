"""ONNX export (`facemend export`) and the onnxruntime runtime (`facemend restore --runtime onnx`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import facemend
from facemend.cli import main
from facemend.errors import FacemendError
from facemend.methods.registry import load_restorer
from facemend.runtime import cache_dir, runtime_precision, with_runtime

FIDELITY_MODEL = "baseline"  # a model with the fidelity fusion: its graph takes w as an input


@pytest.fixture(scope="module")
def cached_export(tmp_path_factory) -> tuple[Path, list[str]]:
    """The default model exported on first use into an empty cache (FACEMEND_CACHE): the file and the messages."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEMEND_CACHE", str(cache))
        messages: list[str] = []
        with_runtime(load_restorer(FIDELITY_MODEL), "onnx", report=messages.append)
        files = list((cache_dir() / "onnx").glob("*.onnx"))
    assert len(files) == 1
    return files[0], messages


@pytest.fixture
def faces(astronaut_face) -> torch.Tensor:
    """The astronaut's face and two other inputs, at the model's face size and at another size."""
    face = torch.from_numpy(astronaut_face).permute(2, 0, 1).float() / 255
    generator = torch.Generator().manual_seed(0)
    return torch.stack([face, face.flip(-1), torch.rand(face.shape, generator=generator)])


def test_onnx_matches_pytorch_at_every_fidelity_in_one_graph(cached_export, faces):
    path, messages = cached_export
    assert "exporting" in messages[0] and str(path) in messages[0]
    graph = onnx.load(str(path)).graph
    assert [node.name for node in graph.input] == ["faces", "fidelity"]  # the knob is an input, not a constant
    assert not graph.initializer or "fidelity" not in {tensor.name for tensor in graph.initializer}

    restorer = load_restorer(FIDELITY_MODEL)
    onnx_restorer = with_runtime(restorer, "onnx", onnx_path=path)
    outputs = {}
    for fidelity in (0.0, 0.5, 1.0):
        expected = restorer(faces, precision="fp32", fidelity=fidelity)
        got = onnx_restorer(faces, precision="fp32", fidelity=fidelity)
        assert got.shape == expected.shape and got.min() >= 0.0 and got.max() <= 1.0
        assert (got - expected).abs().max().item() < 1e-3
        outputs[fidelity] = got
    assert (outputs[0.0] - outputs[1.0]).abs().mean() > 1e-3  # fidelity reaches the graph
    # a batch size and a face size that the export never saw (faces are resized to the model's size and back)
    larger = torch.nn.functional.interpolate(faces[:1], size=(160, 160), mode="bilinear", align_corners=False)
    difference = onnx_restorer(larger, fidelity=0.3) - restorer(larger, precision="fp32", fidelity=0.3)
    assert difference.abs().max().item() < 1e-3


def test_cached_export_is_reused(cached_export, monkeypatch):
    path, _ = cached_export
    monkeypatch.setenv("FACEMEND_CACHE", str(path.parents[1]))
    modified = path.stat().st_mtime_ns
    messages: list[str] = []
    with_runtime(load_restorer(FIDELITY_MODEL), "onnx", report=messages.append)
    assert messages == [] and path.stat().st_mtime_ns == modified


def test_export_cli_then_restore_with_onnxruntime(tmp_path, cached_export, astronaut_face, capsys):
    exported = tmp_path / "model.onnx"
    assert main(["export", "--model", FIDELITY_MODEL, "-o", str(exported)]) == 0
    assert "network 'restore', inputs (batch first): faces (3, 128, 128), fidelity ()" in capsys.readouterr().err
    assert exported.stat().st_size > 1_000_000 and not list(tmp_path.glob(".*tmp"))  # one file, no leftovers

    crops = tmp_path / "crops"
    crops.mkdir()
    Image.fromarray(astronaut_face).save(crops / "face.png")
    common = [str(crops), "--aligned", "--quiet", "--model", FIDELITY_MODEL, "--fidelity", "0.7"]
    assert main(["restore", *common, "-o", str(tmp_path / "onnx"), "--runtime", "onnx", "--onnx", str(exported)]) == 0
    assert main(["restore", *common, "-o", str(tmp_path / "torch"), "--precision", "fp32"]) == 0
    with_onnx = np.asarray(Image.open(tmp_path / "onnx" / "face.png"), dtype=int)
    with_torch = np.asarray(Image.open(tmp_path / "torch" / "face.png"), dtype=int)
    assert np.abs(with_onnx - with_torch).max() <= 1  # the same up to 8-bit rounding
    assert np.abs(with_onnx - astronaut_face).mean() > 1.0  # and it restored something


def test_python_api_onnx_runtime(cached_export, astronaut, monkeypatch):
    path, _ = cached_export
    monkeypatch.setenv("FACEMEND_CACHE", str(path.parents[1]))
    with_onnx = facemend.restore(astronaut, runtime="onnx").astype(int)
    with_torch = facemend.restore(astronaut, precision="fp32").astype(int)
    assert with_onnx.shape == astronaut.shape and np.abs(with_onnx - with_torch).max() <= 1


def test_export_and_runtime_errors(tmp_path, capsys):
    assert main(["export", "--model", "classical", "-o", str(tmp_path / "c.onnx")]) == 2
    assert "has no network to export" in capsys.readouterr().err
    assert main(["export", "--model", "baseline:fidelity=0.5", "-o", str(tmp_path / "b.onnx")]) == 2
    assert "set at run time" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    photo = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(photo)
    out = tmp_path / "out"
    code = main(["restore", str(photo), "-o", str(out), "--aligned", "--runtime", "onnx", "--onnx", str(corrupt)])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and "not a usable ONNX model" in error[0] and not out.exists()

    with pytest.raises(FacemendError, match="fp32"):
        runtime_precision("onnx", "bf16")
    assert runtime_precision("onnx", "auto") == "fp32" and runtime_precision("torch", "bf16") == "bf16"
    with pytest.raises(FacemendError, match="only used with the onnx runtime"):
        with_runtime(load_restorer(FIDELITY_MODEL), "torch", onnx_path=corrupt)
    with pytest.raises(FacemendError, match="runtime must be one of"):
        with_runtime(load_restorer(FIDELITY_MODEL), "tensorrt")


def test_a_sampler_exports_its_networks_and_keeps_its_loop(tmp_path):
    """artfr: encode, predict (one sampler step) and decode are three graphs; the loop runs in Python."""
    from facemend.config import to_dict
    from facemend.methods.artfr.model import ArtfrModel, ArtfrRestorer
    from facemend.runtime import export_onnx
    from facemend.weights import save_weights
    from test_artfr import SMALL

    torch.manual_seed(0)
    save_weights(tmp_path / "artfr", "artfr", to_dict(SMALL), ArtfrModel(SMALL).state_dict())
    restorer = ArtfrRestorer.from_folder(tmp_path / "artfr")
    paths = export_onnx(restorer, tmp_path / "artfr.onnx")
    assert [path.name for path in paths] == ["artfr.encode.onnx", "artfr.predict.onnx", "artfr.decode.onnx"]
    assert [node.name for node in onnx.load(str(paths[2])).graph.input][:2] == ["indices", "fidelity"]
    onnx_restorer = with_runtime(restorer, "onnx", onnx_path=tmp_path / "artfr.onnx")
    faces = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for knobs in ({"steps": 1}, {"steps": 4, "fidelity": 0.5}, {"steps": 4, "temperature": 1.0, "seed": 3}):
        expected = restorer(faces, precision="fp32", **knobs)
        assert (onnx_restorer(faces, **knobs) - expected).abs().max().item() < 1e-3

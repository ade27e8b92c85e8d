"""Weight folders: round trip, and a clear error for every kind of damage."""

from __future__ import annotations

import json

import pytest
import torch

from facemend.errors import FacemendError
from facemend.weights import load_into, load_weights, save_weights, sha256_of


def _module():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))


def test_round_trip_in_float16(tmp_path):
    module = _module()
    save_weights(tmp_path / "w", "thing", {"width": 4}, module.state_dict(), dtype=torch.float16)
    weights = load_weights(tmp_path / "w", "thing")
    assert weights.config == {"width": 4} and weights.info["facemend"]
    assert all(value.dtype == torch.float16 for value in weights.state_dict.values())
    other = _module()
    torch.nn.init.zeros_(other[0].weight)
    load_into(other, weights.state_dict, "w")
    assert other[0].weight.dtype == torch.float32
    torch.testing.assert_close(other[0].weight, module[0].weight, atol=1e-3, rtol=1e-3)


def test_overwriting_a_folder_replaces_it_whole(tmp_path):
    save_weights(tmp_path / "w", "thing", {"v": 1}, _module().state_dict())
    save_weights(tmp_path / "w", "thing", {"v": 2}, _module().state_dict())
    assert load_weights(tmp_path / "w").config == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_damaged_folders_give_one_clear_error(tmp_path):
    folder = tmp_path / "w"
    save_weights(folder, "thing", {}, _module().state_dict())
    hashes = (sha256_of(folder / "config.json"), sha256_of(folder / "model.safetensors"))
    load_weights(folder, sha256=hashes)

    with pytest.raises(FacemendError, match="holds 'thing' weights, expected 'other'"):
        load_weights(folder, "other")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FacemendError, match="sha256 does not match"):
        load_weights(folder, sha256=hashes)
    with pytest.raises(FacemendError, match="corrupt or unreadable safetensors"):
        load_weights(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(FacemendError, match="config.json: unreadable"):
        load_weights(folder)
    (folder / "config.json").write_text(json.dumps({"kind": "thing"}))
    with pytest.raises(FacemendError, match="expected"):
        load_weights(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FacemendError, match="not a weights folder"):
        load_weights(folder)


def test_mismatched_weights_name_the_keys():
    state = _module().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["1.bias"]
    state["0.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(FacemendError, match=r"1 missing \(1\.bias\); 1 unexpected \(extra\.weight\); 1 wrong shape"):
        load_into(_module(), state, "w")


def test_bundled_weights_are_checked_against_the_registry(tmp_path, monkeypatch):
    import facemend.weights as weights

    monkeypatch.setattr(weights, "BUNDLED_DIR", tmp_path)
    monkeypatch.setattr(weights, "REGISTRY", tmp_path / "registry.json")
    save_weights(tmp_path / "thing-tiny", "thing", {}, _module().state_dict(), dtype=torch.float16)
    weights.register_bundled("thing-tiny")
    assert weights.bundled("thing-tiny").kind == "thing"
    with pytest.raises(FacemendError, match="no bundled weights called 'other'; bundled: thing-tiny"):
        weights.bundled("other")
    path = tmp_path / "thing-tiny" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FacemendError, match="sha256 does not match the registry"):
        weights.bundled("thing-tiny")


def test_repository_registry_matches_the_bundled_files():
    from facemend.weights import bundled, bundled_registry

    for name in bundled_registry():
        assert bundled(name).state_dict


def _weights_manifest_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "weights_manifest.py"
    spec = importlib.util.spec_from_file_location("weights_manifest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weights_manifest_lists_every_weights_folder_as_it_is():
    script = _weights_manifest_script()
    problems = script.stale(script.read_manifest(), script.manifest(commits=False))
    assert not problems, f"{problems}: run python scripts/weights_manifest.py"


def test_weights_manifest_check_names_missing_and_changed_folders():
    script = _weights_manifest_script()
    entry = {"kind": "idm", "commit": "abc", "files": {"model.safetensors": {"sha256": "1", "size": 1}}}
    changed = {**entry, "commit": "def", "files": {"model.safetensors": {"sha256": "2", "size": 1}}}
    assert script.stale({"a": entry}, {"a": {**entry, "commit": None}}) == []  # commits are not compared
    assert script.stale({"a": entry}, {"a": entry, "b": entry}) == ["b: not in the manifest"]
    assert script.stale({"a": entry}, {"a": changed}) == ["a: files changed since the manifest was written"]
    assert script.stale({"a": entry, "b": entry}, {"a": entry}) == ["b: in the manifest, but no weights folder there"]

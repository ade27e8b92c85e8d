"""Weight folders: `config.json` + `model.safetensors` (docs/design.md, Contracts), and the registry of the weights
bundled with the package, each file pinned by its sha256.

`config.json` = {"kind": what the weights are ("tokenizer", "baseline", …), "config": the model config that
built them, "facemend": the version that wrote them, "training": where they came from}. Nothing here
unpickles: safetensors holds plain tensors only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from facemend.errors import FacemendError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BUNDLED_DIR = Path(__file__).parent / "bundled"
REGISTRY = BUNDLED_DIR / "registry.json"  # name → {"config.json": sha256, "model.safetensors": sha256}


@dataclass
class Weights:
    kind: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    info: dict[str, Any]  # the whole config.json


def save_weights(
    folder: str | Path,
    kind: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    dtype: torch.dtype | None = None,
    training: dict[str, Any] | None = None,
) -> None:
    """Write a weight folder atomically (a temporary sibling folder, renamed into place). `dtype` converts
    floating-point tensors (float16 halves the size of bundled weights)."""
    from facemend import __version__

    folder = Path(folder)
    tensors = {
        key: (value.to(dtype) if dtype is not None and value.is_floating_point() else value).detach().contiguous()
        for key, value in state_dict.items()
    }
    info = {"kind": kind, "config": config, "facemend": __version__, "training": training or {}}
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(tensors, str(staging / WEIGHTS_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        for path in (staging, staging / WEIGHTS_FILE, staging / CONFIG_FILE):  # mkdtemp's 0700 is for staging only
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(staging, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_weights(folder: str | Path, kind: str | None = None, sha256: tuple[str, str] | None = None) -> Weights:
    """Read a weight folder; every problem is one FacemendError naming the folder."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FacemendError(f"{folder}: not a weights folder (no {path.name})")
    if sha256 is not None:
        for path, expected in zip((config_path, weights_path), sha256, strict=True):
            if sha256_of(path) != expected:
                raise FacemendError(f"{path}: sha256 does not match the registry: the file is corrupt or was replaced")
    try:
        info = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FacemendError(f"{config_path}: unreadable ({error})") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict) or not isinstance(info.get("kind"), str):
        raise FacemendError(f'{config_path}: expected {{"kind": ..., "config": {{...}}}}')
    if kind is not None and info["kind"] != kind:
        raise FacemendError(f"{folder}: holds {info['kind']!r} weights, expected {kind!r}")
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise FacemendError(f"{weights_path}: corrupt or unreadable safetensors file ({error})") from None
    return Weights(info["kind"], info["config"], state_dict, info)


def without_parts(state_dict: dict[str, torch.Tensor], parts) -> dict[str, torch.Tensor]:
    """`state_dict` without the entries of the submodules `parts` (dotted paths, e.g. "lq_tokenizer")."""
    prefixes = tuple(f"{part}." for part in parts)
    return {key: value for key, value in state_dict.items() if not key.startswith(prefixes)}


def load_into(module: nn.Module, state_dict: dict[str, torch.Tensor], where: str | Path) -> None:
    """Load strictly, converting dtypes to the module's; a mismatch names the first missing / unexpected /
    misshapen keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshapen = sorted(key for key in set(own) & set(state_dict) if own[key].shape != state_dict[key].shape)
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{', …' if len(keys) > 3 else ''})")
        raise FacemendError(f"{where}: weights do not fit the model: {'; '.join(parts)}")
    module.load_state_dict({key: value.to(own[key].dtype) for key, value in state_dict.items()})


def bundled_registry() -> dict[str, dict[str, str]]:
    """The registry of bundled weight folders (empty when none is bundled)."""
    if not REGISTRY.exists():
        return {}
    return json.loads(REGISTRY.read_text(encoding="utf-8"))


def register_bundled(name: str) -> dict[str, str]:
    """Record the sha256 of the bundled folder `name` in the registry (run by scripts/bundle_weights.py)."""
    registry = bundled_registry()
    registry[name] = {file: sha256_of(BUNDLED_DIR / name / file) for file in (CONFIG_FILE, WEIGHTS_FILE)}
    REGISTRY.write_text(json.dumps(dict(sorted(registry.items())), indent=2) + "\n", encoding="utf-8")
    return registry[name]


def bundled(name: str) -> Weights:
    """The bundled weights called `name`, checked against the registry."""
    registry = bundled_registry()
    if name not in registry:
        raise FacemendError(f"no bundled weights called {name!r}; bundled: {', '.join(registry) or 'none'}")
    return load_weights(BUNDLED_DIR / name, sha256=(registry[name][CONFIG_FILE], registry[name][WEIGHTS_FILE]))

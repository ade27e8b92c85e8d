"""Runtimes for a restorer's network: PyTorch (as built) or onnxruntime (exported once, then cached).

ONNX export writes `Restorer.network` with the inputs its `network_example` names — knobs such as fidelity are
graph inputs, never constants, and the batch is dynamic — so one file serves every knob value. A sampler's loop
stays in Python, in `restore_faces`, around the exported network. onnxruntime computes in fp32.

Kept free of a top-level torch import so the CLI can offer the choices without loading torch.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facemend.errors import FacemendError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from facemend.methods.base import Restorer

RUNTIMES = ("torch", "onnx")
OUTPUT_NAME = "restored"
_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def cache_dir() -> Path:
    """Where exports are kept: `$FACEMEND_CACHE`, else `$XDG_CACHE_HOME/facemend`, else `~/.cache/facemend`."""
    if "FACEMEND_CACHE" in os.environ:
        return Path(os.environ["FACEMEND_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facemend"


def _network_module(restorer: Restorer) -> nn.Module:
    from torch import nn

    restorer.network_example()  # raises, naming the model, when it has no network
    if not isinstance(restorer.network, nn.Module):
        raise FacemendError(f"model {restorer.name!r} does not run a PyTorch network here: nothing to export")
    return restorer.network


def fingerprint(restorer: Restorer) -> str:
    """A hash of what an export depends on: the network's weights and inputs, and the facemend and torch versions."""
    import torch

    from facemend import __version__

    digest = hashlib.sha256(f"{restorer.name}|{__version__}|{torch.__version__}".encode())
    for name, example in restorer.network_example().items():
        digest.update(f"{name}:{tuple(example.shape[1:])}:{example.dtype}".encode())
    for name, tensor in _network_module(restorer).state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@contextmanager
def _quiet_exporter():
    """The exporter logs progress and warnings about packages it could use (torchvision): not the user's concern."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(restorer: Restorer, path: str | Path) -> Path:
    """Write the restorer's network to `path` as one ONNX file (fp32, dynamic batch), atomically."""
    import torch

    network = _network_module(restorer).float().eval()
    example = restorer.network_example(batch=2)  # batch 2: a batch of 1 would be specialised into the graph
    batch = torch.export.Dim("batch", min=1, max=4096)
    path = Path(path)
    if path.is_dir():
        raise FacemendError(f"{path}: is a folder; give the ONNX file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with _quiet_exporter(), torch.no_grad():
            torch.onnx.export(
                network,
                tuple(example.values()),
                str(staging),
                input_names=list(example),
                output_names=[OUTPUT_NAME],
                dynamic_shapes={name: {0: batch} for name in example},
                external_data=False,
                dynamo=True,
                verbose=False,
            )
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return path


class OnnxNetwork:
    """An onnxruntime session called like the network it was exported from: torch tensors in, a tensor out."""

    def __init__(self, path: str | Path, input_names: list[str]):
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types, one per failure
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise FacemendError(f"{path}: not a usable ONNX model ({message})") from None
        inputs = self.session.get_inputs()
        names = [node.name for node in inputs]
        if names != input_names:
            raise FacemendError(f"{path}: takes inputs {names}, but the model's network takes {input_names}")
        self.input_types = [_ONNX_TYPES.get(node.type, np.float32) for node in inputs]
        self.input_names = names

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        import torch

        feeds = {
            name: np.ascontiguousarray(tensor.detach().float().cpu().numpy(), dtype=kind)
            for name, tensor, kind in zip(self.input_names, inputs, self.input_types, strict=True)
        }
        return torch.from_numpy(self.session.run([OUTPUT_NAME], feeds)[0])


def runtime_precision(runtime: str, precision: str) -> str:
    """The precision a run uses: as asked for the torch runtime; fp32 for onnxruntime (bf16 there is an error)."""
    if runtime != "onnx":
        return precision
    if precision == "bf16":
        raise FacemendError("onnxruntime computes in fp32 here: --precision bf16 is for the torch runtime")
    return "fp32"


def with_runtime(
    restorer: Restorer,
    runtime: str,
    onnx_path: str | Path | None = None,
    report: Callable[[str], None] | None = None,
) -> Restorer:
    """The restorer running its network in `runtime`. For `onnx`: the file at `onnx_path` (exported there first
    when it does not exist), else the cached export of this network (made on first use)."""
    if runtime not in RUNTIMES:
        raise FacemendError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "torch":
        if onnx_path is not None:
            raise FacemendError("an ONNX file is only used with the onnx runtime (--runtime onnx)")
        return restorer
    names = tuple(restorer.network_example())
    if onnx_path is not None:
        path = Path(onnx_path)
    else:
        path = cache_dir() / "onnx" / f"{restorer.name}-{_cached_fingerprint(restorer)}.onnx"
    if not path.exists():
        if report is not None:
            report(f"exporting {restorer.name!r} to ONNX (once): {path}")
        export_onnx(restorer, path)
    swapped = copy.copy(restorer)
    swapped.network = _session(str(path.resolve()), path.stat().st_mtime_ns, names)
    return swapped


@lru_cache(maxsize=8)
def _cached_fingerprint(restorer: Restorer) -> str:
    return fingerprint(restorer)  # restorers are built once per process (the registry caches them)


@lru_cache(maxsize=8)
def _session(path: str, modified_ns: int, input_names: tuple[str, ...]) -> OnnxNetwork:
    return OnnxNetwork(path, list(input_names))  # one session per file version: repeated API calls reuse it

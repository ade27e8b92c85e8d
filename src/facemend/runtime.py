"""Runtimes for a restorer's network: PyTorch (as built) or onnxruntime (exported once, then cached).

ONNX export writes each of `Restorer.networks` with the inputs and outputs its `network_specs` names — knobs
such as fidelity are graph inputs, never constants, and the batch is dynamic — so one file serves every knob
value. A restorer with one network is one file; with several (a sampler's encode / predict / decode), `x.onnx`
becomes `x.encode.onnx`, `x.predict.onnx`, …, and the sampler's loop stays in Python, in `restore_faces`.
onnxruntime computes in fp32.

Kept free of a top-level torch import so the CLI can offer the choices without loading torch.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
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
_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def cache_dir() -> Path:
    """Where exports are kept: `$FACEMEND_CACHE`, else `$XDG_CACHE_HOME/facemend`, else `~/.cache/facemend`."""
    if "FACEMEND_CACHE" in os.environ:
        return Path(os.environ["FACEMEND_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facemend"


def _network_modules(restorer: Restorer) -> dict[str, nn.Module]:
    from torch import nn

    restorer.network_specs()  # raises, naming the model, when it has no network
    if not all(isinstance(network, nn.Module) for network in restorer.networks.values()):
        raise FacemendError(f"model {restorer.name!r} does not run PyTorch networks here: nothing to export")
    return dict(restorer.networks)


def onnx_paths(restorer: Restorer, path: str | Path) -> dict[str, Path]:
    """Where each network's graph goes: `path` itself for a single network, else `path` with `.NAME.onnx`."""
    path = Path(path)
    names = list(restorer.network_specs())
    if len(names) == 1:
        return {names[0]: path}
    stem = path.name.removesuffix(".onnx")
    return {name: path.with_name(f"{stem}.{name}.onnx") for name in names}


def fingerprint(restorer: Restorer) -> str:
    """A hash of what an export depends on: the networks' weights and inputs, and the facemend and torch versions."""
    import torch

    from facemend import __version__

    digest = hashlib.sha256(f"{restorer.name}|{__version__}|{torch.__version__}".encode())
    for network, spec in restorer.network_specs().items():
        digest.update(f"{network}:{spec.outputs}".encode())
        for name, example in spec.inputs.items():
            digest.update(f"{name}:{tuple(example.shape[1:])}:{example.dtype}".encode())
    for network, module in _network_modules(restorer).items():
        for name, tensor in module.state_dict().items():
            digest.update(f"{network}.{name}".encode())
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


def _batch_dynamic(module: nn.Module, count: int, batch) -> tuple:
    """Dynamic shapes for `count` positional inputs, batch first; inputs past the named ones go to `*args`."""
    parameters = list(inspect.signature(module.forward).parameters.values())
    named = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    shapes: list = [{0: batch} for _ in named[:count]]
    if count > len(named):
        shapes.append(tuple({0: batch} for _ in range(count - len(named))))
    return tuple(shapes)


def export_onnx(restorer: Restorer, path: str | Path) -> list[Path]:
    """Write the restorer's networks as ONNX files at `onnx_paths(restorer, path)` (fp32, dynamic batch), each
    atomically; returns the files."""
    import torch

    specs = restorer.network_specs(batch=2)  # batch 2: a batch of 1 would be specialised into the graph
    batch = torch.export.Dim("batch", min=1, max=4096)
    if Path(path).is_dir():
        raise FacemendError(f"{path}: is a folder; give the ONNX file to write")
    written = []
    for name, module in _network_modules(restorer).items():
        target, spec = onnx_paths(restorer, path)[name], specs[name]
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with _quiet_exporter(), torch.no_grad():
                torch.onnx.export(
                    module.float().eval(),
                    tuple(spec.inputs.values()),
                    str(staging),
                    input_names=list(spec.inputs),
                    output_names=list(spec.outputs),
                    dynamic_shapes=_batch_dynamic(module, len(spec.inputs), batch),
                    external_data=False,
                    dynamo=True,
                    verbose=False,
                )
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
        written.append(target)
    return written


class OnnxNetwork:
    """An onnxruntime session called like the network it was exported from: torch tensors in, a tensor (or a
    tuple of them, for several outputs) out."""

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

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        import torch

        feeds = {
            name: np.ascontiguousarray(
                tensor.detach().cpu().float().numpy() if kind is np.float32 else tensor.cpu()
            ).astype(kind, copy=False)
            for name, tensor, kind in zip(self.input_names, inputs, self.input_types, strict=True)
        }
        outputs = tuple(torch.from_numpy(output) for output in self.session.run(None, feeds))
        return outputs[0] if len(outputs) == 1 else outputs


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
    """The restorer running its networks in `runtime`. For `onnx`: the files at `onnx_path` (exported there
    first when missing), else the cached export of these networks (made on first use)."""
    if runtime not in RUNTIMES:
        raise FacemendError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "torch":
        if onnx_path is not None:
            raise FacemendError("an ONNX file is only used with the onnx runtime (--runtime onnx)")
        return restorer
    specs = restorer.network_specs()
    if onnx_path is None:
        onnx_path = cache_dir() / "onnx" / f"{restorer.name}-{_cached_fingerprint(restorer)}.onnx"
    paths = onnx_paths(restorer, onnx_path)
    if not all(path.exists() for path in paths.values()):
        if report is not None:
            report(f"exporting {restorer.name!r} to ONNX (once): {', '.join(map(str, paths.values()))}")
        export_onnx(restorer, onnx_path)
    swapped = copy.copy(restorer)
    swapped.networks = {
        name: _session(str(path.resolve()), path.stat().st_mtime_ns, tuple(specs[name].inputs))
        for name, path in paths.items()
    }
    return swapped


@lru_cache(maxsize=8)
def _cached_fingerprint(restorer: Restorer) -> str:
    return fingerprint(restorer)  # restorers are built once per process (the registry caches them)


@lru_cache(maxsize=16)
def _session(path: str, modified_ns: int, input_names: tuple[str, ...]) -> OnnxNetwork:
    return OnnxNetwork(path, list(input_names))  # one session per file version: repeated API calls reuse it

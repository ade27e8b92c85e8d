"""Metric functions against independent references: PSNR/SSIM vs scikit-image, Fréchet distance vs scipy's
matrix square root, MobileNetV2 vs ImageNet labels, IDD as a face verifier on LFW, FD separating HQ from LQ,
and the report's bootstrap intervals and missing counts."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage import color, data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from facemend.data.degradation import PRESETS, degrade, image_rng, sample_params
from facemend.metrics import identity, pixel
from facemend.metrics.frechet import frechet_distance
from facemend.metrics.perceptual import MobileNetV2Features, imagenet_mobilenet_v2, perceptual_distance
from facemend.metrics.report import bootstrap_interval, summarize_faces
from facemend.metrics.suite import FacePair, MetricSuite


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def heavy(image: np.ndarray, stem: str = "x", preset: str = "heavy") -> np.ndarray:
    rng = image_rng(1, stem)
    return degrade(image, sample_params(rng, PRESETS[preset], image.shape[0]), rng)


@pytest.fixture(scope="module")
def pair(astronaut) -> tuple[np.ndarray, np.ndarray]:
    crop = astronaut[40:296, 120:376]
    return crop, heavy(crop, preset="medium")


@pytest.mark.parametrize("y_only", [True, False])
def test_psnr_and_ssim_match_scikit_image(pair, y_only):
    clean, degraded = pair
    if y_only:
        ref_a, ref_b = (color.rgb2ycbcr(x)[..., 0] for x in (degraded, clean))
        channel_axis = None
    else:
        ref_a, ref_b = degraded.astype(np.float64), clean.astype(np.float64)
        channel_axis = 2
    expected_psnr = peak_signal_noise_ratio(ref_b, ref_a, data_range=255)
    expected_ssim = structural_similarity(
        ref_b, ref_a, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        channel_axis=channel_axis,
    )  # fmt: skip
    a, b = as_tensor(degraded), as_tensor(clean)
    assert pixel.psnr(a, b, y_only).item() == pytest.approx(expected_psnr, abs=1e-6)
    assert pixel.ssim(a, b, y_only).item() == pytest.approx(expected_ssim, abs=1e-5)
    assert 0.2 < expected_ssim < 0.95  # a real difference, not a trivial case


def test_psnr_of_identical_images_is_capped(pair):
    image = as_tensor(pair[0])
    assert pixel.psnr(image, image).item() == pixel.PSNR_CAP
    assert pixel.ssim(image, image, True).item() == pytest.approx(1.0)


@pytest.mark.parametrize(("n", "m", "d"), [(40, 50, 8), (12, 15, 30)])  # both code paths: n > d and n < d
def test_frechet_distance_matches_matrix_square_root(n, m, d):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    b = rng.normal(size=(m, d)) * 1.5 + 0.3
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * cross)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_mobilenet_v2_recognises_imagenet_classes():
    network = imagenet_mobilenet_v2()
    features = MobileNetV2Features(network)
    for image, classes in ((data.chelsea(), range(281, 286)), (data.coffee(), (967, 968, 504))):  # cats; espresso
        x = torch.nn.functional.interpolate(as_tensor(image), size=(224, 224), mode="bicubic") - features.mean
        with torch.inference_mode():
            top = network(x / features.std).argmax().item()
        assert top in classes


def test_perceptual_distance_grows_with_damage(astronaut_face):
    features = MobileNetV2Features()
    clean = as_tensor(astronaut_face)
    damaged = torch.cat([as_tensor(heavy(astronaut_face, preset=p)) for p in ("mild", "heavy")])
    with torch.inference_mode():
        distances = perceptual_distance(features(damaged), features(clean.expand(2, -1, -1, -1)))
        same = perceptual_distance(features(clean), features(clean))
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    assert 0 < distances[0] < distances[1]


def test_identity_and_landmarks_of_a_face_and_of_a_flat_image(astronaut_face):
    flat = np.full_like(astronaut_face, 128)
    signatures = identity.face_signatures([astronaut_face, flat, heavy(astronaut_face, preset="mild")])
    assert signatures.found.tolist() == [True, False, True]
    target = signatures.take([0, 0, 0])
    idd = identity.identity_distance(signatures, target)
    lmd = identity.landmark_distance(signatures, target)
    assert idd[0] == 0 and lmd[0] == 0
    assert np.isnan(idd[1]) and np.isnan(lmd[1])  # missing, never zero
    assert 0 < idd[2] < 0.6 and 0 < lmd[2] < 0.2  # the same person, slightly moved landmarks


@pytest.mark.data
def test_idd_verifies_lfw_pairs(lfw_faces):
    pairs = [v for v in lfw_faces.values() if len(v) == 2]
    singles = [v[0] for v in lfw_faces.values() if len(v) == 1]
    assert len(pairs) == 100 and len(singles) >= 100
    first = identity.face_signatures([a for a, _ in pairs] + [a for a, _ in pairs])
    second = identity.face_signatures([b for _, b in pairs] + singles[:100])
    distances = identity.identity_distance(first, second)
    same, different = distances[:100], distances[100:]
    accuracy = ((same < 0.6).sum() + (different >= 0.6).sum()) / 200
    assert accuracy >= 0.9, (accuracy, np.nanmean(same), np.nanmean(different))


@pytest.mark.data
def test_frechet_distances_separate_hq_from_heavy_lq(lfw_faces):
    faces = [f for v in lfw_faces.values() for f in v][:200]
    halves = list(enumerate(zip(faces[0::2], faces[1::2], strict=True)))
    suite = MetricSuite(["fd_mnv2", "fd_dlib"], batch_size=40)  # the reference half's features are computed once
    hq_vs_hq = suite.measure(FacePair(str(i), b, a, str(i)) for i, (a, b) in halves)
    hq_vs_lq = suite.measure(FacePair(str(i), heavy(b, str(i)), a, str(i)) for i, (a, b) in halves)
    # measured with 150 faces a side: FD-MNv2 53 vs 241, FD-dlib 0.046 vs 0.093 (dlib's descriptor is built to
    # ignore image quality, so it moves less; both HQ-vs-HQ values are mostly finite-sample bias)
    assert hq_vs_lq.set_value("fd_mnv2") > 3 * hq_vs_hq.set_value("fd_mnv2")
    assert hq_vs_lq.set_value("fd_dlib") > 1.6 * hq_vs_hq.set_value("fd_dlib")


def test_summary_counts_missing_values_and_brackets_the_mean(astronaut_face):
    faces = [astronaut_face, heavy(astronaut_face, "a"), heavy(astronaut_face, "b"), np.full_like(astronaut_face, 90)]
    summary = summarize_faces(faces, [astronaut_face] * 4, ["psnr_y", "idd", "lmd", "fd_dlib"])
    assert summary["count"] == 4 and set(summary) == {"count", "mean", "ci95", "missing", "images"}
    assert summary["missing"] == {"psnr_y": 0, "idd": 1, "lmd": 1, "fd_dlib": 1}
    assert summary["images"]["3"]["idd"] is None and summary["images"]["3"]["psnr_y"] is not None
    idd = [summary["images"][s]["idd"] for s in "012"]
    assert summary["mean"]["idd"] == pytest.approx(np.mean(idd))  # the missing face is left out, not zeroed
    low, high = summary["ci95"]["psnr_y"]
    assert low <= summary["mean"]["psnr_y"] <= high
    assert "fd_dlib" not in summary["images"]["0"]  # a set metric has no per-image value


def test_bootstrap_interval_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    small, large = rng.normal(3, 1, 20), rng.normal(3, 1, 2000)
    small_low, small_high = bootstrap_interval(small)
    large_low, large_high = bootstrap_interval(large)
    assert small_low < small.mean() < small_high and large_low < 3 < large_high
    assert large_high - large_low < (small_high - small_low) / 5
    assert bootstrap_interval(np.array([1.0, np.nan])) is None

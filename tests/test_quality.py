"""Tests for facemend.quality: NIQE and BRISQUE against the reference packages, ranking, gradients, errors."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facemend.data.degradation import PRESETS, degrade, image_rng, sample_params
from facemend.metrics.suite import FacePair, MetricSuite
from facemend.quality import BRISQUE, NIQE
from facemend.quality.brisque import default_model_paths, load_feature_ranges, load_svr

BT601 = np.array([0.299, 0.587, 0.114])
N_FACES = 10

# ------------------------------------------------------------------------------------------------ helpers


def batch(images: list[np.ndarray], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """H×W×3 uint8 RGB images → `b 3 h w` in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(dtype) / 255


def scores(metric: torch.nn.Module, images: list[np.ndarray], chunk: int = 10) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([metric(batch(images[i : i + chunk], torch.float32)) for i in range(0, len(images), chunk)])


def _imresize(arr: np.ndarray, size: float, interp: str = "bilinear", mode: str | None = None) -> np.ndarray:
    """scipy.misc.imresize (removed in scipy 1.3) for what scikit-video asks of it: like the original, a float
    ('F') Pillow image resized to int(size × its size) with the Pillow filter named `interp`."""
    if mode != "F" or not isinstance(size, float):
        raise NotImplementedError("only the float mode with a scale factor is needed")
    data = np.asarray(arr, np.float32)
    image = Image.frombytes("F", (data.shape[1], data.shape[0]), data.tobytes())
    new_size = tuple((np.array(image.size) * size).astype(int))
    filters = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "cubic": Image.BICUBIC}
    return np.array(image.resize(new_size, resample=filters[interp]))


@pytest.fixture(scope="module")
def skvideo_niqe() -> Iterator[Callable[[np.ndarray], np.ndarray]]:
    """scikit-video's own `niqe`, with what it needs from older numpy and scipy put back while the tests run."""
    pytest.importorskip("skvideo")
    import scipy.misc

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(np, "int", int, raising=False)  # removed in numpy 1.24
        patch.setattr(scipy.misc, "imresize", _imresize, raising=False)
        import skvideo.measure  # noqa: F401  (its `niqe` attribute is the function; the module is in sys.modules)

        yield sys.modules["skvideo.measure.niqe"].niqe


@pytest.fixture(scope="module")
def brisque_score() -> Iterator[Callable[[np.ndarray], float]]:
    """The brisque package's `BRISQUE().score`; on numpy 2 its features (1-element arrays) are made floats."""
    brisque = pytest.importorskip("brisque.brisque")
    features = brisque.BRISQUE.calculate_brisque_features

    def float_features(self, *args, **kwargs) -> np.ndarray:
        return np.array([np.asarray(f, np.float64).item() for f in features(self, *args, **kwargs)])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(brisque.BRISQUE, "calculate_brisque_features", float_features)
        yield brisque.BRISQUE(url=False).score


@pytest.fixture(scope="module")
def faces(request: pytest.FixtureRequest) -> list[np.ndarray]:
    """10 real degraded aligned faces (512×512) and 10 FFHQ faces shrunk to 512×512, RGB uint8."""
    shared = request.getfixturevalue("shared_data")
    cropped = sorted((shared / "real-lq" / "cropped").glob("*.png"))[:N_FACES]
    ffhq = sorted((shared / "hq-ref" / "ffhq").glob("*.png"))[:N_FACES]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in cropped]
    images += [
        cv2.resize(np.asarray(Image.open(p).convert("RGB")), (512, 512), interpolation=cv2.INTER_AREA) for p in ffhq
    ]
    assert len(images) == 2 * N_FACES and all(i.shape == (512, 512, 3) for i in images)
    return images


def niqe_gap(skvideo_niqe: Callable, images: list[np.ndarray]) -> float:
    # the reference takes luma from the caller: BT.601 on the 0–255 scale, as NIQE computes it from RGB
    reference = np.array([skvideo_niqe(image.astype(np.float64) @ BT601)[0] for image in images])
    ours = NIQE()(batch(images)).numpy()
    return float(np.abs(ours - reference).max())


def brisque_gap(brisque_score: Callable, images: list[np.ndarray], rgb: bool) -> float:
    from skimage.color import rgb2gray

    reference = np.array([brisque_score(image) for image in images])
    # grey input: the very grey pixels the reference computes; RGB input: our own conversion, see test below
    inputs = batch(images) if rgb else torch.from_numpy(np.stack([rgb2gray(i) for i in images]))[:, None]
    return float(np.abs(BRISQUE()(inputs).numpy() - reference).max())


def test_niqe_matches_scikit_video_on_astronaut(skvideo_niqe, astronaut):
    assert niqe_gap(skvideo_niqe, [astronaut]) < 0.01
    # 400×462: both crop to 384×384 (multiples of the 96-px patch) before anything else
    assert niqe_gap(skvideo_niqe, [np.ascontiguousarray(astronaut[:400, 50:])]) < 0.01


def test_brisque_matches_package_on_astronaut(brisque_score, astronaut):
    assert brisque_gap(brisque_score, [astronaut], rgb=False) < 1e-3
    # odd sizes: OpenCV rounds the half size to even (401×463 → 200×232)
    assert brisque_gap(brisque_score, [np.ascontiguousarray(astronaut[:401, 49:])], rgb=False) < 1e-3


@pytest.mark.data
def test_niqe_matches_scikit_video_on_faces(skvideo_niqe, faces):
    assert niqe_gap(skvideo_niqe, faces) < 0.01


@pytest.mark.data
def test_brisque_matches_package_on_faces(brisque_score, faces):
    assert brisque_gap(brisque_score, faces, rgb=False) < 1e-3


@pytest.mark.data
def test_brisque_from_rgb_is_close_to_package(brisque_score, faces):
    # from RGB, our grey differs from skimage's BLAS matrix product in the last bit of some pixels; that can
    # flip the sign of rounding noise in flat areas (see natural_scene.mscn_brisque), a few 1e-3 at most
    assert brisque_gap(brisque_score, faces[:5], rgb=True) < 0.01


def test_grey_conversions(astronaut):
    from skimage.color import rgb2gray

    from facemend.quality.natural_scene import BT601_LUMA, SKIMAGE_GREY, grey

    x = batch([astronaut])
    assert torch.allclose(grey(x, SKIMAGE_GREY, "t")[0], torch.from_numpy(rgb2gray(astronaut)), rtol=0, atol=1e-15)
    luma = astronaut.astype(np.float64) @ BT601 / 255
    assert torch.allclose(grey(x, BT601_LUMA, "t")[0], torch.from_numpy(luma), rtol=0, atol=1e-15)
    assert torch.equal(grey(x[:, :1], BT601_LUMA, "t"), x[:, 0])  # grey input is used as is


# ------------------------------------------------------------------------------------------------ behaviour


@pytest.mark.data
@pytest.mark.data
def test_scores_rank_degradation_presets(lfw_faces):
    """The evaluation path of facemend-test: 128-px aligned faces degraded at 128 px, scored at 512 px."""
    hq = [face for faces in lfw_faces.values() for face in faces][:150]
    suite = MetricSuite(["niqe", "brisque"])
    means = {}
    for preset, seed in (("hq", None), ("medium", 0), ("heavy", 1)):
        pairs = []
        for i, face in enumerate(hq):
            if seed is not None:
                rng = image_rng(seed, str(i))
                face = degrade(face, sample_params(rng, PRESETS[preset], 128), rng)
            pairs.append(FacePair(str(i), face))
        means[preset] = {key: values.mean() for key, values in suite.measure(pairs).per_image.items()}
    for key in ("niqe", "brisque"):
        assert means["hq"][key] < means["medium"][key] < means["heavy"][key], (key, means)


def test_batch_matches_single_images(astronaut):
    images = [astronaut, np.ascontiguousarray(astronaut[::-1, ::-1])]
    for metric in (NIQE(), BRISQUE()):
        together = scores(metric, images)
        alone = torch.cat([scores(metric, [image]) for image in images])
        assert together.dtype == torch.float32 and together.shape == (2,)
        torch.testing.assert_close(together, alone, rtol=0, atol=1e-4)


@pytest.mark.parametrize("metric", [NIQE, lambda: NIQE(smooth=True), BRISQUE], ids=["niqe", "niqe-smooth", "brisque"])
def test_gradient_reaches_the_input(metric, astronaut):
    x = batch([astronaut[:256, 128:384]], torch.float32).requires_grad_(True)
    metric()(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad != 0).float().mean() > 0.5


def test_flat_image_has_finite_scores_and_gradients():
    for metric in (NIQE(), BRISQUE()):
        x = torch.full((1, 3, 200, 200), 0.5, requires_grad=True)
        score = metric(x)
        score.sum().backward()
        assert torch.isfinite(score).all() and torch.isfinite(x.grad).all()


def test_too_small_or_malformed_images_are_refused():
    with pytest.raises(ValueError, match="at least 194×194"):
        NIQE()(torch.rand(1, 3, 193, 512))
    NIQE()(torch.rand(1, 1, 194, 194))  # the smallest NIQE accepts
    with pytest.raises(ValueError, match="at least 14×14"):
        BRISQUE()(torch.rand(2, 3, 512, 13))
    for bad in (torch.rand(1, 2, 256, 256), torch.rand(3, 256, 256), torch.zeros(1, 3, 256, 256, dtype=torch.uint8)):
        with pytest.raises(ValueError, match="expects"):
            NIQE()(bad)
        with pytest.raises(ValueError, match="expects"):
            BRISQUE()(bad)


def test_brisque_model_files(tmp_path):
    svm, ranges = default_model_paths()
    gamma, rho, vectors, coefficients = load_svr(svm)
    assert gamma == 0.05 and rho == -155.845 and vectors.shape == (770, 36) and coefficients.shape == (770,)
    low, high = load_feature_ranges(ranges)
    assert low.shape == high.shape == (36,) and np.all(high > low)
    # the ranges loader runs no code from the pickle: any class reference is refused
    unsafe = tmp_path / "normalize.pickle"
    unsafe.write_bytes(pickle.dumps({"min_": np.zeros(36), "max_": np.ones(36)}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_feature_ranges(unsafe)

"""All metrics of a set of restored faces in one pass, batched, with each network loaded once.

Per-image metrics are NaN where they cannot be computed (a face the landmark model cannot find); the report
counts them as missing instead of dropping or zeroing them. FD-MNv2 and FD-dlib are set metrics: computed over
the faces that have features on both sides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from facemend.errors import FacemendError
from facemend.metrics import identity, pixel
from facemend.metrics.frechet import frechet_distance
from facemend.metrics.perceptual import MobileNetV2Features, perceptual_distance, pooled

KEYS = (
    "psnr_y",
    "psnr_rgb",
    "ssim_y",
    "ssim_rgb",
    "idd",
    "lmd",
    "pd_mnv2",
    "fd_mnv2",
    "fd_dlib",
    "ids_sface",
    "niqe",
    "brisque",
)
NO_REFERENCE_KEYS = ("niqe", "brisque")
SET_KEYS = ("fd_mnv2", "fd_dlib")
HIGHER_IS_BETTER = frozenset({"psnr_y", "psnr_rgb", "ssim_y", "ssim_rgb", "ids_sface"})
# Metrics whose network some model is trained against (the perceptual loss's MobileNetV2, the identity loss's
# SFace): tables mark them, and identity is judged by dlib's IDD, FD-dlib and LMD, which no model sees.
TRAINED_AGAINST = frozenset({"pd_mnv2", "fd_mnv2", "ids_sface"})
NO_REFERENCE_SIZE = 512  # NIQE and BRISQUE are computed at 512 px, as the papers evaluate
_DLIB_KEYS = {"idd", "lmd", "fd_dlib"}
_MNV2_KEYS = {"pd_mnv2", "fd_mnv2"}


def check_keys(keys: Iterable[str]) -> tuple[str, ...]:
    """`keys` in the canonical order, or an error naming the unknown ones."""
    keys = set(keys)
    unknown = sorted(keys - set(KEYS))
    if unknown:
        raise FacemendError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    return tuple(k for k in KEYS if k in keys)


def default_keys(with_reference: bool) -> tuple[str, ...]:
    """Every metric with a ground truth; the no-reference ones without."""
    return KEYS if with_reference else NO_REFERENCE_KEYS


@dataclass
class Measurements:
    """Per-image values (`key → n`, NaN = missing) and the features the set metrics compare."""

    stems: list[str]
    per_image: dict[str, np.ndarray]
    set_features: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def set_value(self, key: str, rows: np.ndarray | None = None) -> float:
        """A set metric over all images, or over `rows` (indices, repeats allowed: bootstrap)."""
        predicted, target = self.set_features[key]
        if rows is not None:
            predicted, target = predicted[rows], target[rows]
        both = _found_on_both_sides(predicted, target)
        return frechet_distance(predicted[both], target[both]) if both.sum() >= 2 else float("nan")

    def missing(self, key: str) -> int:
        if key in self.set_features:
            return int((~_found_on_both_sides(*self.set_features[key])).sum())
        return int(np.isnan(self.per_image[key]).sum())


def _found_on_both_sides(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    return ~(np.isnan(predicted[:, 0]) | np.isnan(target[:, 0]))


@dataclass(frozen=True)
class FacePair:
    """One restored face (H×W×3 uint8 RGB) and, for full-reference metrics, its ground truth of the same size.
    `reference_id` (e.g. the ground truth's path) lets a suite reuse the ground truth's dlib features across runs."""

    stem: str
    prediction: np.ndarray
    target: np.ndarray | None = None
    reference_id: str | None = None


class MetricSuite:
    """Computes `keys` for batches of `FacePair`s; ground-truth features are cached by `reference_id`."""

    def __init__(self, keys: Sequence[str] = KEYS, batch_size: int = 16):
        self.keys = check_keys(keys)
        self.batch_size = batch_size
        self._reference_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def full_reference(self) -> bool:
        return any(k not in NO_REFERENCE_KEYS for k in self.keys)

    @property
    def _needs_descriptors(self) -> bool:
        return bool({"idd", "fd_dlib"} & set(self.keys))

    @cached_property
    def _mobilenet(self) -> MobileNetV2Features:
        return MobileNetV2Features()

    @cached_property
    def _sface(self) -> torch.nn.Module:
        from facemend.metrics.sface_identity import SFaceIdentity

        return SFaceIdentity()

    @cached_property
    def _niqe(self) -> torch.nn.Module:
        from facemend.quality.niqe import NIQE

        return NIQE()

    @cached_property
    def _brisque(self) -> torch.nn.Module:
        from facemend.quality.brisque import BRISQUE

        return BRISQUE()

    def load(self) -> None:
        """Load every network the keys need now (so timings of `measure` exclude loading)."""
        if _MNV2_KEYS & set(self.keys):
            _ = self._mobilenet
        if "ids_sface" in self.keys:
            _ = self._sface
        if "niqe" in self.keys:
            _ = self._niqe
        if "brisque" in self.keys:
            _ = self._brisque
        if _DLIB_KEYS & set(self.keys):
            identity.face_signatures([])

    @torch.inference_mode()
    def measure(self, pairs: Iterable[FacePair], progress=None) -> Measurements:
        """Metrics of all `pairs` (consumed in batches). `progress(n)` is called after each batch."""
        stems: list[str] = []
        columns: dict[str, list[np.ndarray]] = {k: [] for k in self.keys}
        batch: list[FacePair] = []
        for pair in pairs:
            if self.full_reference and pair.target is None:
                raise FacemendError(f"{pair.stem}: full-reference metrics need a ground truth")
            if pair.target is not None and pair.target.shape != pair.prediction.shape:
                raise FacemendError(
                    f"{pair.stem}: prediction is {_size(pair.prediction)} but ground truth is {_size(pair.target)}"
                )
            batch.append(pair)
            if len(batch) == self.batch_size:
                self._measure_batch(batch, stems, columns, progress)
                batch = []
        if batch:
            self._measure_batch(batch, stems, columns, progress)
        if not stems:
            raise FacemendError("no faces to evaluate")
        values = {k: np.concatenate(v) for k, v in columns.items()}
        per_image = {k: v for k, v in values.items() if k not in SET_KEYS}
        set_features = {k: (values[k][:, 0], values[k][:, 1]) for k in SET_KEYS if k in values}
        return Measurements(stems, per_image, set_features)

    def _measure_batch(self, batch: list[FacePair], stems: list[str], columns: dict, progress) -> None:
        stems.extend(p.stem for p in batch)
        keys = set(self.keys)
        predictions = [_tensor(p.prediction) for p in batch]
        targets = [_tensor(p.target) for p in batch] if self.full_reference else []
        if keys & {"psnr_y", "psnr_rgb", "ssim_y", "ssim_rgb"}:
            for key, fn, y_only in (
                ("psnr_y", pixel.psnr, True),
                ("psnr_rgb", pixel.psnr, False),
                ("ssim_y", pixel.ssim, True),
                ("ssim_rgb", pixel.ssim, False),
            ):
                if key in keys:
                    pairs = zip(predictions, targets, strict=True)
                    columns[key].append(np.array([fn(a, b, y_only).item() for a, b in pairs]))
        if keys & (_DLIB_KEYS | _MNV2_KEYS):
            self._measure_reference_features(batch, predictions, targets, columns)
        if "ids_sface" in keys:
            from facemend.metrics.sface_identity import identity_similarity

            embeddings = [self._sface(torch.cat(faces).float()) for faces in (predictions, targets)]
            columns["ids_sface"].append(identity_similarity(*embeddings).double().numpy())
        if keys & set(NO_REFERENCE_KEYS):
            resized = torch.cat([_resize(x, NO_REFERENCE_SIZE) for x in predictions])
            if "niqe" in keys:
                columns["niqe"].append(self._niqe(resized).double().numpy())
            if "brisque" in keys:
                columns["brisque"].append(self._brisque(resized).double().numpy())
        if progress is not None:
            progress(len(batch))

    def _measure_reference_features(
        self, batch: list[FacePair], predictions: list[torch.Tensor], targets: list[torch.Tensor], columns
    ) -> None:
        keys = set(self.keys)
        if keys & _DLIB_KEYS:
            predicted = identity.face_signatures([p.prediction for p in batch], self._needs_descriptors)
            target = self._target_signatures(batch)
            if "idd" in keys:
                columns["idd"].append(identity.identity_distance(predicted, target))
            if "lmd" in keys:
                columns["lmd"].append(identity.landmark_distance(predicted, target))
            if "fd_dlib" in keys:
                columns["fd_dlib"].append(np.stack([predicted.descriptors, target.descriptors], axis=1))
        if keys & _MNV2_KEYS:
            size = self._mobilenet.size
            predicted_maps = self._mobilenet(torch.cat([_resize(x, size) for x in predictions]).float())
            target_maps = self._mobilenet(torch.cat([_resize(x, size) for x in targets]).float())
            if "pd_mnv2" in keys:
                columns["pd_mnv2"].append(perceptual_distance(predicted_maps, target_maps).double().numpy())
            if "fd_mnv2" in keys:
                features = [pooled(m).double().numpy() for m in (predicted_maps, target_maps)]
                columns["fd_mnv2"].append(np.stack(features, axis=1))

    def _target_signatures(self, batch: list[FacePair]) -> identity.FaceSignatures:
        """dlib signatures of the ground truths, computed once per `reference_id`."""
        todo = [i for i, p in enumerate(batch) if p.reference_id not in self._reference_cache]
        fresh = identity.face_signatures([batch[i].target for i in todo], self._needs_descriptors)
        computed = {i: (fresh.landmarks[j], fresh.descriptors[j]) for j, i in enumerate(todo)}
        for i, signature in computed.items():
            if batch[i].reference_id is not None:
                self._reference_cache[batch[i].reference_id] = signature
        rows = [computed.get(i) or self._reference_cache[p.reference_id] for i, p in enumerate(batch)]
        return identity.FaceSignatures(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]))


def _tensor(image: np.ndarray) -> torch.Tensor:
    # float64: NIQE and BRISQUE then match their reference packages to ~1e-5 (float32 moves them by ~0.02)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].double() / 255.0


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}×{image.shape[0]}"

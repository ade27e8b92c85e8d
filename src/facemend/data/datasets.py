"""Training datasets: HQ faces from a `facemend prepare` folder, held in memory, and LQ/HQ pairs degraded on
the fly with the blind degradation model.

Randomness is a function of a *draw* number, never of process state: the sampler hands out draws
(`epoch · n + position`), and draw `k` always gives the same face, flip and degradation. That is what lets
`--resume` continue with exactly the batches an uninterrupted run would have seen, with any number of
loader workers or processes.

A method may train a stage on part of the faces (`Recipe.stage_faces`), e.g. those whose quality score in
`data.scores` (the scores.jsonl of `facemend score ROOT/train`) is at least a threshold (`faces_scoring`; iqpfr's
HQ+ stage, `method: {min_score: …}`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from facemend.data.degradation import Preset, degrade, resize_face, sample_params
from facemend.data.io import list_images, read_image, write_bytes_atomic
from facemend.data.parallel import parallel_map
from facemend.data.splits import hash_order
from facemend.errors import FacemendError

# DAEFR's stage-3 ranges (for 512-px faces): wider than the `heavy` test preset on every axis
TRAIN_DEGRADATION = Preset(blur_sigma=(0.1, 15.0), scale=(1.0, 30.0), noise_sigma=(0.0, 20.0), jpeg_quality=(30, 100))


@dataclass
class DataConfig:
    root: str = "data/prepared256"  # output folder of `facemend prepare`: reads ROOT/<split>/*.png
    size: int = 128  # faces are resized to size × size
    batch_size: int = 16  # per process
    workers: int = 1  # data-loader processes (0: load in the training process)
    flip: bool = True  # random horizontal flips
    degradation: Preset = TRAIN_DEGRADATION  # LQ ranges, stated for 512-px faces and scaled to `size`
    gray_prob: float = 0.1  # share of LQ faces made greyscale (old photographs)
    cache_dir: str = "runs/cache"  # decoded faces are kept here as .npy, keyed by the file list
    val_faces: int = 64  # validation faces (spread over the val split) scored at every sample step
    scores: str | None = None  # `facemend score ROOT/train`'s scores.jsonl, for methods that keep faces by score
    # train on only N faces of ROOT/train: the first by sha256 of "train/<file>", the subset `facemend clean
    # --limit N` cleans, so a run on the original faces can match a run on the cleaned ones
    train_faces: int | None = None

    def __post_init__(self) -> None:
        for name in ("size", "batch_size", "val_faces"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.train_faces is not None and self.train_faces < 1:
            raise ValueError(f"train_faces must be >= 1, got {self.train_faces}")
        if not 0.0 <= self.gray_prob <= 1.0:
            raise ValueError(f"gray_prob must be in [0, 1], got {self.gray_prob}")
        if self.scores is not None and not self.scores.endswith(".jsonl"):
            raise ValueError(f"scores must be a .jsonl file (facemend score's scores.jsonl), got {self.scores!r}")


def _read_face(path: Path, size: int) -> np.ndarray:
    return resize_face(read_image(path).to_uint8(), size)


def face_files(folder: str | Path) -> list[Path]:
    """The images directly in `folder`, in file-name order (the order of `load_faces`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacemendError(f"{folder}: no such folder (make it with `facemend prepare`)")
    files = list_images([folder], recursive=False)
    if not files:
        raise FacemendError(f"{folder}: no images")
    return files


def load_faces(folder: str | Path, size: int, cache_dir: str | Path | None = None) -> np.ndarray:
    """Every image in `folder` as a uint8 `n size size 3` array (file-name order), cached by file list."""
    folder = Path(folder)
    files = face_files(folder)
    key = hashlib.sha256("\n".join(f"{f.name}:{f.stat().st_size}" for f in files).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"{folder.name}-{size}-{key}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        return np.load(cache)
    faces = np.stack(list(parallel_map(partial(_read_face, size=size), files, desc=f"loading {folder}")))
    if cache is not None:
        buffer = _npy_bytes(faces)
        write_bytes_atomic(cache, buffer)
    return faces


def read_scores(path: str | Path, field: str = "data.scores") -> dict[str, float]:
    """A scores.jsonl of `facemend score` as {file: score}; problems name the config `field`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise FacemendError(f"{field}: {path}: cannot read ({error.__class__.__name__}: {error})") from None
    scores: dict[str, float] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            scores[str(entry["file"])] = float(entry["score"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise FacemendError(
                f'{field}: {path} line {number}: expected {{"file": ..., "score": ...}} (facemend score)'
            ) from None
    return scores


def faces_scoring(files: list[Path], scores: dict[str, float], min_score: float, field: str = "data.scores"):
    """Positions in `files` (a folder's images) of the faces whose score, looked up by file name, is ≥
    `min_score`; a file without a score is an error naming `field`."""
    missing = [file.name for file in files if file.name not in scores]
    if missing:
        raise FacemendError(
            f"{field}: {len(missing)} of {len(files)} training faces have no score (first: {missing[0]}); "
            f"score the training folder itself: facemend score {files[0].parent} -o OUT"
        )
    return np.array([i for i, file in enumerate(files) if scores[file.name] >= min_score], dtype=np.int64)


def first_by_hash(files: list[Path], count: int, split: str = "train") -> np.ndarray:
    """Sorted positions in `files` (a split's images) of the first `count` by sha256 of "<split>/<file>": the
    faces `facemend clean --limit count` cleans."""
    position = {f"{split}/{file.name}": i for i, file in enumerate(files)}
    return np.sort(np.array([position[name] for name in hash_order(position)[:count]], dtype=np.int64))


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


class FaceDataset(Dataset):
    """Draw → {"hq": `3 s s` float in [0, 1]}; with a degradation preset also {"lq": …} of the same size."""

    def __init__(
        self,
        faces: np.ndarray,
        seed: int = 0,
        flip: bool = True,
        degradation: Preset | None = None,
        gray_prob: float = 0.0,
    ):
        self.faces = faces
        self.seed = seed
        self.flip = flip
        self.degradation = degradation
        self.gray_prob = gray_prob

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, draw: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(draw)])
        face = self.faces[draw % len(self.faces)]
        if self.flip and rng.random() < 0.5:
            face = face[:, ::-1]
        item = {"hq": _to_tensor(face)}
        if self.degradation is not None:
            params = sample_params(rng, self.degradation, face.shape[0], self.gray_prob)
            item["lq"] = _to_tensor(degrade(np.ascontiguousarray(face), params, rng))
        return item


class ResumableSampler(Sampler[int]):
    """An endless stream of draws: each epoch a fresh permutation seeded by (seed, epoch); process `rank` of
    `world_size` takes every `world_size`-th draw; `start` skips the draws this process already used."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0):
        self.size = size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start

    def __iter__(self) -> Iterator[int]:
        position = self.start * self.world_size + self.rank  # position in the global stream
        while True:
            epoch, offset = divmod(position, self.size)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            while offset < self.size:
                yield epoch * self.size + int(order[offset])
                offset += self.world_size
            position = (epoch + 1) * self.size + (offset - self.size)

    def __len__(self) -> int:  # endless; DataLoader only asks when it is told to
        return 2**62

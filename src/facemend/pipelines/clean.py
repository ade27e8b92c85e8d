"""`facemend clean`: IDM's extrinsic iterative enhancement. A model restores the HQ faces of a `facemend prepare`
folder (they carry residual blur, noise and JPEG: the face itself is the model's input) into a new prepared
folder, on which the next round — or any other trainer, such as the tokenizer's — trains.

CLEANED is a prepare folder itself:
- `<split>/<file>` of each cleaned split (default: train): the restored face, with the original's name and size
  (a face larger than the model's size is restored at that size and resized back, which a trainer at the
  model's size does not see). The other splits (val, test) are copied byte for byte, so evaluation stays
  comparable across rounds.
- `manifest.jsonl`: the dataset's rows of the files in CLEANED, in its order, each with `cleaned_by` =
  {"model": the model spec's name, "knobs": every knob's value} for a cleaned face, null for a copied one.
  Written last: its presence means the folder is complete.
- `clean.json`: the settings (dataset, model, knobs, splits, limit), written first.

`limit` cleans only N faces of each cleaned split: the first N by sha256 of the file name (a fixed subset that
mixes sources and identities, as `testset` picks faces). The split's other faces are left out, so a run trained
on CLEANED sees cleaned targets only; compare it with a run on the same N original faces.

Every file is written atomically. A CLEANED folder that exists and is not empty is refused, unless `resume`:
then its clean.json must hold the same settings, and the files already there are kept, not restored again (an
interrupted clean continues). Errors found before the work starts (no such folder, not a prepare folder, unknown
model or knob, bad options) leave nothing behind.

`clean_rounds` automates the loop: round k cleans DATASET — the original faces every round, so that a round's
errors are not cleaned again and compounded — with the current model into CLEANED/round-k, then
trains a config on it (data.root = CLEANED/round-k) as the run `<name>-round-k`, whose last stage's export is
the model of round k + 1. The model given is round 0's (e.g. `idm` trained on the original faces); each round
trains from scratch unless the config's stages name an `init`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from facemend.data.io import Photo, read_image, write_bytes_atomic, write_image
from facemend.data.splits import SPLITS, hash_order
from facemend.errors import FacemendError
from facemend.methods.registry import ModelSpec, resolve_model

MANIFEST = "manifest.jsonl"
SETTINGS = "clean.json"


@dataclass
class CleanSummary:
    out: Path
    cleaned: int = 0  # faces restored by this call
    kept: int = 0  # cleaned faces already in CLEANED (resume)
    copied: int = 0  # files of the other splits
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.cleaned} faces cleaned, {self.kept} already there, {self.copied} copied unchanged "
            f"into {self.out} ({self.seconds:.1f} s)"
        )


def read_manifest(dataset: Path) -> list[dict[str, Any]]:
    """The rows of a prepare folder's manifest, each naming a file that exists."""
    manifest = dataset / MANIFEST
    if not dataset.is_dir():
        raise FacemendError(f"{dataset}: no such folder (make it with `facemend prepare`)")
    if not manifest.is_file():
        raise FacemendError(f"{dataset}: not a `facemend prepare` folder (no {MANIFEST})")
    rows = []
    with manifest.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
                if row["split"] not in SPLITS or Path(row["file"]).parts[0] != row["split"]:
                    raise ValueError(f"file {row['file']!r} of split {row['split']!r}")
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as error:
                raise FacemendError(f"{manifest}:{number}: not a manifest row ({error})") from None
            rows.append(row)
    absent = [row["file"] for row in rows if not (dataset / row["file"]).is_file()]
    if absent:
        raise FacemendError(f"{dataset}: {len(absent)} file(s) of the manifest missing, e.g. {absent[0]}")
    return rows


def _choose(rows: list[dict], splits: Sequence[str], limit: int | None) -> list[dict]:
    """The rows to clean: those of `splits`, at most `limit` per split (the first by sha256 of the file name)."""
    chosen = []
    for split in splits:
        names = hash_order(row["file"] for row in rows if row["split"] == split)
        chosen.extend(names[:limit] if limit is not None else names)
    wanted = set(chosen)
    return [row for row in rows if row["file"] in wanted]


def _open_output(out: Path, settings: dict[str, Any], resume: bool) -> None:
    """Start CLEANED with its clean.json, or (resume) check that it holds a clean with the same settings."""
    if out.exists() and not out.is_dir():
        raise FacemendError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not resume:
            raise FacemendError(f"{out}: already exists and is not empty: pass --resume to continue it")
        try:
            same = json.loads((out / SETTINGS).read_text(encoding="utf-8")) == settings
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:
            raise FacemendError(f"{out}: holds no clean with these settings ({SETTINGS}): choose another folder")
        return
    write_bytes_atomic(out / SETTINGS, (json.dumps(settings, indent=1) + "\n").encode())


def _as_tensor(photo: Photo, name: str) -> torch.Tensor:
    if photo.height != photo.width:
        raise FacemendError(f"{name}: not a square face crop ({photo.width}×{photo.height})")
    return torch.from_numpy(photo.rgb).permute(2, 0, 1)


def clean_dataset(
    dataset: str | Path,
    out: str | Path,
    model: str = "idm",
    knobs: dict[str, object] | None = None,
    splits: Sequence[str] = ("train",),
    limit: int | None = None,
    batch_size: int = 8,
    resume: bool = False,
    precision: str = "auto",
    progress: bool = True,
) -> CleanSummary:
    """Restore the faces of `splits` of the prepare folder `dataset` with the model spec `model` (knobs in
    `knobs` override the spec's) into `out`, copying the other splits (see the module docstring)."""
    started = time.monotonic()
    dataset, out = Path(dataset), Path(out)
    bad = [split for split in splits if split not in SPLITS]
    if bad or not splits:
        raise FacemendError(f"splits must be some of {', '.join(SPLITS)}, got {', '.join(splits) or 'none'}")
    if batch_size < 1 or (limit is not None and limit < 1):
        raise FacemendError(f"batch and limit must be >= 1, got {batch_size} and {limit}")
    rows = read_manifest(dataset)
    if out.resolve() == dataset.resolve() or dataset.resolve() in out.resolve().parents:
        raise FacemendError(f"{out}: inside the dataset it would clean; choose another folder")
    restorer, knobs = resolve_model(model, **(knobs or {}))
    cleaned = _choose(rows, splits, limit)
    copied = [row for row in rows if row["split"] not in splits]
    settings = {"dataset": str(dataset), "model": model, "knobs": knobs, "splits": list(splits), "limit": limit}
    _open_output(out, settings, resume)

    summary = CleanSummary(out)
    for row in copied:
        if not (out / row["file"]).exists():
            write_bytes_atomic(out / row["file"], (dataset / row["file"]).read_bytes())
            summary.copied += 1
    todo = [row for row in cleaned if not (out / row["file"]).exists()]
    summary.kept = len(cleaned) - len(todo)
    with tqdm(total=len(cleaned), initial=summary.kept, desc="clean", unit="face", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            faces = [_as_tensor(read_image(dataset / row["file"]), row["file"]) for row in chunk]
            for shape in dict.fromkeys(face.shape for face in faces):  # one size from prepare; else size by size
                group = [i for i, face in enumerate(faces) if face.shape == shape]
                restored = restorer(torch.stack([faces[i] for i in group]), precision=precision, **knobs)
                for i, face in zip(group, restored, strict=True):
                    write_image(out / chunk[i]["file"], Photo(face.permute(1, 2, 0).numpy()))
                summary.cleaned += len(group)
                bar.update(len(group))

    cleaned_by = {"model": ModelSpec.parse(model).name, "knobs": knobs}
    kept = {row["file"] for row in cleaned}
    written = [
        {**row, "cleaned_by": cleaned_by if row["file"] in kept else None}
        for row in rows
        if row["file"] in kept or row["split"] not in splits
    ]
    manifest = "".join(json.dumps(row, sort_keys=True) + "\n" for row in written)
    write_bytes_atomic(out / MANIFEST, manifest.encode("utf-8"))
    summary.seconds = time.monotonic() - started
    return summary


def clean_rounds(
    dataset: str | Path,
    out: str | Path,
    model: str,
    config: str | Path | dict,
    rounds: int,
    resume: bool = False,
    report: Callable[[str], None] = print,
    **options: Any,
) -> str | None:
    """`rounds` rounds of clean + train (see the module docstring); `options` go to `clean_dataset`. Returns the
    last round's model (a weights folder), or None when a training run was interrupted (continue with
    `resume`)."""
    from facemend.methods.registry import recipe_for
    from facemend.training.config import load_train_config
    from facemend.training.trainer import CHECKPOINT, check_config, train

    if rounds < 1:
        raise FacemendError(f"rounds must be >= 1, got {rounds}")
    out = Path(out)
    configs = []
    for k in range(1, rounds + 1):
        round_config = load_train_config(config)
        round_config.name = f"{round_config.name}-round-{k}"
        round_config.data.root = str(out / f"round-{k}")
        cleaned = Path(round_config.data.root)
        if not resume and ((round_config.run_dir / CHECKPOINT).exists() or cleaned.is_dir() and any(cleaned.iterdir())):
            raise FacemendError(f"round {k} has started before ({cleaned}, {round_config.run_dir}): pass --resume")
        configs.append(round_config)
    check_config(configs[0], recipe_for(configs[0]))  # a bad config stops here, before any work
    for k, round_config in enumerate(configs, 1):
        summary = clean_dataset(dataset, round_config.data.root, model, resume=resume, **options)
        report(f"round {k}: {summary.line()}")
        run_dir = round_config.run_dir
        result = train(round_config, recipe_for(round_config), resume=resume and (run_dir / CHECKPOINT).exists())
        if not result.finished:
            return None
        model = str(run_dir / round_config.stages[-1].name)
        report(f"round {k}: trained {run_dir}; its model: {model}")
    return model

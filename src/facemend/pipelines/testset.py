"""`facemend testset`: facemend-test, the synthetic LQ/HQ benchmark made from the test split of `prepare`.
With `split="val"` the same recipe over the validation split gives a set to choose knob defaults on, so that
the test faces only ever report.

At most 500 faces, at most 3 per identity (so a few people with many photos don't dominate), chosen by a hash
of the file name; degraded with `medium` (seed 0) and `heavy` (seed 1). Built in a temporary folder and moved
into place at the end, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from facemend.data.degradation import degrade_folder
from facemend.data.io import write_bytes_atomic
from facemend.data.splits import hash_order
from facemend.errors import FacemendError

PRESET_SEEDS = {"medium": 0, "heavy": 1}
MAX_FACES = 500
MAX_PER_IDENTITY = 3
SPLITS = ("test", "val")


def select_test_faces(
    prepared: str | Path, max_faces: int = MAX_FACES, per_identity: int = MAX_PER_IDENTITY, split: str = "test"
):
    """Files of `split` in `prepared/manifest.jsonl`, ≤ `per_identity` per identity and ≤ `max_faces` in all,
    with the number of identities they show."""
    if split not in SPLITS:
        raise FacemendError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    prepared = Path(prepared)
    manifest = prepared / "manifest.jsonl"
    if not manifest.is_file():
        raise FacemendError(f"{manifest}: no such file (make it with `facemend prepare`)")
    by_identity: dict[str, list[str]] = defaultdict(list)
    with manifest.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                if entry["split"] == split:
                    by_identity[str(entry["identity"])].append(str(entry["file"]))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise FacemendError(f"{manifest}:{number}: not a manifest entry ({error})") from None
    if not by_identity:
        raise FacemendError(f"{manifest}: no faces in the {split} split")
    identity_of = {f: who for who, files in by_identity.items() for f in hash_order(files)[:per_identity]}
    chosen = sorted(hash_order(identity_of)[:max_faces])
    paths = [prepared / name for name in chosen]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise FacemendError(f"{len(absent)} manifest file(s) missing, e.g. {absent[0]}")
    return paths, len({identity_of[name] for name in chosen})


def build_testset(
    prepared: str | Path,
    out: str | Path,
    size: int | None = None,
    max_faces: int = MAX_FACES,
    workers: int | None = None,
    progress: bool = True,
    split: str = "test",
) -> dict:
    """Write `out/{medium,heavy}/{lq,hq,params.json}` and `out/testset.json`; returns the latter's content."""
    if max_faces < 1:
        raise FacemendError(f"max_faces must be >= 1, got {max_faces}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FacemendError(f"{out}: already exists and is not an empty folder")
    files, identities = select_test_faces(prepared, max_faces, split=split)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for preset, seed in PRESET_SEEDS.items():
            summary = degrade_folder(files, staging / preset, preset, seed, size, workers=workers, progress=progress)
            if summary.failed:
                raise FacemendError(f"{preset}: {len(summary.failed)} face(s) failed, e.g. {summary.failed[0][1]}")
        info = {
            "prepared": str(prepared),
            "split": split,
            "faces": len(files),
            "identities": identities,
            "size": size,
            "presets": PRESET_SEEDS,
            "max_per_identity": MAX_PER_IDENTITY,
        }
        write_bytes_atomic(staging / "testset.json", (json.dumps(info, indent=1) + "\n").encode())
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info

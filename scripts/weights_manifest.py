"""The manifest of every weights folder in the repository (`weights/MANIFEST.json`): the bundled ones
(src/facemend/bundled/, what `facemend models` loads) and the training starting points in weights/.

    python scripts/weights_manifest.py           # rewrite weights/MANIFEST.json
    python scripts/weights_manifest.py --check   # exit 1 when it is stale: a folder or file missing, added or changed

Per folder: its weights kind, the training config, run, stage and steps that made it (from its `config.json`; the
config is the YAML under configs/ whose `name:` is the run), the commit that first held its `model.safetensors`
(from git; null until that file is committed: rerun after committing to fill it in), its terms, and the sha256 and
size of each file. `--check` compares everything but the commits, so replacing a weights file and rerunning this
script is the whole update.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from facemend.weights import sha256_of

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "weights" / "MANIFEST.json"
WEIGHTS_FOLDERS = (REPO / "src" / "facemend" / "bundled", REPO / "weights")
TERMS = (
    "research and non-commercial use only: trained here, from scratch, on LFW and UTKFace faces (../shared/data), "
    "aligned with dlib's iBUG 300-W landmark model; perceptual loss on MobileNetV2-ImageNet features"
)
SFACE_TERMS = "; identity loss on SFace (OpenCV Zoo, Apache-2.0)"


def weights_folders() -> list[Path]:
    """Every weights folder (one holding config.json), bundled ones first, each group by name."""
    return [
        path
        for parent in WEIGHTS_FOLDERS
        for path in sorted(parent.iterdir())
        if path.is_dir() and (path / "config.json").is_file()
    ]


def training_configs() -> dict[str, tuple[Path, dict[str, Any]]]:
    """Run name → (training config path, its content), for every YAML under configs/."""
    configs = {}
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "name" in data:
            configs[data["name"]] = (path, data)
    return configs


def first_commit_holding(path: Path) -> str | None:
    """The oldest commit whose tree holds `path`'s current content (None when no commit does yet)."""
    blob = subprocess.run(["git", "hash-object", str(path)], cwd=REPO, capture_output=True, text=True, check=True)
    log = subprocess.run(
        ["git", "log", "--reverse", "--format=%H", f"--find-object={blob.stdout.strip()}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    commits = log.stdout.split()
    return commits[0] if commits else None


def folder_entry(folder: Path, configs: dict[str, tuple[Path, dict[str, Any]]], commits: bool) -> dict[str, Any]:
    info = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    training = info.get("training", {})
    config_path, config = configs.get(training.get("run"), (None, {}))
    stage = next((s for s in config.get("stages", []) if s.get("name") == training.get("stage")), {})
    entry: dict[str, Any] = {
        "kind": info["kind"],
        "config": str(config_path.relative_to(REPO)) if config_path else None,
        "run": training.get("run"),
        "stage": training.get("stage"),
        "steps": training.get("steps"),
    }
    if commits:
        entry["commit"] = first_commit_holding(folder / "model.safetensors")
    entry["terms"] = TERMS + (SFACE_TERMS if stage.get("losses", {}).get("identity") else "")
    entry["files"] = {
        path.name: {"sha256": sha256_of(path), "size": path.stat().st_size}
        for path in sorted(folder.iterdir())
        if path.is_file()
    }
    return entry


def manifest(commits: bool = True) -> dict[str, Any]:
    """The manifest of the weights folders as they are now (`commits`: look each one's commit up in git)."""
    configs = training_configs()
    return {str(folder.relative_to(REPO)): folder_entry(folder, configs, commits) for folder in weights_folders()}


def without_commits(entries: dict[str, Any]) -> dict[str, Any]:
    return {folder: {k: v for k, v in entry.items() if k != "commit"} for folder, entry in entries.items()}


def stale(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between the recorded manifest and the folders as they are (commits aside)."""
    recorded, current = without_commits(recorded), without_commits(current)
    problems = [f"{folder}: not in the manifest" for folder in current if folder not in recorded]
    problems += [f"{folder}: in the manifest, but no weights folder there" for folder in recorded.keys() - current]
    for folder in (folder for folder in current if folder in recorded):
        changed = [key for key in current[folder] if recorded[folder].get(key) != current[folder][key]]
        if changed:
            problems.append(f"{folder}: {', '.join(changed)} changed since the manifest was written")
    return problems


def read_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text(encoding="utf-8")) if MANIFEST.exists() else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when weights/MANIFEST.json is stale")
    args = parser.parse_args()
    if args.check:
        problems = stale(read_manifest(), manifest(commits=False))
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("weights/MANIFEST.json is stale: run python scripts/weights_manifest.py", file=sys.stderr)
        return 1 if problems else 0
    MANIFEST.write_text(json.dumps(manifest(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {MANIFEST.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

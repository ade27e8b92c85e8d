"""`facemend restore --engine ray` (docs/cluster.md) against a real two-node Ray cluster on 127.0.0.1: the same
bytes as the local path, a restore actor killed mid-batch, a manifest, resuming, bad inputs.

    python -m pytest -m cluster tests/test_cluster.py
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facemend.cli import main
from facemend.data.io import list_images
from facemend.errors import FacemendError
from facemend.pipelines.cluster import (
    MANIFEST,
    FaceFinder,
    FaceRestorer,
    ListedPhotos,
    RestoreRecipe,
    _account,
    listed_inputs,
)
from facemend.pipelines.files import RunSummary, output_stems, refuse_writing_over_listed_inputs
from facemend.pipelines.photo import FaceOptions

pytestmark = pytest.mark.cluster

RAY_ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_USAGE_STATS": "1"}
# classical: no network, so its outputs do not depend on how faces are grouped into batches; --batch 1 gives
# the restore stage one photo per batch, so a killed actor has a batch in flight and others still to come
RESTORE = ["--model", "classical", "--batch", "1", "-q"]
RESTORER_TITLE = "MapWorker(MapBatches(FaceRestorer))"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut) -> Path:
    """Six small photos of the astronaut (sizes and mirrorings differ), one without a face, one corrupt file."""
    folder = tmp_path_factory.mktemp("inputs")
    for k in range(6):
        side = 240 + 24 * k
        photo = Image.fromarray(astronaut).resize((side, side), Image.Resampling.LANCZOS)
        if k % 2:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        photo.save(folder / f"photo_{k}.jpg", quality=85)
    Image.fromarray(np.full((96, 128, 3), 120, np.uint8)).save(folder / "blank.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    return folder


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray head and one more worker node, separate processes on 127.0.0.1, one CPU each; always stopped."""
    pytest.importorskip("ray")
    ray = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    node = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        head = [ray, "start", "--head", "--port", str(port), "--include-dashboard=false", *node]
        subprocess.run(head, check=True, env=RAY_ENV, timeout=300, capture_output=True)
        worker = [ray, "start", "--address", f"127.0.0.1:{port}", *node]
        subprocess.run(worker, check=True, env=RAY_ENV, timeout=300, capture_output=True)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=RAY_ENV, timeout=300, capture_output=True)


@pytest.fixture(scope="module")
def local_run(photos, tmp_path_factory) -> tuple[Path, str]:
    """The local path's outputs and summary line."""
    out = tmp_path_factory.mktemp("local")
    stderr = _cli([str(photos), "-o", str(out), *RESTORE], expect=1)
    return out, stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def killed_run(photos, ray_cluster, tmp_path_factory) -> tuple[Path, str, int]:
    """A Ray run during which one restore actor is killed (SIGKILL) while it restores a batch: its outputs, its
    stderr, and how many photos the manifest had when the actor was killed."""
    out = tmp_path_factory.mktemp("ray")
    command = [str(photos), "-o", str(out), *RESTORE, "--engine", "ray", "--address", ray_cluster]
    run = subprocess.Popen(_facemend(command), env=RAY_ENV, stderr=subprocess.PIPE, text=True)
    try:
        landed = _kill_restorer_mid_batch(run, out / MANIFEST)
        _, stderr = run.communicate(timeout=900)
    finally:
        run.kill()
    assert run.returncode == 1, stderr  # the corrupt file fails, nothing else
    return out, stderr, landed


def _facemend(arguments: list[str]) -> list[str]:
    return [sys.executable, "-m", "facemend", "restore", *arguments]


def _cli(arguments: list[str], expect: int) -> str:
    run = subprocess.run(_facemend(arguments), env=RAY_ENV, capture_output=True, text=True, timeout=900)
    assert run.returncode == expect, run.stderr
    return run.stderr


def _kill_restorer_mid_batch(run: subprocess.Popen, manifest: Path) -> int:
    """Wait until a photo has landed in the manifest and a restore actor is busy with a batch, then kill that
    actor's process; returns how many photos had landed."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and run.poll() is None:
        landed = len(_records(manifest)) if manifest.exists() else 0
        busy = [pid for pid, title in _processes() if title.startswith(f"ray::{RESTORER_TITLE}.")]
        if landed and busy:
            os.kill(busy[0], signal.SIGKILL)
            return landed
        time.sleep(0.2)
    pytest.fail("no restore actor was seen busy with a batch after the first photo landed")


def _processes() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit():
            found.append((int(entry.name), title))
    return found


def _records(manifest: Path) -> list[dict]:
    lines = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return [line for line in lines if "input" in line]


def _without_seconds(summary: str) -> str:
    return summary.rsplit(",", 1)[0]


def test_killed_worker_costs_nothing_outputs_match_local(local_run, killed_run, photos):
    local, local_summary = local_run
    out, stderr, landed = killed_run
    expected = sorted(path.name for path in local.glob("*.png"))
    assert len(expected) == 7 and landed < 7  # killed before all had landed
    assert sorted(path.name for path in out.glob("*.png")) == expected
    for name in expected:
        assert (out / name).read_bytes() == (local / name).read_bytes(), name
    summary = stderr.strip().splitlines()[-1]
    assert _without_seconds(summary) == _without_seconds(local_summary)
    assert summary.startswith("7 photos written, 6 faces restored, 1 without a face, 1 failed")


def test_a_network_gives_the_local_bytes_at_any_batch(photos, ray_cluster, tmp_path):
    # the default model, batched: network batches are padded to a fixed shape, and the actors use the driver's
    # torch threads, so each face's floats do not depend on how the two paths grouped the faces
    settings = ["--batch", "4", "-q"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    _cli([str(photos), "-o", str(local), *settings], expect=1)
    _cli([str(photos), "-o", str(remote), *settings, "--engine", "ray", "--address", ray_cluster], expect=1)
    names = sorted(path.name for path in local.glob("*.png"))
    assert len(names) == 7 and names == sorted(path.name for path in remote.glob("*.png"))
    assert [name for name in names if (local / name).read_bytes() != (remote / name).read_bytes()] == []


def test_manifest_has_one_line_per_input(killed_run, photos):
    out, stderr, _ = killed_run
    records = _records(out / MANIFEST)
    by_input = {record["input"]: record for record in records}
    assert len(records) == len(by_input) == 8  # the killed batch was retried, not written twice
    assert set(by_input) == {str(path.resolve()) for path in photos.iterdir()}
    broken = by_input[str((photos / "broken.jpg").resolve())]
    assert broken["status"] == "failed" and "corrupt or truncated" in broken["error"] and "\n" not in broken["error"]
    assert f"error: {broken['error']}" in stderr
    assert by_input[str((photos / "blank.png").resolve())]["status"] == "no_face"
    faces = [record for record in records if record["status"] == "restored"]
    assert len(faces) == 6 and all(r["faces"] == 1 and r["seconds"] > 0 and r["error"] is None for r in faces)


def test_rerun_skips_what_is_done(killed_run, photos, ray_cluster):
    out, _, _ = killed_run
    stamps = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    command = [str(photos), "-o", str(out), *RESTORE, "--engine", "ray", "--address", ray_cluster]
    stderr = _cli(command, expect=1)  # only the corrupt file is tried again, and fails again
    assert "7 of 8 photos already done" in stderr
    assert stderr.strip().splitlines()[-1].startswith("0 photos written, 0 faces restored, 0 without a face, 1 failed")
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")} == stamps
    # other settings would write other bytes: refused before any work, naming what differs
    stderr = _cli([*command, "--keep-input", "0.9"], expect=2)
    assert "other settings (knobs)" in stderr


def test_unreachable_cluster_fails_fast(photos, tmp_path):
    pytest.importorskip("ray")
    address = f"127.0.0.1:{_free_port()}"
    began = time.monotonic()
    stderr = _cli([str(photos), "-o", str(tmp_path), *RESTORE, "--engine", "ray", "--address", address], expect=2)
    assert time.monotonic() - began < 120  # model loading included, on a busy machine; the connect timeout is 5 s
    assert f"cannot reach the Ray cluster at {address}" in stderr and len(stderr.strip().splitlines()) == 1


def test_missing_extra_is_one_line(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when the extra is not installed
    assert main(["restore", str(photos), "-o", str(tmp_path), "--engine", "ray"]) == 2
    stderr = capsys.readouterr().err.strip()
    assert 'pip install "facemend[cluster]"' in stderr and len(stderr.splitlines()) == 1


def test_bad_inputs_on_a_worker_are_one_line_records(photos, tmp_path):
    """What a worker meets (a path missing there, a model it cannot load) becomes one line in the manifest's
    record and in the summary; the actors are called directly, as Ray Data calls them."""
    options = FaceOptions()
    recipe = RestoreRecipe("/nowhere/weights", {}, options, 512, 1, "fp32")
    missing = str(tmp_path / "gone.jpg")
    paths = [missing, str(photos / "photo_0.jpg")]
    found = FaceFinder(recipe)({"path": paths, "stem": ["gone", "photo_0"]})
    batch = FaceRestorer(recipe, str(tmp_path / "out"), False, False)(found)
    records = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
    assert [record["status"] for record in records] == ["failed", "failed"]
    assert records[0]["error"] == f"{missing}: no such file"
    assert records[1]["faces"] == 1 and "cannot load model '/nowhere/weights'" in records[1]["error"]
    summary, lines = RunSummary(), []
    for record in records:
        _account(record, options, False, summary, lines.append)
    assert summary.line().startswith("0 photos written, 0 faces restored, 0 without a face, 2 failed")
    assert all("\n" not in line for line in lines) and len(summary.failures) == 2
    with pytest.raises(FacemendError):
        recipe.build()


def test_the_listing_task_names_as_the_local_path_and_leaves_out_what_is_done(tmp_path):
    """The cluster's lazy listing (run directly, as its Ray task runs it): the local path's order and output
    names, videos listed without a name (their record says so), and the manifest's done inputs left out."""
    folders = [tmp_path / "roll1", tmp_path / "roll2"]
    for folder in folders:
        (folder / "sub").mkdir(parents=True)
        for name in ("face.jpg", "face.png", "clip.mp4", "sub/face.jpg"):
            (folder / name).write_bytes(b"x")
    sources = [str(folder) for folder in folders]
    photos = [path for path in list_images(sources) if path.suffix != ".mp4"]
    listed = list(listed_inputs(sources))
    assert [(path, stem) for path, stem in listed if stem] == list(
        zip([str(path.resolve()) for path in photos], output_stems(photos), strict=True)
    )
    assert [Path(path).name for path, stem in listed if not stem] == ["clip.mp4", "clip.mp4"]
    assert output_stems(photos)[:3] == ["face", "face_2", "face_3"]
    manifest = tmp_path / "out" / MANIFEST
    manifest.parent.mkdir()
    done, failed = listed[0][0], listed[1][0]
    lines = [{"settings": {}}, {"input": done, "status": "restored"}, {"input": failed, "status": "failed"}]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"input": "torn')
    rows = [row for block in ListedPhotos(sources, str(manifest)).rows() for row in zip(*block.values(), strict=True)]
    assert rows == [row for row in listed if row[0] != done]  # the failed input is tried again


def test_outputs_landing_on_listed_inputs_are_refused_before_any_work(tmp_path):
    folder = tmp_path / "photos"
    (folder / ".restored").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(b"x")
    refuse_writing_over_listed_inputs([folder], folder / ".restored")  # hidden: never listed
    refuse_writing_over_listed_inputs([folder], tmp_path / "elsewhere")
    refuse_writing_over_listed_inputs([folder], folder)  # no .png input there: no output can land on one
    (folder / "b.png").write_bytes(b"x")
    for sources, out in (([folder], folder), ([folder / "b.png"], folder), ([tmp_path], folder)):
        with pytest.raises(FacemendError, match="b.png would overwrite its own input"):
            refuse_writing_over_listed_inputs(sources, out)


def test_the_listing_task_names_as_the_driver_would_from_any_working_folder(tmp_path, monkeypatch):
    """Relative and absolute sources sort differently than their resolved paths would: the listing task lists
    from the driver's folder with the sources as given, wherever its worker runs."""
    for folder in ("zeta", "alpha"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "face.jpg").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    sources = ["alpha", str(tmp_path / "zeta")]  # as given, "/…/zeta" sorts before "alpha"; resolved, after
    photos = list_images(sources)
    expected = list(zip([str(path.resolve()) for path in photos], output_stems(photos), strict=True))
    assert expected[0] == (str(tmp_path / "zeta" / "face.jpg"), "face")
    listing = ListedPhotos(sources, str(tmp_path / "none.jsonl"))
    monkeypatch.chdir("/")  # a worker's working folder
    assert [row for block in listing.rows() for row in zip(*block.values(), strict=True)] == expected
    assert Path.cwd() == Path("/")

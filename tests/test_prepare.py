"""`facemend prepare`: aligned crops, identity splits, manifest, skip reasons."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facemend.cli import main
from facemend.data.splits import split_of
from facemend.faces import FaceDetector, find_faces, template_points
from facemend.pipelines.prepare import prepare_dataset

MANIFEST_KEYS = {"file", "source_path", "source", "identity", "split", "landmarks5", "box"}


def save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def test_split_is_stable_and_near_90_5_5():
    names = [f"person_{i}" for i in range(4000)]
    splits = [split_of(n) for n in names]
    assert splits == [split_of(n) for n in names]
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert abs(share["train"] - 0.9) < 0.02 and abs(share["val"] - 0.05) < 0.015
    assert split_of("Aaron_Eckhart") == split_of("Aaron_Eckhart")


def test_prepare_layout_manifest_and_skips(tmp_path, astronaut, capsys):
    lfw = tmp_path / "src" / "lfw"
    save(lfw / "Ann_A" / "Ann_A_0001.jpg", astronaut)
    save(lfw / "Ann_A" / "Ann_A_0002.jpg", astronaut[::, ::-1].copy())
    save(lfw / "Bob_B" / "Bob_B_0001.png", astronaut[30:400, 60:430])
    (lfw / "Bob_B" / "Bob_B_0002.jpg").write_bytes(b"corrupt")
    save(lfw / "Cy_C" / "Cy_C_0001.png", np.full((200, 200, 3), 127, np.uint8))
    save(lfw / "Di_D" / "Di_D_0001.png", cv2.resize(astronaut, (180, 180), interpolation=cv2.INTER_AREA))
    tight = tmp_path / "src" / "utkface"
    save(tight / "25_0_0_x.jpg.chip.jpg", cv2.resize(astronaut[60:185, 160:285], (200, 200)))
    out = tmp_path / "prepared"

    code = main(["prepare", str(lfw), str(tight), "-o", str(out), "--size", "128", "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 1, err  # one unreadable file
    # Di_D's face is ~33 px wide: found on the up-sampled retry, then skipped as smaller than 48 px
    assert "kept 4/7 faces" in err and "1 no face" in err and "1 too small" in err and "1 unreadable" in err
    assert any(line.startswith("error: ") and "Bob_B_0002.jpg" in line for line in err.splitlines())

    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert [r["file"] for r in records] == sorted(r["file"] for r in records)
    for record in records:
        assert set(record) == MANIFEST_KEYS
        assert record["split"] == split_of(record["identity"])
        assert record["file"] == f"{record['split']}/{record['source']}__{Path(record['source_path']).stem}.png"
        assert Image.open(out / record["file"]).size == (128, 128)
    by_stem = {Path(r["source_path"]).name: r for r in records}
    assert by_stem["Ann_A_0001.jpg"]["identity"] == "Ann_A"
    assert by_stem["25_0_0_x.jpg.chip.jpg"]["identity"] == "25_0_0_x.jpg.chip"
    assert by_stem["25_0_0_x.jpg.chip.jpg"]["source"] == "utkface"
    # the crop is aligned: its landmarks sit on the template
    crop = np.asarray(Image.open(out / by_stem["Ann_A_0001.jpg"]["file"]))
    big = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_CUBIC)
    (face,) = find_faces(big, FaceDetector("hog"), only_center_face=True)
    assert np.linalg.norm(face.landmarks5 - template_points(256), axis=1).mean() < 0.03 * 256
    # landmarks5 in the manifest are in source-image pixels (the tight crop was padded for detection)
    eyes = np.asarray(by_stem["25_0_0_x.jpg.chip.jpg"]["landmarks5"])[:2]
    assert np.all((eyes > 0) & (eyes < 200))


def test_too_small_faces_are_skipped(tmp_path, astronaut, capsys):
    save(tmp_path / "src" / "a.png", astronaut)
    summary = prepare_dataset(
        [tmp_path / "src"], tmp_path / "out", size=64, min_face_size=200, workers=1, progress=False
    )
    assert summary.kept == 0 and summary.skipped["too small"] == 1


@pytest.mark.data
def test_real_faces_are_kept(tmp_path, shared_data):
    sources = []
    for name, pattern in (("lfw", "*/*.jpg"), ("utkface", "*.jpg")):
        target = tmp_path / "src" / name
        for path in sorted((shared_data / name).glob(pattern))[::97][:60]:
            link = target / path.relative_to(shared_data / name)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
        sources.append(target)
    summary = prepare_dataset(sources, tmp_path / "out", size=128, workers=2, progress=False)
    assert summary.kept >= 0.95 * 120, summary.line()

"""`facemend eval`, `testset` and `benchmark` end to end, with the bad inputs each must refuse cleanly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import aligned_crop
from facemend.cli import main
from facemend.data.degradation import PRESETS, degrade, image_rng, sample_params
from facemend.methods.registry import split_specs
from facemend.metrics.suite import KEYS

FAST_KEYS = "psnr_y,psnr_rgb,ssim_y,ssim_rgb,idd,lmd,fd_dlib"


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def degraded(image: np.ndarray, stem: str, preset: str) -> np.ndarray:
    rng = image_rng(0, stem)
    return degrade(image, sample_params(rng, PRESETS[preset], image.shape[0]), rng)


@pytest.fixture(scope="module")
def faces(astronaut) -> list[np.ndarray]:
    """Six slightly different aligned 128-px crops of the astronaut's face."""
    return [aligned_crop(astronaut, 128, jitter) for jitter in (-2, -1, 0, 1, 2, 3)]


@pytest.fixture
def folders(tmp_path, faces) -> Path:
    """tmp/{hq,lq,pred}: ground truth, heavy LQ, and a 'restoration' (the medium-degraded face)."""
    for i, face in enumerate(faces):
        save(tmp_path / "hq" / f"f{i}.png", face)
        save(tmp_path / "lq" / f"f{i}.png", degraded(face, f"f{i}", "heavy"))
        save(tmp_path / "pred" / f"f{i}.png", degraded(face, f"f{i}", "mild"))
    return tmp_path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([*args, "-q"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_writes_json_csv_markdown_and_grid(folders, capsys):
    report = folders / "report"
    code, out, err = run(capsys, "eval", "--pred", str(folders / "pred"), "--gt", str(folders / "hq"),
                         "--lq", str(folders / "lq"), "-o", str(report), "--grid", "3")  # fmt: skip
    assert code == 0, err
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["mean"]) == set(KEYS) and set(metrics["ci95"]) == set(KEYS)
    assert metrics["count"] == 6 and sum(metrics["missing"].values()) == 0
    assert set(metrics["images"]) == {f"f{i}" for i in range(6)}
    assert 28 < metrics["mean"]["psnr_y"] < 60 and 0 < metrics["mean"]["idd"] < 0.6
    for key, (low, high) in metrics["ci95"].items():
        assert low <= metrics["mean"][key] <= high, key
    rows = list(csv.DictReader((report / "metrics.csv").open()))
    assert len(rows) == 6 and float(rows[0]["psnr_y"]) == pytest.approx(metrics["images"]["f0"]["psnr_y"])
    assert "| PSNR-Y ↑ |" in (report / "metrics.md").read_text() and "| PSNR-Y ↑ |" in out
    assert Image.open(report / "grid.jpg").size == (3 * 256, 3 * 256)  # LQ | prediction | GT, 3 rows


def test_eval_without_ground_truth_gives_no_reference_metrics(folders, capsys):
    code, _, err = run(capsys, "eval", "--pred", str(folders / "lq"), "-o", str(folders / "nr"))
    assert code == 0, err
    metrics = json.loads((folders / "nr" / "metrics.json").read_text())
    assert set(metrics["mean"]) == {"niqe", "brisque"}
    code, _, err = run(capsys, "eval", "--pred", str(folders / "lq"), "-o", str(folders / "x"), "--metrics", "idd")
    assert code == 2 and "--gt is needed for idd" in err


def test_eval_refuses_mismatched_sets_unless_allowed(folders, capsys):
    (folders / "pred" / "f5.png").unlink()
    save(folders / "pred" / "extra.png", np.zeros((128, 128, 3), np.uint8))
    code, _, err = run(capsys, "eval", "--pred", str(folders / "pred"), "--gt", str(folders / "hq"),
                       "-o", str(folders / "r"), "--metrics", FAST_KEYS)  # fmt: skip
    assert code == 2 and "1 only in --pred (extra); 1 only in --gt (f5)" in err and "--allow-partial" in err
    assert not (folders / "r").exists()
    code, _, err = run(capsys, "eval", "--pred", str(folders / "pred"), "--gt", str(folders / "hq"),
                       "-o", str(folders / "r"), "--metrics", FAST_KEYS, "--allow-partial")  # fmt: skip
    assert code == 0 and "evaluating the 5 in both" in err
    assert json.loads((folders / "r" / "metrics.json").read_text())["count"] == 5


def test_eval_reports_a_face_it_cannot_find_as_missing(folders, capsys):
    save(folders / "pred" / "f2.png", np.full((128, 128, 3), 120, np.uint8))
    code, _, err = run(capsys, "eval", "--pred", str(folders / "pred"), "--gt", str(folders / "hq"),
                       "-o", str(folders / "r"), "--metrics", FAST_KEYS)  # fmt: skip
    assert code == 0, err
    metrics = json.loads((folders / "r" / "metrics.json").read_text())
    assert metrics["missing"] == {"psnr_y": 0, "psnr_rgb": 0, "ssim_y": 0, "ssim_rgb": 0, "idd": 1, "lmd": 1,
                                  "fd_dlib": 1}  # fmt: skip
    assert metrics["images"]["f2"]["idd"] is None and metrics["images"]["f2"]["psnr_y"] is not None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("size", "f1: prediction is 64×64 but ground truth is 128×128"),
        ("corrupt", "f1.png: corrupt or truncated"),
        ("metric", "unknown metric(s) fid"),
    ],
)
def test_eval_bad_input_is_one_line_error_and_no_report(folders, capsys, damage, message):
    report = folders / "report"
    report.mkdir()
    (report / "metrics.json").write_text("earlier")
    args = ["--metrics", FAST_KEYS]
    if damage == "size":
        save(folders / "pred" / "f1.png", np.zeros((64, 64, 3), np.uint8))
    elif damage == "corrupt":
        (folders / "pred" / "f1.png").write_bytes((folders / "pred" / "f1.png").read_bytes()[:200])
    else:
        args = ["--metrics", "psnr_y,fid"]
    code, _, err = run(capsys, "eval", "--pred", str(folders / "pred"), "--gt", str(folders / "hq"),
                       "-o", str(report), *args)  # fmt: skip
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert (report / "metrics.json").read_text() == "earlier"  # nothing already written is lost


def make_prepared(root: Path, faces: list[np.ndarray]) -> Path:
    """A `prepare`-style folder: one person with 5 test faces, 4 people with 1, and train and val faces."""
    entries = []
    people = [("Many", 5), ("A", 1), ("B", 1), ("C", 1), ("D", 1), ("Trainee", 2), ("Validee", 4)]
    splits = {"Trainee": "train", "Validee": "val"}
    for person, count in people:
        for k in range(count):
            split = splits.get(person, "test")
            name = f"{split}/lfw__{person}_{k:04d}.png"
            save(root / name, faces[(len(entries)) % len(faces)])
            entries.append({"file": name, "identity": person, "split": split, "source": "lfw"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return root


def test_testset_builds_facemend_test_with_at_most_three_faces_per_identity(tmp_path, faces, capsys):
    prepared = make_prepared(tmp_path / "prepared", faces)
    code, _, err = run(capsys, "testset", "--prepared", str(prepared), "-o", str(tmp_path / "ft"), "--size", "64")
    assert code == 0, err
    info = json.loads((tmp_path / "ft" / "testset.json").read_text())
    assert info["faces"] == 7 and info["identities"] == 5 and info["presets"] == {"medium": 0, "heavy": 1}
    for preset in ("medium", "heavy"):
        stems = sorted(p.stem for p in (tmp_path / "ft" / preset / "lq").iterdir())
        assert stems == sorted(p.stem for p in (tmp_path / "ft" / preset / "hq").iterdir())
        assert len(stems) == 7 and sum(s.startswith("lfw__Many") for s in stems) == 3
        assert not any("Trainee" in s or "Validee" in s for s in stems)
        assert set(json.loads((tmp_path / "ft" / preset / "params.json").read_text())) == set(stems)
        assert Image.open(tmp_path / "ft" / preset / "lq" / f"{stems[0]}.png").size == (64, 64)
    medium = np.asarray(Image.open(tmp_path / "ft" / "medium" / "lq" / f"{stems[0]}.png"))
    heavy = np.asarray(Image.open(tmp_path / "ft" / "heavy" / "lq" / f"{stems[0]}.png"))
    assert not np.array_equal(medium, heavy)
    code, _, err = run(capsys, "testset", "--prepared", str(prepared), "-o", str(tmp_path / "ft"))
    assert code == 2 and "already exists" in err  # an earlier test set is never overwritten
    code, _, err = run(capsys, "testset", "--prepared", str(tmp_path), "-o", str(tmp_path / "ft2"))
    assert code == 2 and "manifest.jsonl: no such file" in err and not (tmp_path / "ft2").exists()


def test_testset_of_the_val_split_holds_only_validation_faces(tmp_path, faces, capsys):
    prepared = make_prepared(tmp_path / "prepared", faces)
    out = tmp_path / "fv"
    code, _, err = run(capsys, "testset", "--prepared", str(prepared), "-o", str(out), "--split", "val")
    assert code == 0, err
    info = json.loads((out / "testset.json").read_text())
    assert info["split"] == "val" and info["faces"] == 3 and info["identities"] == 1  # at most 3 per identity
    assert all("Validee" in p.stem for p in (out / "medium" / "lq").iterdir())


def test_benchmark_has_lq_input_and_classical_rows_table_and_plot(tmp_path, folders, capsys):
    data = folders  # has lq/ and hq/
    code, out, err = run(capsys, "benchmark", "--data", str(data), "--models", "classical:keep_input=0.8",
                         "-o", str(tmp_path / "bench"), "--metrics", FAST_KEYS + ",pd_mnv2")  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert result["data"] == str(data) and result["faces"] == 6
    assert list(result["models"]) == ["lq-input", "classical", "classical:keep_input=0.8"]
    row = result["models"]["classical"]
    assert {"psnr_y", "idd", "pd_mnv2", "code_acc", "s_per_face"} <= set(row) and row["s_per_face"] > 0
    assert row["code_acc"] is None and result["models"]["lq-input"]["s_per_face"] is None
    lq_psnr = json.loads((tmp_path / "bench" / "lq-input" / "metrics.json").read_text())["mean"]["psnr_y"]
    assert result["models"]["lq-input"]["psnr_y"] == pytest.approx(lq_psnr)
    assert len(list((tmp_path / "bench" / "classical_keep_input-0.8" / "faces").glob("*.png"))) == 6
    table = (tmp_path / "bench" / "benchmark.md").read_text()
    assert "| classical:keep_input=0.8 |" in table and "PSNR-Y ↑" in table and table in out
    assert Image.open(tmp_path / "bench" / "benchmark.png").size[0] > 400


def test_benchmark_on_lq_faces_only_is_no_reference(tmp_path, folders, capsys):
    code, _, err = run(capsys, "benchmark", "--data", str(folders / "lq"), "-o", str(tmp_path / "b"), "--limit", "3")
    assert code == 0, err
    result = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert result["faces"] == 3 and not result["reference"]
    assert {k for k, v in result["models"]["classical"].items() if v is not None} == {"niqe", "brisque", "s_per_face"}
    code, _, err = run(capsys, "benchmark", "--data", str(folders), "--models", "nonesuch", "-o", str(tmp_path / "c"))
    assert code == 2 and "unknown model 'nonesuch'" in err and not (tmp_path / "c").exists()


def test_model_lists_split_between_specs_not_between_knobs():
    assert split_specs("baseline, artfr:steps=8,seed=1,idm:steps=5") == ["baseline", "artfr:steps=8,seed=1",
                                                                         "idm:steps=5"]  # fmt: skip
    assert split_specs("") == []


@pytest.mark.data
def test_benchmark_on_the_real_pairs(tmp_path, shared_data, capsys):
    code, _, err = run(capsys, "benchmark", "--data", str(shared_data / "hq-ref" / "pairs"), "-o", str(tmp_path / "b"))
    assert code == 0, err
    rows = json.loads((tmp_path / "b" / "benchmark.json").read_text())["models"]
    assert rows["lq-input"]["psnr_y"] < 30 and rows["classical"]["niqe"] is not None


def test_benchmark_stops_on_a_corrupt_face_and_leaves_no_partial_output(tmp_path, folders, capsys):
    (folders / "lq" / "f3.png").write_bytes(b"not a png")
    code, _, err = run(capsys, "benchmark", "--data", str(folders), "-o", str(tmp_path / "b"), "--metrics", "psnr_y")
    assert code == 2 and "f3.png: not an image" in err and err.count("\n") == 1, err
    assert not (tmp_path / "b" / "benchmark.json").exists()
    assert not list((tmp_path / "b").glob(".*partial"))

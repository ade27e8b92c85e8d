"""`facemend benchmark-video`: clips with known motion, the temporal metrics, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from facemend.cli import main
from facemend.faces.template import transform_points
from facemend.metrics.identity import face_signatures
from facemend.metrics.temporal import clip_warping_error, descriptor_jitter, warping_error
from facemend.pipelines.video_benchmark import (
    FACE_SIZE,
    FRAME_SIZE,
    GROUND_TRUTH,
    LQ_INPUT,
    PASTED_TRUTH,
    degrade_clip,
    face_crops,
    face_masks,
    make_clip,
)

FACEMEND_TEST = REPO / "data" / "facemend-test-128"  # `facemend testset` output (a symlink is fine); not committed


@pytest.fixture(scope="module")
def clip(astronaut_face):
    return make_clip("astronaut", astronaut_face, 12, seed=0)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([*args, "-q"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_clip_moves_smoothly_and_its_crops_give_back_the_face(clip, astronaut_face):
    assert len(clip.frames) == 12 and clip.frames[0].shape == (FRAME_SIZE, FRAME_SIZE, 3)
    centre = np.array([[FACE_SIZE / 2, FACE_SIZE / 2]])
    path = np.array([transform_points(m, centre)[0] for m in clip.crop_to_frame])  # the face's centre in each frame
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert 0.05 < steps.max() < 4.0, steps  # it moves, smoothly: a few pixels per frame at most
    assert not np.array_equal(clip.frames[0], clip.frames[-1])
    crops = face_crops(clip.frames, clip)
    assert crops[0].shape == (FACE_SIZE, FACE_SIZE, 3)
    inside = face_masks(make_clip("astronaut", astronaut_face, 1, seed=0))[0]
    assert inside.mean() > 0.2
    # the crop cut by the known motion is the face again, up to resampling
    error = np.abs(crops[5].astype(float) - astronaut_face.astype(float)).mean()
    assert error < 3.0, error


def test_the_same_seed_makes_the_same_clip_and_another_seed_another(astronaut_face):
    a, b, c = (make_clip("x", astronaut_face, 4, seed) for seed in (0, 0, 1))
    assert np.array_equal(a.crop_to_frame, b.crop_to_frame) and np.array_equal(a.frames[3], b.frames[3])
    assert not np.allclose(a.crop_to_frame, c.crop_to_frame)
    assert np.array_equal(degrade_clip(a, "heavy", 0)[2], degrade_clip(b, "heavy", 0)[2])


def test_ground_truth_warped_by_the_known_motion_has_almost_no_warping_error(clip):
    masks = face_masks(clip)
    truth = clip_warping_error(clip.frames, clip.crop_to_frame, masks)
    lq = clip_warping_error(degrade_clip(clip, "medium", 0), clip.crop_to_frame, masks)
    assert truth < 1.0, truth  # grey levels: resampling only
    assert lq > 5 * truth, (truth, lq)


def test_a_wrong_motion_leaves_a_large_warping_error(clip):
    masks = face_masks(clip)
    still = [clip.crop_to_frame[0]] * len(clip.frames)  # pretends nothing moved
    assert clip_warping_error(clip.frames, still, masks) > 3 * clip_warping_error(
        clip.frames, clip.crop_to_frame, masks
    )


def test_flickering_frames_have_a_larger_warping_error_than_steady_ones(clip):
    rng = np.random.default_rng(0)
    flicker = [np.clip(f.astype(int) + int(rng.integers(-12, 13)), 0, 255).astype(np.uint8) for f in clip.frames]
    masks = face_masks(clip)
    steady = clip_warping_error(clip.frames, clip.crop_to_frame, masks)
    flickering = clip_warping_error(flicker, clip.crop_to_frame, masks)
    assert flickering > steady + 3.0, (steady, flickering)


def test_warping_error_is_zero_for_an_exact_shift_and_counts_only_covered_mask_pixels():
    rng = np.random.default_rng(1)
    previous = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    current = np.roll(previous, 3, axis=1)  # previous moved 3 px right; its first 3 columns come from nowhere
    shift = np.array([[1.0, 0, 3], [0, 1.0, 0]])
    everywhere = np.ones((40, 50), bool)
    assert warping_error(previous, current, shift, everywhere) < 1e-3
    assert warping_error(previous, current, np.eye(2, 3), everywhere) > 40
    only_uncovered = np.zeros((40, 50), bool)
    only_uncovered[:, :2] = True
    assert np.isnan(warping_error(previous, current, shift, only_uncovered))


def test_descriptor_jitter_is_the_mean_distance_to_the_clip_mean_and_skips_missing_faces():
    same = np.tile(np.arange(128.0), (5, 1))
    assert descriptor_jitter(same) == 0.0
    two = np.stack([np.zeros(128), np.full(128, np.nan), np.eye(128)[0] * 2])
    assert descriptor_jitter(two) == pytest.approx(1.0)  # each is 1 from their mean; the NaN row is left out
    assert np.isnan(descriptor_jitter(two[:2]))


def test_ground_truth_descriptor_jitters_less_than_the_lq_input(clip):
    lq = degrade_clip(clip, "heavy", 0)
    jitter = {
        name: descriptor_jitter(face_signatures(face_crops(frames, clip)).descriptors)
        for name, frames in ((GROUND_TRUTH, clip.frames), (LQ_INPUT, lq))
    }
    assert np.isfinite(jitter[GROUND_TRUTH]) and np.isfinite(jitter[LQ_INPUT])
    assert jitter[GROUND_TRUTH] < 0.5 * jitter[LQ_INPUT], jitter


@pytest.fixture
def hq_folder(tmp_path, astronaut_face) -> Path:
    """tmp/faces/hq: two aligned 128-px faces (the astronaut's, and it mirrored)."""
    folder = tmp_path / "faces" / "hq"
    folder.mkdir(parents=True)
    Image.fromarray(astronaut_face).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(astronaut_face[:, ::-1])).save(folder / "b.png")
    return tmp_path / "faces"


def test_the_command_writes_the_table_and_json_of_a_tiny_run(tmp_path, hq_folder, capsys):
    out = tmp_path / "report"
    code, table, err = run(
        capsys, "benchmark-video", "--data", str(hq_folder), "--clips", "2", "--frames", "6", "--presets", "medium",
        "-o", str(out),
    )  # fmt: skip
    assert code == 0, err
    written = (out / "video_benchmark.md").read_text()
    assert written == table
    for row in (GROUND_TRUTH, LQ_INPUT, PASTED_TRUTH, "residual-unet", "residual-unet, temporal"):
        assert f"| medium | {row} |" in written
    result = json.loads((out / "video_benchmark.json").read_text())
    assert result["clips"] == 2 and result["frames"] == 6 and result["presets"] == ["medium"]
    rows = result["rows"]["medium"]
    assert rows[GROUND_TRUTH]["idd"] == 0.0 and rows[GROUND_TRUTH]["warp_error"] < 1.0
    assert rows[LQ_INPUT]["warp_error"] > 3 * rows[GROUND_TRUTH]["warp_error"]
    assert rows["residual-unet"]["face_frames"] > 0.5 and rows["residual-unet"]["s_per_frame"] > 0
    steady, by_frame = rows["residual-unet, temporal"], rows["residual-unet"]
    assert steady["warp_error"] < by_frame["warp_error"]  # the temporal blend flickers less
    assert abs(steady["psnr_y"] - by_frame["psnr_y"]) < 1.0
    # a perfect restorer in the same path: far closer to the ground truth than the model, steadier than the input
    floor = rows[PASTED_TRUTH]
    assert floor["psnr_y"] > by_frame["psnr_y"] + 3 and floor["warp_error"] < rows[LQ_INPUT]["warp_error"] / 2
    assert floor["face_frames"] == by_frame["face_frames"] and floor["s_per_frame"] is None
    assert rows[LQ_INPUT]["psnr_y"] < 60 and sorted(result["per_clip"]["medium"][LQ_INPUT]) == ["a", "b"]
    with Image.open(out / "sample_medium.png") as sheet:
        assert sheet.size == (4 * FRAME_SIZE, 5 * FRAME_SIZE)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--data", "{tmp}/nowhere"), "nowhere: not a folder"),
        (("--frames", "1"), "--frames must be >= 2"),
        (("--clips", "0"), "--clips must be >= 1"),
        (("--presets", "medium,awful"), "unknown preset 'awful'"),
        (("--models", "nonesuch"), "nonesuch"),
    ],
)
def test_bad_input_is_a_one_line_error_and_exit_code_2(tmp_path, hq_folder, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    data = [] if "--data" in args else ["--data", str(hq_folder)]
    code, out, err = run(capsys, "benchmark-video", *data, *args, "-o", str(tmp_path / "report"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facemend: error: ") and message in lines[0], err
    assert not (tmp_path / "report").exists()


@pytest.mark.data
def test_on_facemend_test_the_restored_clip_beats_the_lq_input(tmp_path, capsys):
    if not (FACEMEND_TEST / "medium" / "hq").is_dir():
        pytest.skip(f"{FACEMEND_TEST} is not available (facemend testset, or a symlink to it)")
    out = tmp_path / "report"
    code, _, err = run(
        capsys, "benchmark-video", "--data", str(FACEMEND_TEST), "--clips", "2", "--frames", "8", "--presets",
        "medium", "-o", str(out),
    )  # fmt: skip
    assert code == 0, err
    rows = json.loads((out / "video_benchmark.json").read_text())["rows"]["medium"]
    assert rows["residual-unet"]["psnr_y"] > rows[LQ_INPUT]["psnr_y"]
    assert rows[GROUND_TRUTH]["id_jitter"] < rows[LQ_INPUT]["id_jitter"]
    assert rows[GROUND_TRUTH]["warp_error"] < 0.2 * rows[LQ_INPUT]["warp_error"]

"""Detection, landmarks, template geometry, alignment and paste-back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from conftest import EXAMPLES, psnr
from facemend.data.io import photo_from_array, read_image
from facemend.faces import (
    FaceDetector,
    alignment_matrix,
    feather_mask,
    find_faces,
    native_size,
    paste_face,
    template_points,
    warp_to_crop,
)
from facemend.faces.landmarks import reduce_to_5
from facemend.faces.template import TEMPLATE_POINTS_512, compose, matrix_scale, resize_matrix
from facemend.methods.base import Restorer
from facemend.pipelines.photo import FaceOptions, PhotoPipeline

ASTRONAUT_FACE_CENTRE = (220, 118)  # (x, y), by eye


class IdentityRestorer(Restorer):
    name = "identity"

    def __init__(self, face_size: int) -> None:
        self.face_size = face_size

    def restore_faces(self, faces: torch.Tensor) -> torch.Tensor:
        return faces


@pytest.mark.parametrize("detector", ["hog", "cnn", "haar"])
def test_detectors_find_the_real_face(astronaut, detector):
    boxes = FaceDetector(detector)(astronaut)
    big = [b for b in boxes if b.width > 60]
    assert len(big) == 1, boxes
    cx, cy = big[0].center
    assert abs(cx - ASTRONAUT_FACE_CENTRE[0]) < 20 and abs(cy - ASTRONAUT_FACE_CENTRE[1]) < 20
    assert 70 < big[0].width < 120


def test_hog_rejects_a_false_positive_on_clothing(astronaut):
    # JPEG-compressed, the astronaut's suit gives HOG a weak box (score ~0.22): the CNN check drops it
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 75])
    image = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    (box,) = FaceDetector("hog")(image)
    assert abs(box.center[0] - ASTRONAUT_FACE_CENTRE[0]) < 20 and abs(box.center[1] - ASTRONAUT_FACE_CENTRE[1]) < 20


@pytest.mark.parametrize("preset", ["mild", "medium", "heavy"])
def test_default_detector_finds_degraded_faces(preset):
    photo = read_image(EXAMPLES / f"astronaut_{preset}.png")
    faces = find_faces(photo.to_uint8(), FaceDetector("hog"))
    assert len(faces) == 1
    cx, cy = faces[0].landmarks5[:2].mean(axis=0)  # between the eyes
    assert abs(cx - ASTRONAUT_FACE_CENTRE[0]) < 25 and abs(cy - ASTRONAUT_FACE_CENTRE[1]) < 25


def test_no_face_in_texture():
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (0, 0), 3)
    assert find_faces(noise, FaceDetector("hog")) == []


def test_68_to_5_points():
    points = np.zeros((68, 2))
    points[36:42] = [10, 20]
    points[42:48] = [30, 20]
    points[30] = [20, 30]
    points[48] = [12, 40]
    points[54] = [28, 40]
    np.testing.assert_allclose(reduce_to_5(points), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])


def test_template_geometry():
    np.testing.assert_allclose(template_points(1024), 2 * TEMPLATE_POINTS_512)
    points = template_points(512)
    # eyes level and symmetric about the vertical centre line; nose between the eyes and the mouth
    assert abs(points[0, 1] - points[1, 1]) < 1
    assert abs((points[0, 0] + points[1, 0]) / 2 - 256) < 2
    assert points[0, 1] < points[2, 1] < points[3, 1]
    # the template mapped onto itself is the identity; at another size it is a pure scaling
    np.testing.assert_allclose(alignment_matrix(points, 512), [[1, 0, 0], [0, 1, 0]], atol=1e-6)
    np.testing.assert_allclose(alignment_matrix(points, 128), [[0.25, 0, 0], [0, 0.25, 0]], atol=1e-6)


def test_alignment_recovers_a_known_similarity():
    angle, scale, shift = 0.3, 0.7, np.array([40.0, -25.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    photo_points = (template_points(256) - shift) @ np.linalg.inv(rotation).T
    matrix = alignment_matrix(photo_points, 256)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-6)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-4)
    assert matrix_scale(matrix) == pytest.approx(scale)


def test_aligned_crop_puts_landmarks_on_the_template(astronaut):
    face = find_faces(astronaut, FaceDetector("hog"))[0]
    matrix = alignment_matrix(face.landmarks5, 256)
    mapped = np.c_[face.landmarks5, np.ones(5)] @ matrix.T
    # the best similarity cannot fit a smiling face's mouth exactly onto a neutral template
    assert np.linalg.norm(mapped - template_points(256), axis=1).mean() < 0.03 * 256
    # the crop is that transform: its landmarks, found again, sit where the transform put them
    again = find_faces(warp_to_crop(astronaut, matrix, 256), FaceDetector("hog"), only_center_face=True)[0]
    assert np.linalg.norm(again.landmarks5 - mapped, axis=1).mean() < 0.01 * 256


def test_big_shrink_does_not_alias():
    checker = (np.indices((2000, 2000)).sum(axis=0) % 2).astype(np.float32)[..., None].repeat(3, axis=2)
    matrix = np.array([[0.05, 0.0, 0.0], [0.0, 0.05, 0.0]])  # 2000 px → 100 px
    crop = warp_to_crop(checker, matrix, 100)
    assert abs(crop.mean() - 0.5) < 0.02
    assert crop.std() < 0.05  # nearest-style sampling would give a moiré of 0s and 1s


def test_crops_stay_in_range_at_hard_edges():
    checker = (np.indices((64, 64)).sum(axis=0) // 4 % 2).astype(np.float32)[..., None].repeat(3, axis=2)
    rotation = np.array([[0.9, -0.4, 20.0], [0.4, 0.9, -5.0]])  # bicubic overshoots 0 and 1 here unclipped
    crop = warp_to_crop(checker, rotation, 96)
    assert crop.min() == 0.0 and crop.max() == 1.0


def test_crop_past_the_image_is_not_a_mirror_image():
    image = np.full((100, 100, 3), 0.5, np.float32)
    image[40:50, 3:9] = 1.0  # a bright mark near the left edge: mirroring would copy it to x ≈ -6
    crop = warp_to_crop(image, np.array([[1.0, 0, 40], [0, 1.0, 0]]), 100)  # the image moves 40 px right
    np.testing.assert_allclose(crop[:, 40:], warp_to_crop(image, np.eye(2, 3), 100)[:, :60], atol=1e-5)
    outside = crop[:, :38]
    # blurred, not a sharp mirrored mark (which would reach 1.0 with 0.5 steps)
    assert outside.max() < 0.8 and np.abs(np.diff(outside, axis=1)).max() < 0.1
    assert abs(float(outside[:, :5].mean()) - 0.5) < 0.01  # far from the image: its median colour
    assert not np.array_equal(warp_to_crop(image, np.eye(2, 3), 100), crop)


def test_resize_matrix_matches_cv2_resize():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.random((90, 120)).astype(np.float32), (0, 0), 4)
    small = cv2.resize(image, (60, 45), interpolation=cv2.INTER_LINEAR)
    back = cv2.warpAffine(
        small,
        resize_matrix((120, 90), (60, 45)),
        (120, 90),  # small → full-size pixels
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    assert psnr(back[5:-5, 5:-5], image[5:-5, 5:-5]) > 40


def test_feather_mask_has_no_edge():
    mask = feather_mask(256)
    assert mask[0].max() == 0 and mask[:, -1].max() == 0
    assert mask[128, 128] == 1
    assert np.all(np.diff(mask[128, :128]) >= 0)  # rises monotonically towards the centre
    steepest = np.abs(np.diff(mask, axis=1)).max()
    assert steepest < 2.0 / (0.12 * 256)  # spread over ~30 px, never a step


def test_paste_leaves_no_box_edge():
    canvas = np.full((300, 300, 3), 0.2, np.float32)
    face = np.full((128, 128, 3), 0.8, np.float32)
    matrix = compose(alignment_matrix(template_points(128), 128), np.array([[1.0, 0, -80], [0, 1.0, -90]]))
    paste_face(canvas, face, matrix)
    row = canvas[90 + 64, :, 0]
    assert row.max() == pytest.approx(0.8, abs=1e-3) and row.min() == pytest.approx(0.2, abs=1e-6)
    # the 0.6 step is spread over the feather (0.12 · 128 px): a smoothstep's steepest slope is 1.5 / width
    assert np.abs(np.diff(row)).max() < 0.6 * 1.6 / (0.12 * 128)


def test_identity_round_trip_at_native_size_reproduces_the_photo(astronaut):
    photo = photo_from_array(astronaut)
    face = find_faces(astronaut, FaceDetector("hog"))[0]
    size = native_size(face.landmarks5)
    pipeline = PhotoPipeline(IdentityRestorer(size))
    restored, job = pipeline(photo)
    assert len(job.crops) == 1 and job.crops[0].shape == (size, size, 3)
    # the face region: where the pasted face fully replaces the photo
    coverage = cv2.warpAffine(feather_mask(size), cv2.invertAffineTransform(job.matrices[0]), (512, 512))
    region = coverage > 0.99
    assert region.sum() > 0.5 * size * size
    assert psnr(restored.rgb, photo.rgb, region) > 35
    untouched = coverage == 0
    assert np.array_equal(restored.rgb[untouched], photo.rgb[untouched])


def test_upscale_pastes_into_the_enlarged_photo(astronaut):
    photo = photo_from_array(astronaut)
    restored, _ = PhotoPipeline(IdentityRestorer(256), options=FaceOptions(upscale=2))(photo)
    assert restored.rgb.shape == (1024, 1024, 3)
    reference = np.clip(cv2.resize(photo.rgb, (1024, 1024), interpolation=cv2.INTER_CUBIC), 0, 1)
    x, y = ASTRONAUT_FACE_CENTRE
    window = np.s_[2 * y - 60 : 2 * y + 60, 2 * x - 60 : 2 * x + 60]
    assert psnr(restored.rgb[window], reference[window]) > 28


def test_only_center_face_picks_the_middle_one(astronaut):
    wide = np.concatenate([astronaut, astronaut, astronaut], axis=1)
    assert len(find_faces(wide, FaceDetector("hog"))) == 3
    (centre,) = find_faces(wide, FaceDetector("hog"), only_center_face=True)
    assert 512 < centre.box.center[0] < 1024


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_face_restores_the_same_whatever_it_is_batched_with(precision):
    from facemend.methods.registry import DEFAULT_MODEL, resolve_model

    restorer, knobs = resolve_model(DEFAULT_MODEL)
    pipeline = PhotoPipeline(restorer, knobs, batch_size=4, precision=precision)
    rng = np.random.default_rng(0)
    size = restorer.face_size
    faces = [rng.random((size, size, 3), dtype=np.float32) for _ in range(6)]
    alone = pipeline.restore_crops(faces[:1])[0]
    assert np.array_equal(pipeline.restore_crops(faces[3:6] + faces[:1])[3], alone)  # 2nd batch, 1 face of 1
    assert np.array_equal(pipeline.restore_crops(faces[4:6] + faces[:1])[2], alone)  # 1st batch, 3 faces of 4
    assert len(pipeline.restore_crops(faces)) == 6


def test_a_folder_fills_every_network_batch_and_writes_what_each_photo_gives_alone(astronaut, tmp_path):
    """Faces of consecutive photos fill whole batches (a photo straddling two waits for the second; only the
    run's last batch is padded), and each output is byte for byte what the photo gives restored alone."""
    from facemend.methods.registry import DEFAULT_MODEL, resolve_model
    from facemend.pipelines.files import restore_files

    class Counted:
        def __init__(self, restorer) -> None:
            self.restorer, self.calls = restorer, 0

        def __getattr__(self, name):
            return getattr(self.restorer, name)

        def __call__(self, *args, **kwargs):
            self.calls += 1
            return self.restorer(*args, **kwargs)

    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    pair = np.concatenate([small, small[:, ::-1]], axis=1)
    folder = tmp_path / "in"
    folder.mkdir()
    for k, image in enumerate([small, pair, small, pair, small]):  # 1, 2, 1, 2, 1 faces
        cv2.imwrite(str(folder / f"p{k}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    restorer, knobs = resolve_model(DEFAULT_MODEL)
    pipeline = PhotoPipeline(Counted(restorer), knobs, batch_size=2)
    paths = sorted(folder.iterdir())
    summary = restore_files(pipeline, paths, tmp_path / "out", report=lambda _: None, progress=False)
    assert summary.faces == 7 and summary.photos == 5
    assert pipeline.restorer.calls == 4  # 7 faces in batches of 2 (it took 5 calls when each flush was padded)
    for path in paths:
        restore_files(pipeline, [path], tmp_path / "alone", report=lambda _: None, progress=False)
        assert (tmp_path / "out" / f"{path.stem}.png").read_bytes() == (
            tmp_path / "alone" / f"{path.stem}.png"
        ).read_bytes()


def test_a_folder_reports_a_write_that_fails_in_order_and_goes_on(astronaut, tmp_path):
    """Outputs are pasted back and written by a writer thread, but a write that fails is counted and reported
    in input order, like the rest, and the run goes on; what was at the failed path is kept."""
    from facemend.methods.registry import DEFAULT_MODEL, resolve_model
    from facemend.pipelines.files import restore_files

    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for k in range(5):
        cv2.imwrite(str(folder / f"p{k}.png"), cv2.cvtColor(np.roll(small, 8 * k, axis=1), cv2.COLOR_RGB2BGR))
    (out / "p1.png").mkdir(parents=True)  # a folder where p1's output would go: its write fails
    (out / "p1.png" / "keep.txt").write_text("mine")
    restorer, knobs = resolve_model(DEFAULT_MODEL)
    reports: list[str] = []
    paths = sorted(folder.iterdir())
    pipeline = PhotoPipeline(restorer, knobs, batch_size=2)
    summary = restore_files(pipeline, paths, out, report=reports.append, progress=False)
    assert summary.photos == 4 and summary.faces == 4
    assert [source for source, _ in summary.failures] == [str(paths[1])]
    assert "cannot write output" in summary.failures[0][1]
    assert reports[1].startswith(f"error: {paths[1]}: cannot write output")
    assert [reports[k] for k in (0, 2, 3, 4)] == [f"{paths[k]}: 1 face(s)" for k in (0, 2, 3, 4)]
    assert (out / "p1.png" / "keep.txt").read_text() == "mine"
    assert sorted(path.name for path in out.glob("*.png") if path.is_file()) == ["p0.png", "p2.png", "p3.png", "p4.png"]

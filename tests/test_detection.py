"""The default learned detector (YuNet, box + 5 landmarks), the clean-up of detections, and bad photos through
`facemend restore` with it."""

from __future__ import annotations

import io
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLES
from facemend.cli import main
from facemend.data.io import read_image
from facemend.errors import FacemendError
from facemend.faces import DEFAULT_DETECTOR, Detection, FaceBox, FaceDetector, find_faces, template_points, yunet
from facemend.faces.boxes import box_iou, is_valid, suppress_duplicates
from facemend.faces.landmarks import landmarks_68, reduce_to_5
from facemend.faces.template import TEMPLATE_FACE_BOX_512, dlib_style_box
from facemend.faces.yunet import yunet_model_path
from facemend.pipelines.detect_benchmark import count_matches
from facemend.pipelines.photo import FaceOptions

ASTRONAUT_FACE_CENTRE = (220, 118)  # (x, y), by eye


def detection(left: float, top: float, right: float, bottom: float, score: float = 0.9) -> Detection:
    return Detection(FaceBox(left, top, right, bottom, score))


def check_sane_landmarks(points: np.ndarray, box: FaceBox) -> None:
    """Eyes left to right above the nose, the nose above the mouth corners, all inside the box."""
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert (points[:, 0] > box.left).all() and (points[:, 0] < box.right).all()
    assert (points[:, 1] > box.top).all() and (points[:, 1] < box.bottom).all()
    assert 0.25 < (right_eye[0] - left_eye[0]) / box.width < 0.6


def test_yunet_is_the_default_and_ships_offline():
    assert DEFAULT_DETECTOR == "yunet" and FaceDetector().name == "yunet"
    assert yunet_model_path().stat().st_size == 122489


def test_yunet_finds_the_astronaut_with_the_landmarks_of_dlib(astronaut):
    (face,) = find_faces(astronaut, FaceDetector())
    assert face.landmarks68 is not None  # default: dlib's 68-point model in the box YuNet's points imply
    cx, cy = face.box.center
    assert abs(cx - ASTRONAUT_FACE_CENTRE[0]) < 20 and abs(cy - ASTRONAUT_FACE_CENTRE[1]) < 20
    assert 70 < face.box.width < 120 and face.box.score > 0.8
    check_sane_landmarks(face.landmarks5, face.box)
    (hog,) = FaceDetector("hog")(astronaut)
    reference = reduce_to_5(landmarks_68(astronaut, hog))
    eyes = np.linalg.norm(reference[1] - reference[0])
    assert np.linalg.norm(face.landmarks5 - reference, axis=1).max() < 0.05 * eyes  # as the training faces were
    (own,) = find_faces(astronaut, FaceDetector(), landmarks="detector")
    assert own.landmarks68 is None and own.box == face.box  # YuNet's own points, no 68-point step
    assert np.linalg.norm(own.landmarks5 - reference, axis=1).max() < 0.25 * eyes
    assert (
        np.linalg.norm(own.landmarks5 - reference, axis=1).max()
        > np.linalg.norm(face.landmarks5 - reference, axis=1).max()
    )


def test_dlib_style_box_is_where_hog_puts_the_face(astronaut):
    (hog,) = FaceDetector("hog")(astronaut)
    implied = dlib_style_box(reduce_to_5(landmarks_68(astronaut, hog)))
    assert box_iou(implied, hog) > 0.75
    size, turn = 200.0, np.deg2rad(20)  # the template at 200 px, turned: an upright square of the face box's size
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    centre = np.mean(np.reshape(TEMPLATE_FACE_BOX_512, (2, 2)), axis=0) * size / 512 @ rotation.T + [40, 70]
    box = dlib_style_box(template_points(512) * (size / 512) @ rotation.T + [40, 70])
    np.testing.assert_allclose(box.center, centre, atol=1e-6)
    side = (TEMPLATE_FACE_BOX_512[2] - TEMPLATE_FACE_BOX_512[0]) * size / 512
    np.testing.assert_allclose([box.width, box.height], [side, side], atol=1e-6)


def test_unknown_landmarks_are_refused(astronaut):
    with pytest.raises(FacemendError, match="unknown landmarks 'eyes'"):
        find_faces(astronaut, FaceDetector(), landmarks="eyes")
    with pytest.raises(FacemendError, match="unknown landmarks 'eyes'"):
        FaceOptions(landmarks="eyes")


@pytest.mark.parametrize("preset", ["mild", "medium", "heavy"])
def test_yunet_finds_degraded_faces(preset):
    (face,) = find_faces(read_image(EXAMPLES / f"astronaut_{preset}.png").to_uint8(), FaceDetector())
    check_sane_landmarks(face.landmarks5, face.box)
    cx, cy = face.landmarks5[:2].mean(axis=0)  # between the eyes
    assert abs(cx - ASTRONAUT_FACE_CENTRE[0]) < 25 and abs(cy - ASTRONAUT_FACE_CENTRE[1]) < 25


def test_yunet_landmarks_follow_the_face_when_flipped_and_scaled(astronaut, monkeypatch):
    monkeypatch.setattr(yunet, "DLIB_OFFSETS_512", np.zeros((5, 2)))  # YuNet's own points (the offsets: below)
    (face,) = find_faces(astronaut, FaceDetector(), landmarks="detector")
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    (mirrored,) = find_faces(flipped, FaceDetector(), landmarks="detector")
    expected = np.stack([511 - face.landmarks5[:, 0], face.landmarks5[:, 1]], axis=1)[[1, 0, 2, 4, 3]]
    assert np.abs(mirrored.landmarks5 - expected).max() < 6
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    (half,) = find_faces(small, FaceDetector(), landmarks="detector")
    assert np.abs(half.landmarks5 * 2 - face.landmarks5).max() < 8


def test_offsets_move_points_by_their_size_in_the_template_frame():
    size = 200.0  # a face aligned exactly at the template, at 200 px instead of 512, and turned 30°
    turn = np.deg2rad(30)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    points = template_points(512) * (size / 512) @ rotation.T + [40, 70]
    moved = yunet.to_dlib_convention(points)
    back = (moved - [40, 70]) @ rotation * (512 / size)  # into the template's frame again
    np.testing.assert_allclose(back - template_points(512), -yunet.DLIB_OFFSETS_512, atol=1e-6)


def test_no_face_in_texture():
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (0, 0), 3)
    assert find_faces(noise, FaceDetector()) == []


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 8, 3), (31, 5, 3), (3, 2000, 3)])
@pytest.mark.parametrize("value", [0, 128, 255])
def test_tiny_and_thin_images_have_no_faces(shape, value):
    assert FaceDetector().detect(np.full(shape, value, np.uint8)) == []


def test_huge_photo_is_searched_shrunk_and_answered_in_its_own_coordinates(astronaut):
    tiles = np.tile(astronaut, (8, 12, 1))  # 4096 × 6144 = 25 MP, 96 faces; searched at 1600 px
    faces = find_faces(tiles, FaceDetector())
    assert len(faces) >= 90
    centres = np.array([f.box.center for f in faces])
    offsets = np.mod(centres - ASTRONAUT_FACE_CENTRE, 512)
    assert (np.minimum(offsets, 512 - offsets) < 25).all()  # every box on an astronaut's face


def test_degenerate_boxes_are_rejected():
    assert is_valid(detection(10, 10, 50, 60))
    for bad in [(10, 10, 10, 60), (10, 10, 11, 60), (10, 60, 50, 10), (10, 10, 200, 20), (np.nan, 10, 50, 60)]:
        assert not is_valid(detection(*bad)), bad
    assert not is_valid(Detection(FaceBox(10, 10, 50, 60), np.full((5, 2), np.inf)))
    assert not is_valid(Detection(FaceBox(10, 10, 50, 60, float("nan"))))
    assert suppress_duplicates([detection(10, 10, 10, 60), detection(0, 0, 0, 0)]) == []


def test_near_duplicates_are_suppressed_keeping_the_best():
    best = detection(100, 100, 200, 220, 0.95)
    shifted = detection(108, 104, 206, 226, 0.90)  # IoU ≈ 0.8 with the best
    inside = detection(120, 130, 180, 200, 0.97)  # wholly inside, though it scores higher: kept, the big one goes
    other = detection(300, 100, 400, 220, 0.60)
    kept = suppress_duplicates([shifted, best, other])
    assert [d.box for d in kept] == [best.box, other.box]
    kept = suppress_duplicates([best, inside, other])
    assert [d.box for d in kept] == [inside.box, other.box]
    touching = detection(199, 100, 299, 220, 0.8)  # barely overlapping neighbours both stay
    assert len(suppress_duplicates([best, touching])) == 2


def test_suppression_matches_a_brute_force_reference():
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 300, (60, 2))
    sides = rng.uniform(20, 80, (60, 1)) * [1.0, 1.2]
    found = [detection(*c, *(c + s), score) for c, s, score in zip(corners, sides, rng.uniform(0, 1, 60), strict=True)]
    kept: list[Detection] = []  # greedy by score: drop a box overlapping a kept one too much, or inside one
    for candidate in sorted(found, key=lambda d: -d.box.score):
        box = candidate.box
        if all(box_iou(box, k.box) <= 0.3 for k in kept):
            kept.append(candidate)
    reference = []
    for candidate in kept:
        box = candidate.box
        inside = [_share_inside(box, k.box) for k in reference]
        if all(share <= 0.8 for share in inside):
            reference.append(candidate)
    assert [d.box for d in suppress_duplicates(found)] == [d.box for d in reference]


def _share_inside(box: FaceBox, other: FaceBox) -> float:
    width = max(0.0, min(box.right, other.right) - max(box.left, other.left))
    height = max(0.0, min(box.bottom, other.bottom) - max(box.top, other.top))
    return width * height / (box.width * box.height)


def test_benchmark_matching_counts_each_true_face_once():
    truths = [FaceBox(0, 0, 100, 100), FaceBox(200, 0, 300, 100)]
    detections = [
        FaceBox(10, -10, 95, 110, 0.9),  # found
        FaceBox(5, 0, 100, 95, 0.8),  # the same face again: false
        FaceBox(150, 0, 180, 30, 0.7),  # nothing there: false
        FaceBox(180, 20, 320, 160, 0.6),  # found (each holds the other's centre)
    ]
    assert count_matches(detections, truths) == (2, 2)
    assert count_matches([], truths) == (0, 0)


# ------------------------------------------------------------------------------- bad photos, whole command


def restore(capsys, tmp_path, *inputs) -> tuple[int, str]:
    code = main(["restore", *map(str, inputs), "-o", str(tmp_path / "out"), "--quiet", "--model", "classical"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (3, 40)])
def test_tiny_photos_are_written_unchanged_with_a_warning(tmp_path, capsys, size):
    pixels = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    path = tmp_path / "tiny.png"
    Image.fromarray(pixels).save(path)
    code, err = restore(capsys, tmp_path, path)
    assert code == 0, err
    assert "no face found" in err and "Traceback" not in err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "tiny.png")), pixels)


def test_grey_16_bit_alpha_photo_with_a_face(tmp_path, capsys, astronaut):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    alpha = np.full_like(grey, 65535)
    alpha[:, :40] = 0
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), np.dstack([grey, grey, grey, alpha]))
    code, err = restore(capsys, tmp_path, path)
    assert code == 0 and "1 faces restored" in err, err
    out = cv2.imread(str(tmp_path / "out" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (512, 512, 4) and np.array_equal(out[..., 3], alpha)


def test_rotated_exif_photo_is_searched_upright(tmp_path, capsys, astronaut):
    stored = np.ascontiguousarray(np.rot90(astronaut, k=1))  # shown upright after a 90° clockwise turn
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    path = tmp_path / "turned.jpg"
    path.write_bytes(buffer.getvalue())
    (face,) = find_faces(read_image(path).to_uint8(), FaceDetector())
    cx, cy = face.box.center
    assert abs(cx - ASTRONAUT_FACE_CENTRE[0]) < 20 and abs(cy - ASTRONAUT_FACE_CENTRE[1]) < 20
    code, err = restore(capsys, tmp_path, path)
    assert code == 0 and "1 faces restored" in err, err


# ------------------------------------------------------------------------------------ video: detection stride


def test_faces_are_followed_by_optical_flow_between_detections(astronaut):
    from facemend.faces.flow import StridedDetection

    detector = FaceDetector()
    frames = [cv2.warpAffine(astronaut, np.float32([[1, 0, 3 * t], [0, 1, 2 * t]]), (512, 512)) for t in range(7)]
    calls = []

    def detect(frame):
        calls.append(1)
        return find_faces(frame, detector)

    strided = StridedDetection(3)
    for t, frame in enumerate(frames):
        (face,) = strided(frame, lambda frame=frame: detect(frame))
        if t % 3 == 0:
            detected = face
            continue
        shift = [3 * (t % 3), 2 * (t % 3)]  # the face moved this far since it was detected
        assert np.abs(face.landmarks5 - detected.landmarks5 - shift).max() < 0.5, t
        assert np.abs(np.subtract(face.box.center, detected.box.center) - shift).max() < 0.5, t
    assert len(calls) == 3  # frames 0, 3 and 6


def test_a_lost_face_makes_the_next_frame_detect(astronaut):
    from facemend.faces.flow import StridedDetection

    strided = StridedDetection(10)
    calls = []

    def detect(frame):
        calls.append(1)
        return find_faces(frame, FaceDetector())

    assert len(strided(astronaut, lambda: detect(astronaut))) == 1
    blank = np.zeros_like(astronaut)
    assert strided(blank, lambda: detect(blank)) == []  # flow loses the face: detected again, none there
    assert len(calls) == 2
    with pytest.raises(FacemendError):
        StridedDetection(0)


def test_a_face_the_detector_misses_is_kept_while_the_flow_follows_it(astronaut):
    from facemend.faces.flow import MAX_UNCONFIRMED, StridedDetection

    frames = [cv2.warpAffine(astronaut, np.float32([[1, 0, 2 * t], [0, 1, t]]), (512, 512)) for t in range(20)]
    (first,) = find_faces(frames[0], FaceDetector())
    strided = StridedDetection(2)
    assert strided(frames[0], lambda: [first]) == [first]
    kept = []
    for t in range(1, 2 * MAX_UNCONFIRMED + 3):
        faces = strided(frames[t], lambda: [])  # the detector misses it from now on
        kept.append(len(faces))
        if faces:  # where the flow put it: where it moved
            assert np.abs(faces[0].landmarks5 - first.landmarks5 - [2 * t, t]).max() < 1.0, t
    # followed on the frames between detections, kept through MAX_UNCONFIRMED detections that miss it, then let go
    assert kept == [1] * (2 * MAX_UNCONFIRMED + 1) + [0]


@pytest.mark.parametrize("speed", [4, 8, 16])
def test_a_face_is_never_carried_away_by_something_sliding_across_it(astronaut, speed):
    """A textured occluder slides over the (still) face from the left while the detector misses the face: the
    flow keeps the face where it is (within 5 % of its width) or lets it go, and never moves it along with the
    occluder (it did, by 8–64 px, before a second motion among its points let it go)."""
    from facemend.faces.flow import MAX_UNCONFIRMED, StridedDetection

    (first,) = find_faces(astronaut, FaceDetector())
    blobs = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    occluder = cv2.resize(blobs, (400, 512), interpolation=cv2.INTER_CUBIC)  # texture the flow can follow
    strided = StridedDetection(2)
    strided(astronaut, lambda: [first])
    kept = 0
    for t in range(1, 4 * MAX_UNCONFIRMED):
        frame = astronaut.copy()
        right = int(first.box.left) + speed * t  # the occluder's right edge moves in over the face
        frame[:, max(right - 400, 0) : right] = occluder[:, max(400 - right, 0) :]
        faces = strided(frame, lambda: [])
        if not faces:
            break
        kept += 1
        offset = np.subtract(faces[0].box.center, first.box.center)
        assert np.abs(offset).max() < 0.05 * first.box.width, (t, offset)  # 4.5 px: what the detector jitters by
    assert 1 <= kept <= 2 * MAX_UNCONFIRMED + 1  # followed while it is clear, never past the unconfirmed limit


def test_a_weak_detection_confirms_a_followed_face_but_starts_none(astronaut):
    from facemend.faces.flow import StridedDetection

    (face,) = find_faces(astronaut, FaceDetector())
    weak = replace(face, box=replace(face.box, score=0.55))
    strided = StridedDetection(1, weak_below=0.75)
    assert strided(astronaut, lambda: [weak]) == []  # nothing followed yet: a weak face starts nothing
    assert strided(astronaut, lambda: [face]) == [face]
    blank = np.zeros_like(astronaut)  # the flow cannot follow it here; the weak detection still confirms it
    assert strided(blank, lambda: [weak]) == [weak]
    assert strided(blank, lambda: [replace(weak, box=FaceBox(0, 0, 40, 40, 0.55))]) == []  # elsewhere: no
    with pytest.raises(FacemendError, match="min_score"):
        FaceDetector("hog", min_score=0.5)

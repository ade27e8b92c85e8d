"""Make the committed sample photos and the README picture from scikit-image's public-domain astronaut (NASA).

    python scripts/make_examples.py

Writes examples/astronaut_{mild,medium,heavy}.png (the photo degraded with each preset, damage scaled to the
size of its face) and docs/before_after.jpg (heavy input | facemend's default model).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

import facemend
from facemend.data.degradation import PRESETS, degrade, image_rng, sample_params
from facemend.data.io import photo_from_array, write_bytes_atomic, write_image
from facemend.faces import FaceDetector, find_faces, native_size

REPO = Path(__file__).resolve().parents[1]
SEEDS = {"mild": 0, "medium": 1, "heavy": 2}


def main() -> None:
    clean = data.astronaut()
    face_size = native_size(find_faces(clean, FaceDetector("hog"))[0].landmarks5)
    for preset, seed in SEEDS.items():
        rng = image_rng(seed, "astronaut")
        params = sample_params(rng, PRESETS[preset], face_size)
        lq = degrade(clean, params, rng)
        write_image(REPO / "examples" / f"astronaut_{preset}.png", photo_from_array(lq))
        print(preset, params.to_dict())

    heavy = cv2.cvtColor(cv2.imread(str(REPO / "examples" / "astronaut_heavy.png")), cv2.COLOR_BGR2RGB)
    restored = facemend.restore(heavy)
    crop = np.s_[20:276, 92:348]  # the face and shoulders
    figure = np.concatenate([heavy[crop], np.full((256, 8, 3), 255, np.uint8), restored[crop]], axis=1)
    figure = cv2.resize(figure, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    write_bytes_atomic(REPO / "docs" / "before_after.jpg", jpeg.tobytes())


if __name__ == "__main__":
    main()

"""`classical`: non-local-means denoising + detail enhancement, no learning (`restorer.py`)."""

from facemend.methods.classical.restorer import ClassicalRestorer
from facemend.methods.registry import ModelInfo, register_model

register_model(
    ModelInfo(
        "classical",
        "non-local-means denoising + detail enhancement (no learning)",
        ClassicalRestorer,
        ClassicalRestorer.knobs,
    )
)

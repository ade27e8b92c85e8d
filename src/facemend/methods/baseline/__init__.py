"""`baseline`: the model and restorer (`model.py`) and how it is trained (`recipe.py`); `baseline-q` is it with
IQPFR's quality conditioning plugged in."""

from facemend.methods.baseline.model import BaselineRestorer
from facemend.methods.lookup import lookup_knobs
from facemend.methods.registry import (
    ModelInfo,
    bundled_model,
    paper_scale_model,
    register_model,
    register_recipe,
    register_restorer,
    untrained_model,
)
from facemend.weights import bundled_registry

BUNDLED = "baseline-tiny"


def _recipe():
    from facemend.methods.baseline.recipe import BaselineRecipe

    return BaselineRecipe


register_restorer(BaselineRestorer)
register_recipe("baseline", _recipe)
if BUNDLED in bundled_registry():
    register_model(
        ModelInfo(
            "baseline",
            "CodeFormer-style codebook lookup with controllable fidelity (tiny: 128-px faces)",
            bundled_model(BaselineRestorer, BUNDLED),
            BaselineRestorer.knobs,
        )
    )
register_model(paper_scale_model("baseline", BaselineRestorer.knobs, "fusion"))
register_model(
    untrained_model(
        "baseline-q",
        "baseline with IQPFR's quality conditioning (the target score embedded into the LQ latent)",
        lookup_knobs(True),
        "fusion",
        "weights/baseline-q-tiny-fusion",
        "configs/baseline/q-tiny.yaml",
    )
)

"""`daefr`: the model and restorer (`model.py`), its cross-attention, and how it is trained (`recipe.py`);
`daefr-q` is it with IQPFR's quality conditioning plugged in."""

from facemend.methods.daefr.model import DaefrRestorer
from facemend.methods.lookup import lookup_knobs
from facemend.methods.registry import register_method, register_model, untrained_model


def _recipe():
    from facemend.methods.daefr.recipe import DaefrRecipe

    return DaefrRecipe


register_method(
    "daefr",
    DaefrRestorer,
    _recipe,
    "DAEFR: dual associated encoders (HQ and LQ branches, patch association, cross-attention fusion) "
    "predict the HQ codes in one shot, fidelity fusion",
    "fusion",
)
register_model(
    untrained_model(
        "daefr-q",
        "daefr with IQPFR's quality conditioning (the target score embedded into the combined latent)",
        lookup_knobs(True, DaefrRestorer.default_keep_input),
        "fusion",
        config="configs/daefr/q-tiny.yaml",
    )
)

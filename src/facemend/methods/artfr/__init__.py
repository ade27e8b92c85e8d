"""`artfr`: the model and restorer (`model.py`) and how it is trained (`recipe.py`)."""

from facemend.methods.artfr.model import ArtfrRestorer
from facemend.methods.registry import register_method

DESCRIPTION = (
    "ART-FR: masked generative transformer over the HQ codes, iterative parallel sampling (MaskGIT), fidelity fusion"
)


def _recipe():
    from facemend.methods.artfr.recipe import ArtfrRecipe

    return ArtfrRecipe


register_method("artfr", ArtfrRestorer, _recipe, DESCRIPTION, "fusion")

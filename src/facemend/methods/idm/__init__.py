"""`idm`: the model and restorer (`model.py`) and how it is trained (`recipe.py`)."""

from facemend.methods.idm.model import IdmRestorer
from facemend.methods.registry import register_method

DESCRIPTION = (
    "IDM: conditional diffusion UNet on the LQ face, few-step DDIM sampling, the input blended back "
    "(`keep_input`); `facemend clean` enhances a training set with it"
)


def _recipe():
    from facemend.methods.idm.recipe import IdmRecipe

    return IdmRecipe


register_method("idm", IdmRestorer, _recipe, DESCRIPTION, "denoise")

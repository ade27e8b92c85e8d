"""`residual-unet`: the model and restorer (`model.py`) and how it is trained (`recipe.py`)."""

from facemend.methods.registry import register_model, register_recipe, register_restorer, tiny_model
from facemend.methods.residual_unet.model import ResidualUNetRestorer


def _recipe():
    from facemend.methods.residual_unet.recipe import ResidualUNetRecipe

    return ResidualUNetRecipe


register_restorer(ResidualUNetRestorer)
register_recipe("residual-unet", _recipe)
register_model(
    tiny_model(
        "residual-unet",
        ResidualUNetRestorer,
        "a U-Net predicts the correction of the LQ face in one pass, trained with L1 + perceptual + identity "
        "(SFace) + adversarial losses",
        "restore",
    )
)

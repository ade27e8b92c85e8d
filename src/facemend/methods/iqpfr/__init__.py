"""`iqpfr`: the model and restorer (`model.py`) and how it is trained (`recipe.py`)."""

from facemend.methods.iqpfr.model import IqpfrRestorer
from facemend.methods.registry import register_method

DESCRIPTION = (
    "IQPFR: a quality-conditioned transformer predicts common and HQ+ codes (a dual codebook, HQ+ learned "
    "from the best-scoring faces), trained to raise a no-reference prior's score; `quality` sets the target"
)


def _recipe():
    from facemend.methods.iqpfr.recipe import IqpfrRecipe

    return IqpfrRecipe


register_method("iqpfr", IqpfrRestorer, _recipe, DESCRIPTION, "fusion")

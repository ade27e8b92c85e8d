"""No-reference image quality: NIQE and BRISQUE as batched, differentiable torch modules, and IQPFR's quality
prior (a calibrated NIQE score in [0, 1]). The names below are imported when first used, so that the photo path,
which needs only `quality.damage`, does not need the [eval] extra's scipy."""

from importlib import import_module

_HOMES = {"BRISQUE": "brisque", "NIQE": "niqe", "QualityPrior": "prior", "QualityPriorConfig": "prior"}
__all__ = list(_HOMES)


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)

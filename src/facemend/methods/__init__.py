"""The restoration methods, one package each; importing this package registers them all (`registry.py`), in the
order the registry lists them."""

from facemend.methods import classical, residual_unet, baseline, daefr, iqpfr, artfr, idm  # noqa: F401, I001

"""Imports go only downward through the layers of docs/design.md, read from the source (nothing is imported): a
package imports itself and the packages of lower layers only; the shared core knows no method; a method imports no
other method."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facemend"

# docs/design.md, Layers: top to bottom; packages of one layer do not import each other
LAYERS = [
    ("__main__",),
    ("__init__", "cli"),
    ("api", "web"),
    ("pipelines",),
    ("runtime",),
    ("methods",),
    ("training",),
    ("metrics",),
    ("models", "samplers"),
    ("quality",),
    ("faces", "data"),
    ("config", "weights", "precision", "package_files", "extras"),
    ("errors",),
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
# the one import between methods: residual-unet starts training from idm's weights (methods/residual_unet/recipe.py)
BETWEEN_METHODS = {("residual_unet", "idm")}
METHOD_CORE = ("__init__", "base", "registry", "lookup", "lookup_stage")  # methods/ modules no method owns


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def name_of(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts


def imported(path: Path) -> list[tuple[str, ...]]:
    """The facemend modules `path` imports (every import statement, TYPE_CHECKING and function-level ones too),
    each as its parts below `facemend`; `from facemend import __version__` names the package itself, ()."""
    here = name_of(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package
                package = here if path.name == "__init__.py" else here[:-1]
                base = ".".join(("facemend", *package[: len(package) - node.level + 1]))
                names = [f"{base}.{node.module}" if node.module else base]
            else:
                names = [node.module or ""]
        else:
            continue
        found += [tuple(name.split(".")[1:]) for name in names if name == "facemend" or name.startswith("facemend.")]
    return found


def layer_of(parts: tuple[str, ...]) -> str:
    return parts[0] if parts else "__init__"


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_go_only_downward(path):
    here = name_of(path)
    for target in imported(path):
        if not target:  # `from facemend import __version__`: the package's metadata
            continue
        source, destination = layer_of(here), layer_of(target)
        assert destination in RANK, f"{destination}: a package missing from LAYERS (docs/design.md)"
        if source == destination:
            continue
        assert RANK[source] < RANK[destination], (
            f"facemend.{'.'.join(here)} imports facemend.{'.'.join(target)}: "
            f"{source} is not above {destination} (docs/design.md, Layers)"
        )


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_the_shared_core_knows_no_method_and_methods_stay_apart(path):
    here = name_of(path)
    method_targets = {target[1] for target in imported(path) if target[:1] == ("methods",) and len(target) > 1}
    method_targets -= set(METHOD_CORE)
    if here[:1] != ("methods",):
        assert RANK[layer_of(here)] < RANK["methods"] or not method_targets, f"{here} imports {method_targets}"
        return
    owner = here[1] if len(here) > 1 and here[1] not in METHOD_CORE else None
    if owner is None:
        allowed = set() if here[1:] != () else method_targets  # methods/__init__ imports every method
        assert method_targets <= allowed, f"facemend.{'.'.join(here)} (no method's) imports {method_targets}"
    else:
        others = {target for target in method_targets if target != owner}
        assert {(owner, other) for other in others} <= BETWEEN_METHODS, f"{owner} imports the methods {others}"


def test_the_layers_cover_every_package():
    packages = {layer_of(name_of(path)) for path in modules()}
    assert packages <= set(RANK), f"add {sorted(packages - set(RANK))} to LAYERS and to docs/design.md"

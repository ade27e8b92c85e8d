"""`pip install facemend` restores photos; every other command names, in one line, the extra it needs.

The core install is simulated in a child process whose imports of every extra's modules fail, as they do where the
extra is not installed."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from facemend.extras import MODULE_EXTRAS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut_heavy.png"

# Installs a finder that makes `import <any extra's module>` fail, then runs facemend's CLI with the given arguments.
CORE_ONLY = textwrap.dedent(
    """
    import sys
    BLOCKED = set(sys.argv[1].split(","))

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    from facemend.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def run_core_only(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CORE_ONLY, ",".join(MODULE_EXTRAS), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_core_install_restores_a_photo_with_every_offered_model(tmp_path):
    from facemend.methods.registry import runnable_models

    for model in runnable_models():
        out = tmp_path / model
        result = run_core_only("restore", str(EXAMPLE), "-o", str(out), "--model", model)
        assert result.returncode == 0, (model, result.stderr[-2000:])
        with Image.open(out / EXAMPLE.name) as restored:
            assert restored.size == Image.open(EXAMPLE).size


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("serve",), "serve"),
        (("export", "--model", "residual-unet", "-o", "{tmp}/model.onnx"), "onnx"),
        (("restore", str(EXAMPLE), "-o", "{tmp}/onnx", "--runtime", "onnx"), "onnx"),
        (("benchmark", "--data", "{tmp}", "--models", "classical", "-o", "{tmp}/bench"), "eval"),
        (("benchmark-video", "--data", "{tmp}", "-o", "{tmp}/bench"), "eval"),
        (("train", str(ROOT / "configs" / "residual-unet" / "tiny.yaml")), "train"),
    ],
)
def test_a_command_without_its_extra_names_it_in_one_line(tmp_path, args, extra):
    result = run_core_only(*(arg.replace("{tmp}", str(tmp_path)) for arg in args))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("facemend: error: ") and errors[0].endswith(f"pip install 'facemend[{extra}]'")
    assert not any(tmp_path.glob("**/*.png")) and not (tmp_path / "model.onnx").exists()


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _requirements(extras: dict[str, list[str]], extra: str) -> set[str]:
    """The distributions `extra` installs directly, with the extras it includes (facemend[...]) expanded."""
    names = set()
    for requirement in extras[extra]:
        if requirement.startswith("facemend["):
            for included in requirement.split("[")[1].rstrip("]").split(","):
                names |= _requirements(extras, included)
        else:
            names.add(_name(requirement))
    return names


def test_each_extra_installs_the_modules_it_is_named_for():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    distributions = importlib.metadata.packages_distributions()
    for module, extra in MODULE_EXTRAS.items():
        if module not in distributions:
            continue  # another spelling of a module that is installed under its other name (python-multipart)
        wanted = {_name(name) for name in distributions[module]}
        direct = _requirements(extras, extra)
        pulled = {_name(r) for d in direct for r in (importlib.metadata.requires(d) or []) if "extra ==" not in r}
        assert wanted & (direct | pulled), (module, extra, wanted)
    assert _requirements(extras, "all") == set().union(*(_requirements(extras, e) for e in extras if e != "dev"))
    assert _requirements(extras, "all") <= _requirements(extras, "dev")

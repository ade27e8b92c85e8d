"""Typed configs: unknown keys rejected, errors name the bad field, YAML round trip."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from facemend.config import ConfigError, build, load_yaml, to_dict
from facemend.training.config import load_train_config


@dataclass
class Inner:
    width: int = 8
    mults: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


@dataclass
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    items: list[Inner] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    path: str | None = None


def test_build_converts_nested_values():
    config = build(Outer, {"name": "x", "inner": {"mults": [1, 2, 4]}, "items": [{"width": 3}], "weights": {"a": 1}})
    assert config.inner.mults == (1, 2, 4)
    assert config.items[0].width == 3
    assert config.weights == {"a": 1.0} and isinstance(config.weights["a"], float)
    assert build(Outer, to_dict(config)) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "inner": {"widht": 3}}, "inner.widht: unknown key"),
        ({"name": "x", "inner": {"width": "3"}}, "inner.width: expected an integer"),
        ({"name": "x", "inner": {"width": 0}}, "inner: width must be >= 1"),
        ({"name": "x", "items": [{}, {"width": -1}]}, "items[1]: width must be >= 1"),
        ({"name": "x", "weights": {"a": "big"}}, "weights.a: expected a number"),
        ({"name": "x", "inner": {"width": True}}, "inner.width: expected an integer"),
        ({"inner": {}}, "name: required"),
        ({"name": 3}, "name: expected a string"),
    ],
)
def test_errors_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build(Outer, data)


def test_repository_configs_load(tmp_path):
    from conftest import REPO
    from facemend.methods.registry import recipe_for

    paths = sorted((REPO / "configs").rglob("*.yaml"))
    assert paths
    for path in paths:
        config = load_train_config(path)
        recipe_for(config)  # validates the model and discriminator sections
        folder = path.relative_to(REPO / "configs").parts[0]  # configs/METHOD/[experiments/]NAME.yaml
        assert config.name == f"{folder}-{path.stem}", f"{path}: its run folder is runs/{config.name}"


def test_training_config_errors_name_file_and_field(tmp_path):
    from conftest import REPO

    text = (REPO / "configs" / "tokenizer" / "tiny.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  batch_size: 16", "  batch_size: 0"))
    with pytest.raises(ConfigError, match=r"bad\.yaml: data: batch_size must be >= 1"):
        load_train_config(bad)
    bad.write_text(text.replace("  grad_clip: 1.0", "  grad_clip: 1.0\n  gradclip: 2"))
    with pytest.raises(ConfigError, match=r"trainer\.gradclip: unknown key"):
        load_train_config(bad)
    bad.write_text("stages: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)


def test_stage_method_options_belong_to_the_method():
    """A stage's `method:` options are its method's (`Recipe.stage_options_class`): another method's key, a key
    given to a method that takes none, or one left at the stage's top level is an error naming it."""
    import yaml

    from conftest import REPO
    from facemend.methods.registry import recipe_for

    def config(name: str) -> dict:
        return yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())

    iqpfr, artfr, baseline = config("iqpfr/tiny"), config("artfr/tiny"), config("baseline/tiny")
    assert recipe_for(load_train_config(iqpfr)).stage_options(load_train_config(iqpfr).stages[0]).min_score == 0.75
    artfr_fusion = load_train_config(artfr).stages[1]
    assert recipe_for(load_train_config(artfr)).stage_options(artfr_fusion).sampler_steps == 1
    artfr["stages"][1]["method"] = {"min_score": 0.5}
    with pytest.raises(ConfigError, match=r"stages\[1\]\.method\.min_score: unknown key \(known keys: sampler_steps\)"):
        recipe_for(load_train_config(artfr))
    artfr["stages"][1]["method"] = {"sampler_steps": 0}
    with pytest.raises(ConfigError, match=r"stages\[1\]\.method: sampler_steps must be >= 1, got 0"):
        recipe_for(load_train_config(artfr))
    baseline["stages"][0]["method"] = {"sampler_steps": 2}
    with pytest.raises(ConfigError, match=r"stages\[0\]\.method\.sampler_steps: recipe 'baseline' takes no stage"):
        recipe_for(load_train_config(baseline))
    iqpfr["stages"][0]["min_score"] = iqpfr["stages"][0].pop("method")["min_score"]  # where it was before
    with pytest.raises(ConfigError, match=r"stages\[0\]\.min_score: unknown key"):
        load_train_config(iqpfr)

"""Knobs: one meaning per name, declared once (`Knob`), a CLI flag for each, old names kept for one release, and
one check of a value that every way in (CLI, Python API, web API) answers with the same message. The models
offered: the ones that run as installed, listed first; every one of them restores a face."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facemend
from conftest import REPO
from facemend.cli import _knob_values, build_parser, main
from facemend.errors import FacemendError
from facemend.methods.base import RenamedKnobWarning
from facemend.methods.registry import MODELS, RESTORER_KINDS, resolve_model, restorer_from_folder, runnable_models

OUT_OF_RANGE = "knob 'keep_input' must be in [0.0, 1.0], got 2.0"


@pytest.fixture(scope="module")
def face(astronaut_face) -> torch.Tensor:
    """The astronaut's aligned 128-px face, `1 3 128 128` in [0, 1]."""
    return torch.from_numpy(astronaut_face).permute(2, 0, 1)[None].float() / 255


@pytest.fixture
def face_file(tmp_path, astronaut_face) -> Path:
    path = tmp_path / "in" / "face.png"
    path.parent.mkdir()
    Image.fromarray(astronaut_face).save(path)
    return path


def test_a_knob_name_means_one_thing():
    """The same name has one type in every model, and an old name never shadows a model's current knob."""
    types: dict[str, set[type]] = {}
    for info in MODELS.values():
        names = [knob.name for knob in info.knobs]
        old = [name for knob in info.knobs for name in knob.old_names]
        assert len(set(names)) == len(names) and not set(old) & set(names), info.name
        for knob in info.knobs:
            types.setdefault(knob.name, set()).add(knob.type)
    assert all(len(kinds) == 1 for kinds in types.values()), types
    assert "fidelity" not in {knob.name for knob in MODELS["classical"].knobs + MODELS["idm"].knobs}
    assert [knob.name for knob in MODELS["idm"].knobs] == ["steps", "seed", "noise_scale", "keep_input"]


@pytest.mark.parametrize("command", ["restore", "clean"])
def test_every_declared_knob_and_old_name_has_a_flag(command):
    names = {name for info in MODELS.values() for knob in info.knobs for name in (knob.name, *knob.old_names)}
    assert {"keep_input", "top_k", "noise_scale", "temperature", "fidelity"} <= names
    flags = [arg for name in sorted(names) for arg in (f"--{name.replace('_', '-')}", "1")]
    args = build_parser().parse_args([command, "in", "-o", "out", *flags])
    assert _knob_values(args) == dict.fromkeys(sorted(names), "1")  # text: the model's Knob.parse checks it


@pytest.mark.parametrize(
    ("model", "old", "new"),
    [
        ("classical", {"fidelity": 0.4}, {"keep_input": 0.4}),
        ("idm", {"steps": 1, "temperature": 0.5, "fidelity": 0.4}, {"steps": 1, "noise_scale": 0.5, "keep_input": 0.4}),
    ],
)
def test_old_names_give_the_same_output_with_a_deprecation_warning(face, model, old, new):
    restorer, knobs = resolve_model(model, **new)
    expected = restorer(face, **new)
    with pytest.warns(DeprecationWarning, match=r"knob '(fidelity|temperature)' is now called"):
        assert torch.equal(restorer(face, **old), expected)
    spec = f"{model}:" + ",".join(f"{name}={value}" for name, value in old.items())
    with pytest.warns(RenamedKnobWarning):
        assert resolve_model(spec) == (restorer, knobs)  # a model spec: the knobs under their current names
    with pytest.raises(FacemendError, match=r"knob 'keep_input' is given twice, also by its old name 'fidelity'"):
        restorer(face, fidelity=0.4, keep_input=0.4)
    with pytest.warns(RenamedKnobWarning):
        _, spec_then_flag = resolve_model(f"{model}:keep_input=0.9", fidelity=0.4)  # a flag still wins over the spec
    assert spec_then_flag["keep_input"] == 0.4


def test_old_names_through_the_python_api(astronaut_face):
    expected = facemend.restore(astronaut_face, model="classical", aligned=True, keep_input=0.6)
    with pytest.warns(DeprecationWarning) as caught:
        old = facemend.restore(astronaut_face, model="classical", aligned=True, fidelity=0.6)
    assert np.array_equal(old, expected)
    assert caught[0].filename == __file__  # pointed at the caller, where Python shows a DeprecationWarning


def test_old_names_on_the_cli_warn_in_one_line(tmp_path, face_file, capsys):
    common = [str(face_file), "--aligned", "-q"]
    assert main(["restore", *common, "-o", str(tmp_path / "new"), "--model", "classical", "--keep-input", "0.6"]) == 0
    assert "warning" not in capsys.readouterr().err
    expected = (tmp_path / "new" / "face.png").read_bytes()
    for how, args in {"flag": ["classical", "--fidelity", "0.6"], "spec": ["classical:fidelity=0.6"]}.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # the CLI shows the warning itself
            assert main(["restore", *common, "-o", str(tmp_path / how), "--model", *args]) == 0
        lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
        assert lines == [
            "facemend: warning: model 'classical': knob 'fidelity' is now called 'keep_input'; "
            "the old name goes in the next release"
        ]
        assert (tmp_path / how / "face.png").read_bytes() == expected


def test_old_names_in_the_web_api(astronaut):
    client = _web_client()
    photo = _png(astronaut)  # a photo: the web page finds the face in it
    with pytest.warns(RenamedKnobWarning) as caught:
        answers = [
            _post(client, photo, "classical", {"keep_input": 0.6}),
            _post(client, photo, "classical", {"fidelity": 0.6}),
            _post(client, photo, "idm:steps=1", {"temperature": 0.5}),
            _post(client, photo, "idm:steps=1", {"noise_scale": 0.5}),
        ]
    assert all(answer.status_code == 200 for answer in answers), [answer.text for answer in answers]
    assert [str(warning.message).split(";")[0] for warning in caught] == [
        "model 'classical': knob 'fidelity' is now called 'keep_input'",
        "model 'idm': knob 'temperature' is now called 'noise_scale'",
    ]
    new, old, idm_old, idm_new = (answer.json() for answer in answers)
    assert old["knobs"] == new["knobs"] == {"keep_input": 0.6}
    assert old["photos"][0]["restored"] == new["photos"][0]["restored"]
    assert idm_old["knobs"] == idm_new["knobs"] and idm_old["knobs"]["noise_scale"] == 0.5
    assert idm_old["photos"][0]["restored"] == idm_new["photos"][0]["restored"]


def test_a_value_out_of_range_gets_one_message_everywhere(tmp_path, face_file, astronaut_face, capsys):
    """`Knob.parse` is the one check: the CLI, the Python API and the web API all answer with its message."""
    assert main(["restore", str(face_file), "--aligned", "-o", str(tmp_path / "out"), "--model", "classical",
                 "--keep-input", "2", "-q"]) == 2  # fmt: skip
    assert capsys.readouterr().err.splitlines() == [f"facemend: error: {OUT_OF_RANGE}"]
    assert not (tmp_path / "out").exists()
    with pytest.raises(FacemendError) as raised:
        facemend.restore(astronaut_face, model="classical", aligned=True, keep_input=2)
    assert str(raised.value) == OUT_OF_RANGE
    answer = _post(_web_client(), _png(astronaut_face), "classical", {"keep_input": 2})  # refused before decoding
    assert answer.status_code == 422 and answer.json() == {"error": OUT_OF_RANGE}
    assert main(["restore", str(face_file), "--aligned", "-o", str(tmp_path / "out"), "--model", "classical",
                 "--keep-input", "much", "-q"]) == 2  # fmt: skip
    assert capsys.readouterr().err.splitlines() == ["facemend: error: knob 'keep_input' takes a float, got 'much'"]


# what is offered can run


@pytest.mark.parametrize("name", runnable_models())
def test_every_offered_model_restores_a_face(face, name):
    restorer, knobs = resolve_model(name)
    out = restorer(face, **knobs)
    assert out.shape == face.shape and torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert (out - face).abs().mean() > 1e-3  # at its defaults, it changes the face


def test_models_to_train_are_listed_apart_and_not_offered():
    runnable = runnable_models()
    assert {"classical", "residual-unet"} <= set(runnable)
    assert list(MODELS)[: len(runnable)] == runnable  # the runnable ones first, everywhere MODELS is listed
    to_train = [info for info in MODELS.values() if not info.runnable]
    assert {info.name for info in to_train} >= {"baseline-base", "idm-base", "baseline-q", "daefr-q"}
    for info in to_train:
        assert (REPO / info.train_config).is_file(), info.train_config
        assert info.how_to_get().startswith(f"train it: {info.train_config}")
        with pytest.raises(FacemendError, match=rf"model '{info.name}' has no bundled weights: train it"):
            info.build()


def test_baseline_q_names_its_weights_folder_and_it_loads():
    info = MODELS["baseline-q"]
    assert info.how_to_get() == "train it: configs/baseline/q-tiny.yaml; weights folder: weights/baseline-q-tiny-fusion"
    restorer = restorer_from_folder(REPO / info.weights_folder)
    assert isinstance(restorer, RESTORER_KINDS["baseline"]) and [k.name for k in restorer.knobs] == [
        "fidelity",
        "quality",
    ]


def test_models_and_help_list_the_runnable_models_first(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    runnable, to_train = out.split("Models to train first")
    assert all(f"\n{name}" in runnable or runnable.startswith(name) for name in runnable_models()[1:])
    assert "\nbaseline-q: " in to_train and "weights folder: weights/baseline-q-tiny-fusion" in to_train
    assert "\nidm-base: " in to_train and "train it: configs/idm/base.yaml" in to_train
    assert "not trained yet" not in out
    model_help = next(action.help for action in _restore_parser()._actions if "--model" in action.option_strings)
    assert model_help.index("artfr, idm") < model_help.index("to train first") < model_help.index("idm-base")


def test_the_web_menu_offers_only_runnable_models_and_the_api_refuses_the_others():
    client = _web_client()
    answer = client.get("/api/models").json()
    assert [model["name"] for model in answer["models"]] == runnable_models()
    refused = _post(client, _png(np.zeros((32, 32, 3), np.uint8)), "idm-base", {})
    assert refused.status_code == 422
    assert refused.json()["error"].startswith("model 'idm-base' has no bundled weights: train it")


def _restore_parser():
    parser = build_parser()
    return next(action for action in parser._actions if action.dest == "command").choices["restore"]


def _web_client():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facemend.web.app import create_app

    return TestClient(create_app(precision="fp32"))


def _png(pixels: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _post(client, photo: bytes, model: str, knobs: dict):
    return client.post(
        "/api/restore", files=[("files", ("face.png", photo))], data={"model": model, "knobs": json.dumps(knobs)}
    )

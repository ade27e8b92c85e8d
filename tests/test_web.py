"""`facemend serve`: the JSON API through FastAPI's TestClient, concurrency against a live server, and the page
end to end in a real headless browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import EXAMPLES
from facemend.cli import main
from facemend.methods.registry import DEFAULT_MODEL, MODELS, runnable_models
from facemend.web.app import create_app
from facemend.web.limits import Limits
from facemend.web.server import LOOPBACK_NAMES, is_loopback

FIDELITY_MODEL = "baseline"  # a model with a `fidelity` knob, for the knob-handling tests

ASTRONAUT = EXAMPLES / "astronaut_heavy.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IMAGE_LOADED = (
    "selector => { const img = document.querySelector(selector); return img?.complete && img.naturalWidth > 0; }"
)
PAGE_IMAGES = ("[data-testid=restored-image]", "[data-testid=original-image]", "[data-testid=face-after]")


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def gradient(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth uint8 RGB image without a face, different for every seed."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 40 * seed % 256)], -1).astype(np.uint8)


def from_data_url(url: str) -> Image.Image:
    header, _, payload = url.partition(",")
    assert header == "data:image/png;base64"
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert image.format == "PNG"
    return image


def post_photos(client: TestClient, photos: list[tuple[str, bytes]], **fields: str):
    return client.post("/api/restore", files=[("files", (name, data)) for name, data in photos], data=fields)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app())


@pytest.fixture(scope="module")
def astronaut_result(client) -> dict:
    """The answer to one restore of the example photo (fidelity 0.5), shared by the tests that read it."""
    photos = [(ASTRONAUT.name, ASTRONAUT.read_bytes())]
    response = post_photos(client, photos, model=FIDELITY_MODEL, knobs=json.dumps({"fidelity": 0.5}))
    assert response.status_code == 200, response.text
    return response.json()


def test_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="restore-button"' in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/no-such-page").json() == {"error": "Not Found"}


def test_models_lists_every_runnable_model_with_its_knob_declaration(client):
    answer = client.get("/api/models").json()
    assert answer["default"] == DEFAULT_MODEL
    assert [model["name"] for model in answer["models"]] == runnable_models()  # no model to train first
    for model in answer["models"]:
        info = MODELS[model["name"]]
        assert model["description"] == info.description
        fields = ("name", "default", "low", "high", "help")
        assert model["knobs"] == [
            {**{field: getattr(knob, field) for field in fields}, "type": knob.type.__name__} for knob in info.knobs
        ]


def test_limits_are_published(client):
    assert client.get("/api/limits").json() == {
        "file_bytes": 20_000_000,
        "request_bytes": 60_000_000,
        "pixels": 40_000_000,
        "photos": 32,
    }


def test_restore_finds_the_face_and_returns_a_png_of_the_input_size(astronaut_result):
    assert astronaut_result["model"] == FIDELITY_MODEL and astronaut_result["knobs"] == {"fidelity": 0.5}
    (photo,) = astronaut_result["photos"]
    assert photo["name"] == ASTRONAUT.name and photo["faces"] == 1 and photo["warnings"] == []
    restored = from_data_url(photo["restored"])
    with Image.open(ASTRONAUT) as original:
        assert restored.size == original.size == (photo["width"], photo["height"])
        assert not np.array_equal(np.asarray(restored.convert("RGB")), np.asarray(original.convert("RGB")))
    (face,) = photo["face_crops"]
    before, after = from_data_url(face["before"]), from_data_url(face["after"])
    assert before.size == after.size and before.size[0] == before.size[1] >= 128


def test_photos_without_a_face_come_back_unchanged_in_their_order(client):
    first, second = gradient(90, 120, seed=1), gradient(70, 150, seed=2)
    response = post_photos(client, [("first.png", png(first)), ("second.png", png(second))])
    assert response.status_code == 200, response.text
    photos = response.json()["photos"]
    assert [photo["name"] for photo in photos] == ["first.png", "second.png"]
    for photo, pixels in zip(photos, (first, second), strict=True):
        assert photo["faces"] == 0 and photo["face_crops"] == []
        assert photo["warnings"] == ["no face found: the photo comes back unchanged"]
        assert np.array_equal(np.asarray(from_data_url(photo["restored"])), pixels)


def test_a_non_image_is_refused_with_a_clear_message(client):
    response = post_photos(client, [("notes.txt", b"shopping list: eggs, milk")])
    assert response.status_code == 415
    assert response.json() == {"error": "notes.txt: not an image (cannot identify image file)"}


def test_a_request_without_photos_is_refused(client):
    response = client.post("/api/restore", data={"model": DEFAULT_MODEL})
    assert response.status_code == 400 and "no photos" in response.json()["error"]


@pytest.mark.parametrize(
    ("model", "knobs", "status", "message"),
    [
        (FIDELITY_MODEL, '{"fidelity": 3}', 422, "knob 'fidelity' must be in [0.0, 1.0], got 3.0"),
        (FIDELITY_MODEL, '{"steps": 8}', 422, f"model '{FIDELITY_MODEL}' has no knob 'steps'; its knobs: fidelity"),
        (FIDELITY_MODEL, '{"fidelity": true}', 422, "knob 'fidelity' takes a float, got 'True'"),
        (f"{FIDELITY_MODEL}:fidelity=2", "", 422, "knob 'fidelity' must be in [0.0, 1.0], got 2.0"),
        (DEFAULT_MODEL, "[0.5]", 400, "knobs must be a JSON object"),
        ("no-such-model", "", 422, "unknown model 'no-such-model'; available: "),
        ("src/facemend/bundled", "", 422, "unknown model 'src/facemend/bundled'"),  # no folders from the server
    ],
)
def test_bad_models_and_knobs_are_refused_with_the_registry_messages(client, model, knobs, status, message):
    response = post_photos(client, [("a.png", png(gradient(40, 40, seed=0)))], model=model, knobs=knobs)
    assert response.status_code == status
    assert response.json()["error"].startswith(message)


def _streamed_multipart(data: bytes, chunk: int = 4096) -> Iterator[bytes]:
    """A multipart body with one file, sent in chunks without a Content-Length."""
    yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n\r\n'
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]
    yield b"\r\n--b--\r\n"


@pytest.mark.parametrize(
    ("limits", "how", "message"),
    [
        (Limits(file_bytes=2_000), "form", "big.png: file too large (0.0 MB, limit 0.002 MB per file)"),
        (Limits(request_bytes=2_000), "form", "upload too large (limit 0.002 MB per request)"),  # Content-Length
        (Limits(request_bytes=2_000), "stream", "upload too large (limit 0.002 MB per request)"),  # while reading
        (Limits(pixels=10_000), "form", "big.png: image too large (120x100 = 0.0 megapixels, limit 0.0)"),
    ],
)
def test_too_large_uploads_are_refused_with_413(limits, how, message):
    client = TestClient(create_app(limits))
    data = png(np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8))  # noise: ~36 kB
    if how == "form":
        response = post_photos(client, [("big.png", data)])
    else:
        headers = {"content-type": "multipart/form-data; boundary=b"}
        response = client.post("/api/restore", content=_streamed_multipart(data), headers=headers)
    assert response.status_code == 413
    assert response.json() == {"error": message}


def test_too_many_photos_are_refused():
    client = TestClient(create_app(Limits(photos=2)))
    photo = png(gradient(20, 20, seed=0))
    response = post_photos(client, [(f"{n}.png", photo) for n in range(3)])
    assert response.status_code == 400 and "Too many files" in response.json()["error"]


@pytest.fixture(scope="module")
def live_server() -> Iterator[str]:
    """The app served by uvicorn in a background thread, on a free port of 127.0.0.1, as `facemend serve` makes it."""
    import uvicorn

    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(allowed_hosts=LOOPBACK_NAMES), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    listening.close()


def test_concurrent_requests_each_get_their_own_result(live_server, astronaut_result):
    import httpx

    inputs = {f"photo{n}.png": gradient(60 + 10 * n, 80 + 7 * n, seed=n) for n in range(4)}
    requests = [[(name, png(pixels))] for name, pixels in inputs.items()] + [[(ASTRONAUT.name, ASTRONAUT.read_bytes())]]
    start = threading.Barrier(len(requests))
    answers: dict[int, dict] = {}

    def post(index: int) -> None:
        files = [("files", photo) for photo in requests[index]]
        knobs = json.dumps({"fidelity": 0.5})
        start.wait()
        fields = {"model": FIDELITY_MODEL, "knobs": knobs}
        response = httpx.post(f"{live_server}/api/restore", files=files, data=fields, timeout=120)
        answers[index] = response.json()

    threads = [threading.Thread(target=post, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert sorted(answers) == list(range(len(requests)))
    for index, (name, pixels) in enumerate(inputs.items()):
        (photo,) = answers[index]["photos"]
        assert photo["name"] == name and photo["faces"] == 0
        assert np.array_equal(np.asarray(from_data_url(photo["restored"])), pixels)
    (astronaut,) = answers[len(inputs)]["photos"]
    alone = astronaut_result["photos"][0]  # the same photo and knobs, restored with nothing else running
    assert astronaut["faces"] == 1
    restored, restored_alone = (np.asarray(from_data_url(p["restored"]), np.float64) for p in (astronaut, alone))
    assert np.abs(restored - restored_alone).max() <= 2  # same result; rounding of bf16 arithmetic at most


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.4.5.6", True), ("localhost", True), ("::1", True), ("[::1]", True)]
    + [("0.0.0.0", False), ("192.168.1.20", False), ("::", False), ("myhost.example", False)],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_command_passes_host_port_and_limits_and_warns_off_loopback(monkeypatch, capsys):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **options: served.update(app=app, host=host, port=port))
    assert main(["serve", "--host", "0.0.0.0", "--port", "9123", "--max-file-mb", "1.5", "--max-photos", "4"]) == 0
    assert served["host"] == "0.0.0.0" and served["port"] == 9123
    assert TestClient(served["app"]).get("/api/limits").json() == {
        "file_bytes": 1_500_000,
        "request_bytes": 60_000_000,
        "pixels": 40_000_000,
        "photos": 4,
    }
    assert "not a loopback address" in capsys.readouterr().err
    assert main(["serve"]) == 0
    assert served["host"] == "127.0.0.1" and served["port"] == 7860
    assert "warning" not in capsys.readouterr().err
    assert TestClient(served["app"]).get("/api/limits").status_code == 400  # on loopback, TestClient's host is foreign


def test_on_loopback_only_local_hosts_and_origins_are_answered():
    client = TestClient(create_app(allowed_hosts=LOOPBACK_NAMES))
    assert client.get("/api/limits", headers={"host": "127.0.0.1:7860"}).status_code == 200
    assert client.get("/api/limits", headers={"host": "[::1]:7860"}).status_code == 200
    rebound = client.get("/api/limits", headers={"host": "attacker.example:7860"})  # DNS rebinding
    assert rebound.status_code == 400 and rebound.json() == {"error": "host 'attacker.example' is not served here"}
    local, foreign = (
        {"host": "localhost:7860", "origin": origin} for origin in ("http://localhost:7860", "https://x.example")
    )
    assert client.post("/api/restore", headers=local).status_code == 400  # past the check: no photos
    assert client.post("/api/restore", headers=foreign).status_code == 403


def _require_browser() -> None:
    """Skip (or fail, with FACEMEND_REQUIRE_BROWSER=1, as CI sets) when chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    elif importlib.util.find_spec("playwright") is None:
        reason = "Playwright is missing (pip install -e '.[dev]')"
    else:
        return
    if os.environ.get("FACEMEND_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (FACEMEND_REQUIRE_BROWSER=1), but {reason}")
    pytest.skip(reason)


def test_the_page_restores_a_photo_in_a_real_browser(live_server, tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.goto(live_server)
            page.wait_for_selector("#knob-keep_input")  # the default model's controls come from /api/models
            assert page.input_value("#model-select") == DEFAULT_MODEL
            menu = page.eval_on_selector_all("#model-select option", "options => options.map(o => o.value)")
            assert menu == runnable_models()  # the models to train first are not offered
            page.select_option("#model-select", "idm")
            page.wait_for_selector("#knob-noise_scale")  # renamed knobs: controls under their current names
            assert page.locator("#knob-temperature").count() == 0 and page.locator("#knob-fidelity").count() == 0
            page.select_option("#model-select", DEFAULT_MODEL)
            page.wait_for_selector("#knob-keep_input")
            page.set_input_files("#file-input", str(ASTRONAUT))
            page.fill("#knob-keep_input", "0.5")
            with page.expect_response("**/api/restore", timeout=120_000) as answer:
                page.click("#restore-button")
            assert answer.value.ok and answer.value.json()["knobs"] == {"keep_input": 0.5}

            for selector in PAGE_IMAGES:
                page.wait_for_function(IMAGE_LOADED, arg=selector, timeout=30_000)
            size = page.eval_on_selector("[data-testid=restored-image]", "img => [img.naturalWidth, img.naturalHeight]")
            with Image.open(ASTRONAUT) as original:
                assert tuple(size) == original.size
            assert page.locator("[data-testid=face]").count() == 1
            assert "1 face restored" in page.inner_text("[data-testid=result-summary]")

            with page.expect_download() as download_info:
                page.click("[data-testid=download]")
            download = download_info.value
            assert download.suggested_filename == "astronaut_heavy_restored.png"
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            with Image.open(saved) as downloaded, Image.open(ASTRONAUT) as original:
                assert downloaded.format == "PNG" and downloaded.size == original.size

            screenshot = tmp_path / "web-page.png"
            page.screenshot(path=str(screenshot), full_page=True)
            if os.environ.get("FACEMEND_SCREENSHOT_DIR"):
                folder = Path(os.environ["FACEMEND_SCREENSHOT_DIR"])
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(screenshot, folder / screenshot.name)

            # the server's one-line error reaches the page
            page.set_input_files("#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"x"}])
            page.click("#restore-button")
            page.wait_for_selector("#error:not([hidden])", timeout=30_000)
            assert page.inner_text("#error") == "notes.txt: not an image (cannot identify image file)"
        finally:
            browser.close()

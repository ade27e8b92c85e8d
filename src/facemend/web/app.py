"""The web app of `facemend serve`: the page, the model list, and `POST /api/restore` for one or more photos.

The web layer reads uploads, enforces the limits and builds JSON; restoring is `PhotoPipeline`'s job. One
model run at a time (behind a lock), and every response is built from its own request's inputs only.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Message

from facemend.data.io import ImageTooLargeError, Photo, decode_image, encode_image
from facemend.errors import FacemendError
from facemend.methods.base import Knob
from facemend.methods.registry import DEFAULT_MODEL, MODELS, ModelInfo, ModelSpec, resolve_model, runnable_models
from facemend.pipelines.photo import FaceOptions, PhotoJob, PhotoPipeline, parse_strength
from facemend.precision import resolve_precision
from facemend.web.limits import MB, Limits

STATIC = Path(__file__).parent / "static"


class WebError(Exception):
    """A request the API refuses: answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


def create_app(
    limits: Limits | None = None, precision: str = "auto", allowed_hosts: Collection[str] | None = None
) -> FastAPI:
    """The app: `GET /` (the page), `GET /api/models`, `GET /api/limits`, `POST /api/restore`.

    With `allowed_hosts`, requests must name one of them as their Host, and as their Origin when they have
    one: a web page elsewhere can then neither read this server through DNS rebinding nor post to it.
    """
    limits = limits or Limits()
    resolve_precision(precision)  # a bad choice fails here, not in the first request
    model_lock = threading.Lock()  # one model run at a time: torch already uses every core
    app = FastAPI(title="facemend", docs_url=None, redoc_url=None, openapi_url=None)  # docs would need a CDN

    if allowed_hosts is not None:
        allowed = {host.lower().strip("[]") for host in allowed_hosts}

        @app.middleware("http")
        async def check_host(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            origin = request.headers.get("origin")
            if request.url.hostname not in allowed:
                return JSONResponse({"error": f"host {request.url.hostname!r} is not served here"}, status_code=400)
            if origin is not None and urlsplit(origin).hostname not in allowed:
                return JSONResponse({"error": f"requests from {origin} are not accepted"}, status_code=403)
            return await call_next(request)

    @app.exception_handler(WebError)
    async def refused(request: Request, error: WebError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error ({type(error).__name__}): {error}"}, status_code=500)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        """The models the page offers: those that run as installed (the others must be trained first)."""
        return {"default": DEFAULT_MODEL, "models": [_describe_model(MODELS[name]) for name in runnable_models()]}

    @app.get("/api/limits")
    def limits_info() -> dict[str, int]:
        return asdict(limits)

    @app.post("/api/restore")
    async def restore(request: Request) -> JSONResponse:
        form = await _read_form(request, limits)
        try:
            uploads = await _uploads(form, limits)
            model = (_text_field(form, "model") or "").strip() or DEFAULT_MODEL
            knobs = _knob_values(_text_field(form, "knobs"))
            strength = _strength_value(_text_field(form, "strength"))
        finally:
            await form.close()
        result = await run_in_threadpool(
            _restore_uploads, uploads, model, knobs, strength, limits, model_lock, precision
        )
        return JSONResponse(result)

    return app


def _describe_model(info: ModelInfo) -> dict[str, Any]:
    return {"name": info.name, "description": info.description, "knobs": [_describe_knob(k) for k in info.knobs]}


def _describe_knob(knob: Knob) -> dict[str, Any]:
    """What the page builds a control from (a knob's old names are accepted in `knobs`, but not shown)."""
    return {
        "name": knob.name,
        "type": knob.type.__name__,
        "default": knob.default,
        "low": knob.low,
        "high": knob.high,
        "help": knob.help,
    }


async def _read_form(request: Request, limits: Limits) -> FormData:
    """The multipart form, refused with 413 as soon as the body is declared or read past the request limit."""
    too_large = f"upload too large (limit {limits.request_bytes / MB:g} MB per request)"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.request_bytes:
        raise WebError(413, too_large)
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limits.request_bytes:
                raise WebError(413, too_large)
        return message

    counted = Request(request.scope, counting_receive)
    try:
        return await counted.form(max_files=limits.photos, max_fields=8)
    except HTTPException as error:  # Starlette's answer to a malformed form or one with too many files
        raise WebError(400, f"bad upload: {error.detail}") from None


async def _uploads(form: FormData, limits: Limits) -> list[Upload]:
    files = form.getlist("files")
    if not files:
        raise WebError(400, "no photos: send them as multipart form fields named 'files'")
    uploads = []
    for number, file in enumerate(files, 1):
        if not isinstance(file, UploadFile):
            raise WebError(400, f"form field 'files' #{number} is text, not a file")
        name = file.filename or f"photo {number}"
        data = await file.read()
        if len(data) > limits.file_bytes:
            limit = f"limit {limits.file_bytes / MB:g} MB per file"
            raise WebError(413, f"{name}: file too large ({len(data) / MB:.1f} MB, {limit})")
        uploads.append(Upload(name, data))
    return uploads


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise WebError(400, f"form field {name!r} must be text, not a file")
    return value


def _knob_values(text: str | None) -> dict[str, str]:
    """The `knobs` field, a JSON object such as `{"fidelity": 0.7}`, as strings for `Knob.parse` to validate
    (so 2.5 for an int knob is an error, not 2)."""
    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, dict):
        raise WebError(400, f'knobs must be a JSON object such as {{"fidelity": 0.7}}, got {text[:80]!r}')
    return {str(name): str(value) for name, value in values.items()}


def _strength_value(text: str | None) -> float | None:
    """The `strength` field: "auto" (or absent) → None, else a number in [0, 1]."""
    try:
        return parse_strength(text)
    except FacemendError as error:
        raise WebError(422, str(error)) from None


def _restore_uploads(
    uploads: list[Upload],
    model: str,
    knobs: dict[str, str],
    strength: float | None,
    limits: Limits,
    model_lock: threading.Lock,
    precision: str,
) -> dict[str, Any]:
    """Restore each upload in turn (decoded one at a time, so memory holds one photo's pixels)."""
    started = time.perf_counter()
    try:
        spec = ModelSpec.parse(model)
        if spec.name not in MODELS:  # only registered models: a path would load files from the server's disk
            raise FacemendError(f"unknown model {spec.name!r}; available: {', '.join(runnable_models())}")
        with model_lock:
            restorer, resolved = resolve_model(model, **knobs)
    except FacemendError as error:
        raise WebError(422, str(error)) from None
    pipeline = PhotoPipeline(restorer, resolved, FaceOptions(strength=strength), precision=precision)
    photos = []
    for upload in uploads:
        try:
            photo = decode_image(upload.data, upload.name, limits.pixels)
        except ImageTooLargeError as error:
            raise WebError(413, str(error)) from None
        except FacemendError as error:
            raise WebError(415, str(error)) from None
        with model_lock:
            restored, job = pipeline(photo)
        photos.append(_photo_result(upload.name, restored, job, pipeline.options.min_face_size))
    seconds = round(time.perf_counter() - started, 3)
    shown_strength = "auto" if strength is None else strength
    return {"model": spec.name, "knobs": resolved, "strength": shown_strength, "seconds": seconds, "photos": photos}


def _photo_result(name: str, restored: Photo, job: PhotoJob, min_face_size: int) -> dict[str, Any]:
    warnings = []
    if job.too_small:
        warnings.append(f"{job.too_small} face(s) smaller than {min_face_size} px left as they are")
    if not job.crops:
        warnings.append("no face found: the photo comes back unchanged")
    return {
        "name": name,
        "width": restored.width,
        "height": restored.height,
        "faces": len(job.crops),
        "restored": _png_data_url(restored),
        "face_crops": [
            {"before": _png_data_url(Photo(before)), "after": _png_data_url(Photo(after)), **report}
            for before, after, report in zip(job.crops, job.applied_faces(), job.face_reports(), strict=True)
        ],
        "warnings": warnings,
    }


def _png_data_url(photo: Photo) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_image(photo, ".png")).decode("ascii")

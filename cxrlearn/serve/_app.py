"""The ASGI app: ``POST /predict``, ``GET /``, ``/health``, ``/model``, ``/openapi.json``.

Built on FastAPI (the ``serve`` extra: ``pip install 'cxrlearn[serve]'``) and
served by uvicorn (``cxrlearn serve``). The request body of ``/predict`` is
read here, with python-multipart's streaming parser, rather than by
FastAPI's ``UploadFile``: Starlette spools uploads above 1 MiB to temporary
files on disk, and nothing uploaded may be written to disk. Reading it
here also lets the byte limit stop a request as it arrives and name the
file that crossed it.
"""

import asyncio
import concurrent.futures
import contextlib
import importlib.resources
import importlib.util
import os

import numpy as np

try:
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, Field
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.middleware.trustedhost import TrustedHostMiddleware
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"cxrlearn.serve needs the 'serve' extra ({exc.name} is missing): "
        "pip install 'cxrlearn[serve]'"
    ) from exc

from .. import __version__
from ._model import ACCEPTED_FORMATS, InferenceWorker, ServedModel, UploadError

__all__ = ["create_app"]

#: Default limit of one request's body: 20 MiB.
DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
#: Default limit of files in one request.
DEFAULT_MAX_FILES = 16

#: The page's content security policy: its own scripts and styles only (no
#: inline script or style, nothing from elsewhere), images from itself or
#: data:/blob: URLs, no plugins, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
    "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    # results describe patients' images: no cache keeps them
    ("cache-control", "no-store"),
)

#: The page's files, read once at start-up: no client-supplied path is
#: ever looked up on disk.
_STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

DISCLAIMER = ("Research tool, not a medical device: its output is not a diagnosis and "
              "must not be used for clinical decisions.")


class RequestError(Exception):
    """A whole request refused (as opposed to one of its files)."""

    def __init__(self, status, code, detail, file=None):
        self.status, self.code, self.detail, self.file = status, code, detail, file
        super().__init__(detail)

    def response(self):
        return _error_response(self.status, self.code, self.detail, self.file)


def _error_response(status, code, detail, file=None):
    error = {"status": status, "code": code, "detail": detail}
    if file is not None:
        error["file"] = file
    return JSONResponse({"error": error}, status_code=status)


class _SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app):
        self.app = app
        self._headers = [(k.encode("latin-1"), v.encode("latin-1"))
                         for k, v in SECURITY_HEADERS]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message,
                           "headers": [*message.get("headers", ()), *self._headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _client_name(raw, index):
    """The client's file name, for messages only: last component, printable."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:200].strip()
    return name or f"file-{index + 1}"


class _Part:
    __slots__ = ("headers", "field", "value", "name", "chunks", "size")

    def __init__(self):
        self.headers, self.field, self.value = {}, b"", b""
        self.name, self.chunks, self.size = None, [], 0


async def read_uploads(request, *, max_bytes, max_files):
    """The files of a ``multipart/form-data`` request, in memory.

    Returns a list of ``(client file name, bytes)``; text fields are
    ignored. Raises :class:`RequestError` (415 not multipart, 400 malformed,
    413 over ``max_bytes`` or ``max_files``).
    """
    ctype, params = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data":
        raise RequestError(
            415, "wrong_type",
            "send the images as multipart/form-data, one part per file "
            "(e.g. curl -F files=@xray.jpeg)")
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "bad_request", "multipart/form-data without a boundary")
    uploads, state = [], {"part": None, "files": 0, "done": False}

    def on_part_begin():
        state["part"] = _Part()

    def on_header_field(data, start, end):
        state["part"].field += data[start:end]

    def on_header_value(data, start, end):
        state["part"].value += data[start:end]

    def on_header_end():
        part = state["part"]
        part.headers[part.field.lower()] = part.value
        part.field, part.value = b"", b""

    def on_headers_finished():
        part = state["part"]
        _, options = parse_options_header(part.headers.get(b"content-disposition"))
        filename = options.get(b"filename")
        if filename is None:
            return  # a text field: ignored
        part.name = _client_name(filename.decode("utf-8", "replace"), state["files"])
        state["files"] += 1
        if state["files"] > max_files:
            raise RequestError(413, "too_many_files",
                               f"more than {max_files} files in one request",
                               file=part.name)

    def on_part_data(data, start, end):
        part = state["part"]
        if part.name is not None:
            part.chunks.append(bytes(data[start:end]))

    def on_part_end():
        part = state["part"]
        if part.name is not None:
            uploads.append((part.name, b"".join(part.chunks)))
        state["part"] = None

    def on_end():
        state["done"] = True

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end, "on_end": on_end,
    })
    total = 0
    try:
        async for chunk in request.stream():
            room = max_bytes - total
            total += len(chunk)
            if total > max_bytes:
                parser.write(chunk[:room])  # up to the limit: which file crossed it
                part = state["part"]
                raise RequestError(
                    413, "too_large",
                    f"the request exceeds the limit of {max_bytes} bytes "
                    f"({max_bytes / 2**20:g} MiB)",
                    file=part.name if part is not None else None)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise RequestError(400, "bad_request", f"malformed multipart body: {exc}") from exc
    if not state["done"]:
        raise RequestError(400, "bad_request", "incomplete multipart body (no final "
                                               "boundary)")
    return uploads


def _png_base64(rgb_or_grey):
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb_or_grey).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pictures(X, maps):
    """The network's view (grey or RGB PNG) and the Grad-CAM overlay, base64."""
    from ..explain import overlay

    out = []
    for image, heatmap in zip(X, maps):
        view = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        view = view[..., 0] if view.shape[2] == 1 else view
        out.append((_png_base64(view), _png_base64(overlay(image, heatmap))))
    return out


# --------------------------------------------------------------- schema
class ErrorDetail(BaseModel):
    status: int = Field(description="HTTP status of this error (413, 415, 422, ...)")
    code: str = Field(description="wrong_type, too_large, too_many_files, unreadable, "
                                  "bad_request, no_files, ...")
    detail: str = Field(description="the cause, in words")
    file: str | None = Field(None, description="the uploaded file concerned, by the name "
                                               "the client gave")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class FileResult(BaseModel):
    file: str = Field(description="the file name the client gave")
    label: str | int | None = Field(None, description="the model's own label "
                                    "(its predict, at its operating point)")
    probability: float | None = Field(None, description="probability of that label")
    probabilities: dict[str, float] | None = Field(None, description="predict_proba, "
                                                   "by class")
    threshold: float | None = Field(None, description="the model's threshold (None: "
                                    "the most probable class)")
    threshold_applies_to: str | None = None
    model_id: str | None = None
    model_version: str | None = None
    trained_on: bool | None = Field(None, description="whether the model was trained on "
                                    "this film (the same pixels, or the same film at "
                                    "another size or encoding): if so, its result says "
                                    "nothing about how the model does on new patients; "
                                    "None: the model cannot tell")
    image_png: str | None = Field(None, description="with gradcam=true: the image as "
                                  "the network sees it, PNG, base64")
    gradcam_png: str | None = Field(None, description="with gradcam=true: the Grad-CAM "
                                    "overlay for the label, PNG, base64")
    error: ErrorDetail | None = Field(None, description="why this file has no result")


class PredictResponse(BaseModel):
    results: list[FileResult]
    disclaimer: str


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["files"],
            "properties": {"files": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "image files: " + ", ".join(ACCEPTED_FORMATS),
            }},
        }}},
    }
}


# ------------------------------------------------------------------ app
def create_app(model, *, model_id=None, model_version=None,
               max_upload_bytes=DEFAULT_MAX_UPLOAD_BYTES, max_files=DEFAULT_MAX_FILES,
               max_batch=32, gradcam_layer=None, allowed_hosts=None, decode_threads=None):
    """The ASGI application that serves a fitted model.

    Parameters
    ----------
    model : estimator, ServedModel, str or os.PathLike
        A fitted model that reads image files (a Pipeline whose first step
        is an :class:`~cxrlearn.ImageLoader`, possibly inside a
        meta-estimator), or the path of a ``.skops`` model file, opened with
        :func:`cxrlearn.io.load_model` (it runs no code). Loaded once, here.
    model_id, model_version : str or None
        Reported with each prediction; by default the file's name and
        ``sha256:`` of its content for a path, the model's type and
        ``"unknown"`` for an estimator.
    max_upload_bytes : int, default=20 MiB
        Largest request body; larger requests get 413 as soon as the limit
        is crossed, naming the file being received.
    max_files : int, default=16
        Most files in one request.
    max_batch : int, default=32
        Most images the network computes in one call when concurrent
        requests are batched; 1 turns batching off.
    gradcam_layer : str or None
        The layer that Grad-CAM explains (None: the last convolution).
    allowed_hosts : list of str or None
        Host names the app answers to (others get 400), against DNS
        rebinding; None answers to any (``cxrlearn serve`` sets it to the
        loopback names when it binds to the loopback interface).
    decode_threads : int or None
        Threads decoding uploads (None: up to 4, one per CPU core).

    Returns
    -------
    app : fastapi.FastAPI

    Examples
    --------
    >>> from cxrlearn.serve import create_app   # doctest: +SKIP
    >>> app = create_app("pneumonia.skops")      # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
    """
    if max_upload_bytes < 1 or max_files < 1:
        raise ValueError("max_upload_bytes and max_files must be positive")
    if isinstance(model, ServedModel):
        served = model
    else:
        if isinstance(model, (str, os.PathLike)):
            from ..io import load_model

            from ._model import default_model_id, model_file_version

            path = model
            model = load_model(path)
            model_id = model_id or default_model_id(path)
            model_version = model_version or model_file_version(path)
        served = ServedModel(model, model_id=model_id or type(model).__name__,
                             model_version=model_version or "unknown",
                             gradcam_layer=gradcam_layer)
    worker = InferenceWorker(served, max_batch=max_batch)
    decode_pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=decode_threads or min(4, os.cpu_count() or 1),
        thread_name_prefix="cxrlearn-decode")
    static = {name: importlib.resources.files(__package__).joinpath("static", name)
              .read_bytes() for name in _STATIC_TYPES}
    limits = {"max_upload_bytes": int(max_upload_bytes), "max_files": int(max_files),
              "max_batch": worker.max_batch,
              "max_pixels": served.loader.max_pixels,
              "max_decoded_bytes": served.loader.max_decoded_bytes}
    description = {**served.describe(), "limits": limits, "disclaimer": DISCLAIMER}
    point = served.operating_point
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        worker.close()
        decode_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="cxrlearn",
        version=__version__,
        summary="Chest X-ray pneumonia CNN -- research use only, not a medical device.",
        description=DISCLAIMER + " Upload PNG, JPEG or DICOM files to `POST /predict`.",
        docs_url=None, redoc_url=None,  # they load scripts from a CDN
        lifespan=lifespan,
    )
    app.state.served, app.state.worker = served, worker

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        return _error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                           for e in exc.errors())
        return _error_response(422, "bad_request", detail)

    def record(name, label, row, pictures, seen):
        label = label.item() if isinstance(label, np.generic) else label
        probs = {str(c): float(p) for c, p in zip(served.classes, row)}
        result = {"file": name, "label": label,
                  "probability": probs[str(label)], "probabilities": probs,
                  "threshold": point["threshold"],
                  "threshold_applies_to": point["applies_to"],
                  "model_id": served.model_id, "model_version": served.model_version,
                  "trained_on": seen}
        if pictures is not None:
            result["image_png"], result["gradcam_png"] = pictures
        return result

    def decode_or_error(data, name):
        try:
            return served.decode(data, name)
        except UploadError as exc:
            return exc

    @app.post(
        "/predict", summary="Label image files (PNG, JPEG, DICOM)",
        response_model=None, openapi_extra=_UPLOAD_BODY,
        responses={200: {"model": PredictResponse,
                         "description": "one result per file, in order; a file that "
                                        "cannot be read has an error instead"},
                   400: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
                   415: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    async def predict(request: Request, gradcam: bool = Query(
            False, description="also return the image as the network sees it and its "
                               "Grad-CAM overlay (PNG, base64)")):
        """One result per uploaded file: the model's label (at its operating point),
        the class probabilities and the threshold. A file that cannot be read
        (wrong type, too large, corrupt) gets an error of its own and does not
        fail the others; when no file can be read the status is that of the
        errors (413, 415 or 422). Nothing uploaded is stored."""
        try:
            uploads = await read_uploads(request, max_bytes=max_upload_bytes,
                                         max_files=max_files)
        except RequestError as exc:
            return exc.response()
        if not uploads:
            return _error_response(400, "no_files", "no file in the request (send "
                                   "multipart/form-data parts with a filename)")
        if gradcam and not served.can_explain:
            return _error_response(400, "bad_request", "this model has no CNN to explain "
                                   "with Grad-CAM")
        if gradcam and not has_matplotlib:
            return _error_response(400, "bad_request", "Grad-CAM overlays need matplotlib "
                                   "on the server: pip install 'cxrlearn[serve]'")
        loop = asyncio.get_running_loop()
        names = [name for name, _ in uploads]
        decoded = await asyncio.gather(*(
            loop.run_in_executor(decode_pool, decode_or_error, data, name)
            for name, data in uploads))
        del uploads  # the bytes go as soon as they are decoded
        good = [i for i, d in enumerate(decoded) if not isinstance(d, UploadError)]
        results = [None] * len(decoded)
        if good:
            X = np.stack([decoded[i] for i in good])
            labels, proba = await asyncio.wrap_future(worker.submit_predict(X))
            seen = await loop.run_in_executor(decode_pool, served.trained_on, X)
            pictures = [None] * len(good)
            if gradcam:
                maps = await asyncio.wrap_future(worker.submit(served.explain, X, labels))
                pictures = await loop.run_in_executor(
                    decode_pool, lambda: _pictures(served.view(X), maps))
            for j, i in enumerate(good):
                results[i] = record(names[i], labels[j], proba[j], pictures[j],
                                    None if seen is None else bool(seen[j]))
        for i, item in enumerate(decoded):
            if isinstance(item, UploadError):
                results[i] = {"file": names[i], "error": item.to_dict()}
        status = 200
        if not good:
            statuses = {item.status for item in decoded}
            status = statuses.pop() if len(statuses) == 1 else 422
        return JSONResponse({"results": results, "disclaimer": DISCLAIMER},
                            status_code=status)

    @app.get("/health", summary="Liveness: the model is loaded")
    async def health():
        return {"status": "ok", "model_id": served.model_id,
                "model_version": served.model_version}

    @app.get("/model", summary="The model: classes, operating point, parameters, "
                               "training summary, limits")
    async def model_info():
        return description

    @app.get("/", include_in_schema=False)
    async def page():
        return Response(static["index.html"], media_type=_STATIC_TYPES["index.html"])

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str):
        if name not in static or name == "index.html":
            return _error_response(404, "not_found", "no such file")
        return Response(static[name], media_type=_STATIC_TYPES[name])

    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(_SecurityHeaders)
    return app

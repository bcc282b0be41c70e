"""The ASGI app: OpenAI and TEI embedding routes, /health, /info, /metrics, JSON errors."""

from __future__ import annotations

import contextlib
import json
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from .. import __version__
from .schemas import OpenAIEmbeddingRequest, TEIEmbedRequest, as_texts, openai_response
from .service import ApiError, EmbeddingService

ROUTES = ("/v1/embeddings", "/embeddings", "/embed", "/health", "/info", "/metrics")
TEI_ROUTES = ("/embed",)
TEXT_FIELDS = ("input", "inputs")


def json_response(payload, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status, headers=headers,
                    media_type="application/json")


def error_response(path: str, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """TEI routes: {"error": msg, "error_type": ...}; the others, OpenAI's {"error": {"message", "type", "code"}}."""
    if path in TEI_ROUTES:
        kind = {429: "Overloaded", 500: "Backend", 503: "Unhealthy"}.get(status, "Validation")
        body = {"error": message, "error_type": kind}
    else:
        kind = {429: "rate_limit_error", 500: "server_error", 503: "server_error"}.get(status, "invalid_request_error")
        body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return json_response(body, status, headers)


def describe_validation_errors(errors) -> tuple[int, str]:
    """(status, message) for pydantic's errors: 400 for a body that is not JSON, else 422."""
    invalid_json = [e for e in errors if e["type"] == "json_invalid"]
    if invalid_json:
        return 400, f"the request body is not valid JSON ({invalid_json[0].get('ctx', {}).get('error', '')})"
    parts = {}  # field -> message; a text field reports its first bad item only
    for e in errors:
        loc = e["loc"][1:]  # (field, [union branch,] [list index])
        field = loc[0] if loc else "body"
        if field in TEXT_FIELDS and e["type"] not in ("missing", "extra_forbidden"):
            index = next((p for p in loc if isinstance(p, int)), None)
            if index is not None:
                parts.setdefault(field, f"{field} must be a string or a list of strings; item {index} is "
                                        f"{json_kind(e['input'])}")
            elif not isinstance(e["input"], list):
                parts.setdefault(field, f"{field} must be a string or a list of strings, got {json_kind(e['input'])}")
        else:
            parts.setdefault(".".join(map(str, loc)) or "body", f"{'.'.join(map(str, loc)) or 'body'}: {e['msg']}")
    return 422, "; ".join(parts.values())


def json_kind(value) -> str:
    """How a JSON value reads in an error message ('a number (token ids are not accepted)', 'null', ...)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number (token-id inputs are not accepted)"
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)


class RequestMetricsMiddleware:
    """Counts every HTTP request by route and status and times it (pure ASGI, no body buffering)."""

    def __init__(self, app, service: EmbeddingService):
        self.app = app
        self.metrics = service.metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in ROUTES else "other"
        status = 500

        async def send_and_record_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            self.metrics.observe_request(route, status, time.perf_counter() - start)


def create_app(service: EmbeddingService) -> FastAPI:
    """The app serving `service`; its lifespan starts the batcher and, on shutdown, drains it."""
    settings = service.settings

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        service.batcher.start()
        try:
            yield
        finally:
            service.batcher.close()

    app = FastAPI(title="LAM embeddings", version=__version__, lifespan=lifespan)
    app.add_middleware(RequestMetricsMiddleware, service=service)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return error_response(request.url.path, err.status, err.message, err.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        status, message = describe_validation_errors(err.errors())
        return error_response(request.url.path, status, message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        return error_response(request.url.path, err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception):
        return error_response(request.url.path, 500, f"internal error ({type(err).__name__}: {err})")

    @app.post("/v1/embeddings")
    @app.post("/embeddings")
    async def openai_embeddings(body: OpenAIEmbeddingRequest):
        with service.admitted():
            result = await service.embed(as_texts(body.input), truncate=None, dimensions=body.dimensions)
        return json_response(openai_response(result, body.encoding_format, settings.model_name))

    @app.post("/embed")
    async def tei_embed(body: TEIEmbedRequest):
        with service.admitted():
            result = await service.embed(as_texts(body.inputs), truncate=body.truncate, dimensions=body.dimensions)
        return json_response(result.rows.tolist())

    @app.get("/health")
    async def health():
        if not service.batcher.alive:
            raise ApiError(503, "the batching worker is not running")
        return json_response({"status": "ok"})

    @app.get("/info")
    async def info():
        return json_response({
            "model_id": settings.model_name, "model_dir": str(service.model.model_dir),
            "backend": service.model.backend,
            "compute_precision": getattr(service.model, "compute_precision", "float32"), "dimension": service.dimension,
            "max_input_length": service.max_input_tokens, "auto_truncate": settings.auto_truncate,
            "max_batch_tokens": settings.max_batch_tokens, "max_batch_requests": settings.max_batch_requests,
            "max_wait_ms": settings.max_wait_ms, "max_concurrent_requests": settings.max_concurrent_requests,
            "max_client_batch_size": settings.max_client_batch_size, "version": __version__})

    @app.get("/metrics")
    async def metrics():
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    return app

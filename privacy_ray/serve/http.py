"""The HTTP surface: routes, bearer-token auth, body limit, JSON errors, CORS, request metrics.

:func:`create_http_app` builds the FastAPI app around a *service* - the ingress deployment in
production - that provides ``info()``, ``ready()``, ``search(req)``, ``classify(req)`` and
``reload()``. Everything that reaches a client is JSON without internals: validation errors are
422 with the offending fields (never their values: they may hold personal data), unexpected
errors are a 500 that names nothing but a request id; tracebacks go to the replica log only.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from privacy_ray.config import API_TOKENS_ENV, ServeConfig
from privacy_ray.serve.auth import TokenSet
from privacy_ray.serve.metrics import endpoint_label
from privacy_ray.serve.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ErrorBody,
    SearchRequest,
    SearchResponse,
)

log = logging.getLogger(__name__)

_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
                422: "validation_error", 429: "too_many_requests", 500: "internal_error",
                503: "unavailable", 504: "timeout"}


class ApiError(StarletteHTTPException):
    """An error answered as ``{"error": code, "message": ..., "detail": [...]}``."""

    def __init__(self, status: int, code: str, message: str, *,
                 detail: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.message = message
        self.errors = detail


class Service(Protocol):
    """What the routes call (the ingress deployment)."""

    async def info(self) -> dict[str, Any]: ...

    async def ready(self) -> tuple[bool, dict[str, Any]]: ...

    async def search(self, req: SearchRequest) -> dict[str, Any]: ...

    async def classify(self, req: ClassifyRequest) -> dict[str, Any]: ...

    async def reload(self) -> dict[str, Any]: ...


def error_response(status: int, code: str, message: str,
                   detail: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


def _clean_validation(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors without ``input``/``ctx``/``url``: never echo what the client sent."""
    return [{"loc": [p for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in errors]


def summarize_errors(errors: list[dict[str, Any]]) -> str:
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


class GuardMiddleware:
    """Outermost user middleware: enforces the body size limit (413, from Content-Length before
    anything is read, else while reading), times every request for the metrics, and turns any
    exception that escaped the app into a JSON 500 (the traceback is logged, never sent)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, observe: Any = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.observe = observe

    def _too_large(self) -> ApiError:
        return ApiError(413, "body_too_large",
                        f"request body is larger than {self.max_body_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = {"status": 500, "sent": False, "received": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = int(message["status"])
                state["sent"] = True
            await send(message)

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    raise self._too_large()  # FastAPI answers it through the handler
            return message

        try:
            if _content_length(scope) > self.max_body_bytes:
                err = self._too_large()
                await error_response(413, err.code, err.message)(scope, receive, send_wrapper)
                return
            await self.app(scope, limited_receive, send_wrapper)
        except Exception:
            request_id = uuid.uuid4().hex[:16]
            log.exception("unhandled error in %s %s (request %s)", scope.get("method"),
                          endpoint_label(scope.get("path", ""), scope.get("root_path", "")),
                          request_id)
            if not state["sent"]:
                response = error_response(500, "internal_error",
                                          f"internal error (request {request_id}); see the "
                                          f"server log")
                await response(scope, receive, send_wrapper)
        finally:
            if self.observe is not None:
                self.observe(endpoint_label(scope.get("path", ""), scope.get("root_path", "")),
                             scope.get("method", ""), state["status"],
                             time.perf_counter() - started)


def _content_length(scope: Scope) -> int:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def create_http_app(
    service: Service,
    options: ServeConfig,
    tokens: TokenSet,
    *,
    version: str,
    observe: Any = None,
) -> FastAPI:
    """The FastAPI app of the service (OpenAPI at /docs and /openapi.json)."""
    app = FastAPI(
        title="privacy-ray",
        version=version,
        description="Similarity search over past support conversations and real-time "
        "privacy-intent classification. Data endpoints need `Authorization: Bearer <token>`; "
        "`/`, `/health` and `/ready` are open.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        responses={422: {"model": ErrorBody}},
    )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_validation(list(exc.errors()))
        return error_response(422, "validation_error", summarize_errors(errors), errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            return error_response(exc.status_code, exc.code, exc.message, exc.errors,
                                  exc.headers)
        code = _ERROR_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=exc.headers)

    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)

    # added last = outermost: every request, CORS preflights included, is guarded and timed
    app.add_middleware(GuardMiddleware, max_body_bytes=options.max_body_bytes, observe=observe)

    bearer = HTTPBearer(auto_error=False, description=f"An API token from {API_TOKENS_ENV}.")

    async def require_token(
        creds: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        if not options.require_auth:
            return
        if not tokens.configured:
            raise ApiError(503, "auth_not_configured",
                           f"no API tokens are configured on the server; set {API_TOKENS_ENV}")
        challenge = {"WWW-Authenticate": "Bearer"}
        if creds is None:
            raise ApiError(401, "unauthorized", "missing bearer token", headers=challenge)
        if not tokens.verify(creds.credentials):
            raise ApiError(401, "unauthorized", "invalid token", headers=challenge)

    guarded = [Depends(require_token)]

    @app.get("/", summary="Service info", tags=["health"])
    async def info() -> dict[str, Any]:
        """Version, embedding model, classifier model, store version, shards, vector counts."""
        return await service.info()

    @app.get("/health", summary="Liveness", tags=["health"])
    async def health() -> dict[str, str]:
        """200 while the ingress answers (nothing else is checked)."""
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness", tags=["health"],
             responses={503: {"description": "A component is not ready; `failing` names it."}})
    async def ready() -> JSONResponse:
        """200 when every shard is loaded and answers a canary query, the model is loaded, and
        the store is reachable; 503 naming the failing components otherwise."""
        ok, body = await service.ready()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post("/search", summary="Similar conversations", tags=["data"],
              response_model=SearchResponse, dependencies=guarded,
              responses={401: {"model": ErrorBody}, 413: {"model": ErrorBody},
                         503: {"model": ErrorBody}})
    async def search(req: SearchRequest) -> JSONResponse:
        """Top-k past conversations most similar to a text (PII is redacted before it is
        embedded) or a vector, optionally filtered by date, channel and intent."""
        return JSONResponse(await service.search(req))

    @app.post("/classify", summary="Privacy intent of messages", tags=["data"],
              response_model=ClassifyResponse, dependencies=guarded,
              responses={401: {"model": ErrorBody}, 413: {"model": ErrorBody},
                         503: {"model": ErrorBody}})
    async def classify(req: ClassifyRequest) -> JSONResponse:
        """Label, confidence, all probabilities, abstain flag, regulation and deadline."""
        return JSONResponse(await service.classify(req))

    @app.post("/admin/reload", summary="Switch to the newest store version now", tags=["admin"],
              dependencies=guarded, responses={401: {"model": ErrorBody}})
    async def reload() -> dict[str, Any]:
        """Check the store now (the app also polls it); in-flight queries finish on the
        version they started on."""
        return await service.reload()

    return app

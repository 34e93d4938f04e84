"""`create_app(settings)`: the gateway as one FastAPI app.

Hot routes are raw ASGI handlers dispatched before FastAPI's middleware and router
(ARCHITECTURE §8); FastAPI serves admin, health and metrics. Every error, including an
unknown path or method and any unexpected exception, is answered in OpenAI's shape.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.admin import admin_router
from gateway.admin_docs import admin_docs_router
from gateway.asgi import JSON_HEADERS, ASGIHandler, Receive, Scope, Send, send_response
from gateway.errors import (
    GatewayError,
    InternalGatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
)
from gateway.proxy import ProxyRoutes
from gateway.runtime import GatewayRuntime
from meterline.settings import Settings

__all__ = ["GatewayApp", "create_app", "invalid_request_for"]

log = logging.getLogger(__name__)


def _json_position(doc: object, pos: object) -> str:
    """' at line L column C' of a character offset, as json.JSONDecodeError words it."""
    if not isinstance(doc, str) or not isinstance(pos, int):
        return ""
    line = doc.count("\n", 0, pos) + 1
    column = pos - doc.rfind("\n", 0, pos)
    return f" at line {line} column {column}"


def _param(loc: list[Any]) -> str:
    """A pydantic location as OpenAI names fields: `models[0]`, `limits.rpm`."""
    parts = (f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return "".join(parts).lstrip(".")


def invalid_request_for(exc: RequestValidationError) -> InvalidRequest:
    """The first problem of an admin request, in words, naming the field (`param`).

    FastAPI reports a JSON syntax error with the character offset as its location
    (`loc=("body", 7)`): that is a position in the text, not a field, so it is spelled out
    as line and column instead of becoming `param "7"`.
    """
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [part for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error") or "malformed JSON"
        where = _json_position(exc.body, loc[0] if loc else None)
        return InvalidRequest(f"request body is not valid JSON: {reason}{where}")
    param = _param(loc)
    message = str(first.get("msg", "invalid request"))
    return InvalidRequest(f"{param}: {message}" if param else message, param=param or None)


def _error_response(exc: GatewayError) -> Response:
    return Response(
        exc.render(), status_code=exc.status, media_type="application/json", headers=exc.headers
    )


class GatewayApp(FastAPI):
    """FastAPI with a raw-ASGI fast lane for the proxied endpoints."""

    hot_routes: dict[str, ASGIHandler]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.hot_routes.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
            await self._guarded(scope, receive, send)
            return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await super().__call__(scope, receive, tracking_send)  # type: ignore[arg-type]
        except Exception as exc:  # already answered by the handler below, or answer now
            if not started:
                log.error("unexpected %s on %s", type(exc).__name__, scope.get("path"))
                error = InternalGatewayError("the gateway could not handle this request")
                await send_response(send, error.status, error.render(), JSON_HEADERS)


def create_app(
    settings: Settings, *, freeze_gc: bool = False, runtime: GatewayRuntime | None = None
) -> GatewayApp:
    """The gateway app over `runtime` (by default the production one built from settings;
    a test passes one with in-memory collaborators)."""
    if runtime is None:
        runtime = GatewayRuntime.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if freeze_gc:  # start-up objects live forever: keep them out of GC passes
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await runtime.aclose()

    app = GatewayApp(
        title="Meterline gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    proxy = ProxyRoutes(runtime)
    app.hot_routes = {
        "/v1/chat/completions": proxy.chat,
        "/v1/completions": proxy.completions,
        "/v1/embeddings": proxy.embeddings,
        "/v1/messages": proxy.messages,
        "/v1/messages/count_tokens": proxy.count_tokens,
        "/v1/responses": proxy.responses,
        "/v1/models": proxy.models,
    }
    app.include_router(admin_router(runtime))
    app.include_router(admin_docs_router(app, runtime.settings.admin_token))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        # 503 `starting` until the views were read to their end once: a gateway that does
        # not know the keys yet would answer 401 to every client (readiness).
        # `degraded` while events wait for the broker (spooled, not draining), still 200:
        # the gateway serves every request and loses no event, so a load balancer must not
        # take it out of rotation; monitoring alerts on the status and the oldest's age.
        emitter = runtime.emitter
        waiting = emitter.spool_size
        age = emitter.oldest_undelivered_age_s
        ready = runtime.reader.ready
        status = "starting" if not ready else "degraded" if waiting else "ok"
        body = {
            "status": status,
            "emitter": emitter.state,
            "spool_size": waiting,
            "oldest_undelivered_age_s": round(age, 3) if age is not None else None,
            "quarantined": emitter.quarantined,
            "queue_depth": emitter.queue_depth,
            "keys_loaded": len(runtime.keys),
            "budgets_loaded": len(runtime.budgets),
            "enforcement_decisions": len(runtime.enforcement),
            "enforcement_view_age_s": round(runtime.reader.age_s, 3),
            "enforcement_fail_mode": runtime.settings.gateway.enforcement.fail_mode,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> Response:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _error_response(invalid_request_for(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return _error_response(MethodNotAllowed("method not allowed on this path"))
        if exc.status_code == 404:
            return _error_response(NotFound("no such path"))
        return JSONResponse(
            {
                "error": {
                    "message": str(exc.detail),
                    "type": "invalid_request_error",
                    "code": None,
                    "param": None,
                }
            },
            status_code=exc.status_code,
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.error("unexpected %s", type(exc).__name__)
        return _error_response(InternalGatewayError("the gateway could not handle this request"))

    return app

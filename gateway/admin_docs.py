"""The admin API described: its OpenAPI document and a Swagger UI page, behind the admin
token like every other /admin path.

A browser cannot send a bearer token when it opens a page, so these two paths also take
the token as the password of HTTP Basic authentication (any user name): the browser asks
for it once and sends it again for the document. "Try it out" then needs the token once
more in the page's Authorize dialog (bearer), as every admin call does.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import SecretStr

from gateway.errors import AuthenticationFailed

__all__ = ["admin_docs_router", "admin_openapi", "presented_token"]

_REALM = 'Basic realm="meterline-admin", charset="UTF-8"'


def presented_token(authorization: str | None) -> str | None:
    """The admin token in a `Bearer <token>` or `Basic base64(user:token)` header."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def admin_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of the /admin routes (the proxy's routes are OpenAI's and
    Anthropic's own APIs, documented by them)."""
    document = get_openapi(
        title="Meterline admin API",
        version="1",
        description=(
            "Keys, budgets, enforcement, policies and ingest tokens. Every call needs "
            "`Authorization: Bearer $METERLINE_ADMIN_TOKEN`; `X-Meterline-Actor` names the "
            "person for the audit trail. Errors: "
            '`{"error": {"message", "type", "code", "param"}}`.'
        ),
        routes=app.routes,
    )
    # FastAPI resolves the included routers' prefixes; keep the admin paths only.
    paths = document.get("paths", {})
    document["paths"] = {path: item for path, item in paths.items() if path.startswith("/admin/")}
    document.setdefault("components", {})["securitySchemes"] = {
        "admin": {"type": "http", "scheme": "bearer"}
    }
    document["security"] = [{"admin": []}]
    return document


def admin_docs_router(app: FastAPI, token: SecretStr | None) -> APIRouter:
    router = APIRouter(prefix="/admin", include_in_schema=False)
    cached: dict[str, Any] = {}

    def check(authorization: str | None) -> Response | None:
        if token is None:
            raise AuthenticationFailed("the admin API is disabled: set METERLINE_ADMIN_TOKEN")
        given = presented_token(authorization)
        expected = token.get_secret_value().encode()
        if given is not None and hmac.compare_digest(given.encode(), expected):
            return None
        error = AuthenticationFailed(
            "the admin token is missing or wrong: send it as a bearer token, or as the "
            "password when your browser asks"
        )
        return Response(
            error.render(),
            status_code=error.status,
            media_type="application/json",
            headers={"WWW-Authenticate": _REALM},
        )

    @router.get("/openapi.json")
    async def openapi(authorization: Annotated[str | None, Header()] = None) -> Any:
        if (denied := check(authorization)) is not None:
            return denied
        if "document" not in cached:
            cached["document"] = admin_openapi(app)
        return JSONResponse(cached["document"])

    @router.get("/docs")
    async def docs(authorization: Annotated[str | None, Header()] = None) -> Any:
        if (denied := check(authorization)) is not None:
            return denied
        page = get_swagger_ui_html(openapi_url="/admin/openapi.json", title="Meterline admin API")
        return HTMLResponse(page.body)

    return router

"""Role tokens of the read API: who may see which `/api/*` path (ARCHITECTURE §10).

`Authorization: Bearer <token>`; the token names a role. finance sees spend and budgets,
security sees anomalies, enforcement and request metadata, admin sees everything. A
missing or unknown token is a 401, a known token of a role that may not see the path a
403. The policy is one table here (a pure ASGI middleware), so a route added later under
`/api/` is admin-only until it is listed, never silently open.

Backwards compatibility: with no read token configured at all the API is open, which the
embedded stack relies on (it listens on the loopback address); `exposure_warning` says so
when ingest listens elsewhere.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.api.errors import error_body
from meterline.settings import Settings

__all__ = [
    "ACCESS",
    "ReadAuthMiddleware",
    "ReadTokens",
    "Role",
    "allowed_roles",
    "exposure_warning",
    "is_loopback",
]

Role = Literal["finance", "security", "admin"]
ROLES: tuple[Role, ...] = ("finance", "security", "admin")

_FINANCE: frozenset[Role] = frozenset({"finance", "admin"})
_SECURITY: frozenset[Role] = frozenset({"security", "admin"})

# Path prefix (whole segments) -> roles that may read it.
ACCESS: tuple[tuple[str, frozenset[Role]], ...] = (
    ("/api/showback", _FINANCE),
    ("/api/spend", _FINANCE),
    ("/api/budgets", _FINANCE),
    ("/api/export/focus", _FINANCE),
    ("/api/anomalies", _SECURITY),
    ("/api/enforcement", _SECURITY),
    ("/api/audit", _SECURITY),
    ("/api/requests", _SECURITY),
    ("/api/traces", _SECURITY),
    ("/api/drift", _SECURITY),
    ("/api/operations", _SECURITY),
)
_ADMIN_ONLY: frozenset[Role] = frozenset({"admin"})


def allowed_roles(path: str) -> frozenset[Role] | None:
    """Roles allowed on `path`; None when the path is not guarded (outside `/api/`)."""
    if path != "/api" and not path.startswith("/api/"):
        return None
    for prefix, roles in ACCESS:
        if path == prefix or path.startswith(prefix + "/"):
            return roles
    return _ADMIN_ONLY


@dataclass(frozen=True)
class ReadTokens:
    tokens: Mapping[Role, SecretStr]

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadTokens:
        found = {role: getattr(settings, f"read_token_{role}") for role in ROLES}
        # An empty token would let an empty header in: treat it as unset.
        return cls({role: t for role, t in found.items() if t is not None and t.get_secret_value()})

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def role_for(self, presented: str) -> Role | None:
        """The role of a presented token, compared in constant time against every token."""
        if not presented:
            return None
        given = presented.encode()
        match: Role | None = None
        for role in ROLES:  # admin last: a token shared by two roles gets the wider one
            token = self.tokens.get(role)
            if token is not None and hmac.compare_digest(given, token.get_secret_value().encode()):
                match = role
        return match


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(tokens: ReadTokens, host: str) -> str | None:
    """Why an open read API is a risk on `host`, or None when it is not."""
    if tokens.enabled or is_loopback(host):
        return None
    return (
        f"the read API listens on {host} without role tokens: anyone who reaches it sees "
        "spend, anomalies and request metadata. Set METERLINE_READ_TOKEN_FINANCE, "
        "METERLINE_READ_TOKEN_SECURITY and METERLINE_READ_TOKEN_ADMIN."
    )


class ReadAuthMiddleware:
    """Checks the bearer token of every guarded request before any route runs."""

    def __init__(self, app: ASGIApp, *, tokens: ReadTokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tokens.enabled:
            await self.app(scope, receive, send)
            return
        roles = allowed_roles(scope["path"])
        if roles is None:
            await self.app(scope, receive, send)
            return
        role = self.tokens.role_for(_bearer(scope))
        if role is None:
            await _deny(send, 401, "missing or unknown read API token", "invalid_api_key")
        elif role not in roles:
            await _deny(
                send,
                403,
                f"the {role} token may not read {scope['path']}",
                "permission_denied",
            )
        else:
            await self.app(scope, receive, send)


def _bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


async def _deny(send: Send, status: int, message: str, code: str) -> None:
    body = json.dumps(error_body(None, message, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="meterline-read-api"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""Errors of the Meterline API clients: one type per way a call can fail.

```
ClientError                 base: catch this to handle every client failure
├── ApiUnreachable          no usable answer (refused, timed out, broken connection)
└── ApiError                the API answered with an error status, parsed from its
                            OpenAI-shaped body: status, type, code, message, param
```

Both APIs (gateway admin, ingest read) answer errors as `{"error": {"message", "type",
"code", "param"}}`, so one parser serves both. The wording a person reads — which
command to run, which setting to change — stays with the caller (CLI, dashboards):
each knows its audience; the client only says what happened.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

__all__ = ["ApiError", "ApiUnreachable", "ClientError"]


class ClientError(Exception):
    """Base of every failure a Meterline API client raises."""


class ApiUnreachable(ClientError):
    """No usable answer from `base_url`; `reason` names the transport failure
    (e.g. `ConnectError`, `ReadTimeout`) so a message can say what went wrong."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(f"{base_url} is unreachable ({reason})")
        self.base_url = base_url
        self.reason = reason


class ApiError(ClientError):
    """The API answered `status` (>= 400, or a 2xx that is not the expected JSON).

    `response` is kept (as `httpx.HTTPStatusError` does) for a caller that needs the body
    of an error answer, e.g. ingest's /healthz, whose 503 still carries the status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,  # the OpenAI error field's name
        code: str | None = None,
        param: str | None = None,
        method: str = "",
        path: str = "",
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(f"{method} {path} answered {status}: {message}".strip())
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.method = method
        self.path = path
        self.response = response

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Parse `{"error": {...}}`; any other body becomes the message (its start)."""
        error: Any = None
        with contextlib.suppress(ValueError, AttributeError):  # not JSON, or not an object
            error = response.json().get("error")
        if not isinstance(error, dict) or "message" not in error:
            error = {"message": response.text[:300]}
        return cls(
            response.status_code,
            str(error["message"]),
            type=_text(error.get("type")),
            code=_text(error.get("code")),
            param=_text(error.get("param")),
            method=response.request.method,
            path=response.request.url.path,
            response=response,
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)

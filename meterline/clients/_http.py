"""The one HTTP policy of Meterline's API clients: auth header, timeout, retry, errors.

Both clients build their `httpx.Client` / `httpx.AsyncClient` here, so the rules are
written once and enforced by httpx itself:
- auth: `Authorization: Bearer <token>` (an `httpx.Auth`), nothing when there is no token
  (the embedded read API runs open on the loopback address);
- timeout: `TIMEOUT`;
- retry: only a failed *connection* is retried (httpx transport `retries`), so a request
  that reached the server — a POST that may have changed something — is never repeated;
- errors: a response event hook turns every error status into `ApiError`, and
  `translate_transport_errors` turns httpx's transport failures into `ApiUnreachable`, so
  no httpx exception leaves a client.
Tests inject `transport=httpx.MockTransport(handler)`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from meterline.clients.errors import ApiError, ApiUnreachable

__all__ = [
    "CONNECT_RETRIES",
    "TIMEOUT",
    "BearerAuth",
    "async_client",
    "json_body",
    "parse_body",
    "sync_client",
    "translate_transport_errors",
]

_M = TypeVar("_M", bound=BaseModel)

# Admin changes wait for the broker's acknowledgement (the gateway answers 503 if it
# does not come) and read queries may scan months of rows: 30 s for an answer. 5 s to
# connect, so an address where nothing listens is reported quickly.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# A service that is just starting gets another chance to accept the connection.
CONNECT_RETRIES = 1


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer <token>` on every request (both APIs' only scheme)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = self._header
        yield request


def _raise_on_error(response: httpx.Response) -> None:
    if response.is_error:
        response.read()
        raise ApiError.from_response(response)


async def _araise_on_error(response: httpx.Response) -> None:
    if response.is_error:
        await response.aread()
        raise ApiError.from_response(response)


def _options(
    base_url: str, token: str | None, headers: Mapping[str, str] | None, timeout: Any
) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "auth": BearerAuth(token) if token else None,
        "headers": dict(headers or {}),
        "timeout": TIMEOUT if timeout is None else timeout,
    }


def sync_client(
    base_url: str,
    token: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    return httpx.Client(
        **_options(base_url, token, headers, timeout),
        transport=transport or httpx.HTTPTransport(retries=CONNECT_RETRIES),
        event_hooks={"response": [_raise_on_error]},
    )


def async_client(
    base_url: str,
    token: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        **_options(base_url, token, headers, timeout),
        transport=transport or httpx.AsyncHTTPTransport(retries=CONNECT_RETRIES),
        event_hooks={"response": [_araise_on_error]},
    )


@contextmanager
def translate_transport_errors(base_url: str) -> Iterator[None]:
    """httpx's own failures (connect, timeout, protocol, decoding) -> `ApiUnreachable`."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise ApiUnreachable(base_url, type(exc).__name__) from exc


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON; a success that is not JSON (another program on the port) is an
    `ApiError` too, never a bare ValueError."""
    try:
        return response.json()
    except ValueError:
        raise ApiError(
            response.status_code,
            f"not a JSON answer: {response.text[:300]!r}",
            type="invalid_response",
            method=response.request.method,
            path=response.request.url.path,
            response=response,
        ) from None


def parse_body(response: httpx.Response, model: type[_M]) -> _M:
    """The answer parsed as `model` (a `schemas.api` model, the one the server declares);
    an answer that does not fit it is an `ApiError` too, never a bare ValidationError."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ApiError(
            response.status_code,
            f"not a {model.__name__}: {exc.errors(include_url=False)[:3]!r}",
            type="invalid_response",
            method=response.request.method,
            path=response.request.url.path,
            response=response,
        ) from None

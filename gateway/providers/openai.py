"""OpenAI-compatible upstream over one shared, pooled aiohttp session (ARCHITECTURE §8)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager

import aiohttp
import orjson

from gateway.errors import (
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers.base import Provider

__all__ = ["OpenAICompatibleProvider", "create_session", "map_upstream_errors", "raise_for_status"]

log = logging.getLogger(__name__)

_SSE_SEPARATOR = b"\n\n"


def create_session(connect_timeout_s: float) -> aiohttp.ClientSession:
    """The one upstream session of a gateway process (call inside the running loop)."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout_s),
        skip_auto_headers=("User-Agent",),
        json_serialize=lambda value: orjson.dumps(value).decode(),
    )


@contextmanager
def map_upstream_errors(provider: str) -> Iterator[None]:
    """Translate aiohttp/asyncio failures into gateway upstream errors."""
    try:
        yield
    except UpstreamError:
        raise
    except TimeoutError as exc:
        raise UpstreamTimeout(f"upstream {provider} timed out") from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnavailable(f"upstream {provider} is unreachable") from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamUnavailable(f"upstream {provider} sent an incomplete response") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamUnavailable(f"upstream {provider} failed: {type(exc).__name__}") from exc


def raise_for_status(provider: str, status: int, body: bytes, retry_after: str | None) -> None:
    """An upstream's 5xx is unavailable (502); its 4xx passes through with its body.
    Shared by every provider so all of them fail the same way."""
    if status < 400:
        return
    if status >= 500:
        raise UpstreamUnavailable(
            f"upstream {provider} returned {status}",
            upstream_status=status,
            retry_after=retry_after,
        )
    raise UpstreamStatusError(status, body, retry_after=retry_after)


class OpenAICompatibleProvider(Provider):
    """**Parameters:** `name`, `base_url` (ending in `/v1`), `api_key` (sent as a bearer
    token, never logged), `session` (shared), `timeout_s` (whole answer, or gap between
    stream events), `price_provider`."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str | None,
        session: aiohttp.ClientSession,
        timeout_s: float,
        price_provider: str | None = None,
    ) -> None:
        self.name = name
        self.price_provider = price_provider or name
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._stream_timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_s)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAICompatibleProvider(name={self.name!r}, base_url={self._base_url!r})"

    async def send(self, path: str, body: bytes) -> bytes:
        with map_upstream_errors(self.name):
            async with self._session.post(
                self._base_url + path, data=body, headers=self._headers, timeout=self._timeout
            ) as response:
                data = await response.read()
                raise_for_status(
                    self.name, response.status, data, response.headers.get("Retry-After")
                )
                return data

    async def stream(self, path: str, body: bytes) -> AsyncGenerator[bytes, None]:
        with map_upstream_errors(self.name):
            async with self._session.post(
                self._base_url + path,
                data=body,
                headers=self._headers,
                timeout=self._stream_timeout,
            ) as response:
                if response.status >= 400:
                    data = await response.read()
                    raise_for_status(
                        self.name, response.status, data, response.headers.get("Retry-After")
                    )
                buffer = b""
                async for piece in response.content.iter_any():
                    buffer += piece
                    if _SSE_SEPARATOR not in buffer:
                        continue
                    *events, buffer = buffer.replace(b"\r\n", b"\n").split(_SSE_SEPARATOR)
                    for event in events:
                        if event.strip():
                            yield event + _SSE_SEPARATOR
                if buffer.strip():
                    yield buffer + _SSE_SEPARATOR

    async def list_models(self) -> list[str]:
        with map_upstream_errors(self.name):
            async with self._session.get(
                self._base_url + "/models", headers=self._headers, timeout=self._timeout
            ) as response:
                data = await response.read()
                raise_for_status(self.name, response.status, data, None)
        try:
            listing = orjson.loads(data)
            return [m["id"] for m in listing.get("data", []) if isinstance(m.get("id"), str)]
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise UpstreamUnavailable(f"upstream {self.name} sent a bad model list") from exc

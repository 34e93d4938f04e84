"""Every kind of upstream over one shared, pooled aiohttp session (ARCHITECTURE §8).

OpenAI and compatible servers, Azure OpenAI and Anthropic differ only in URL and headers
(`wire.py`); the transport, the timeouts and the error mapping are the same.
"""

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
from gateway.providers.base import Provider, Timeouts
from gateway.providers.wire import Wire
from meterline.routing_config import ProviderConfig

__all__ = [
    "HttpProvider",
    "create_session",
    "map_upstream_errors",
    "raise_for_status",
    "split_events",
]

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


def split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete SSE events in `buffer` (each ending in a blank line), and the rest."""
    if _SSE_SEPARATOR not in buffer and b"\r\n\r\n" not in buffer:
        return [], buffer
    *events, rest = buffer.replace(b"\r\n", b"\n").split(_SSE_SEPARATOR)
    return [event + _SSE_SEPARATOR for event in events if event.strip()], rest


class HttpProvider(Provider):
    """**Parameters:** `config` (kind, base URL, names), `api_key` (sent as that kind's
    auth header, never logged), `session` (shared)."""

    def __init__(
        self, *, config: ProviderConfig, api_key: str | None, session: aiohttp.ClientSession
    ) -> None:
        self.name = config.name
        self.kind = config.kind
        self.price_provider = config.price_provider or config.name
        self._wire = Wire.of(config, api_key)
        self._session = session

    def __repr__(self) -> str:  # never show the key
        return f"HttpProvider(name={self.name!r}, kind={self.kind!r})"

    async def send(self, path: str, body: bytes, *, model: str, timeouts: Timeouts) -> bytes:
        timeout = aiohttp.ClientTimeout(
            total=timeouts.total_s, connect=timeouts.connect_s, sock_read=timeouts.first_byte_s
        )
        with map_upstream_errors(self.name):
            async with self._session.post(
                self._wire.url(path, model),
                data=body,
                headers=self._wire.headers,
                timeout=timeout,
            ) as response:
                data = await response.read()
                raise_for_status(
                    self.name, response.status, data, response.headers.get("Retry-After")
                )
                return data

    async def stream(
        self, path: str, body: bytes, *, model: str, timeouts: Timeouts
    ) -> AsyncGenerator[bytes, None]:
        # No total: a stream lasts as long as the answer; `sock_read` bounds each silence.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect_s, sock_read=timeouts.first_byte_s
        )
        with map_upstream_errors(self.name):
            async with self._session.post(
                self._wire.url(path, model),
                data=body,
                headers=self._wire.headers,
                timeout=timeout,
            ) as response:
                if response.status >= 400:
                    data = await response.read()
                    raise_for_status(
                        self.name, response.status, data, response.headers.get("Retry-After")
                    )
                buffer = b""
                async for piece in response.content.iter_any():
                    buffer += piece
                    events, buffer = split_events(buffer)
                    for event in events:
                        yield event
                if buffer.strip():
                    yield buffer + _SSE_SEPARATOR

    async def list_models(self) -> list[str]:
        timeout = aiohttp.ClientTimeout(total=10)
        with map_upstream_errors(self.name):
            async with self._session.get(
                self._wire.models_url(), headers=self._wire.headers, timeout=timeout
            ) as response:
                data = await response.read()
                raise_for_status(self.name, response.status, data, None)
        try:
            listing = orjson.loads(data)
            return [m["id"] for m in listing.get("data", []) if isinstance(m.get("id"), str)]
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise UpstreamUnavailable(f"upstream {self.name} sent a bad model list") from exc

"""Every kind of upstream over one shared, pooled upstream client (`transport.py`).

OpenAI and compatible servers, Azure OpenAI and Anthropic differ only in URL and headers
(`wire.py`); the transport, the timeouts and the error mapping are the same.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager

import orjson

from gateway.errors import (
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers.base import Provider, Timeouts
from gateway.providers.transport import (
    ConnectFailed,
    IncompleteResponse,
    Response,
    Target,
    TransportError,
    UpstreamClient,
)
from gateway.providers.wire import Wire
from meterline.routing_config import ProviderConfig

__all__ = [
    "HttpProvider",
    "create_client",
    "map_upstream_errors",
    "raise_for_status",
    "split_events",
]

log = logging.getLogger(__name__)

_SSE_SEPARATOR = b"\n\n"
_MAX_TARGETS = 1024  # parsed upstream URLs kept per provider


def create_client() -> UpstreamClient:
    """The one upstream client of a gateway process (call inside the running loop)."""
    return UpstreamClient(keepalive_s=60.0)


@contextmanager
def map_upstream_errors(provider: str) -> Iterator[None]:
    """Translate transport failures into gateway upstream errors."""
    try:
        yield
    except UpstreamError:
        raise
    except TimeoutError as exc:
        raise UpstreamTimeout(f"upstream {provider} timed out") from exc
    except ConnectFailed as exc:
        raise UpstreamUnavailable(f"upstream {provider} is unreachable") from exc
    except IncompleteResponse as exc:
        raise UpstreamUnavailable(f"upstream {provider} sent an incomplete response") from exc
    except (TransportError, OSError) as exc:
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
    auth header, never logged), `client` (the process's shared upstream client)."""

    def __init__(
        self, *, config: ProviderConfig, api_key: str | None, client: UpstreamClient
    ) -> None:
        self.name = config.name
        self.kind = config.kind
        self.price_provider = config.price_provider or config.name
        self._wire = Wire.of(config, api_key)
        self._headers = b"".join(
            f"{name}: {value}\r\n".encode("latin-1") for name, value in self._wire.headers.items()
        )
        self._client = client
        self._targets: dict[str, Target] = {}

    def __repr__(self) -> str:  # never show the key
        return f"HttpProvider(name={self.name!r}, kind={self.kind!r})"

    def _target(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _MAX_TARGETS:  # Azure puts the model in the URL
                self._targets.clear()
            target = self._targets[url] = Target.of(url)
        return target

    async def _post(self, path: str, body: bytes, model: str, timeouts: Timeouts) -> Response:
        return await self._client.request(
            b"POST",
            self._target(self._wire.url(path, model)),
            self._headers,
            body,
            connect_timeout_s=timeouts.connect_s,
            first_byte_timeout_s=timeouts.first_byte_s,
        )

    async def send(self, path: str, body: bytes, *, model: str, timeouts: Timeouts) -> bytes:
        with map_upstream_errors(self.name):
            async with await self._post(path, body, model, timeouts) as response:
                data = await response.read(timeouts.total_s)
                raise_for_status(self.name, response.status, data, response.header("Retry-After"))
                return data

    async def stream(
        self, path: str, body: bytes, *, model: str, timeouts: Timeouts
    ) -> AsyncGenerator[list[bytes], None]:
        # No total: a stream lasts as long as the answer; `first_byte_s` bounds each silence.
        with map_upstream_errors(self.name):
            async with await self._post(path, body, model, timeouts) as response:
                if response.status >= 400:
                    data = await response.read(timeouts.total_s)
                    raise_for_status(
                        self.name, response.status, data, response.header("Retry-After")
                    )
                buffer = b""
                async for piece in response.chunks(timeouts.first_byte_s):
                    buffer += piece
                    events, buffer = split_events(buffer)
                    if events:
                        yield events
                if buffer.strip():
                    yield [buffer + _SSE_SEPARATOR]

    async def list_models(self) -> list[str]:
        with map_upstream_errors(self.name):
            response = await self._client.request(
                b"GET",
                self._target(self._wire.models_url()),
                self._headers,
                b"",
                connect_timeout_s=10.0,
                first_byte_timeout_s=10.0,
            )
            async with response:
                data = await response.read(10.0)
            raise_for_status(self.name, response.status, data, None)
        try:
            listing = orjson.loads(data)
            return [m["id"] for m in listing.get("data", []) if isinstance(m.get("id"), str)]
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise UpstreamUnavailable(f"upstream {self.name} sent a bad model list") from exc

"""An upstream answered by an ASGI app in the same process (like httpx's ASGITransport).

Given `meterline.mock_provider.create_app()`, the proxy meets the same answers, usage and
injected failures as over the network, with no socket: the gateway's unit tests run in
milliseconds. Status codes and timeouts map to the same `UpstreamError`s as
`OpenAICompatibleProvider`, so the proxy cannot tell the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.providers.base import Provider, Timeouts
from gateway.providers.http import raise_for_status, split_events
from gateway.providers.wire import Wire
from meterline.routing_config import ProviderConfig

__all__ = ["ASGIApp", "ASGIProvider"]

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]
_SSE_SEPARATOR = b"\n\n"
_END = object()  # the app returned


class ASGIProvider(Provider):
    """**Parameters:** `config` (kind, base URL: its path and query are what the app sees),
    `app` (an ASGI app), `api_key`. Timeouts as upstream: `first_byte_s` for the whole
    answer or the gap between stream events."""

    def __init__(self, *, config: ProviderConfig, app: ASGIApp, api_key: str | None = None) -> None:
        self.name = config.name
        self.kind = config.kind
        self.price_provider = config.price_provider or config.name
        self._wire = Wire.of(config, api_key)
        self._app = app
        self._timeout_s = 5.0

    def __repr__(self) -> str:
        return f"ASGIProvider(name={self.name!r})"

    def _call(
        self, method: str, url: str, body: bytes
    ) -> tuple[asyncio.Queue[Any], asyncio.Task[None]]:
        """Start the app on one request; its messages (then `_END` or the error) go to a queue."""
        target = urlsplit(url)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": target.path,
            "raw_path": target.path.encode(),
            "query_string": target.query.encode(),
            "headers": [
                (name.lower().encode(), value.encode())
                for name, value in self._wire.headers.items()
            ],
            "client": ("127.0.0.1", 0),
            "server": ("upstream", 80),
        }
        messages: asyncio.Queue[Any] = asyncio.Queue()
        disconnected = asyncio.Event()
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()  # a hanging app waits here until cancelled
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            await messages.put(message)

        async def run() -> None:
            try:
                await self._app(scope, receive, send)
            except Exception as exc:  # the app dropped the "connection"
                await messages.put(exc)
            else:
                await messages.put(_END)

        return messages, asyncio.ensure_future(run())

    async def _next(self, messages: asyncio.Queue[Any], timeout_s: float) -> Any:
        if not messages.empty():  # already here: no timer to arm (~6 us a message)
            item = messages.get_nowait()
        else:
            try:
                async with asyncio.timeout(timeout_s):
                    item = await messages.get()
            except TimeoutError:
                raise UpstreamTimeout(f"upstream {self.name} timed out") from None
        if isinstance(item, Exception):
            raise UpstreamUnavailable(f"upstream {self.name} sent an incomplete response")
        return item

    async def _exchange(self, method: str, url: str, body: bytes, timeout_s: float) -> bytes:
        messages, task = self._call(method, url, body)
        try:
            start = await self._next(messages, timeout_s)
            if start is _END:
                raise UpstreamUnavailable(f"upstream {self.name} sent no response")
            data = b""
            while True:
                item = await self._next(messages, timeout_s)
                if item is _END:
                    break
                data += item.get("body", b"")
            raise_for_status(self.name, start["status"], data, _retry_after(start))
            return data
        finally:
            await _cancel(task)

    async def send(self, path: str, body: bytes, *, model: str, timeouts: Timeouts) -> bytes:
        url = self._wire.url(path, model)
        return await self._exchange("POST", url, body, timeouts.first_byte_s)

    async def stream(
        self, path: str, body: bytes, *, model: str, timeouts: Timeouts
    ) -> AsyncGenerator[list[bytes], None]:
        messages, task = self._call("POST", self._wire.url(path, model), body)
        wait = timeouts.first_byte_s
        try:
            start = await self._next(messages, wait)
            if start is _END:
                raise UpstreamUnavailable(f"upstream {self.name} sent no response")
            if start["status"] >= 400:
                data = b""
                while (item := await self._next(messages, wait)) is not _END:
                    data += item.get("body", b"")
                raise_for_status(self.name, start["status"], data, _retry_after(start))
            buffer = b""
            while (item := await self._next(messages, wait)) is not _END:
                buffer += item.get("body", b"")
                events, buffer = split_events(buffer)
                if events:
                    yield events
            if buffer.strip():
                yield [buffer + _SSE_SEPARATOR]
        finally:
            await _cancel(task)

    async def list_models(self) -> list[str]:
        data = await self._exchange("GET", self._wire.models_url(), b"", self._timeout_s)
        try:
            listing = orjson.loads(data)
            return [m["id"] for m in listing.get("data", []) if isinstance(m.get("id"), str)]
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise UpstreamUnavailable(f"upstream {self.name} sent a bad model list") from exc


def _retry_after(start: Message) -> str | None:
    for name, value in start.get("headers", ()):
        if name.lower() == b"retry-after":
            return bytes(value).decode("latin-1")
    return None


async def _cancel(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task

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

import orjson

from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.providers.base import Provider
from gateway.providers.openai import raise_for_status

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
    """**Parameters:** `name`, `app` (an ASGI app serving `/v1/...`), `timeout_s` (whole
    answer, or gap between stream events, as upstream), `price_provider`."""

    def __init__(
        self, *, name: str, app: ASGIApp, timeout_s: float, price_provider: str | None = None
    ) -> None:
        self.name = name
        self.price_provider = price_provider or name
        self._app = app
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"ASGIProvider(name={self.name!r})"

    def _call(
        self, method: str, path: str, body: bytes
    ) -> tuple[asyncio.Queue[Any], asyncio.Task[None]]:
        """Start the app on one request; its messages (then `_END` or the error) go to a queue."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": "/v1" + path,
            "raw_path": ("/v1" + path).encode(),
            "query_string": b"",
            "headers": [(b"content-type", b"application/json")],
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

    async def _next(self, messages: asyncio.Queue[Any]) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):
                item = await messages.get()
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {self.name} timed out") from None
        if isinstance(item, Exception):
            raise UpstreamUnavailable(f"upstream {self.name} sent an incomplete response")
        return item

    async def _exchange(self, method: str, path: str, body: bytes) -> bytes:
        messages, task = self._call(method, path, body)
        try:
            start = await self._next(messages)
            if start is _END:
                raise UpstreamUnavailable(f"upstream {self.name} sent no response")
            data = b""
            while True:
                item = await self._next(messages)
                if item is _END:
                    break
                data += item.get("body", b"")
            raise_for_status(self.name, start["status"], data, _retry_after(start))
            return data
        finally:
            await _cancel(task)

    async def send(self, path: str, body: bytes) -> bytes:
        return await self._exchange("POST", path, body)

    async def stream(self, path: str, body: bytes) -> AsyncGenerator[bytes, None]:
        messages, task = self._call("POST", path, body)
        try:
            start = await self._next(messages)
            if start is _END:
                raise UpstreamUnavailable(f"upstream {self.name} sent no response")
            if start["status"] >= 400:
                data = b""
                while (item := await self._next(messages)) is not _END:
                    data += item.get("body", b"")
                raise_for_status(self.name, start["status"], data, _retry_after(start))
            buffer = b""
            while (item := await self._next(messages)) is not _END:
                buffer += item.get("body", b"")
                if _SSE_SEPARATOR not in buffer:
                    continue
                *events, buffer = buffer.replace(b"\r\n", b"\n").split(_SSE_SEPARATOR)
                for event in events:
                    if event.strip():
                        yield event + _SSE_SEPARATOR
            if buffer.strip():
                yield buffer + _SSE_SEPARATOR
        finally:
            await _cancel(task)

    async def list_models(self) -> list[str]:
        data = await self._exchange("GET", "/models", b"")
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

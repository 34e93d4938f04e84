"""A lean HTTP/1.1 client for the one network call on the hot path: the upstream.

Why not aiohttp (ARCHITECTURE §8 chose it, against httpx): measured on these machines,
aiohttp's `ClientSession.post` + `read()` costs ~110-130 us of CPU per call at c=16 and
this client ~18 us against the same server (`bench/upstream_client.py`), which is a
fifth of the gateway's whole CPU per request. It does only what the gateway needs:
POST/GET of a byte body to a configured upstream, the answer buffered or streamed, a
connect timeout, a first-byte / silence timeout and a total one, TLS, and keep-alive
connections pooled per origin. Responses are parsed by httptools (uvicorn's parser, the
llhttp of Node.js); requests are written whole in one `write`.

Failures are the exceptions below (and `TimeoutError`); the providers map them to the
gateway's upstream errors. A pooled connection the server closed while idle fails
before any byte of an answer: the request is then sent once more on a new connection
(as urllib3 and httpx do). A connection goes back to the pool only after a complete
answer that allows keep-alive; anything else (a timeout, a cancelled caller, a broken
answer) closes it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

__all__ = [
    "ConnectFailed",
    "IncompleteResponse",
    "InvalidResponse",
    "Response",
    "ServerDisconnected",
    "Target",
    "TransportError",
    "UpstreamClient",
]

_STREAM_HIGH_WATER = 256 * 1024  # buffered stream bytes before reading pauses


class TransportError(Exception):
    """The upstream call failed below HTTP."""


class ConnectFailed(TransportError):
    """No connection could be made (refused, unresolvable, TLS handshake)."""


class ServerDisconnected(TransportError):
    """The connection closed before the answer began."""


class IncompleteResponse(TransportError):
    """The connection closed in the middle of the answer."""


class InvalidResponse(TransportError):
    """The bytes received are not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: origin (scheme, host, port) and request target (path+query),
    with the Host header precomputed. Build once per URL with `Target.of`."""

    scheme: str
    host: str
    port: int
    path: bytes
    host_header: bytes

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == default else f"{shown}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, host, port, path.encode("latin-1"), host_header.encode("idna"))

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


class Response:
    """An answer whose head has arrived: `status`, `headers` (lowercase names), then the
    body through `read()` or `chunks()`. Use as `async with` (or call `release()`): the
    connection returns to the pool only after a complete body."""

    __slots__ = ("_connection", "headers", "status")

    def __init__(self, connection: _Connection, status: int, headers: list[tuple[bytes, bytes]]):
        self._connection = connection
        self.status = status
        self.headers = headers

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    async def read(self, timeout_s: float | None) -> bytes:
        """The whole body, within `timeout_s` (None: no limit)."""
        connection = self._connection
        if not connection.complete:
            loop = asyncio.get_running_loop()
            deadline = None if timeout_s is None else loop.time() + timeout_s
            while not connection.complete:
                await connection.wait(None if deadline is None else deadline - loop.time())
        return connection.take_all()

    async def chunks(self, silence_s: float | None) -> AsyncIterator[bytes]:
        """Body pieces as they arrive; each wait is bounded by `silence_s`."""
        connection = self._connection
        while True:
            piece = connection.take_all()
            if piece:
                yield piece
            elif connection.complete:
                return
            else:
                await connection.wait(silence_s)

    def release(self) -> None:
        self._connection.finish()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange at a time."""

    def __init__(self, client: UpstreamClient, origin: tuple[str, str, int]) -> None:
        self._client = client
        self.origin = origin
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.received = False
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self._framed = False  # content-length or chunked: the end is not the close
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(InvalidResponse(f"invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete:
            return
        if self.head_done and not self._framed:  # a body delimited by the close
            self.complete = True
            self._wake()
        elif self.head_done:
            self._fail(IncompleteResponse("the connection closed in the middle of the answer"))
        else:
            self._fail(ServerDisconnected("the connection closed before the answer began"))

    # --- httptools callbacks -----------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value):
            self._framed = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._parser.get_status_code() < 200:  # 1xx: an interim answer, wait on
            self._headers = []
            self._framed = False
            return
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _STREAM_HIGH_WATER and not self._paused and self._transport:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done:  # the end of a 1xx
            return
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # --- exchange ----------------------------------------------------------------------

    def send(self, head: bytes, body: bytes) -> None:
        assert self._transport is not None
        self._transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self._transport.write(body)

    async def wait(self, timeout_s: float | None) -> None:
        """Until something arrives (head, body, end or failure); raises the failure."""
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout_s, self._timed_out) if timeout_s is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def take_all(self) -> bytes:
        if self._error is not None:
            raise self._error
        if not self._body:
            return b""
        data = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data

    def status_and_headers(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        return self._parser.get_status_code(), self._headers

    def finish(self) -> None:
        """The caller is done: back to the pool after a clean, complete answer."""
        if self.complete and self.keep_alive and not self.closed and self._error is None:
            self._reset()
            self.idle_since = time.monotonic()
            self._client._put(self)
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def _timed_out(self) -> None:
        self._fail(TimeoutError("the upstream answered nothing in time"))


class UpstreamClient:
    """**Parameters:** `keepalive_s` (an idle connection older than this is not reused),
    `max_idle_per_origin` (idle connections kept per origin). One per gateway process,
    created and closed inside its event loop."""

    def __init__(self, *, keepalive_s: float = 60.0, max_idle_per_origin: int = 256) -> None:
        self._keepalive_s = keepalive_s
        self._max_idle = max_idle_per_origin
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def request(
        self,
        method: bytes,
        target: Target,
        headers: bytes,
        body: bytes,
        *,
        connect_timeout_s: float,
        first_byte_timeout_s: float | None,
    ) -> Response:
        """Send the request and wait for the head of the answer. `headers` are complete
        `name: value\\r\\n` lines (no Host, no Content-Length: both are added)."""
        head = b"%s %s HTTP/1.1\r\nhost: %s\r\n%scontent-length: %d\r\n\r\n" % (
            method,
            target.path,
            target.host_header,
            headers,
            len(body),
        )
        connection = self._take(target.origin)
        reused = connection is not None
        if connection is None:
            connection = await self._connect(target, connect_timeout_s)
        try:
            return await self._exchange(connection, head, body, first_byte_timeout_s)
        except ServerDisconnected:
            if not reused or connection.received:
                raise
        # The server had closed the idle connection: once more, on a new one.
        connection = await self._connect(target, connect_timeout_s)
        return await self._exchange(connection, head, body, first_byte_timeout_s)

    async def _exchange(
        self, connection: _Connection, head: bytes, body: bytes, first_byte_timeout_s: float | None
    ) -> Response:
        try:
            connection.send(head, body)
            while not connection.head_done:
                await connection.wait(first_byte_timeout_s)
        except BaseException:
            connection.close()
            raise
        status, headers = connection.status_and_headers()
        return Response(connection, status, headers)

    async def _connect(self, target: Target, timeout_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls() if target.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, target.origin),
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls is not None else None,
                )
        except TimeoutError:
            raise
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect to {target.host}:{target.port}: {exc}") from exc
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _take(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_usable = time.monotonic() - self._keepalive_s
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since >= oldest_usable:
                return connection
            connection.close()
        return None

    def _put(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) >= self._max_idle:
            connection.close()
            return
        idle.append(connection)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

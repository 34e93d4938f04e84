"""The upstream client against a real socket server that answers in scripted ways:
framing (length, chunked, close-delimited), keep-alive reuse, a server that closed an idle
connection, broken and silent servers, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.providers.transport import (
    ConnectFailed,
    IncompleteResponse,
    InvalidResponse,
    ServerDisconnected,
    Target,
    UpstreamClient,
)

Answer = Callable[[asyncio.StreamWriter, bytes], "asyncio.Future[None] | None"]


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


class Server:
    """Answers each request with the next scripted action; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.script: list[Callable[[asyncio.StreamWriter], object]] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                action = self.script.pop(0)
                result = action(writer)
                if asyncio.iscoroutine(result):
                    await result
                await writer.drain()
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, Target]]:
    state = Server()
    listener = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    yield state, Target.of(f"http://127.0.0.1:{port}/base/v1/chat?x=1")
    listener.close()
    for writer in state.writers:
        writer.close()


async def post(client: UpstreamClient, target: Target, timeout: float = 2.0):
    return await client.request(
        b"POST",
        target,
        b"content-type: application/json\r\n",
        b'{"a":1}',
        connect_timeout_s=1.0,
        first_byte_timeout_s=timeout,
    )


def test_target_parses_the_origin_path_and_host_header() -> None:
    target = Target.of("https://api.example.test/openai/deployments/gpt/chat?api-version=1")
    assert target.origin == ("https", "api.example.test", 443)
    assert target.path == b"/openai/deployments/gpt/chat?api-version=1"
    assert target.host_header == b"api.example.test"
    assert Target.of("http://[::1]:8080").host_header == b"[::1]:8080"
    with pytest.raises(ValueError, match="not an http"):
        Target.of("ftp://x")


async def test_a_length_framed_answer_and_the_connection_is_reused(server) -> None:
    state, target = server
    state.script = [lambda w: w.write(ok(b"first")), lambda w: w.write(ok(b"second"))]
    client = UpstreamClient()
    for expected in (b"first", b"second"):
        async with await post(client, target) as response:
            assert response.status == 200
            assert await response.read(1.0) == expected
    assert state.connections == 1
    head = state.requests[0]
    assert head.startswith(b"POST /base/v1/chat?x=1 HTTP/1.1\r\n")
    assert b"host: 127.0.0.1:" in head and head.endswith(b'content-length: 7\r\n\r\n{"a":1}')
    await client.aclose()


async def test_a_chunked_answer_streams_piece_by_piece(server) -> None:
    state, target = server

    async def chunked(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nRetry-After: 3\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")

    state.script = [chunked, lambda w: w.write(ok(b"again"))]
    client = UpstreamClient()
    async with await post(client, target) as response:
        assert response.header("retry-after") == "3"
        pieces = [piece async for piece in response.chunks(1.0)]
    assert b"".join(pieces) == b"data: 1\n\ndata: 2\n\n" and len(pieces) == 2
    async with await post(client, target) as response:
        assert await response.read(1.0) == b"again"
    assert state.connections == 1  # a complete chunked answer keeps the connection
    await client.aclose()


async def test_a_body_delimited_by_the_close_is_complete_and_not_reused(server) -> None:
    state, target = server

    def close_delimited(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        writer.close()

    state.script = [close_delimited, lambda w: w.write(ok(b"next"))]
    client = UpstreamClient()
    async with await post(client, target) as response:
        assert await response.read(1.0) == b"all of it"
    async with await post(client, target) as response:
        assert await response.read(1.0) == b"next"
    assert state.connections == 2
    await client.aclose()


async def test_an_idle_connection_the_server_closed_is_not_used(server) -> None:
    state, target = server
    state.script = [lambda w: w.write(ok(b"one")), lambda w: w.write(ok(b"two"))]
    client = UpstreamClient()
    async with await post(client, target) as response:
        assert await response.read(1.0) == b"one"
    state.writers[0].close()
    await asyncio.sleep(0.05)
    async with await post(client, target) as response:
        assert await response.read(1.0) == b"two"
    assert state.connections == 2 and len(state.requests) == 2
    await client.aclose()


async def test_a_reused_connection_closed_without_an_answer_is_retried_once(server) -> None:
    state, target = server
    # The close races the next request: the server reads it, then hangs up unanswered.
    state.script = [
        lambda w: w.write(ok(b"one")),
        lambda w: w.close(),
        lambda w: w.write(ok(b"two")),
    ]
    client = UpstreamClient()
    async with await post(client, target) as response:
        assert await response.read(1.0) == b"one"
    async with await post(client, target) as response:
        assert await response.read(1.0) == b"two"
    assert state.connections == 2 and len(state.requests) == 3
    await client.aclose()


async def test_a_close_in_the_middle_of_the_body_is_incomplete(server) -> None:
    state, target = server

    def half(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        writer.close()

    state.script = [half]
    client = UpstreamClient()
    response = await post(client, target)
    with pytest.raises(IncompleteResponse):
        await response.read(1.0)
    response.release()
    assert not client._idle.get(target.origin)


async def test_a_fresh_connection_closed_before_any_answer_is_server_disconnected(server) -> None:
    state, target = server
    state.script = [lambda w: w.close()]
    with pytest.raises(ServerDisconnected):
        await post(UpstreamClient(), target)


async def test_silence_is_a_timeout_and_the_connection_is_dropped(server) -> None:
    state, target = server
    state.script = [lambda w: asyncio.sleep(5)]
    client = UpstreamClient()
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await post(client, target, timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert not client._idle.get(target.origin)


async def test_garbage_is_an_invalid_response(server) -> None:
    state, target = server
    state.script = [lambda w: w.write(b"NOT HTTP AT ALL\r\n\r\n")]
    with pytest.raises(InvalidResponse):
        await post(UpstreamClient(), target)


async def test_a_refused_connection_is_connect_failed(unused_tcp_port) -> None:
    with pytest.raises(ConnectFailed, match="cannot connect"):
        await post(UpstreamClient(), Target.of(f"http://127.0.0.1:{unused_tcp_port}/v1"))


async def test_a_cancelled_caller_never_returns_a_half_read_connection(server) -> None:
    state, target = server
    state.script = [lambda w: asyncio.sleep(5), lambda w: w.write(ok(b"fresh"))]
    client = UpstreamClient()
    task = asyncio.ensure_future(post(client, target))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not client._idle.get(target.origin)
    async with await post(client, target) as response:
        assert await response.read(1.0) == b"fresh"
    assert state.connections == 2
    await client.aclose()

"""A fast, deterministic OpenAI-compatible provider for tests, demos and the benchmark.

No tokenizer and no randomness: prompt tokens are `ceil(chars / 4) + 3` per message, and
the completion is derived from the prompt's hash (capped by `max_tokens`), so the same
request always gets the same answer and the same usage. The requested model is echoed.

Failure injection, by header `x-mock-fail: 429|500|timeout|slow-stream|disconnect` or by
model name prefix (the gateway does not forward client headers): `mock-fail-429`,
`mock-fail-500`, `mock-timeout`, `mock-slow-stream`, `mock-disconnect`. Latency: the
process default plus header `x-mock-latency-ms`. Cache and reasoning usage paths: body
fields `mock_cached_tokens` / `mock_reasoning_tokens` (or `x-mock-cached-tokens`). Tool
calls: with `tools`, the first tool is called, with arguments derived from the prompt, or
`mock_tool_arguments` (a JSON string) verbatim: how the simulator plays an agent that
repeats the same call while its conversation grows. Known reply text (guardrail tests):
body field `mock_reply` (the reply, verbatim) or `mock_echo: true` (the last user
message's text, as the upstream received it); streamed in 8-character pieces.

A raw ASGI app rather than a framework: it is the benchmark's baseline, so it must cost
as little as possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

__all__ = ["completion_for", "create_app", "prompt_tokens", "serve"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MOCK_MODELS = ("mock-gpt", "mock-gpt-mini", "mock-embed")
_FAIL_PREFIXES = (
    ("mock-fail-429", "429"),
    ("mock-fail-500", "500"),
    ("mock-timeout", "timeout"),
    ("mock-slow-stream", "slow-stream"),
    ("mock-disconnect", "disconnect"),
)
_WORDS = (
    "the", "meter", "counts", "every", "token", "while", "streams", "flow", "through",
    "kafka", "and", "budgets", "burn", "slowly", "alerts", "wake", "security", "finance",
    "sees", "spend", "per", "team", "model", "day",
)  # fmt: skip
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_SLOW_STREAM_GAP_S = 0.3
_REPLY_PIECE_CHARS = 8  # small on purpose: scripted replies split words across chunks


class _InjectedDisconnect(Exception):
    """Raised on purpose to make the server drop the connection mid-response."""


class _QuietInjectedDisconnects(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _InjectedDisconnect))


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    return 0


def prompt_tokens(messages: list[Any]) -> int:
    return sum(
        math.ceil(_text_chars(m.get("content")) / 4) + 3 for m in messages if isinstance(m, dict)
    )


def completion_for(digest: bytes, max_tokens: int | None) -> tuple[list[str], str]:
    """(words, finish_reason): 8..47 words chosen by the prompt hash; one word = one token."""
    count = 8 + int.from_bytes(digest[:4], "big") % 40
    finish = "stop"
    if max_tokens is not None and max_tokens < count:
        count, finish = max(max_tokens, 0), "length"
    words = [_WORDS[(digest[i % len(digest)] + i) % len(_WORDS)] for i in range(count)]
    return words, finish


def _error(message: str, type_: str, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": None}})


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*(headers or _JSON), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _scripted_reply(body: dict[str, Any], messages: list[Any]) -> str | None:
    """`mock_reply` verbatim, or with `mock_echo` the last user message's text; else None."""
    reply = body.get("mock_reply")
    if isinstance(reply, str):
        return reply
    if body.get("mock_echo") is not True:
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p["text"] for p in content if isinstance(p, dict) and "text" in p)
            return content if isinstance(content, str) else ""
    return ""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class MockProvider:
    def __init__(self, latency_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        headers = dict(scope["headers"])
        if path == "/healthz":
            await _respond(send, 200, b'{"status":"ok"}')
        elif path == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in MOCK_MODELS
            ]
            await _respond(send, 200, orjson.dumps({"object": "list", "data": data}))
        elif path in ("/v1/chat/completions", "/v1/embeddings") and method == "POST":
            try:
                body = orjson.loads(await _read_body(receive))
                if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                    raise ValueError("a JSON object with a string 'model' is required")
            except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                await _respond(send, 400, _error(str(exc), "invalid_request_error"))
                return
            await self._answer(path, body, headers, receive, send)
        else:
            await _respond(send, 404, _error(f"no route {method} {path}", "invalid_request_error"))

    async def _answer(
        self,
        path: str,
        body: dict[str, Any],
        headers: dict[bytes, bytes],
        receive: Receive,
        send: Send,
    ) -> None:
        model = body["model"]
        failure = headers.get(b"x-mock-fail", b"").decode()
        for prefix, mode in _FAIL_PREFIXES:
            if model.startswith(prefix):
                failure = mode
        latency = self.latency_ms
        if b"x-mock-latency-ms" in headers:
            with contextlib.suppress(ValueError):
                latency = float(headers[b"x-mock-latency-ms"])
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        if failure == "429":
            await _respond(
                send,
                429,
                _error("mock rate limit", "rate_limit_error", "rate_limit_exceeded"),
                [*_JSON, (b"retry-after", b"7")],
            )
            return
        if failure == "500":
            await _respond(send, 500, _error("mock server error", "server_error"))
            return
        if failure == "timeout":  # hang until the client gives up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receive(), 3600)
            return
        if path == "/v1/embeddings":
            await self._embeddings(body, model, send)
            return
        try:
            await self._chat(body, model, headers, send, failure)
        except (TypeError, AttributeError, KeyError):  # odd message shapes
            await _respond(send, 400, _error("malformed chat request", "invalid_request_error"))

    async def _chat(
        self,
        body: dict[str, Any],
        model: str,
        headers: dict[bytes, bytes],
        send: Send,
        failure: str,
    ) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise TypeError("messages must be a list")
        digest = hashlib.sha256(orjson.dumps(messages)).digest()
        max_tokens = _int_or_none(body.get("max_tokens"))
        if max_tokens is None:
            max_tokens = _int_or_none(body.get("max_completion_tokens"))
        words, finish = completion_for(digest, max_tokens)
        reply = _scripted_reply(body, messages)
        if reply is not None:
            words, finish = reply.split(" "), "stop"
        n_prompt = prompt_tokens(messages)
        cached = _int_or_none(body.get("mock_cached_tokens"))
        if cached is None and b"x-mock-cached-tokens" in headers:
            raw_cached = headers[b"x-mock-cached-tokens"]
            cached = int(raw_cached) if raw_cached.isdigit() else None
        reasoning = _int_or_none(body.get("mock_reasoning_tokens")) or 0
        tool_call = None
        tools = body.get("tools")
        if isinstance(tools, list) and tools and body.get("tool_choice") != "none":
            name = str((tools[0].get("function") or {}).get("name") or "tool")
            arguments = body.get("mock_tool_arguments")
            if not isinstance(arguments, str):
                arguments = orjson.dumps({"q": digest.hex()[:8]}).decode()
            tool_call = {
                "id": "call_" + digest.hex()[:12],
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments,
                },
            }
            words, finish = [], "tool_calls"
        n_completion = (len(words) if tool_call is None else 12) + reasoning
        usage = {
            "prompt_tokens": n_prompt,
            "completion_tokens": n_completion,
            "total_tokens": n_prompt + n_completion,
            "prompt_tokens_details": {"cached_tokens": min(cached or 0, n_prompt)},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        content = " ".join(words)
        completion_id = "chatcmpl-mock-" + digest.hex()[:16]
        created = int(time.time())
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": content or None}
            if tool_call:
                message["tool_calls"] = [tool_call]
            await _respond(
                send,
                200,
                orjson.dumps(
                    {
                        "id": completion_id,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": usage,
                    }
                ),
            )
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return (
                b"data: "
                + orjson.dumps(
                    {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                    }
                )
                + b"\n\n"
            )

        pieces = [chunk({"role": "assistant", "content": ""})]
        if reply is not None:
            for start in range(0, len(reply), _REPLY_PIECE_CHARS):
                pieces.append(chunk({"content": reply[start : start + _REPLY_PIECE_CHARS]}))
        else:
            step = max(1, math.ceil(len(words) / 4))
            for start in range(0, len(words), step):
                text = " ".join(words[start : start + step])
                pieces.append(chunk({"content": text if start == 0 else " " + text}))
        if tool_call:
            pieces.append(chunk({"tool_calls": [{"index": 0, **tool_call}]}))
        pieces.append(chunk({}, finish))
        if include_usage:
            pieces.append(
                b"data: "
                + orjson.dumps(
                    {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
                + b"\n\n"
            )
        pieces.append(b"data: [DONE]\n\n")
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        for index, piece in enumerate(pieces):
            if failure == "disconnect" and index == 2:
                raise _InjectedDisconnect("mock disconnect")
            if failure == "slow-stream" and index:
                await asyncio.sleep(_SLOW_STREAM_GAP_S)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _embeddings(self, body: dict[str, Any], model: str, send: Send) -> None:
        value = body.get("input")
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        data = []
        tokens = 0
        for index, item in enumerate(items):
            if isinstance(item, str):
                tokens += math.ceil(len(item) / 4)
            elif isinstance(item, list):
                tokens += len(item)
            else:
                tokens += 1
            digest = hashlib.sha256(orjson.dumps(item)).digest()
            vector = [round(b / 255 - 0.5, 4) for b in digest[:8]]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        await _respond(
            send,
            200,
            orjson.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            ),
        )


def create_app(latency_ms: float = 0.0) -> MockProvider:
    logging.getLogger("uvicorn.error").addFilter(_QuietInjectedDisconnects())
    return MockProvider(latency_ms)


def serve(host: str, port: int, latency_ms: float = 0.0) -> None:
    """Blocking; same server tuning as the gateway so the baseline is fair."""
    import uvicorn

    uvicorn.run(
        create_app(latency_ms),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="on",
    )

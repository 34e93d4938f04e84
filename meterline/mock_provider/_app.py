"""The raw ASGI app: path prefixes, request counting, failure injection, dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from meterline.mock_provider import _anthropic, _openai
from meterline.mock_provider._shared import (
    JSON,
    SSE,
    Api,
    MalformedRequest,
    Receive,
    Scope,
    Send,
    anthropic_error,
    input_tokens_for,
    openai_error,
    plan_for,
    respond,
    system_cache_tokens,
    with_prompt_cache,
)

MOCK_MODELS = ("mock-gpt", "mock-gpt-mini", "mock-embed")
_FAIL_PREFIXES = (
    ("mock-fail-429", "429"),
    ("mock-fail-500", "500"),
    ("mock-timeout", "timeout"),
    ("mock-slow-stream", "slow-stream"),
    ("mock-disconnect", "disconnect-mid-stream"),
)
_LEGACY_MODES = {"disconnect": "disconnect-mid-stream"}  # header and model-prefix meaning
_MODES = {"timeout", "slow-stream", "disconnect", "disconnect-mid-stream", "context"}
_SPEC = re.compile(r"^([a-z0-9-]+?)(?::([0-9.]+))?(?:x(\d+))?$")
_SLOW_STREAM_GAP_S = 0.3
_LEGACY_RETRY_AFTER = "7"
_DEFAULT = "default"
_AZURE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)$")
_PATHS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
}
_AZURE_KINDS = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
}
_PROMPT_CACHE_LIMIT = 10_000


class _InjectedDisconnect(Exception):
    """Raised on purpose to make the server drop the connection mid-response."""


class _QuietInjectedDisconnects(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _InjectedDisconnect))


@dataclass(frozen=True, slots=True)
class Failure:
    mode: str  # an HTTP status ("429", "500", ...) or one of _MODES
    arg: str | None = None  # Retry-After seconds for 429, the gap in seconds for slow-stream

    @property
    def status(self) -> int | None:
        return int(self.mode) if self.mode.isdigit() else None


def parse_failure(spec: str) -> tuple[Failure, int | None] | None:
    """`429:1x2` -> (Failure("429", "1"), 2); None when `spec` names no known mode."""
    match = _SPEC.match(spec)
    if match is None:
        return None
    mode, arg, times = match.groups()
    if not (mode in _MODES or (mode.isdigit() and len(mode) == 3 and mode[0] in "45")):
        return None
    return Failure(mode, arg), int(times) if times is not None else None


async def _drop_connection(send: Send) -> None:
    """Close the socket before any byte: uvicorn's cycle exposes its transport; elsewhere raise."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise _InjectedDisconnect("mock disconnect")
    transport.abort()
    for _ in range(3):  # let connection_lost run, so the server sends no 500 of its own
        await asyncio.sleep(0)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class MockProvider:
    def __init__(self, latency_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.stats: dict[str, dict[str, int]] = {}
        self._failures_seen: dict[tuple[str, str], int] = {}
        self._prompt_cache: dict[str, set[bytes]] = {}

    def reset(self) -> None:
        self.stats.clear()
        self._failures_seen.clear()
        self._prompt_cache.clear()

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
        if path.startswith("/mock/"):
            await self._admin(path, method, send)
            return
        deployment, failure, times, spec = _DEFAULT, None, None, ""
        while path.startswith(("/d/", "/fail/")):
            _, kind, value, *rest = path.split("/", 3)
            path = "/" + (rest[0] if rest else "")
            if kind == "d" and value:
                deployment = value
                continue
            parsed = parse_failure(value)
            if parsed is None:
                self._count(deployment, scope["path"])
                await respond(send, 404, openai_error(404, f"unknown mock prefix {kind}/{value}"))
                return
            (failure, times), spec = parsed, value
        counts = self.stats.get(deployment)
        if counts is None:
            counts = self.stats[deployment] = {}
        counts[path] = counts.get(path, 0) + 1
        if failure is not None and times is not None:
            key = (deployment, spec)
            seen = self._failures_seen.get(key, 0)
            self._failures_seen[key] = seen + 1
            if seen >= times:
                failure = None
        await self._route(scope, path, method, deployment, failure, receive, send)

    def _count(self, deployment: str, path: str) -> None:
        counts = self.stats.setdefault(deployment, {})
        counts[path] = counts.get(path, 0) + 1

    async def _admin(self, path: str, method: str, send: Send) -> None:
        if path == "/mock/stats" and method == "GET":
            await respond(send, 200, orjson.dumps(self.stats))
        elif path == "/mock/reset" and method == "POST":
            self.reset()
            await respond(send, 200, b'{"status":"ok"}')
        else:
            await respond(send, 404, openai_error(404, f"no route {method} {path}"))

    async def _route(
        self,
        scope: Scope,
        path: str,
        method: str,
        deployment: str,
        failure: Failure | None,
        receive: Receive,
        send: Send,
    ) -> None:
        kind = _PATHS.get(path)
        azure_model = None
        if kind is None and path.startswith("/openai/"):
            match = _AZURE.match(path)
            if match is not None:
                azure_model, kind = match.group(1), _AZURE_KINDS[match.group(2)]
        error = anthropic_error if kind in ("messages", "count_tokens") else openai_error
        if path == "/healthz":
            await respond(send, 200, b'{"status":"ok"}')
            return
        if path == "/v1/models" and method == "GET":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in MOCK_MODELS
            ]
            await respond(send, 200, orjson.dumps({"object": "list", "data": data}))
            return
        if kind is None or method != "POST":
            await respond(send, 404, error(404, f"no route {method} {path}"))
            return
        if azure_model is not None and b"api-version" not in parse_qs(
            scope.get("query_string", b"")
        ):
            message = "Missing required query parameter: api-version"
            await respond(send, 400, openai_error(400, message, "missing_api_version"))
            return
        headers = dict(scope["headers"])
        raw = await _read_body(receive)
        latency = self.latency_ms
        if b"x-mock-latency-ms" in headers:
            with contextlib.suppress(ValueError):
                latency = float(headers[b"x-mock-latency-ms"])
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        if failure is not None and await self._fail(failure, error, receive, send):
            return
        try:
            body = orjson.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("a JSON object is required")
            if azure_model is not None:
                body["model"] = azure_model
            if not isinstance(body.get("model"), str):
                raise ValueError("a string 'model' is required")
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            await respond(send, 400, error(400, str(exc)))
            return
        model = body["model"]
        mode = headers.get(b"x-mock-fail", b"").decode()
        for prefix, prefix_mode in _FAIL_PREFIXES:
            if model.startswith(prefix):
                mode = prefix_mode
        if mode:
            mode = _LEGACY_MODES.get(mode, mode)
            failure = Failure(mode, _LEGACY_RETRY_AFTER if mode == "429" else None)
            if await self._fail(failure, error, receive, send):
                return
        try:
            answer = self._answer(kind, body, headers, model, deployment)
        except (MalformedRequest, TypeError, AttributeError, KeyError) as exc:
            detail = str(exc) if isinstance(exc, MalformedRequest) else f"malformed {kind} request"
            await respond(send, 400, error(400, detail))
            return
        await _send_answer(send, answer, failure)

    async def _fail(
        self, failure: Failure, error: Callable[[int, str], bytes], receive: Receive, send: Send
    ) -> bool:
        """Act out `failure` if it ends the request here (True); stream modes act later."""
        status = failure.status
        if status is not None:
            extra = []
            if status == 429:
                extra = [(b"retry-after", (failure.arg or "1").encode())]
            await respond(send, status, error(status, f"mock {status}"), [*JSON, *extra])
        elif failure.mode == "context":
            message = "prompt is too long: 200001 tokens > 200000 maximum"
            if error is openai_error:
                body = openai_error(400, message, "context_length_exceeded")
            else:
                body = anthropic_error(400, message)
            await respond(send, 400, body)
        elif failure.mode == "timeout":  # hang until the client gives up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receive(), 3600)
        elif failure.mode == "disconnect":
            await _drop_connection(send)
        else:
            return False
        return True

    def _answer(
        self, kind: str, body: dict[str, Any], headers: dict[bytes, bytes], model: str, dep: str
    ) -> bytes | tuple[list[bytes], int]:
        if kind == "embeddings":
            return _openai.embeddings(body, model)
        if kind == "count_tokens":
            return orjson.dumps({"input_tokens": input_tokens_for("messages", body)})
        if kind == "completions":
            prompt = body.get("prompt")
            prompts = prompt if isinstance(prompt, list) and prompt else [prompt]
            plans = [plan_for("completions", {**body, "prompt": p}, headers) for p in prompts]
            return _openai.completions(body, plans, model)
        api: Api = kind  # type: ignore[assignment]
        plan = plan_for(api, body, headers)
        if kind == "chat":
            return _openai.chat(body, plan, model)
        if kind == "responses":
            return _openai.responses(body, plan, model)
        if not isinstance(body.get("max_tokens"), int):
            raise MalformedRequest("max_tokens: Field required")
        if not plan.cached_tokens and not plan.cache_write_tokens:
            prefix = system_cache_tokens(body)
            if prefix:
                seen = self._prompt_cache.setdefault(dep, set())
                key = orjson.dumps(body["system"])
                plan = with_prompt_cache(plan, prefix, key in seen)
                if len(seen) >= _PROMPT_CACHE_LIMIT:
                    seen.clear()
                seen.add(key)
        return _anthropic.messages(body, plan, model)


async def _send_answer(
    send: Send, answer: bytes | tuple[list[bytes], int], failure: Failure | None
) -> None:
    mode = failure.mode if failure is not None else ""
    if isinstance(answer, bytes):
        if mode == "disconnect-mid-stream":  # half the body, then drop
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*JSON, (b"content-length", str(len(answer)).encode())],
                }
            )
            half = answer[: len(answer) // 2]
            await send({"type": "http.response.body", "body": half, "more_body": True})
            raise _InjectedDisconnect("mock disconnect")
        await respond(send, 200, answer)
        return
    frames, drop_at = answer
    gap = _SLOW_STREAM_GAP_S
    if mode == "slow-stream" and failure is not None and failure.arg:
        gap = float(failure.arg)
    await send({"type": "http.response.start", "status": 200, "headers": SSE})
    for index, frame in enumerate(frames):
        if mode == "disconnect-mid-stream" and index == drop_at:
            raise _InjectedDisconnect("mock disconnect")
        if mode == "slow-stream" and index:
            await asyncio.sleep(gap)
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


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

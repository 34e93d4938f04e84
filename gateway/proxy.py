"""The hot routes as raw ASGI handlers: chat completions, completions, embeddings,
Responses and Anthropic Messages (one `Dialect` each, gateway/apis), and /v1/models.

Per request (ARCHITECTURE §8): parse headers once -> authenticate (hash lookup) -> read
the body -> enforcement (decisions, throttles, budgets, view staleness) -> validate the
body by hand -> plan the route (model group and fallbacks) -> per-key RPM/TPM buckets ->
input guardrails -> the router tries deployments (retries, fallbacks, breakers), each
through its bridge (pass-through or translated, gateway/bridge.py) over the shared
session -> read usage (correct the token estimate, count the spend) -> output guardrails
-> respond -> enqueue one RequestEvent. Every outcome, including each error, produces
exactly one event; nothing a client sends escapes as a 500.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import orjson

from gateway.apis import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MESSAGES,
    RESPONSES,
    Dialect,
    ParsedRequest,
    StreamReader,
    prompt_stats,
    prompt_texts,
)
from gateway.asgi import JSON_HEADERS, SSE_HEADERS, Receive, Scope, Send, read_body, send_response
from gateway.bounds import clip_bytes
from gateway.bridge import Bridge, Exchanged, bridge_for
from gateway.cache import CacheLookup
from gateway.client_address import client_address, parse_networks
from gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    GuardrailBlocked,
    InternalGatewayError,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotAllowed,
    ModelNotFound,
    RateLimited,
    UpstreamError,
)
from gateway.keys import KeyInfo
from gateway.providers import Provider, Timeouts
from gateway.ratelimit import estimate_tokens
from gateway.record import RequestRecord
from gateway.routing import Attempt, Deployment, Group
from gateway.runtime import GatewayRuntime
from gateway.signature import request_signature
from schemas.policies import CACHE_HITS
from schemas.spend import SpendMark, wire_ms
from schemas.subjects import key_subject

__all__ = ["ProxyRoutes"]

T = TypeVar("T")

log = logging.getLogger(__name__)


class _ClientGone(Exception):
    """The client went away mid-stream; nothing more can be sent."""


def _check_content_type(value: bytes | None) -> None:
    """JSON bodies only, as OpenAI answers: a missing header is tolerated (raw clients)."""
    if value is None:
        return
    media = value.split(b";", 1)[0].strip().lower()
    if media == b"application/json" or media.endswith(b"+json"):
        return
    shown = clip_bytes(value, 64)
    raise InvalidRequest(
        f"Unsupported content type: '{shown}'. This API method only accepts "
        f"'application/json' requests, but you specified the header 'Content-Type: {shown}'.",
        param="Content-Type",
        code="unsupported_content_type",
    )


def _trace_id(traceparent: bytes) -> str | None:
    # W3C: version-traceid-parentid-flags
    parts = traceparent.split(b"-")
    if len(parts) >= 4 and len(parts[1]) == 32:
        return parts[1].decode("ascii", errors="replace")
    return None


class ProxyRoutes:
    def __init__(self, runtime: GatewayRuntime) -> None:
        self._rt = runtime
        self._limit = runtime.settings.gateway.max_body_bytes
        self._trusted = parse_networks(runtime.settings.gateway.trusted_proxies)
        self._sign_prompts = runtime.settings.gateway.prompt_signature
        self._clock = runtime.clock

    # --- entry points ---------------------------------------------------------------

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy(scope, receive, send, CHAT)

    async def completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy(scope, receive, send, COMPLETIONS)

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy(scope, receive, send, EMBEDDINGS)

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy(scope, receive, send, MESSAGES)

    async def responses(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy(scope, receive, send, RESPONSES)

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Anthropic's token counter: answered by the model's Anthropic upstream, free of
        charge (no RequestEvent: nothing is generated or billed)."""
        try:
            record = RequestRecord(endpoint="/v1/messages/count_tokens")
            authorization, length, content_type = self._read_headers(scope, record)
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"{scope['method']} is not allowed on {record.endpoint}")
            record.key = self._authenticate(authorization)
            raw = await read_body(receive, self._limit, length)
            self._rt.enforcer.admit(record)
            _check_content_type(content_type)
            parsed = MESSAGES.parse_count_tokens(raw)
            if not record.key.allows(parsed.model):
                raise ModelNotAllowed(
                    f"this key may not use the model '{parsed.model}'", param="model"
                )
            deployment = next(
                (
                    d
                    for group in self._rt.router.chain(parsed.model)
                    for d in group.deployments
                    if d.provider is not None and d.provider.kind == "anthropic"
                ),
                None,
            )
            if deployment is None or deployment.provider is None:
                raise InvalidRequest(
                    f"token counting is available for models served by an Anthropic "
                    f"upstream; '{parsed.model}' is not",
                    param="model",
                )
            model = deployment.upstream_model(parsed.model)
            data = await deployment.provider.send(
                "/messages/count_tokens",
                orjson.dumps({**parsed.body, "model": model}),
                model=model,
                timeouts=deployment.timeouts,
            )
            await send_response(send, 200, data, JSON_HEADERS)
        except GatewayError as exc:
            await send_response(send, exc.status, MESSAGES.error_body(exc), JSON_HEADERS)
        except Exception as exc:  # the catch-all: never a 500, never a secret in the log
            log.error("unexpected %s on count_tokens", type(exc).__name__, exc_info=exc)
            error = InternalGatewayError("the gateway could not handle this request")
            await send_response(send, error.status, MESSAGES.error_body(error), JSON_HEADERS)

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What this gateway routes and the key may use: group names and aliases, and the
        exact names providers are configured with (patterns are not listed). In
        Anthropic's shape when the client sends `anthropic-version` (the anthropic SDK)."""
        anthropic = any(name == b"anthropic-version" for name, _ in scope["headers"])
        dialect: Dialect = MESSAGES if anthropic else CHAT
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise MethodNotAllowed(f"{scope['method']} is not allowed on /v1/models")
            record = RequestRecord(endpoint="/v1/models")
            key = self._authenticate(self._read_headers(scope, record)[0])
            listed = [(m, owner) for m, owner in self._model_list() if key.allows(m)]
            if anthropic:
                data = [
                    {
                        "type": "model",
                        "id": model,
                        "display_name": model,
                        "created_at": "1970-01-01T00:00:00Z",
                    }
                    for model, _ in listed
                ]
                body = orjson.dumps(
                    {
                        "data": data,
                        "has_more": False,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None,
                    }
                )
            else:
                data = [
                    {"id": model, "object": "model", "created": 0, "owned_by": owner}
                    for model, owner in listed
                ]
                body = orjson.dumps({"object": "list", "data": data})
            await send_response(send, 200, body, JSON_HEADERS)
        except GatewayError as exc:
            await send_response(send, exc.status, dialect.error_body(exc), JSON_HEADERS)

    # --- the shared path ------------------------------------------------------------

    def _read_headers(
        self, scope: Scope, record: RequestRecord
    ) -> tuple[bytes | None, int | None, bytes | None]:
        """Fill the record from headers (each value clipped: see gateway.bounds); return
        (authorization, content-length, content-type)."""
        authorization = None
        length = None
        content_type = None
        forwarded: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":  # the anthropic SDK's header for the same key
                authorization = authorization or b"Bearer " + value
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name == b"content-type":
                content_type = value
            elif name == b"x-session-id":
                record.session_id = clip_bytes(value)
            elif name == b"traceparent":
                record.trace_id = _trace_id(value)
                record.traceparent = clip_bytes(value)
            elif name == b"x-meterline-app":
                record.app = clip_bytes(value)
            elif name == b"user-agent":
                record.user_agent = clip_bytes(value)
            elif name == b"x-forwarded-for":  # repeated headers form one list (RFC 9110)
                forwarded = value if forwarded is None else forwarded + b"," + value
        client = scope.get("client")
        if client:
            record.client_ip = client_address(client[0], forwarded, self._trusted)
        return authorization, length, content_type

    def _authenticate(self, authorization: bytes | None) -> KeyInfo:
        if not authorization or authorization[:7].lower() != b"bearer ":
            raise AuthenticationFailed(
                "missing API key: send 'Authorization: Bearer <virtual key>' "
                "(or 'x-api-key: <virtual key>')"
            )
        key = self._rt.keys.lookup(authorization[7:].strip().decode("latin-1"))
        if key is None:
            raise AuthenticationFailed("invalid API key")
        return key

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        dialect: Dialect,
    ) -> None:
        endpoint = dialect.endpoint
        record = RequestRecord(endpoint=endpoint)
        started = False
        budget_ids: tuple[str, ...] = ()
        tokens_taken = 0
        try:
            authorization, length, content_type = self._read_headers(scope, record)
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"{scope['method']} is not allowed on {endpoint}")
            record.key = self._authenticate(authorization)
            raw = await read_body(receive, self._limit, length)
            budget_ids = self._rt.enforcer.admit(record)  # a blocked key is told so first
            _check_content_type(content_type)
            parsed = dialect.parse(raw)
            record.model_requested = parsed.model
            record.stream = parsed.stream
            record.max_tokens_requested = parsed.max_tokens
            texts = prompt_texts(dialect, parsed.body)
            record.prompt_hash, record.prompt_chars = prompt_stats(dialect, parsed.body, texts)
            if self._sign_prompts:
                record.prompt_signature = request_signature(texts)
            chain = self._rt.router.chain(parsed.model)
            if not chain:
                raise ModelNotFound(
                    f"the model '{parsed.model}' does not exist or no provider serves it",
                    param="model",
                )
            if not record.key.allows(parsed.model):
                raise ModelNotAllowed(
                    f"this key may not use the model '{parsed.model}'", param="model"
                )
            if not any(self._usable(dialect, d) for group in chain for d in group.deployments):
                raise InvalidRequest(
                    f"the model '{parsed.model}' is served only by upstreams that do not "
                    f"speak this API ({dialect.endpoint}); use another model or endpoint",
                    param="model",
                )
            estimate = estimate_tokens(record.prompt_chars, parsed.max_tokens)
            if record.key.rpm is not None or record.key.tpm is not None:
                tokens_taken = self._rate_limit(record, estimate)
            raw = self._rt.guardrails.check_input(record, dialect, parsed.body, raw)
            # After input guardrails: a blocked prompt never reaches the cache (gateway/cache).
            cached = await self._rt.cache.lookup(scope["headers"], record, dialect, parsed)
            if cached is not None and cached.answer is not None:
                started = True
                await self._rt.cache.replay(
                    lambda message: self._send(send, message), record, cached, self._headers
                )
            elif parsed.stream:
                started = await self._stream(
                    send, record, dialect, chain, raw, parsed, estimate, cached
                )
            else:
                (answer, data, summary), _ = await self._route(
                    record, dialect, chain, estimate, self._exchange(parsed, raw, dialect)
                )
                record.summary = summary
                data = self._rt.guardrails.check_output(record, dialect, answer, data)
                started = True
                await send_response(send, 200, data, self._headers(record, JSON_HEADERS))
                if cached is not None:
                    cached.parts.append(data)
            if cached is not None:  # stores what the client was sent, if it was sent whole
                self._rt.cache.fill(cached, record)
        except _ClientGone:
            record.error_type = "client_disconnected"
        except GatewayError as exc:
            await self._fail(send, record, dialect, exc, started)
        except Exception as exc:  # the catch-all: never a 500, never a secret in the log
            log.error("unexpected %s on %s", type(exc).__name__, endpoint, exc_info=exc)
            await self._fail(
                send,
                record,
                dialect,
                InternalGatewayError("the gateway could not handle this request"),
                started,
            )
        finally:
            if tokens_taken or budget_ids:
                self._account(record, tokens_taken, budget_ids)
            self._finish(record)

    def _rate_limit(self, record: RequestRecord, estimate: int) -> int:
        """Take from the key's RPM/TPM buckets (429 when empty); returns the tokens taken."""
        key = record.key
        assert key is not None
        check = self._rt.limiter.check(key.key_id, key.rpm, key.tpm, estimate, self._clock())
        if check.exceeded:
            record.enforcement = {
                "action": "rate_limit",
                "subject": key_subject(key.key_id),
                "source": f"key_{'rpm' if check.exceeded == 'requests' else 'tpm'}",
            }
            limit = check.limit_requests if check.exceeded == "requests" else check.limit_tokens
            raise RateLimited(
                f"rate limit reached for this key: {limit} {check.exceeded} per minute; "
                f"retry after {check.retry_after}s",
                headers={name.decode(): value.decode() for name, value in check.headers()},
            )
        record.response_headers = tuple(check.headers())
        return check.tokens_taken

    def _account(
        self, record: RequestRecord, tokens_taken: int, budget_ids: tuple[str, ...]
    ) -> None:
        """After the call: real usage replaces the token estimate; spend counts locally."""
        summary = record.summary
        used_in = summary.input_tokens if summary else 0
        used_out = summary.output_tokens if summary else 0
        if record.cache in CACHE_HITS:  # answered from the cache: nothing was spent
            used_in = used_out = 0
        if tokens_taken and record.key is not None:
            self._rt.limiter.correct(record.key.key_id, tokens_taken, used_in + used_out)
        if budget_ids and (used_in or used_out):
            model = (summary.model_used if summary else None) or record.model_requested or ""
            cost = self._rt.prices.cost(
                record.provider,
                model,
                used_in,
                used_out,
                summary.cache_read_tokens if summary else 0,
                summary.cache_write_tokens if summary else 0,
            )
            # The mark its event will carry (ts_start, request_id): the watermark's identity.
            mark = SpendMark(wire_ms(record.started_wall), record.request_id)
            self._rt.budgets.add_spend(budget_ids, cost, mark)

    def _headers(
        self, record: RequestRecord, base: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        return [*base, (b"x-request-id", record.request_id.encode()), *record.response_headers]

    async def _fail(
        self,
        send: Send,
        record: RequestRecord,
        dialect: Dialect,
        exc: GatewayError,
        started: bool,
    ) -> None:
        record.status_code = exc.status
        record.error_type = exc.error_type
        if started:
            return  # a stream already began; _stream reported the error in-band
        headers = self._headers(record, JSON_HEADERS)
        headers += [(name.encode(), value.encode()) for name, value in exc.headers.items()]
        try:
            await send_response(send, exc.status, dialect.error_body(exc), headers)
        except Exception:  # the client left; the event still records what happened
            record.error_type = record.error_type or "client_disconnected"

    def _finish(self, record: RequestRecord) -> None:
        if self._rt.tracer is not None:  # first: it sets the trace_id the event carries
            self._rt.tracer.record(record)
        event = record.to_event()
        key = record.key.key_id.encode() if record.key else b""
        self._rt.emitter.emit(self._rt.requests_topic, key, orjson.dumps(event))
        tokens_in, tokens_out = event["input_tokens"], event["output_tokens"]
        billed = None
        if (tokens_in or tokens_out) and record.cache not in CACHE_HITS:
            read, write = event["cache_read_tokens"], event["cache_write_tokens"]
            billed = (max(0, tokens_in - read - write), tokens_out, read, write)
        self._rt.metrics.observe(
            record.endpoint,
            record.status_code,
            event["latency_ms"] / 1000,
            tokens_in,
            tokens_out,
            record.provider,
            event["model_used"] or event["model_requested"],
            billed,
            record.key.key_id if record.key else None,
        )

    # --- routing --------------------------------------------------------------------

    @staticmethod
    def _usable(dialect: Dialect, deployment: Deployment) -> bool:
        provider = deployment.provider
        return provider is not None and bridge_for(dialect, provider) is not None

    async def _route(
        self,
        record: RequestRecord,
        dialect: Dialect,
        chain: list[Group],
        estimate: int,
        attempt: Callable[[Group, Deployment, float], Awaitable[T]],
    ) -> tuple[T, Deployment]:
        """Run the router; whatever happens, the record says what was tried and served."""
        attempts: list[Attempt] = []
        try:
            return await self._rt.router.call(
                chain,
                attempt,
                attempts,
                record.model_requested or "",
                estimate,
                lambda d: self._usable(dialect, d),
            )
        finally:
            if attempts:
                self._note_attempts(record, dialect, attempts)

    def _note_attempts(
        self, record: RequestRecord, dialect: Dialect, attempts: list[Attempt]
    ) -> None:
        last = attempts[-1]
        provider = self._rt.providers.get(last.provider)
        record.provider = provider.price_provider if provider else last.provider
        record.deployment = last.deployment
        bridge = bridge_for(dialect, provider) if provider else None
        record.upstream_api = bridge.upstream.name if bridge else None
        record.attempts = [a.as_event() for a in attempts]
        self._rt.routing_metrics.observe(attempts)

    @staticmethod
    def _timeouts(deployment: Deployment, left: float) -> Timeouts:
        timeouts = deployment.timeouts
        if left < timeouts.total_s:  # the request's whole-time bound
            timeouts = dataclasses.replace(
                timeouts, total_s=left, first_byte_s=min(timeouts.first_byte_s, left)
            )
        return timeouts

    def _leg(
        self, dialect: Dialect, deployment: Deployment, parsed: ParsedRequest, raw: bytes
    ) -> tuple[Provider, Bridge, str, bytes]:
        """(provider, bridge, upstream model, upstream body) of one try."""
        provider = deployment.provider
        bridge = bridge_for(dialect, provider) if provider else None
        assert provider is not None and bridge is not None  # the router only picks usable
        model = deployment.upstream_model(parsed.model)
        return provider, bridge, model, bridge.request(parsed, raw, model)

    def _exchange(
        self, parsed: ParsedRequest, raw: bytes, dialect: Dialect
    ) -> Callable[[Group, Deployment, float], Awaitable[Exchanged]]:
        async def exchange(group: Group, deployment: Deployment, left: float) -> Exchanged:
            provider, bridge, model, body = self._leg(dialect, deployment, parsed, raw)
            data = await provider.send(
                bridge.upstream.upstream_path,
                body,
                model=model,
                timeouts=self._timeouts(deployment, left),
            )
            return bridge.response(data, provider.name)

        return exchange

    def _open_stream(
        self, parsed: ParsedRequest, raw: bytes, dialect: Dialect
    ) -> Callable[[Group, Deployment, float], Awaitable[_Opened]]:
        async def open_stream(group: Group, deployment: Deployment, left: float) -> _Opened:
            provider, bridge, model, body = self._leg(dialect, deployment, parsed, raw)
            upstream = provider.stream(
                bridge.upstream.upstream_path,
                body,
                model=model,
                timeouts=self._timeouts(deployment, left),
            )
            reader = bridge.stream_reader(parsed)
            batches = bridge.stream(parsed, upstream, reader)
            try:  # the first event commits the route: until then a failure may fall back
                first = await anext(batches, None)
            except BaseException:
                await batches.aclose()
                raise
            return _Opened(bridge, reader, first, batches)

        return open_stream

    async def _stream(
        self,
        send: Send,
        record: RequestRecord,
        dialect: Dialect,
        chain: list[Group],
        raw: bytes,
        parsed: ParsedRequest,
        estimate: int,
        cached: CacheLookup | None = None,
    ) -> bool:
        """Route, then pass the client's events on as they arrive (kept in `cached` for
        the cache); True once it began."""
        opened, deployment = await self._route(
            record, dialect, chain, estimate, self._open_stream(parsed, raw, dialect)
        )
        reader = opened.reader
        batches = self._rt.guardrails.guard_stream(record, dialect, opened.from_first())
        try:
            await self._send(
                send,
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": self._headers(record, SSE_HEADERS),
                },
            )
            try:
                # The events one upstream read brought go out in one write: fewer writes
                # and wake-ups per stream (bench/gateway_overhead.py, pairs in one run:
                # c=16 gateway CPU per request x0.82-0.87, req/s +17-27%; c=1 added
                # p50 x0.86-0.94).
                async for batch in batches:
                    if record.ttft_ms is None and reader.started:
                        record.mark_first_token()
                    body = batch[0] if len(batch) == 1 else b"".join(batch)
                    await self._send(
                        send, {"type": "http.response.body", "body": body, "more_body": True}
                    )
                    if cached is not None:
                        cached.parts.append(body)
            except (UpstreamError, GuardrailBlocked) as exc:  # mid-stream: report in-band
                record.status_code = exc.status
                record.error_type = exc.error_type
                if isinstance(exc, UpstreamError):  # it broke off: its breaker hears of it
                    self._rt.router.stream_failed(deployment)
                await self._send(
                    send,
                    {
                        "type": "http.response.body",
                        "body": dialect.stream_error(exc),
                        "more_body": True,
                    },
                )
            await self._send(send, {"type": "http.response.body", "body": b""})
        finally:
            await batches.aclose()
            record.summary = reader.finish()
        return True

    @staticmethod
    async def _send(send: Send, message: dict[str, object]) -> None:
        try:
            await send(message)
        except Exception as exc:  # uvicorn raises once the client closed the connection
            raise _ClientGone from exc

    def _model_list(self) -> list[tuple[str, str]]:
        """(model name, owner): routing groups' names and aliases, then the exact model
        names in providers' `models` (first provider wins)."""
        seen: dict[str, str] = {}
        for name in self._rt.router.public_names():
            seen.setdefault(name, "meterline")
        for config in self._rt.settings.providers:
            for model in config.models:
                if "*" not in model:
                    seen.setdefault(model, config.name)
        return list(seen.items())


class _Opened:
    """A stream whose first events arrived: the route is committed."""

    __slots__ = ("batches", "bridge", "first", "reader")

    def __init__(
        self,
        bridge: Bridge,
        reader: StreamReader,
        first: list[bytes] | None,
        batches: AsyncGenerator[list[bytes], None],
    ) -> None:
        self.bridge = bridge
        self.reader = reader
        self.first = first
        self.batches = batches

    async def from_first(self) -> AsyncGenerator[list[bytes], None]:
        """Every batch of the client's events, the first included."""
        try:
            if self.first is not None:
                yield self.first
            async for batch in self.batches:
                yield batch
        finally:
            await self.batches.aclose()

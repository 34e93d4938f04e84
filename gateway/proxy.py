"""The hot routes: /v1/chat/completions, /v1/embeddings, /v1/models as raw ASGI handlers.

Per request (ARCHITECTURE §8): parse headers once -> authenticate (hash lookup) -> read
the body -> enforcement (decisions, throttles, budgets, view staleness) -> validate the
body by hand -> route by model -> per-key RPM/TPM buckets -> forward over the shared
session -> read usage (correct the token estimate, count the spend) -> respond -> enqueue
one RequestEvent. Every outcome, including each error,
produces exactly one event; nothing a client sends escapes as a 500.
"""

from __future__ import annotations

import logging

import orjson

from gateway.apis import (
    CHAT,
    EMBEDDINGS,
    Dialect,
    ParsedRequest,
    StreamReader,
    prompt_stats,
    prompt_texts,
)
from gateway.asgi import JSON_HEADERS, SSE_HEADERS, Receive, Scope, Send, read_body, send_response
from gateway.bounds import clip_bytes
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
    UpstreamUnavailable,
)
from gateway.keys import KeyInfo
from gateway.providers import Provider
from gateway.ratelimit import estimate_tokens
from gateway.record import RequestRecord
from gateway.runtime import GatewayRuntime
from gateway.signature import request_signature
from gateway.sse import DONE, parse_event, parse_json
from schemas.spend import SpendMark, wire_ms
from schemas.subjects import key_subject

__all__ = ["ProxyRoutes"]

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

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy(scope, receive, send, EMBEDDINGS)

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise MethodNotAllowed(f"{scope['method']} is not allowed on /v1/models")
            record = RequestRecord(endpoint="/v1/models")
            key = self._authenticate(self._read_headers(scope, record)[0])
            data = [
                {"id": model, "object": "model", "created": 0, "owned_by": owner}
                for model, owner in await self._model_list()
                if key.allows(model)
            ]
            body = orjson.dumps({"object": "list", "data": data})
            await send_response(send, 200, body, JSON_HEADERS)
        except GatewayError as exc:
            await send_response(send, exc.status, exc.render(), JSON_HEADERS)

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
                "missing API key: send 'Authorization: Bearer <virtual key>'"
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
            provider = self._rt.provider_for(parsed.model)
            if provider is None:
                raise ModelNotFound(
                    f"the model '{parsed.model}' does not exist or no provider serves it",
                    param="model",
                )
            record.provider = provider.price_provider
            if not record.key.allows(parsed.model):
                raise ModelNotAllowed(
                    f"this key may not use the model '{parsed.model}'", param="model"
                )
            if record.key.rpm is not None or record.key.tpm is not None:
                tokens_taken = self._rate_limit(record, parsed)
            raw = self._rt.guardrails.check_input(record, dialect, parsed.body, raw)
            if parsed.stream:
                started = await self._stream(send, record, provider, dialect, raw, parsed)
            else:
                data = await provider.send(dialect.upstream_path, raw)
                try:
                    response = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamUnavailable("upstream sent a response that is not JSON") from None
                record.summary = dialect.summarize(response)
                data = self._rt.guardrails.check_output(record, dialect, response, data)
                started = True
                await send_response(send, 200, data, self._headers(record, JSON_HEADERS))
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

    def _rate_limit(self, record: RequestRecord, parsed: ParsedRequest) -> int:
        """Take from the key's RPM/TPM buckets (429 when empty); returns the tokens taken."""
        key = record.key
        assert key is not None
        estimate = estimate_tokens(record.prompt_chars, parsed.max_tokens)
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
        if tokens_taken and record.key is not None:
            self._rt.limiter.correct(record.key.key_id, tokens_taken, used_in + used_out)
        if budget_ids and (used_in or used_out):
            model = (summary.model_used if summary else None) or record.model_requested or ""
            cost = self._rt.prices.cost(record.provider, model, used_in, used_out)
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
        self._rt.metrics.observe(
            record.endpoint,
            record.status_code,
            event["latency_ms"] / 1000,
            event["input_tokens"],
            event["output_tokens"],
        )

    async def _stream(
        self,
        send: Send,
        record: RequestRecord,
        provider: Provider,
        dialect: Dialect,
        raw: bytes,
        parsed: ParsedRequest,
    ) -> bool:
        """Pass SSE events through as they arrive; returns True once the response began."""
        body = dialect.stream_body(parsed, raw)  # chat asks for usage, hidden from the client
        reader = dialect.stream_reader(parsed)
        upstream = provider.stream(dialect.upstream_path, body)
        events = self._rt.guardrails.guard_stream(record, dialect, upstream)
        try:
            first = await anext(events, None)  # upstream refusals raise here, before 200
            await self._send(
                send,
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": self._headers(record, SSE_HEADERS),
                },
            )
            try:
                if first is not None:
                    await self._forward_event(send, record, reader, first)
                async for event in events:
                    await self._forward_event(send, record, reader, event)
            except (UpstreamError, GuardrailBlocked) as exc:  # mid-stream: report in-band
                record.status_code = exc.status
                record.error_type = exc.error_type
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
            await events.aclose()
            record.summary = reader.finish()
        return True

    async def _forward_event(
        self, send: Send, record: RequestRecord, reader: StreamReader, event: bytes
    ) -> None:
        name, data = parse_event(event)
        if data != DONE:
            payload = parse_json(data)  # None: not ours to judge, passed through untouched
            if payload is not None:
                if reader.feed(name, payload):
                    return  # chat's usage chunk the client did not ask for: strip it
                if record.ttft_ms is None and reader.started:
                    record.mark_first_token()
        await self._send(send, {"type": "http.response.body", "body": event, "more_body": True})

    @staticmethod
    async def _send(send: Send, message: dict[str, object]) -> None:
        try:
            await send(message)
        except Exception as exc:  # uvicorn raises once the client closed the connection
            raise _ClientGone from exc

    async def _model_list(self) -> list[tuple[str, str]]:
        """(model id, provider) for every model some provider serves."""
        seen: dict[str, str] = {}
        for config in self._rt.settings.providers:
            exact = [m for m in config.models if "*" not in m]
            names = exact
            if len(exact) < len(config.models):  # patterns: ask the upstream what it has
                provider = next(p for n, p in self._rt.providers if n == config.name)
                try:
                    names = exact + [m for m in await provider.list_models() if config.serves(m)]
                except UpstreamError:
                    log.warning("provider %s: could not list models", config.name)
            for name in names:
                seen.setdefault(name, config.name)
        return list(seen.items())

"""The tracer builds its SpanEvent without the OTel SDK: the same bytes as the SDK span it
replaced (the SpanEvent of the SDK span, via span_event), and the same traceparent rules."""

from __future__ import annotations

import random

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.keys import KeyInfo
from gateway.record import RequestRecord
from gateway.tracing import GatewayTracer
from gateway.tracing.span_event import span_event
from gateway.tracing.tracer import parse_traceparent
from gateway.usage import ResponseSummary

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def _random_record(rng: random.Random) -> RequestRecord:
    endpoint = rng.choice(
        ["/v1/chat/completions", "/v1/embeddings", "/v1/messages", "/v1/responses"]
    )
    key = rng.choice(
        [
            None,
            KeyInfo(key_id="key_1", key_hash="h" * 64, org="acme"),
            KeyInfo(key_id="k2", key_hash="h" * 64, org="o", team="t", project="p", user="u"),
        ]
    )
    record = RequestRecord(
        endpoint=endpoint,
        key=key,
        started_wall=1_700_000_000 + rng.random() * 1e6,
        provider=rng.choice([None, "openai", "anthropic", ""]),
        model_requested=rng.choice([None, "gpt-4o-mini", "claude-3-5-haiku", "m" * 300]),
        session_id=rng.choice([None, "s-1"]),
        max_tokens_requested=rng.choice([None, 30]),
        status_code=rng.choice([200, 200, 401, 429, 502]),
        error_type=rng.choice([None, None, "upstream_error", "client_disconnected"]),
        traceparent=rng.choice(
            [
                None,
                f"00-{TRACE}-{PARENT}-01",
                f"00-{TRACE}-{PARENT}-00",
                f"01-{TRACE}-{PARENT}-01-extra",
                f"00-{TRACE}-{PARENT}-01-extra",
                f"ff-{TRACE}-{PARENT}-01",
                "garbage",
            ]
        ),
    )
    if rng.random() < 0.7:
        record.summary = ResponseSummary(
            model_used=rng.choice([None, "gpt-4o-mini-2024-07-18"]),
            input_tokens=rng.randrange(100),
            output_tokens=rng.randrange(100),
            cache_read_tokens=rng.choice([0, 4]),
            reasoning_tokens=rng.choice([0, 7]),
            finish_reason=rng.choice([None, "stop", "length"]),
        )
    return record


def test_the_published_event_is_the_sdk_spans_event_byte_for_byte() -> None:
    published: list[tuple[str, bytes, bytes]] = []
    tracer = GatewayTracer(lambda *message: published.append(message), "t.spans")
    finished = InMemorySpanExporter()
    tracer.provider.add_span_processor(SimpleSpanProcessor(finished))
    rng = random.Random(12)
    for _ in range(500):
        record = _random_record(rng)
        tracer.record(record)
        (span,) = finished.get_finished_spans()
        finished.clear()
        _, key, value = published.pop()
        assert value == orjson.dumps(span_event(span))
        assert record.trace_id is not None and key == record.trace_id.encode()
    tracer.close()


def test_no_sdk_span_is_built_unless_asked() -> None:
    published: list[tuple[str, bytes, bytes]] = []
    tracer = GatewayTracer(lambda *message: published.append(message), "t.spans")
    record = RequestRecord(endpoint="/v1/chat/completions", traceparent=f"00-{TRACE}-{PARENT}-01")
    tracer.record(record)
    assert tracer._provider is None
    event = orjson.loads(published[0][2])
    assert (event["trace_id"], event["parent_span_id"], record.trace_id) == (TRACE, PARENT, TRACE)


def test_otel_sdk_disabled_turns_the_span_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", " True ")
    published: list[tuple[str, bytes, bytes]] = []
    record = RequestRecord(endpoint="/v1/chat/completions")
    GatewayTracer(lambda *message: published.append(message), "t.spans").record(record)
    assert published == [] and record.trace_id is None


def _propagated(header: str) -> tuple[str, str] | None:
    context = TraceContextTextMapPropagator().extract({"traceparent": header})
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def test_traceparent_parsing_matches_the_otel_propagator() -> None:
    rng = random.Random(7)
    alphabet = "0123456789abcdefABCDEF- \tx"
    headers = [
        f"00-{TRACE}-{PARENT}-01",
        f" \t00-{TRACE}-{PARENT}-01 \t",
        f"00-{TRACE}-{PARENT}-01-",
        f"01-{TRACE}-{PARENT}-01-anything",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-{PARENT}-01",
        f"00-{TRACE.upper()}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-01" + " " * 600,
        "",
    ]
    for _ in range(3000):
        parts = [
            rng.choice(["00", "01", "ff", "0", "zz"]),
            "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([32, 32, 31]))),
            "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([16, 16, 17]))),
            rng.choice(["01", "00", "1"]),
        ]
        header = "-".join(parts)
        if rng.random() < 0.3:
            header += "".join(rng.choice(alphabet) for _ in range(rng.randrange(5)))
        headers.append(header)
    for header in headers:
        assert parse_traceparent(header) == _propagated(header), header

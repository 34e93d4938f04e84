"""The gateway's own span: OTel GenAI + OpenInference attributes on a real SDK span, the
caller's traceparent as parent, and the SpanEvent it publishes (same shape as ingest's)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from gateway.keys import KeyInfo
from gateway.record import RequestRecord
from gateway.tracing import SERVICE_NAME, GatewayTracer
from gateway.usage import ResponseSummary
from ingest.otlp.normalize import normalize_span, span_event_id
from ingest.otlp.spans import RawSpan
from processors.spans.logic import is_gateway_span
from schemas.events import RequestEvent, SpanEvent

TOPIC = "t.spans"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
KEY = KeyInfo(
    key_id="key_1", key_hash="h" * 64, org="acme", team="search", project="p1", user="ana"
)


class Spans:
    """The tracer under test, what it published, and the SDK's own view of each span."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, bytes]] = []
        self.tracer = GatewayTracer(lambda *message: self.published.append(message), TOPIC)
        self.finished = InMemorySpanExporter()
        self.tracer.provider.add_span_processor(SimpleSpanProcessor(self.finished))

    def record(self, record: RequestRecord) -> tuple[ReadableSpan, SpanEvent]:
        self.tracer.record(record)
        (span,) = self.finished.get_finished_spans()
        self.finished.clear()
        topic, key, value = self.published.pop()
        event = SpanEvent.model_validate_json(value)
        assert topic == TOPIC and key == event.trace_id.encode()
        return span, event


@pytest.fixture
def spans() -> Iterator[Spans]:
    instance = Spans()
    yield instance
    instance.tracer.close()


def chat_record(**fields: object) -> RequestRecord:
    record = RequestRecord(
        endpoint="/v1/chat/completions",
        key=KEY,
        provider="openai",
        model_requested="gpt-4o-mini",
        session_id="sess-1",
        max_tokens_requested=30,
    )
    record.summary = ResponseSummary(
        model_used="gpt-4o-mini-2024-07-18",
        input_tokens=12,
        output_tokens=5,
        cache_read_tokens=4,
        finish_reason="stop",
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def test_a_chat_span_carries_genai_openinference_and_attribution(spans: Spans) -> None:
    record = chat_record()

    span, event = spans.record(record)

    assert span.name == "chat gpt-4o-mini"
    assert span.resource.attributes["service.name"] == SERVICE_NAME
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "meterline.source": "gateway",
        "meterline.request_id": record.request_id,
        "meterline.key_id": "key_1",
        "meterline.org": "acme",
        "meterline.team": "search",
        "meterline.project": "p1",
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.max_tokens": 30,
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gen_ai.response.finish_reasons": ("stop",),
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.token_count.prompt": 12,
        "llm.token_count.completion": 5,
        "llm.token_count.total": 17,
        "llm.token_count.prompt_details.cache_read": 4,
        "session.id": "sess-1",
        "user.id": "ana",
        "http.response.status_code": 200,
    }
    # The published SpanEvent: typed fields, the rest as strings, a replay-stable id.
    assert (event.trace_id, event.span_id, event.parent_span_id) == (
        format(span.context.trace_id, "032x"),
        format(span.context.span_id, "016x"),
        None,
    )
    assert event.event_id == span_event_id(event.trace_id, event.span_id)
    assert (event.source, event.service_name, event.kind, event.operation) == (
        "gateway",
        SERVICE_NAME,
        "LLM",
        "chat",
    )
    assert (event.key_id, event.org, event.team, event.project, event.user) == (
        "key_1",
        "acme",
        "search",
        "p1",
        "ana",
    )
    assert (event.provider, event.model, event.session_id) == (
        "openai",
        "gpt-4o-mini-2024-07-18",
        "sess-1",
    )
    assert (event.input_tokens, event.output_tokens, event.cache_read_tokens) == (12, 5, 4)
    assert event.finish_reasons == ["stop"] and event.status == "unset"
    assert event.attributes == {
        "meterline.source": "gateway",
        "meterline.request_id": record.request_id,
        "gen_ai.request.max_tokens": "30",
        "http.response.status_code": "200",
        "llm.token_count.total": "17",
        "otel.scope.name": "meterline.gateway",
        "otel.span.kind": "SERVER",
    }
    assert event.start_ts <= event.end_ts and event.duration_ms >= 0
    # Requests and spans join on trace_id; the span cost agent leaves this span alone.
    assert record.trace_id == event.trace_id
    assert RequestEvent.model_validate(record.to_event()).trace_id == event.trace_id
    assert is_gateway_span(event)


def test_an_embeddings_span(spans: Spans) -> None:
    record = RequestRecord(
        endpoint="/v1/embeddings", key=KEY, provider="openai", model_requested="emb-3"
    )
    record.summary = ResponseSummary(model_used="emb-3", input_tokens=9)

    span, event = spans.record(record)

    assert span.name == "embeddings emb-3"
    attributes = span.attributes or {}
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["openinference.span.kind"] == "EMBEDDING"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["llm.token_count.total"]) == (9, 9)
    assert "gen_ai.response.finish_reasons" not in attributes
    assert (event.kind, event.operation, event.model) == ("EMBEDDING", "embeddings", "emb-3")
    assert (event.input_tokens, event.output_tokens, event.finish_reasons) == (9, 0, [])


def test_failures_set_status_error(spans: Spans) -> None:
    unauthenticated = RequestRecord(
        endpoint="/v1/chat/completions", status_code=401, error_type="invalid_api_key"
    )
    span, event = spans.record(unauthenticated)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "invalid_api_key"
    assert span.name == "chat"  # no model was read
    assert (span.attributes or {})["error.type"] == "invalid_api_key"
    assert event.status == "error" and event.key_id is None and event.model is None
    assert event.attributes["otel.status.message"] == "invalid_api_key"
    assert event.attributes["http.response.status_code"] == "401"
    assert (event.input_tokens, event.org) == (0, "")

    upstream = chat_record(status_code=502, error_type="upstream_error", summary=None)
    span, event = spans.record(upstream)
    assert event.status == "error" and event.model == "gpt-4o-mini"
    assert "gen_ai.usage.input_tokens" not in (span.attributes or {})

    gone = chat_record(error_type="client_disconnected")  # status 200 already sent
    _, event = spans.record(gone)
    assert event.status == "error"


def test_the_callers_traceparent_is_the_parent(spans: Spans) -> None:
    record = chat_record(traceparent=f"00-{TRACE}-{PARENT}-01", trace_id=TRACE)

    span, event = spans.record(record)

    assert span.parent is not None and span.parent.is_remote
    assert (event.trace_id, event.parent_span_id) == (TRACE, PARENT)
    assert event.span_id != PARENT
    assert record.to_event()["trace_id"] == TRACE


def test_an_unsampled_caller_still_gets_the_gateway_span(spans: Spans) -> None:
    _, event = spans.record(chat_record(traceparent=f"00-{TRACE}-{PARENT}-00"))
    assert (event.trace_id, event.parent_span_id) == (TRACE, PARENT)


@pytest.mark.parametrize(
    "traceparent",
    [
        "not a traceparent",
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id is invalid
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-{PARENT}-01",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(spans: Spans, traceparent: str) -> None:
    record = chat_record(traceparent=traceparent, trace_id=TRACE)

    span, event = spans.record(record)

    assert span.parent is None and event.parent_span_id is None
    assert event.trace_id != TRACE and len(event.trace_id) == 32
    assert record.trace_id == event.trace_id  # the RequestEvent joins the span, not the header


def test_the_span_event_is_what_ingest_normalizes_the_same_span_to(spans: Spans) -> None:
    # Export the same SDK span the OTLP way and normalize it as ingest does: one shape.
    for record in (
        chat_record(traceparent=f"00-{TRACE}-{PARENT}-01"),
        RequestRecord(endpoint="/v1/embeddings", status_code=401, error_type="invalid_api_key"),
    ):
        span, event = spans.record(record)
        raw = RawSpan(
            trace_id=format(span.context.trace_id, "032x"),
            span_id=format(span.context.span_id, "016x"),
            parent_span_id=format(span.parent.span_id, "016x") if span.parent else None,
            name=span.name,
            kind=span.kind.value + 1,  # OTLP numbers kinds from UNSPECIFIED = 0
            start_ns=span.start_time or 0,
            end_ns=span.end_time or 0,
            status_code=span.status.status_code.value,
            status_message=span.status.description or "",
            # OTLP arrays decode as lists
            attributes={
                k: list(v) if isinstance(v, tuple) else v
                for k, v in (span.attributes or {}).items()
            },
            resource=dict(span.resource.attributes),
            scope_name=span.instrumentation_scope.name if span.instrumentation_scope else "",
        )
        normalized = normalize_span(raw)
        assert event.model_dump(exclude={"source"}) == normalized.model_dump(exclude={"source"})


def test_a_span_that_cannot_be_published_costs_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(topic: str, key: bytes, value: bytes) -> None:
        raise RuntimeError("emitter is gone")

    tracer = GatewayTracer(broken, TOPIC)
    record = chat_record(traceparent=f"00-{TRACE}-{PARENT}-01")
    with caplog.at_level(logging.ERROR, logger="gateway.tracing.tracer"):
        tracer.record(record)  # does not raise
    tracer.close()
    assert record.trace_id == TRACE
    assert RequestEvent.model_validate_json(orjson.dumps(record.to_event())).trace_id == TRACE
    assert "could not be recorded" in caplog.text


def test_span_times_are_the_requests_truncated_to_the_millisecond(spans: Spans) -> None:
    for started in (1_700_000_000.9996, 1_700_000_001.0004, 1_699_999_999.25, 1_700_000_001.5):
        record = chat_record(started_wall=started)
        _, event = spans.record(record)
        expected = datetime.fromtimestamp(int(started * 1000) / 1000, UTC)
        assert event.start_ts == expected
        assert event.end_ts >= event.start_ts and event.ts == event.end_ts

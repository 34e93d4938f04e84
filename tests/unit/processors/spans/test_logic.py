"""Span costs: LLM spans priced exactly like requests; gateway spans never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from meterline.settings import PriceOverride
from processors.cost.logic import Pricer, RejectedEvent, price_request
from processors.spans.logic import (
    ProxiedSpans,
    cost_for_span,
    cost_for_span_payload,
    span_cost_event_id,
)
from schemas.events.v1 import RequestEvent, SpanEvent
from schemas.ids import deterministic_id

TS = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)


def span(**overrides: Any) -> SpanEvent:
    values: dict[str, Any] = {
        "event_id": deterministic_id("span", "t" * 32, "s" * 16),
        "trace_id": "t" * 32,
        "span_id": "s" * 16,
        "name": "chat",
        "kind": "LLM",
        "start_ts": TS,
        "end_ts": TS + timedelta(seconds=2),
        "duration_ms": 2000.0,
        "service_name": "shop",
        "key_id": "key-1",
        "org": "acme",
        "team": "search",
        "project": "web",
        "user": "ana",
        "session_id": "sess-1",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 100,
        "cache_read_tokens": 100,
    }
    values.update(overrides)
    return SpanEvent(**values)


def request_like(event: SpanEvent) -> RequestEvent:
    return RequestEvent(
        request_id="r",
        ts_start=event.start_ts,
        ts_end=event.end_ts,
        latency_ms=1.0,
        provider=event.provider,
        model_used=event.model,
        endpoint="/v1/chat/completions",
        status_code=200,
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cache_read_tokens=event.cache_read_tokens,
        cache_write_tokens=event.cache_write_tokens,
    )


def test_llm_span_is_priced_like_the_same_request() -> None:
    event = span()

    cost = cost_for_span(event, Pricer())

    assert cost is not None
    expected = price_request(request_like(event))
    # gpt-4o-mini: 900 uncached x 0.15 + 100 cached x 0.075 + 100 output x 0.60 per MTok.
    assert cost.total_cost == expected.total_cost == Decimal("0.0002025")
    assert (cost.input_cost, cost.output_cost, cost.cache_read_cost) == (
        expected.input_cost,
        expected.output_cost,
        expected.cache_read_cost,
    )
    assert cost.priced and cost.price_source == expected.price_source
    assert cost.source_type == "span" and cost.request_id == f"{'t' * 32}:{'s' * 16}"
    assert (cost.key_id, cost.org, cost.team, cost.project, cost.user) == (
        "key-1",
        "acme",
        "search",
        "web",
        "ana",
    )
    assert cost.request_ts == event.start_ts and cost.ts == event.end_ts
    assert cost.source == "processors.spans"


def test_cost_event_id_is_deterministic_and_distinct_from_the_span() -> None:
    first, again = cost_for_span(span(), Pricer()), cost_for_span(span(), Pricer())
    other = cost_for_span(span(span_id="x" * 16), Pricer())

    assert first is not None and again is not None and other is not None
    assert first.to_json() == again.to_json()
    assert first.event_id == span_cost_event_id(span()) != span().event_id
    assert other.event_id != first.event_id


def test_overrides_and_unknown_models() -> None:
    overrides = {"local-llama": PriceOverride(name="selfhost", input_mtok=Decimal("1"))}
    priced = cost_for_span(span(model="local-llama", provider="vllm"), Pricer(overrides))
    unknown = cost_for_span(span(model="no-such-model-xyz"), Pricer())
    no_model = cost_for_span(span(model=None), Pricer())

    assert priced is not None and priced.price_source == "override:selfhost"
    assert priced.total_cost == Decimal("0.001")
    for cost in (unknown, no_model):
        assert cost is not None and cost.priced is False and cost.total_cost == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"source": "gateway"},
        {"kind": "CHAIN"},
        {"kind": "AGENT"},
        {"kind": "TOOL"},
        {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0},
    ],
)
def test_spans_that_are_not_costed(overrides: dict[str, Any]) -> None:
    assert cost_for_span(span(**overrides), Pricer()) is None


def test_an_otlp_sender_cannot_pass_as_the_gateway_to_escape_costing() -> None:
    # Only the gateway's own emitter sets the envelope source; what an OTLP sender claims
    # (service.name, meterline.source) never makes its spans free.
    claims = span(
        source="ingest.otlp",
        service_name="meterline-gateway",
        attributes={"meterline.source": "gateway"},
    )
    cost = cost_for_span(claims, Pricer())
    assert cost is not None and cost.total_cost > 0


def test_an_app_span_whose_call_went_through_the_gateway_is_not_costed_twice() -> None:
    proxied = ProxiedSpans(limit=2)
    gateway_child = span(span_id="g" * 16, parent_span_id="s" * 16, source="gateway")
    assert cost_for_span(gateway_child, Pricer(), proxied) is None  # noted, never costed
    assert cost_for_span(span(), Pricer(), proxied) is None  # its parent: the same call
    other_trace = span(trace_id="u" * 32)
    assert cost_for_span(other_trace, Pricer(), proxied) is not None  # a direct call
    # Bounded memory: the oldest remembered parents are forgotten first.
    for n in range(2):
        proxied.note(span(span_id=f"{n}" * 16, parent_span_id=f"p{n}" * 8))
    assert span() not in proxied


def test_embedding_spans_are_costed() -> None:
    cost = cost_for_span(
        span(
            kind="EMBEDDING", model="text-embedding-3-small", output_tokens=0, cache_read_tokens=0
        ),
        Pricer(),
    )
    assert cost is not None and cost.priced and cost.total_cost == Decimal("0.00002")


def test_malformed_payloads_are_rejected_with_a_reason() -> None:
    body = orjson.loads(span().to_json())
    del body["trace_id"]

    with pytest.raises(RejectedEvent, match="invalid SpanEvent: trace_id: Field required"):
        cost_for_span_payload(orjson.dumps(body), Pricer())
    with pytest.raises(RejectedEvent, match="Invalid JSON"):
        cost_for_span_payload(b"\xff not json", Pricer())
    with pytest.raises(RejectedEvent, match="null value"):
        cost_for_span_payload(None, Pricer())
    bad_usage = orjson.loads(span().to_json()) | {"input_tokens": 5, "cache_read_tokens": 50}
    with pytest.raises(RejectedEvent, match="cannot price"):
        cost_for_span_payload(orjson.dumps(bad_usage), Pricer())
    assert cost_for_span_payload(span().to_json(), Pricer()) is not None

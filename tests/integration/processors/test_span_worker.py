"""The real worker (`python -m processors`) costs LLM spans from the spans topic, and only
those: not parent spans, not token-less spans, never the gateway's own spans."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from meterline.settings import Settings
from processors.cost.logic import price_request
from schemas.events.v1 import CostEvent, DeadLetter, RequestEvent, SpanEvent
from schemas.ids import deterministic_id
from schemas.topics import COSTS, DLQ, SPANS
from tests.conftest import free_port
from tests.integration.processors.worker_helpers import TopicReader, produce, worker_process

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def span(index: int, **overrides: Any) -> SpanEvent:
    trace_id, span_id = f"{index:032x}", f"{index + 1:016x}"
    values: dict[str, Any] = {
        "event_id": deterministic_id("span", trace_id, span_id),
        "trace_id": trace_id,
        "span_id": span_id,
        "name": "chat",
        "kind": "LLM",
        "start_ts": NOW,
        "end_ts": NOW + timedelta(milliseconds=800),
        "duration_ms": 800.0,
        "source": "ingest.otlp",
        "service_name": "shop",
        "org": "acme",
        "team": "search",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 100,
        "cache_read_tokens": 100,
    }
    values.update(overrides)
    return SpanEvent(**values)


COSTED = [
    span(1, key_id="key-1", session_id="s-1"),
    span(2, kind="EMBEDDING", model="text-embedding-3-small", output_tokens=0, cache_read_tokens=0),
    span(3, model="no-such-model"),  # costed as unpriced, never a silent zero
    # An OTLP sender calling itself the gateway is still costed: only the envelope counts.
    span(8, service_name="meterline-gateway", attributes={"meterline.source": "gateway"}),
]
NOT_COSTED = [
    span(4, kind="CHAIN"),  # repeats its children's tokens
    span(5, source="gateway"),  # the gateway's own span: its RequestEvent is costed
    span(7, input_tokens=0, output_tokens=0, cache_read_tokens=0),
]


def test_llm_spans_are_costed_once_and_garbage_is_dead_lettered(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(broker, processors_port=free_port())
    missing_trace = orjson.loads(COSTED[0].to_json())
    del missing_trace["trace_id"]
    garbage = [b"\xff\x00 not a span", orjson.dumps(missing_trace)]
    produce(
        settings,
        SPANS,
        [(event.trace_id.encode(), event.to_json()) for event in [*COSTED, *NOT_COSTED]]
        + [(b"bad-trace", value) for value in garbage],
    )
    total = len(COSTED) + len(NOT_COSTED) + len(garbage)
    log_path = tmp_path / "worker.log"
    reader = TopicReader(settings, [COSTS, DLQ])
    metrics_url = f"http://{settings.host}:{settings.processors_port}/metrics"
    processed = f'meterline_processors_events_processed_total{{agent="span_cost"}} {total}'

    with worker_process(settings, log_path) as worker:
        reader.read_until(
            lambda: (
                len(reader.records[settings.topic(COSTS)]) >= len(COSTED)
                and len(reader.records[settings.topic(DLQ)]) >= len(garbage)
            ),
            timeout_s=60,
            log=log_path,
        )
        deadline = time.monotonic() + 30
        while processed not in httpx.get(metrics_url, timeout=5).text:
            assert time.monotonic() < deadline, "the agent did not process every span"
            time.sleep(0.2)
        # Everything is processed; give a stray extra cost the chance to show up.
        settle = time.monotonic() + 1.0
        reader.read_until(lambda: time.monotonic() > settle, timeout_s=10, log=log_path)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    reader.close()

    costs = {
        cost.request_id: (key, cost)
        for key, cost in (
            (key, CostEvent.model_validate_json(value))
            for key, value in reader.records[settings.topic(COSTS)]
        )
    }
    assert set(costs) == {f"{s.trace_id}:{s.span_id}" for s in COSTED}
    for event in COSTED:
        key, cost = costs[f"{event.trace_id}:{event.span_id}"]
        expected = price_request(
            RequestEvent(
                request_id="same-usage",
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
            )
        )
        assert cost.source_type == "span" and cost.source == "processors.spans"
        assert cost.total_cost == expected.total_cost and cost.priced == expected.priced
        assert cost.event_id == deterministic_id("cost", "span", event.trace_id, event.span_id)
        assert key == (event.key_id or event.trace_id).encode()
    assert costs[f"{COSTED[0].trace_id}:{COSTED[0].span_id}"][1].total_cost == Decimal("0.0002025")
    assert costs[f"{COSTED[2].trace_id}:{COSTED[2].span_id}"][1].priced is False

    letters = [DeadLetter.model_validate_json(v) for _, v in reader.records[settings.topic(DLQ)]]
    assert len(letters) == len(garbage)
    assert {letter.stage for letter in letters} == {"processors.spans"}
    assert {letter.original_topic for letter in letters} == {settings.topic(SPANS)}
    reasons = " | ".join(sorted(letter.error for letter in letters))
    assert "Invalid JSON" in reasons and "trace_id: Field required" in reasons

"""The OTLP publisher against a real broker: a span Kafka can never take is refused alone,
with the reason; a broker that does not answer is "retry later" for the whole export."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from ingest.otlp.errors import PublishUnavailableError
from ingest.otlp.publisher import KafkaSpanPublisher
from meterline.kafka import create_topics
from schemas.events.v1 import SpanEvent
from tests.conftest import free_port

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def span(span_id: str, padding: int = 0) -> SpanEvent:
    attributes = {f"pad.{i}": "x" * 1000 for i in range(padding)}
    return SpanEvent(
        trace_id="ab" * 16,
        span_id=span_id,
        name="chat",
        kind="LLM",
        start_ts=NOW,
        end_ts=NOW,
        duration_ms=1.0,
        attributes=attributes,
    )


def test_a_span_too_large_for_kafka_is_refused_alone(broker, make_settings) -> None:
    settings = make_settings(broker)
    create_topics(settings)
    publisher = KafkaSpanPublisher(settings, **{"message.max.bytes": 8_000})
    publisher.start()
    try:
        small, huge = span("00000000000000a1"), span("00000000000000a2", padding=20)
        refused = asyncio.run(publisher.publish([small, huge, span("00000000000000a3")]))
    finally:
        publisher.close()
    assert [(event.span_id, "MSG_SIZE_TOO_LARGE" in reason) for event, reason in refused] == [
        ("00000000000000a2", True)
    ]
    assert "span cannot be stored in Kafka" in refused[0][1]
    assert publisher.spans_refused == 1


def test_an_unreachable_broker_means_retry_later(make_settings) -> None:
    settings = make_settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}", ingest={"otlp": {"publish_timeout_s": 1.0}}
    )
    publisher = KafkaSpanPublisher(settings)
    publisher.start()
    try:
        with pytest.raises(PublishUnavailableError, match="did not acknowledge"):
            asyncio.run(publisher.publish([span("00000000000000b1")]))
    finally:
        publisher.close(timeout_s=0.5)

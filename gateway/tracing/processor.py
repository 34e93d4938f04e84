"""EmitterSpanProcessor: each ended span becomes a SpanEvent handed to the Kafka emitter.

No exporter thread and no network hop: `on_end` runs on the event loop when the request's
span ends, builds a dict, serializes it with orjson and calls `emit`, which only enqueues
to librdkafka (or the disk spool while the broker is away), exactly like RequestEvents.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from gateway.tracing.span_event import span_event

__all__ = ["Emit", "EmitterSpanProcessor"]

Emit = Callable[[str, bytes, bytes], None]  # (topic, key, value); KafkaEmitter.emit


class EmitterSpanProcessor(SpanProcessor):
    """**Parameters:** `emit` (never blocks, never raises), `topic` (the full spans topic)."""

    def __init__(self, emit: Emit, topic: str) -> None:
        self._emit = emit
        self._topic = topic

    def on_end(self, span: ReadableSpan) -> None:
        event = span_event(span)
        # Keyed by trace id (ARCHITECTURE §3): a trace's spans stay in one partition.
        self._emit(self._topic, event["trace_id"].encode(), orjson.dumps(event))

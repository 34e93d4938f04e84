"""OTLP/HTTP trace receiver: `POST /v1/traces` -> one SpanEvent per span on the spans topic.

decode (protobuf | JSON, gzip, size caps) -> normalize (OpenInference + GenAI conventions,
prompt contents dropped) -> publish (confluent-kafka, keyed by trace id) -> OTLP response.
"""

from __future__ import annotations

from ingest.otlp.normalize import normalize_span, span_event_id
from ingest.otlp.publisher import KafkaSpanPublisher
from ingest.otlp.receiver import Received, receive_spans
from ingest.otlp.route import TRACES_PATH, install_otlp_receiver

__all__ = [
    "TRACES_PATH",
    "KafkaSpanPublisher",
    "Received",
    "install_otlp_receiver",
    "normalize_span",
    "receive_spans",
    "span_event_id",
]

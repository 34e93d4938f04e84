"""OTLP/HTTP trace receiver: `POST /v1/traces` -> one SpanEvent per span on the spans topic.

authenticate (virtual key or ingest token) -> decode (protobuf | JSON, gzip, size caps)
-> normalize (OpenInference + GenAI conventions, prompt contents dropped) -> attribute to
the credential, bound token counts -> publish (confluent-kafka, keyed by trace id)
-> OTLP response.
"""

from __future__ import annotations

from ingest.otlp.auth import OtlpAuth
from ingest.otlp.normalize import normalize_span, span_event_id
from ingest.otlp.publisher import KafkaSpanPublisher
from ingest.otlp.receiver import Received, receive_spans
from ingest.otlp.route import TRACES_PATH, install_otlp_receiver
from ingest.otlp.stats import OtlpStats

__all__ = [
    "TRACES_PATH",
    "KafkaSpanPublisher",
    "OtlpAuth",
    "OtlpStats",
    "Received",
    "install_otlp_receiver",
    "normalize_span",
    "receive_spans",
    "span_event_id",
]

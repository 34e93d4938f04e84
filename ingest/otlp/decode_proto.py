"""OTLP/HTTP protobuf (`application/x-protobuf`) -> DecodedBatch.

`raw_span` is the one place an OTLP `Span` message becomes a `RawSpan`: the JSON
encoding parses into the same messages (decode_json.py) and ends here too.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from ingest.otlp.errors import MalformedPayloadError
from ingest.otlp.spans import (
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    DecodedBatch,
    RawSpan,
    RejectedSpan,
    check_times,
    id_hex,
    parent_id_hex,
)

__all__ = ["MAX_VALUE_DEPTH", "attributes_of", "decode_protobuf", "raw_span", "value_of"]

# Nested arrays/maps deeper than this are summarised, not walked (bounded work per value).
MAX_VALUE_DEPTH = 8


def decode_protobuf(body: bytes) -> DecodedBatch:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise MalformedPayloadError(
            f"body is not an OTLP ExportTraceServiceRequest protobuf: {exc}"
        ) from exc
    batch = DecodedBatch()
    for r, resource_spans in enumerate(request.resource_spans):
        resource = attributes_of(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope_name = scope_spans.scope.name
            for p, span in enumerate(scope_spans.spans):
                try:
                    batch.spans.append(raw_span(span, resource, scope_name))
                except ValueError as exc:
                    where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{p}]"
                    batch.rejected.append(RejectedSpan(where, str(exc)))
    return batch


def raw_span(span: Span, resource: dict[str, Any], scope_name: str) -> RawSpan:
    """Span message -> RawSpan; ValueError names what makes the span unacceptable."""
    check_times(span.start_time_unix_nano, span.end_time_unix_nano)
    return RawSpan(
        trace_id=id_hex(span.trace_id, TRACE_ID_BYTES, "trace_id"),
        span_id=id_hex(span.span_id, SPAN_ID_BYTES, "span_id"),
        parent_span_id=parent_id_hex(span.parent_span_id),
        name=span.name,
        kind=int(span.kind),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status_code=int(span.status.code),
        status_message=span.status.message,
        attributes=attributes_of(span.attributes),
        resource=resource,
        scope_name=scope_name,
    )


def attributes_of(pairs: Any) -> dict[str, Any]:
    """Repeated KeyValue -> dict; on duplicate keys the last wins."""
    result: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        result[pair.key] = value_of(pair.value)
    return result


def value_of(value: AnyValue, depth: int = 0) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        if depth >= MAX_VALUE_DEPTH:
            return "[nested too deep]"
        return [value_of(item, depth + 1) for item in value.array_value.values]
    if which == "kvlist_value":
        if depth >= MAX_VALUE_DEPTH:
            return "{nested too deep}"
        return {pair.key: value_of(pair.value, depth + 1) for pair in value.kvlist_value.values}
    return getattr(value, which)

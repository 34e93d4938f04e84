"""OTLP/HTTP JSON (`application/json`) -> DecodedBatch.

The OTLP JSON mapping differs from plain protobuf JSON: trace and span ids are hex
strings, enums are integers (names are accepted too), fields are lowerCamelCase
(snake_case is accepted, as protobuf JSON parsers do), 64-bit integers may be strings,
and values are AnyValue objects (`{"stringValue": ...}`, `{"intValue": "3"}`, ...).
Errors inside one span reject that span only; a body that is not such a document at
all is refused as a whole.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import orjson

from ingest.otlp.decode_proto import MAX_VALUE_DEPTH
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

__all__ = ["decode_json"]

_SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def decode_json(body: bytes) -> DecodedBatch:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayloadError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedPayloadError("body must be a JSON object with resourceSpans")
    batch = DecodedBatch()
    for r, resource_spans in enumerate(_list(document, "resourceSpans", "resource_spans", "")):
        where_r = f"resourceSpans[{r}]"
        _require_object(resource_spans, where_r)
        resource_error: str | None = None
        resource: dict[str, Any] = {}
        try:
            resource_obj = _field(resource_spans, "resource", "resource") or {}
            _require_object(resource_obj, f"{where_r}.resource")
            resource = _attributes(_field(resource_obj, "attributes", "attributes"))
        except ValueError as exc:
            resource_error = f"resource: {exc}"
        for s, scope_spans in enumerate(
            _list(resource_spans, "scopeSpans", "scope_spans", where_r)
        ):
            where_s = f"{where_r}.scopeSpans[{s}]"
            _require_object(scope_spans, where_s)
            scope = _field(scope_spans, "scope", "scope")
            scope_name = scope.get("name") if isinstance(scope, dict) else None
            for p, span in enumerate(_list(scope_spans, "spans", "spans", where_s)):
                where = f"{where_s}.spans[{p}]"
                try:
                    if resource_error is not None:
                        raise ValueError(resource_error)
                    batch.spans.append(
                        _span(span, resource, scope_name if isinstance(scope_name, str) else "")
                    )
                except ValueError as exc:
                    batch.rejected.append(RejectedSpan(where, str(exc)))
    return batch


def _span(span: Any, resource: dict[str, Any], scope_name: str) -> RawSpan:
    if not isinstance(span, dict):
        raise ValueError("span must be a JSON object")
    start_ns = _uint(_field(span, "startTimeUnixNano", "start_time_unix_nano"), "start time")
    end_ns = _uint(_field(span, "endTimeUnixNano", "end_time_unix_nano"), "end time")
    check_times(start_ns, end_ns)
    status = _field(span, "status", "status") or {}
    if not isinstance(status, dict):
        raise ValueError("status must be an object")
    status_message = status.get("message") or ""
    name = span.get("name") or ""
    if not isinstance(name, str) or not isinstance(status_message, str):
        raise ValueError("name and status.message must be strings")
    return RawSpan(
        trace_id=_id(_field(span, "traceId", "trace_id"), TRACE_ID_BYTES, "trace_id"),
        span_id=_id(_field(span, "spanId", "span_id"), SPAN_ID_BYTES, "span_id"),
        parent_span_id=parent_id_hex(_hex_bytes(_field(span, "parentSpanId", "parent_span_id"))),
        name=name,
        kind=_enum(span.get("kind"), _SPAN_KINDS, "kind"),
        start_ns=start_ns,
        end_ns=end_ns,
        status_code=_enum(status.get("code"), _STATUS_CODES, "status.code"),
        status_message=status_message,
        attributes=_attributes(span.get("attributes")),
        resource=resource,
        scope_name=scope_name,
    )


# --- fields ---------------------------------------------------------------------------


def _field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _require_object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise MalformedPayloadError(f"{where} must be a JSON object")


def _list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _field(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayloadError(f"{where + '.' if where else ''}{camel} must be a list")
    return value


def _hex_bytes(value: Any) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise ValueError("ids must be hex strings")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise ValueError(f"id {value[:40]!r} is not hex") from exc


def _id(value: Any, size: int, what: str) -> str:
    return id_hex(_hex_bytes(value), size, what)


def _uint(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if value is None:
        return 0
    raise ValueError(f"{what} must be an integer (unix nanoseconds)")


def _enum(value: Any, names: dict[str, int], what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise ValueError(f"{what} must be an enum integer")


# --- attributes -----------------------------------------------------------------------


def _attributes(pairs: Any) -> dict[str, Any]:
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise ValueError("attributes must be a list of {key, value}")
    result: dict[str, Any] = {}
    for pair in pairs:
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise ValueError("each attribute must be an object with a string key")
        result[pair["key"]] = _value(pair.get("value"), 0)
    return result


def _value(value: Any, depth: int) -> Any:
    """AnyValue object -> Python value."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError("attribute value must be an AnyValue object with one field")
    ((kind, inner),) = value.items()
    if kind in ("stringValue", "string_value"):
        if not isinstance(inner, str):
            raise ValueError("stringValue must be a string")
        return inner
    if kind in ("boolValue", "bool_value"):
        if not isinstance(inner, bool):
            raise ValueError("boolValue must be true or false")
        return inner
    if kind in ("intValue", "int_value"):
        if isinstance(inner, bool) or not isinstance(inner, (int, str)):
            raise ValueError("intValue must be an integer")
        try:
            return int(inner)
        except ValueError as exc:
            raise ValueError("intValue must be an integer") from exc
    if kind in ("doubleValue", "double_value"):
        if isinstance(inner, str) and inner in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[inner]
        if isinstance(inner, bool) or not isinstance(inner, (int, float)):
            raise ValueError("doubleValue must be a number")
        return float(inner)
    if kind in ("bytesValue", "bytes_value"):
        try:
            return base64.b64decode(inner, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise ValueError("bytesValue must be base64") from exc
    if kind in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
        if depth >= MAX_VALUE_DEPTH:
            return "[nested too deep]"
        items = inner.get("values") if isinstance(inner, dict) else None
        items = [] if items is None else items
        if not isinstance(items, list):
            raise ValueError(f"{kind}.values must be a list")
        if kind.startswith("array"):
            return [_value(item, depth + 1) for item in items]
        nested: dict[str, Any] = {}
        for pair in items:
            if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
                raise ValueError("kvlistValue entries must have a string key")
            nested[pair["key"]] = _value(pair.get("value"), depth + 1)
        return nested
    raise ValueError(f"unknown AnyValue field {kind[:40]!r}")

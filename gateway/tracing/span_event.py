"""A finished gateway span -> the SpanEvent dict published on the spans topic.

Same field conventions as ingest's OTLP normalizer (a unit test runs both on one span):
attributes the normalizer turns into typed fields are not repeated in `attributes`, every
other attribute is kept as a string, plus `otel.span.kind`, `otel.scope.name` and
`otel.status.message`; the event id is derived from (trace_id, span_id), so a replayed
span dedupes in ClickHouse. Built as a plain dict for orjson (ARCHITECTURE §8).

`span_event` reads an SDK span; `build_span_event` takes the same parts directly: the
gateway's tracer calls it without building an SDK span at all (gateway/tracing/tracer.py),
and both go through it, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from gateway.record import iso_ms
from schemas import sources
from schemas.events.v1 import SCHEMA_VERSION
from schemas.ids import deterministic_id

__all__ = ["SOURCE", "TYPED_ATTRIBUTES", "build_span_event", "span_event"]

SOURCE = sources.GATEWAY
_STATUSES = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
_MODEL = ("gen_ai.response.model", "llm.model_name", "gen_ai.request.model")
# The attributes the gateway sets that become typed SpanEvent fields (llm.token_count.total
# is not one: the normalizer keeps it as an attribute too).
TYPED_ATTRIBUTES = frozenset(
    {
        *_MODEL,
        "gen_ai.provider.name",
        "gen_ai.operation.name",
        "openinference.span.kind",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "llm.token_count.prompt",
        "llm.token_count.completion",
        "llm.token_count.prompt_details.cache_read",
        "gen_ai.response.finish_reasons",
        "session.id",
        "user.id",
        "meterline.key_id",
        "meterline.org",
        "meterline.team",
        "meterline.project",
    }
)


def _cap(value: str, limit: int) -> str:
    # Clients choose model names: bounded like the normalizer bounds them.
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value).decode()  # sequences (OTel attributes are flat)


def _first(attributes: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value:
            return _cap(value, 256)
    return None


_second: list[Any] = [None, ""]  # (unix second, its "YYYY-MM-DDTHH:MM:SS" text)


def _iso(unix_ns: int) -> str:
    """iso_ms, truncated to the millisecond; the text of the current second is reused
    (formatting a datetime costs ~3 us, and a span has two timestamps)."""
    unix_ms = unix_ns // 1_000_000
    second, ms = divmod(unix_ms, 1000)
    if _second[0] != second:
        _second[:] = [second, iso_ms(second)[:-5]]
    return f"{_second[1]}.{ms:03d}Z"


def span_event(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    assert context is not None and span.start_time is not None and span.end_time is not None
    parent = span.parent
    return build_span_event(
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        parent_span_id=format(parent.span_id, "016x") if parent is not None else None,
        name=span.name,
        kind=span.kind.name,
        start_ns=span.start_time,
        end_ns=span.end_time,
        status=_STATUSES[span.status.status_code],
        status_message=span.status.description,
        attributes=dict(span.attributes or {}),  # one copy: the SDK's mapping is slow to read
        scope_name=(
            span.instrumentation_scope.name if span.instrumentation_scope is not None else None
        ),
        service_name=span.resource.attributes.get("service.name"),
    )


def build_span_event(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    name: str,
    kind: str,
    start_ns: int,
    end_ns: int,
    status: str,
    status_message: str | None,
    attributes: dict[str, Any],
    scope_name: str | None,
    service_name: Any,
) -> dict[str, Any]:
    """The SpanEvent dict of a span given by its parts (ids as lowercase hex, `kind` the
    OTel SpanKind name, `status` unset | ok | error)."""
    kept = {k: _cap(_text(v), 1024) for k, v in attributes.items() if k not in TYPED_ATTRIBUTES}
    if scope_name is not None:
        kept["otel.scope.name"] = scope_name
    kept["otel.span.kind"] = kind
    if status_message:
        kept["otel.status.message"] = status_message
    end = _iso(end_ns)
    return {
        "event_id": deterministic_id("span", trace_id, span_id),
        "event_type": "span",
        "schema_version": SCHEMA_VERSION,
        "ts": end,
        "source": SOURCE,
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "name": _cap(name, 1024),
        "kind": attributes.get("openinference.span.kind", "UNKNOWN"),
        "start_ts": _iso(start_ns),
        "end_ts": end,
        "duration_ms": (end_ns - start_ns) / 1_000_000,
        "status": status,
        "service_name": service_name,
        "key_id": attributes.get("meterline.key_id"),
        "org": attributes.get("meterline.org", ""),
        "team": attributes.get("meterline.team", ""),
        "project": attributes.get("meterline.project", ""),
        "user": attributes.get("user.id"),
        "session_id": attributes.get("session.id"),
        "provider": attributes.get("gen_ai.provider.name"),
        "model": _first(attributes, _MODEL),
        "operation": attributes.get("gen_ai.operation.name"),
        "input_tokens": attributes.get("gen_ai.usage.input_tokens", 0),
        "output_tokens": attributes.get("gen_ai.usage.output_tokens", 0),
        "cache_read_tokens": attributes.get("gen_ai.usage.cache_read.input_tokens", 0),
        "cache_write_tokens": 0,
        "tool_name": None,
        "tool_arguments_hash": None,
        "finish_reasons": [
            _cap(reason, 64) for reason in attributes.get("gen_ai.response.finish_reasons", ())
        ],
        "attributes": kept,
    }

"""One trace's spans with what each cost.

An app's LLM span is costed as a span (request_id `<trace_id>:<span_id>`); the gateway's
span carries the cost of its request (attribute `meterline.request_id`), so a call made
through the gateway shows its cost once, on the gateway's span.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from ingest.api.errors import InvalidParameter
from meterline.warehouse import SharedClient

__all__ = ["TraceResponse", "TraceSpan", "span_cost_request_id", "trace_spans"]

MAX_SPANS = 5000
_MAX_TRACE_ID_CHARS = 128

_SPAN_COLUMNS = (
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ts",
    "end_ts",
    "duration_ms",
    "status",
    "service_name",
    "key_id",
    "org",
    "team",
    "project",
    "user",
    "session_id",
    "provider",
    "model",
    "operation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "tool_name",
    "tool_arguments_hash",
    "finish_reasons",
    "attributes",
)


class TraceSpan(BaseModel):
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_ts: datetime
    end_ts: datetime
    duration_ms: float
    status: str
    service_name: str
    key_id: str
    org: str
    team: str
    project: str
    user: str
    session_id: str
    provider: str
    model: str
    operation: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    tool_name: str
    tool_arguments_hash: str
    finish_reasons: list[str]
    attributes: dict[str, str]
    cost_usd: str | None  # null: not an LLM span, or not priced yet
    priced: bool | None
    price_source: str | None


class TraceResponse(BaseModel):
    trace_id: str
    span_count: int
    cost_usd: str  # exact sum of the priced spans' costs
    spans: list[TraceSpan]


def span_cost_request_id(trace_id: str, span_id: str) -> str:
    """The request_id of a span's CostEvent (processors/spans)."""
    return f"{trace_id}:{span_id}"


def _cost_id(trace_id: str, record: dict[str, Any]) -> str:
    """The request_id of the CostEvent that belongs on this span."""
    return record["attributes"].get("meterline.request_id") or span_cost_request_id(
        trace_id, record["span_id"]
    )


def trace_spans(client: SharedClient, trace_id: str) -> TraceResponse:
    trace_id = trace_id.strip().lower()
    if not trace_id or len(trace_id) > _MAX_TRACE_ID_CHARS:
        raise InvalidParameter("trace_id", "trace_id must be 1 to 128 characters")
    db = client.database
    columns = ", ".join(f"`{name}`" for name in _SPAN_COLUMNS)
    records = [
        dict(zip(_SPAN_COLUMNS, row, strict=True))
        for row in client.query_rows(
            f"SELECT {columns} FROM {db}.spans FINAL WHERE trace_id = {{trace:String}} "
            "ORDER BY start_ts, span_id LIMIT {limit:UInt32}",
            {"trace": trace_id, "limit": MAX_SPANS},
        )
    ]
    costs: dict[str, tuple[Decimal, bool, str]] = {}
    if records:
        rows = client.query_rows(
            f"SELECT request_id, sum(total_cost), min(priced), any(price_source) "
            f"FROM {db}.costs FINAL WHERE request_id IN {{ids:Array(String)}} "
            "GROUP BY request_id",
            {"ids": [_cost_id(trace_id, r) for r in records]},
        )
        costs = {row[0]: (Decimal(row[1]), bool(row[2]), str(row[3])) for row in rows}
    spans = [_span(record, costs.get(_cost_id(trace_id, record))) for record in records]
    total = sum((cost[0] for cost in costs.values() if cost[1]), Decimal(0))
    return TraceResponse(
        trace_id=trace_id, span_count=len(spans), cost_usd=format(total, "f"), spans=spans
    )


def _span(record: dict[str, Any], cost: tuple[Decimal, bool, str] | None) -> TraceSpan:
    for name in ("start_ts", "end_ts"):
        value = record[name]
        record[name] = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return TraceSpan(
        **record,
        cost_usd=format(cost[0], "f") if cost else None,
        priced=cost[1] if cost else None,
        price_source=cost[2] if cost else None,
    )

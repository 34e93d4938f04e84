"""Recent requests with their cost: the newest requests, then the costs of those request ids.

Neither read uses FINAL. A stored event appears twice only when it was delivered twice
(the sink's event-id check races across sink consumers), so `LIMIT 1 BY event_id` keeps
one copy, and for costs the last ingested (as FINAL would). FINAL made ClickHouse merge
every part's rows of the filtered range before it could stop reading: at 50 million
stored requests, one key's errors took 1.6 s that way and 17 ms this way, and the costs
of 100 requests 700 ms instead of 38 ms with their days bounded (bench/read_api.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ingest.api.sql import Where
from meterline.warehouse import SharedClient
from schemas.api.read import RequestRow, RequestsResponse

__all__ = ["MAX_LIMIT", "REQUEST_FILTERS", "STATUS_CONDITIONS", "recent_requests"]

MAX_LIMIT = 1000
# API filter -> requests column
REQUEST_FILTERS = {
    "team": "team",
    "project": "project",
    "user": "user",
    "model": "model_used",
    "provider": "provider",
    "session": "session_id",
    "trace": "trace_id",
}
STATUS_CONDITIONS = {"ok": "status_code < 400", "error": "status_code >= 400"}

_REQUEST_COLUMNS = (
    "event_id",
    "ts",
    "request_id",
    "key_id",
    "org",
    "team",
    "project",
    "user",
    "provider",
    "model_requested",
    "model_used",
    "endpoint",
    "deployment",
    "upstream_api",
    "attempt_deployments",
    "attempt_statuses",
    "stream",
    "status_code",
    "error_type",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
)


def recent_requests(
    client: SharedClient,
    *,
    limit: int,
    key: str | None = None,
    org: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: dict[str, str] | None = None,
    status: str | None = None,
) -> RequestsResponse:
    """The newest requests, filtered; `filters` are REQUEST_FILTERS names."""
    db = client.database
    if since is not None:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    where = Where().eq("key_id", key).eq("org", org).time_range("ts", since, until)
    for name, value in (filters or {}).items():
        where.eq(REQUEST_FILTERS[name], value)
    if status is not None:
        where.add(STATUS_CONDITIONS[status])
    params: dict[str, Any] = {**where.params, "limit": limit}
    columns = ", ".join(f"`{name}`" for name in _REQUEST_COLUMNS)
    # Ordered by the sorting key's day first, so ClickHouse reads the newest days in order
    # and stops once it has `limit` rows instead of sorting the whole table.
    sql = (
        f"SELECT {columns} FROM {db}.requests{where.sql} "
        "ORDER BY toDate(ts) DESC, ts DESC, event_id DESC "
        "LIMIT 1 BY event_id LIMIT {limit:UInt32}"
    )
    records = [
        dict(zip(_REQUEST_COLUMNS, row, strict=True)) for row in client.query_rows(sql, params)
    ]
    costs: dict[str, tuple[Decimal, bool, str]] = {}
    if records:
        # A cost's request_ts is its request's start: within a day of the request's ts.
        days = [record["ts"].date() for record in records]
        cost_rows = client.query_rows(
            "SELECT request_id, sum(total_cost), min(priced), any(price_source) FROM ("
            f"SELECT request_id, total_cost, priced, price_source FROM {db}.costs "
            "WHERE request_id IN {ids:Array(String)} "
            "AND toDate(request_ts) BETWEEN {first:Date} - 1 AND {last:Date} + 1 "
            "ORDER BY ingested_at DESC LIMIT 1 BY event_id"
            ") GROUP BY request_id",
            {
                "ids": [record["request_id"] for record in records],
                "first": min(days),
                "last": max(days),
            },
        )
        costs = {row[0]: (Decimal(row[1]), bool(row[2]), str(row[3])) for row in cost_rows}
    rows = []
    for record in records:
        cost = costs.get(record["request_id"])
        ts = record["ts"]
        rows.append(
            RequestRow(
                **{**record, "ts": ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts},
                cost_usd=format(cost[0], "f") if cost else None,
                priced=cost[1] if cost else None,
                price_source=cost[2] if cost else None,
            )
        )
    return RequestsResponse(count=len(rows), requests=rows)

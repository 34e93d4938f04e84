"""Recent requests with their cost: requests FINAL, then costs FINAL for those request ids."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ingest.api.models import RequestRow, RequestsResponse
from meterline.warehouse import SharedClient

__all__ = ["MAX_LIMIT", "recent_requests"]

MAX_LIMIT = 1000

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
) -> RequestsResponse:
    db = client.database
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if key is not None:
        where.append("key_id = {key:String}")
        params["key"] = key
    if org is not None:
        where.append("org = {org:String}")
        params["org"] = org
    if since is not None:
        where.append("ts >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since if since.tzinfo else since.replace(tzinfo=UTC)
    columns = ", ".join(f"`{name}`" for name in _REQUEST_COLUMNS)
    sql = f"SELECT {columns} FROM {db}.requests FINAL"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt32}"
    records = [
        dict(zip(_REQUEST_COLUMNS, row, strict=True)) for row in client.query_rows(sql, params)
    ]
    costs: dict[str, tuple[Decimal, bool, str]] = {}
    if records:
        cost_rows = client.query_rows(
            f"SELECT request_id, sum(total_cost), min(priced), any(price_source) "
            f"FROM {db}.costs FINAL "
            "WHERE request_id IN {ids:Array(String)} GROUP BY request_id",
            {"ids": [record["request_id"] for record in records]},
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

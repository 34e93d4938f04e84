"""Requests the warehouse holds without a cost: what the processors must price again.

A cost can be lost after its request was stored: the embedded broker restarts with empty
topics (memory storage) while costs were in flight, or a request event reached the sink
but never the processors. Nothing else would ever heal that gap, so the processors ask
here periodically (`processors.cost.recost`) and price each one with the same code and
the same deterministic event id (the request's), which makes a repeat harmless: the sink
and the budget book both count an event id once.

Rows come back as RequestEvents carrying every field the pricing reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.api.errors import InvalidParameter
from meterline.warehouse import SharedClient
from schemas.api.read import UncostedResponse
from schemas.events.v1 import RequestEvent

__all__ = ["MAX_UNCOSTED_LIMIT", "uncosted_requests"]

MAX_UNCOSTED_LIMIT = 5000
_LONGEST_REQUEST = timedelta(hours=1)

# The RequestEvent fields pricing and attribution read (processors.cost.logic), by column.
_COLUMNS = (
    "event_id",
    "ts",
    "source",
    "request_id",
    "ts_start",
    "ts_end",
    "latency_ms",
    "key_id",
    "org",
    "team",
    "project",
    "user",
    "session_id",
    "provider",
    "model_requested",
    "model_used",
    "endpoint",
    "stream",
    "status_code",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_OPTIONAL = {"key_id", "session_id", "provider", "model_requested", "model_used", "error_type"}


def parse_cursor(cursor: str) -> tuple[datetime, str]:
    """`<ts in epoch ms>:<event_id>` of the last request of the previous page."""
    millis, sep, event_id = cursor.partition(":")
    if not sep or not millis.isdigit() or not event_id:
        raise InvalidParameter("cursor", "cursor must be a next_cursor from a previous page")
    try:
        return datetime.fromtimestamp(int(millis) / 1000, UTC), event_id
    except (OverflowError, ValueError) as exc:
        raise InvalidParameter("cursor", "cursor is out of range") from exc


def _cursor(event: RequestEvent) -> str:
    return f"{round(event.ts.timestamp() * 1000)}:{event.event_id}"


def _event(row: tuple[Any, ...]) -> RequestEvent:
    values = dict(zip(_COLUMNS, row, strict=True))
    for name in ("ts", "ts_start", "ts_end"):
        values[name] = values[name].replace(tzinfo=UTC)  # chDB hands back naive UTC
    for name in _OPTIONAL:
        values[name] = values[name] or None  # stored as '' for None
    return RequestEvent(**values)


def uncosted_requests(
    client: SharedClient,
    *,
    older_than: timedelta,
    within: timedelta,
    limit: int,
    cursor: str | None = None,
    now: datetime | None = None,
) -> UncostedResponse:
    """Requests stored between `within` and `older_than` ago that have no cost."""
    end = (now or datetime.now(UTC)) - older_than
    start = end - within
    db = client.database
    columns = ", ".join(f"`{name}`" for name in _COLUMNS)
    # A cost's request_ts is its request's ts_start, at most one request duration before
    # the request event's ts: the cost side of the window starts earlier by that margin.
    sql = (
        f"SELECT {columns} FROM {db}.requests FINAL "
        "WHERE ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')} "
        f"AND event_id NOT IN (SELECT event_id FROM {db}.costs "
        "WHERE request_ts >= {cost_start:DateTime64(3, 'UTC')} "
        "AND request_ts < {end:DateTime64(3, 'UTC')}) "
        "AND (ts, event_id) > ({after_ts:DateTime64(3, 'UTC')}, {after_id:String}) "
        "ORDER BY ts, event_id LIMIT {limit:UInt32}"
    )
    after_ts, after_id = parse_cursor(cursor) if cursor else (start, "")
    params = {
        "start": start,
        "cost_start": start - _LONGEST_REQUEST,
        "end": end,
        "after_ts": after_ts,
        "after_id": after_id,
        "limit": limit,
    }
    events = [_event(row) for row in client.query_rows(sql, params)]
    next_cursor = _cursor(events[-1]) if len(events) == limit else None
    return UncostedResponse(start=start, end=end, requests=events, next_cursor=next_cursor)

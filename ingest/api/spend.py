"""Spend of one subject over a time range, as the warehouse knows it.

The budgets processor calls this on start to reconcile its in-memory book with ClickHouse,
the source of truth (ARCHITECTURE §7: never trust changelog recovery for money).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ingest.api.errors import InvalidParameter
from meterline.warehouse import SharedClient
from schemas.api.read import SpendItem, SpendResponse
from schemas.subjects import parse_scoped, parse_subject

__all__ = ["MAX_RECENT", "spend_for_subject", "subject_filter"]

MAX_RECENT = 1_000_000  # costs listed one by one with `recent_from`


def subject_filter(subject: str) -> tuple[str, dict[str, Any]]:
    """SQL condition on the costs table for a typed subject (ARCHITECTURE §3)."""
    kind, value = parse_subject(subject)
    if ":" not in subject or not value:
        raise InvalidParameter("subject", f"subject {subject!r} is not of the form kind:value")
    if kind == "key":
        return "key_id = {a:String}", {"a": value}
    if kind == "user":
        return "user = {a:String}", {"a": value}
    if kind == "org":
        return "org = {a:String}", {"a": value}
    if kind in ("team", "project"):
        org, name = parse_scoped(value)
        if not org or not name:
            raise InvalidParameter("subject", f"{kind} subjects are {kind}:<org>/<{kind}>")
        return f"org = {{a:String}} AND {kind} = {{b:String}}", {"a": org, "b": name}
    raise InvalidParameter(
        "subject", f"unknown subject kind {kind!r}; use key, user, team, project or org"
    )


def spend_for_subject(
    client: SharedClient,
    subject: str,
    start: datetime,
    end: datetime,
    recent_from: datetime | None = None,
) -> SpendResponse:
    if end <= start:
        raise InvalidParameter("to", "'to' must be after 'from'")
    if recent_from is not None:
        return _spend_with_recent(client, subject, start, end, recent_from)
    condition, params = subject_filter(subject)
    db = client.database
    watermark = client.query_rows(f"SELECT max(request_ts), count() FROM {db}.costs", {})[0]
    as_of = watermark[0].replace(tzinfo=UTC) if watermark[1] else None
    if as_of is None:
        return SpendResponse(
            subject=subject, start=start, end=end, cost_usd="0", requests=0, as_of=None
        )
    params.update({"start": start, "end": end, "as_of": as_of})
    total, requests = client.query_rows(
        f"SELECT sum(total_cost), count() FROM {db}.costs FINAL WHERE {condition} "
        "AND request_ts >= {start:DateTime64(3, 'UTC')} "
        "AND request_ts < {end:DateTime64(3, 'UTC')} "
        "AND request_ts <= {as_of:DateTime64(3, 'UTC')}",
        params,
    )[0]
    return SpendResponse(
        subject=subject,
        start=start,
        end=end,
        cost_usd=format(Decimal(total), "f"),
        requests=int(requests),
        as_of=as_of,
    )


def _spend_with_recent(
    client: SharedClient, subject: str, start: datetime, end: datetime, recent_from: datetime
) -> SpendResponse:
    """The sum before `recent_from` and every stored cost from it on, one by one: a budget
    owner merges those by event id with what it counted, which no time watermark can do
    when costs arrive out of request_ts order (several partitions, a worker's restart)."""
    condition, params = subject_filter(subject)
    db = client.database
    cut = min(max(recent_from, start), end)
    params.update({"start": start, "end": end, "cut": cut, "limit": MAX_RECENT + 1})
    total, requests = client.query_rows(
        f"SELECT sum(total_cost), count() FROM {db}.costs FINAL WHERE {condition} "
        "AND request_ts >= {start:DateTime64(3, 'UTC')} "
        "AND request_ts < {cut:DateTime64(3, 'UTC')}",
        params,
    )[0]
    rows = client.query_rows(
        f"SELECT event_id, request_ts, total_cost FROM {db}.costs FINAL WHERE {condition} "
        "AND request_ts >= {cut:DateTime64(3, 'UTC')} "
        "AND request_ts < {end:DateTime64(3, 'UTC')} LIMIT {limit:UInt32}",
        params,
    )
    if len(rows) > MAX_RECENT:
        raise InvalidParameter(
            "recent_from", f"more than {MAX_RECENT} costs after it: ask from a later time"
        )
    recent = [
        SpendItem(
            event_id=event_id,
            request_ts=request_ts.replace(tzinfo=UTC),
            cost_usd=format(Decimal(cost), "f"),
        )
        for event_id, request_ts, cost in rows
    ]
    return SpendResponse(
        subject=subject,
        start=start,
        end=end,
        cost_usd=format(Decimal(total or 0), "f"),
        requests=int(requests),
        as_of=cut,
        recent=recent,
    )

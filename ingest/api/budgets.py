"""Budgets: every live budget with its latest BudgetState, and one budget's history.

Budgets come from the control plane's latest records (control_current), states from
budget_states. A state older than the longest period (31 days) belongs to a closed
period, so only the last 32 days are read: that bounds the scan however long the table.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from ingest.api.sql import Where
from ingest.api.values import money_text, utc
from meterline.warehouse import SharedClient
from schemas.api.read import BudgetsResponse, BudgetStatePoint, BudgetStatus
from schemas.events.v1 import BudgetRecord

__all__ = ["CURRENT_WINDOW", "MAX_HISTORY", "budgets"]

CURRENT_WINDOW = timedelta(days=32)
MAX_HISTORY = 5000

_STATE_COLUMNS = (
    "ts",
    "period_start",
    "period_end",
    "spent_usd",
    "limit_usd",
    "percent_used",
    "burn_rate_usd_per_hour",
    "projected_exhaustion",
    "status",
)


def budgets(
    client: SharedClient,
    *,
    now: datetime,
    budget_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 1000,
) -> BudgetsResponse:
    records = _records(client, budget_id)
    latest = _latest_states(client, now - CURRENT_WINDOW, budget_id)
    statuses = []
    for bid in sorted(set(records) | set(latest)):
        if bid in records and records[bid] is None:
            continue  # deleted
        record = records.get(bid)
        subject, state = latest.get(bid, ("", None))
        statuses.append(
            BudgetStatus(
                budget_id=bid,
                subject=record.subject if record else subject,
                period=record.period if record else state_period(state),
                limit_usd=money_text(record.limit_usd) if record else _limit(state),
                soft_pct=record.soft_pct if record else None,
                action_on_hard=record.action_on_hard if record else None,
                state=state,
            )
        )
    history = None
    if budget_id is not None:
        history = _history(client, budget_id, start, end, min(limit, MAX_HISTORY))
    return BudgetsResponse(count=len(statuses), budgets=statuses, history=history)


def _records(client: SharedClient, budget_id: str | None) -> dict[str, BudgetRecord | None]:
    """Latest record per budget id; None marks a deleted budget."""
    where, params = "", {}
    if budget_id is not None:
        where, params = " AND record_id = {budget_id:String}", {"budget_id": budget_id}
    rows = client.query_rows(
        f"SELECT record_id, deleted, payload FROM {client.database}.control_current "
        f"WHERE record_type = 'budget'{where}",
        params,
    )
    records: dict[str, BudgetRecord | None] = {}
    for record_id, deleted, payload in rows:
        if deleted:
            records[record_id] = None
            continue
        try:
            records[record_id] = BudgetRecord.model_validate_json(payload)
        except ValidationError:
            continue  # not a budget this version understands: known from its states only
    return records


def _latest_states(
    client: SharedClient, since: datetime, budget_id: str | None
) -> dict[str, tuple[str, BudgetStatePoint]]:
    where = Where().time_range("ts", since, None).eq("budget_id", budget_id)
    columns = ", ".join(("budget_id", "event_id", "subject", *_STATE_COLUMNS))
    # The newest ts per budget first (two narrow columns, sorted by budget_id), then only
    # those rows: far cheaper than argMax over every column of every state. No FINAL: a
    # replayed state is the same row, and ties are settled by event_id below.
    rows = client.query_rows(
        f"SELECT {columns} FROM {client.database}.budget_states{where.sql} "
        f"AND (budget_id, ts) IN (SELECT budget_id, max(ts) FROM "
        f"{client.database}.budget_states{where.sql} GROUP BY budget_id)",
        where.params,
    )
    latest: dict[str, tuple[str, str, BudgetStatePoint]] = {}
    for row in rows:
        known = latest.get(row[0])
        if known is None or row[1] > known[0]:
            latest[row[0]] = (row[1], row[2], _point(row[3:]))
    return {bid: (subject, point) for bid, (_, subject, point) in latest.items()}


def _history(
    client: SharedClient,
    budget_id: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[BudgetStatePoint]:
    params: dict[str, Any] = {"budget_id": budget_id, "limit": limit}
    where = "budget_id = {budget_id:String}"
    if start is not None:
        where += " AND ts >= {start:DateTime64(3, 'UTC')}"
        params["start"] = start
    if end is not None:
        where += " AND ts < {end:DateTime64(3, 'UTC')}"
        params["end"] = end
    columns = ", ".join(_STATE_COLUMNS)
    rows = client.query_rows(
        f"SELECT {columns} FROM {client.database}.budget_states FINAL WHERE {where} "
        "ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt32}",
        params,
    )
    return [_point(row) for row in reversed(rows)]  # the latest `limit`, oldest first


def _point(row: Any) -> BudgetStatePoint:
    record = dict(zip(_STATE_COLUMNS, row, strict=True))
    for name in ("ts", "period_start", "period_end", "projected_exhaustion"):
        if record[name] is not None:
            record[name] = utc(record[name])
    for name in ("spent_usd", "limit_usd", "burn_rate_usd_per_hour"):
        record[name] = money_text(Decimal(record[name]))
    return BudgetStatePoint(**record)


def state_period(state: BudgetStatePoint | None) -> str:
    """A budget known only from its states: its period, from the state's bounds."""
    if state is None:
        return ""
    days = (state.period_end - state.period_start).days
    return "day" if days <= 1 else "week" if days <= 7 else "month"


def _limit(state: BudgetStatePoint | None) -> str:
    return state.limit_usd if state is not None else "0"

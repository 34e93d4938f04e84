"""Enforcement: the decisions in force now (ingest.controlplane.decisions, shared with the restore),
and the audit trail of every decision and lift."""

from __future__ import annotations

from datetime import datetime

from ingest.api.sql import Where
from ingest.api.values import utc
from ingest.controlplane.decisions import DECISION_COLUMNS, active_decisions
from meterline.warehouse import SharedClient
from schemas.api.read import DecisionRow, EnforcementResponse

__all__ = ["current_enforcement", "enforcement_history"]

_COLUMNS = tuple(name for name in DECISION_COLUMNS if name != "schema_version")


def current_enforcement(
    client: SharedClient, *, now: datetime, subject: str | None = None, source: str | None = None
) -> EnforcementResponse:
    decisions = [
        DecisionRow(**decision.model_dump(include=set(_COLUMNS)))
        for decision in active_decisions(client, now, subject)
        if source is None or decision.source == source
    ]
    decisions.sort(key=lambda row: (row.ts, row.event_id), reverse=True)
    return EnforcementResponse(count=len(decisions), decisions=decisions)


def enforcement_history(
    client: SharedClient,
    *,
    start: datetime | None,
    end: datetime | None,
    subject: str | None = None,
    source: str | None = None,
    action: str | None = None,
    limit: int,
) -> EnforcementResponse:
    where = (
        Where()
        .time_range("ts", start, end)
        .eq("subject", subject)
        .eq("source", source)
        .eq("action", action)
    )
    columns = ", ".join(_COLUMNS)
    rows = client.query_rows(
        f"SELECT {columns} FROM {client.database}.enforcement_decisions FINAL{where.sql} "
        "ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt32}",
        {**where.params, "limit": limit},
    )
    decisions = []
    for row in rows:
        record = dict(zip(_COLUMNS, row, strict=True))
        for name in ("ts", "expires_at", "decided_at"):
            if record[name] is not None:
                record[name] = utc(record[name])
        record["anomaly_id"] = record["anomaly_id"] or None
        record["decided_by"] = record["decided_by"] or None
        decisions.append(DecisionRow(**record))
    return EnforcementResponse(count=len(decisions), decisions=decisions)

"""Drift reports (processors/drift), newest first."""

from __future__ import annotations

from datetime import datetime

from ingest.api.sql import Where
from ingest.api.values import utc
from meterline.warehouse import SharedClient
from schemas.api.read import DriftResponse, DriftRow

__all__ = ["drift_reports"]

_COLUMNS = tuple(DriftRow.model_fields)
_TIMES = ("ts", "window_start", "window_end", "reference_start", "reference_end")


def drift_reports(
    client: SharedClient,
    *,
    start: datetime | None,
    end: datetime | None,
    scope: str | None = None,
    metric: str | None = None,
    drifted: bool | None = None,
    limit: int,
) -> DriftResponse:
    where = (
        Where()
        .time_range("ts", start, end)
        .eq("scope", scope)
        .eq("metric", metric)
        .eq("drifted", drifted, "Bool")
    )
    columns = ", ".join(_COLUMNS)
    rows = client.query_rows(
        f"SELECT {columns} FROM {client.database}.drift_reports FINAL{where.sql} "
        "ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt32}",
        {**where.params, "limit": limit},
    )
    reports = []
    for row in rows:
        record = dict(zip(_COLUMNS, row, strict=True))
        for name in _TIMES:
            if record[name] is not None:
                record[name] = utc(record[name])
        reports.append(DriftRow(**record))
    return DriftResponse(count=len(reports), reports=reports)

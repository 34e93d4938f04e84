"""Recent anomalies with their signals and evidence, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

import orjson

from ingest.api.errors import InvalidParameter
from ingest.api.sql import Where
from ingest.api.values import utc
from meterline.warehouse import SharedClient
from schemas.api.read import AnomaliesResponse, AnomalyRow

__all__ = ["SEVERITIES", "anomalies", "parse_severities"]

SEVERITIES: tuple[str, ...] = get_args(AnomalyRow.model_fields["severity"].annotation)

_COLUMNS = (
    "anomaly_id",
    "ts",
    "kind",
    "subject",
    "score",
    "severity",
    "signals",
    "evidence",
    "recommended_action",
)


def parse_severities(text: str | None) -> list[str] | None:
    """`high` or `high,critical`."""
    if text is None or not text.strip():
        return None
    values = [part.strip().lower() for part in text.split(",") if part.strip()]
    for value in values:
        if value not in SEVERITIES:
            raise InvalidParameter(
                "severity", f"invalid severity {value!r}; use {', '.join(SEVERITIES)}"
            )
    return values


def anomalies(
    client: SharedClient,
    *,
    start: datetime | None,
    end: datetime | None,
    kind: str | None = None,
    subject: str | None = None,
    severities: list[str] | None = None,
    limit: int,
) -> AnomaliesResponse:
    where = (
        Where()
        .time_range("ts", start, end)
        .eq("kind", kind)
        .eq("subject", subject)
        .any_of("severity", severities)
    )
    columns = ", ".join(_COLUMNS)
    rows = client.query_rows(
        f"SELECT {columns} FROM {client.database}.anomalies FINAL{where.sql} "
        f"ORDER BY ts DESC, event_id DESC LIMIT {{limit:UInt32}}",
        {**where.params, "limit": limit},
    )
    found = []
    for row in rows:
        record = dict(zip(_COLUMNS, row, strict=True))
        record["ts"] = utc(record["ts"])
        record["evidence"] = _evidence(record["evidence"])
        found.append(AnomalyRow(**record))
    return AnomaliesResponse(count=len(found), anomalies=found)


def _evidence(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}

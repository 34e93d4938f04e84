"""A row ClickHouse will never take -> a DeadLetter saying which row and why. Pure."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from schemas.clickhouse.tables import TABLES
from schemas.events.v1 import DeadLetter, utc_now
from schemas.ids import deterministic_id

__all__ = ["STAGE", "records_of", "refused_row"]

STAGE = "ingest.sink"
_MAX_PAYLOAD_CHARS = 65_536
_MAX_ERROR_CHARS = 2_000


def refused_row(table: str, row: dict[str, Any], reason: str) -> DeadLetter:
    """`original_topic` names the table (rows no longer know their message); the id comes
    from the row's event_id, so a replayed refusal is one dead letter."""
    payload = orjson.dumps(row, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return DeadLetter(
        event_id=deterministic_id(STAGE, "refused", table, str(row.get("event_id"))),
        # Now, not the row's time: that may be the very value ClickHouse refused.
        ts=utc_now(),
        source="ingest",
        original_topic=table,
        original_key=str(row.get("event_id") or "") or None,
        error=reason[:_MAX_ERROR_CHARS],
        stage=STAGE,
        payload=payload[:_MAX_PAYLOAD_CHARS],
    )


def records_of(
    table: str, rows: list[tuple[Any, ...]], chunks: list[pa.Table]
) -> list[dict[str, Any]]:
    """Buffered rows (tuples and Arrow chunks) of `table` as column -> value dicts."""
    names = TABLES[table].column_names
    records = [dict(zip(names, row, strict=True)) for row in rows]
    for chunk in chunks:
        records.extend(chunk.to_pylist())
    return records

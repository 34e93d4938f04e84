"""ClickHouseSink: columnar (Arrow) inserts that are idempotent on event_id.

Why the lookup before insert: the raw tables are ReplacingMergeTree, so duplicates
converge on merge, but the spend_daily materialized view sees every inserted block and
would count a replayed cost twice. So each batch is deduplicated in memory, then the
event_ids already stored (within the batch's time range, helped by the bloom_filter index
on event_id) are dropped before inserting. Single writer per partition (consumer group)
makes the check-then-insert safe.

The lookup is skipped for rows newer than the table's watermark: the highest time-column
value ever stored (read from the table on setup and on every partition assignment, raised
before each insert). A row newer than every stored row cannot be stored already, so a live
stream pays almost nothing, while a replay (old rows) is always checked.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ingest.errors import RetryableSinkError
from ingest.sinks.base import Batch, BatchingSink
from ingest.tables import DEAD_LETTERS, TABLES, Row, TableSpec
from meterline.warehouse import SharedClient
from schemas.ids import deterministic_id

__all__ = ["ClickHouseSink"]

log = logging.getLogger(__name__)

# Keeps each lookup's parameter well under a server's URL/query size limits.
_LOOKUP_CHUNK = 20_000
_ONE_MS = timedelta(milliseconds=1)


class ClickHouseSink(BatchingSink):
    def __init__(self, client: SharedClient, *, dedupe: bool = True) -> None:
        super().__init__()
        self.client = client
        self.dedupe = dedupe
        self.rows_written: Counter[str] = Counter()
        self.duplicates_dropped: Counter[str] = Counter()
        self.rows_rejected: Counter[str] = Counter()
        self._watermarks: dict[str, datetime] = {}

    def setup(self) -> None:
        db = self.client.database
        present = {
            row[0]
            for row in self.client.query_rows(
                "SELECT name FROM system.tables WHERE database = {db:String}", {"db": db}
            )
        }
        missing = sorted(set(TABLES) - present)
        if missing:
            raise RetryableSinkError(f"tables missing in {db}: {missing}; run the migrations")
        self.refresh_watermarks()

    def refresh_watermarks(self) -> None:
        """Re-read each table's newest time (after a rebalance others may have written)."""
        db = self.client.database
        for spec in TABLES.values():
            newest = self.client.query_rows(f"SELECT max({spec.time_column}) FROM {db}.{spec.name}")
            value = newest[0][0] if newest else None
            if isinstance(value, datetime):
                self._watermarks[spec.name] = _aware(value)

    def on_partitions_assigned(self) -> None:
        self.refresh_watermarks()

    def write(self, table: str, batch: Batch) -> None:
        spec = TABLES[table]
        columns, rejected = _to_arrow(spec, batch.rows)
        if rejected:
            self._store_rejected(spec, rejected)
        if batch.chunks:
            columns = pa.concat_tables([*batch.chunks, columns])
        fresh = _unique_event_ids(columns)
        if self.dedupe and fresh.num_rows:
            times = fresh.column(spec.time_column)
            watermark = self._watermarks.get(table)
            maybe_stored = (
                fresh
                if watermark is None
                else fresh.filter(pc.less_equal(times, pa.scalar(watermark, type=times.type)))
            )
            stored = self._stored_event_ids(spec, maybe_stored) if maybe_stored.num_rows else []
            if stored:
                fresh = fresh.filter(
                    pc.invert(pc.is_in(fresh.column("event_id"), pa.array(stored)))
                )
            # Raised before inserting: if the insert half-succeeds, the retry still checks.
            newest = (
                _aware(pc.max(fresh.column(spec.time_column)).as_py()) if fresh.num_rows else None
            )
            if newest is not None and (watermark is None or newest > watermark):
                self._watermarks[table] = newest
        self.duplicates_dropped[table] += batch.size - len(rejected) - fresh.num_rows
        if fresh.num_rows:
            self.client.insert_arrow(table, fresh)
            self.rows_written[table] += fresh.num_rows

    def _stored_event_ids(self, spec: TableSpec, candidates: pa.Table) -> list[str]:
        times = candidates.column(spec.time_column)
        # Stored at millisecond precision: widen by one ms on each side.
        low = _aware(pc.min(times).as_py()) - _ONE_MS
        high = _aware(pc.max(times).as_py()) + _ONE_MS
        where = (
            f"SELECT event_id FROM {self.client.database}.{spec.name} "
            f"WHERE {spec.time_column} BETWEEN {{low:DateTime64(3, 'UTC')}} "
            "AND {high:DateTime64(3, 'UTC')} AND event_id IN "
        )
        # One newline-joined String parameter binds ~2x faster than an Array(String) of
        # thousands of items (client-side escaping); ids holding a newline use the array.
        joined_sql = where + "(SELECT arrayJoin(splitByChar('\\n', {ids:String})))"
        array_sql = where + "{ids:Array(String)}"
        stored: list[str] = []
        ids = candidates.column("event_id").to_pylist()
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            if any("\n" in event_id for event_id in chunk):
                sql, value = array_sql, chunk
            else:
                sql, value = joined_sql, "\n".join(chunk)
            result = self.client.query_rows(sql, {"low": low, "high": high, "ids": value})
            stored.extend(row[0] for row in result)
        return stored

    def _store_rejected(self, spec: TableSpec, rejected: list[tuple[Row, str]]) -> None:
        """Rows Arrow cannot encode would fail forever: keep them as dead letters instead."""
        self.rows_rejected[spec.name] += len(rejected)
        dead: list[Row] = []
        for row, error in rejected:
            log.error("dropping a %s row that cannot be stored: %s", spec.name, error)
            if spec is DEAD_LETTERS:
                continue  # never loop on a dead letter that cannot be stored
            ts = row[1] if isinstance(row[1], datetime) else datetime.now(UTC)
            dead.append(
                (
                    deterministic_id("ingest.sink.encode", spec.name, str(row[0])),
                    ts,
                    "ingest",
                    spec.name,
                    None,
                    None,
                    "",
                    error,
                    "ingest.sink",
                    repr(row)[:65_536],
                )
            )
        if dead:
            arrow_table, _ = _to_arrow(DEAD_LETTERS, _unique_by_event_id(dead))
            self.client.insert_arrow(DEAD_LETTERS.name, arrow_table)


def _aware(value: datetime) -> datetime:
    # chdb returns DateTime64(3, 'UTC') as a naive datetime: it is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _unique_event_ids(columns: pa.Table) -> pa.Table:
    """The first row of each event_id (a batch may hold a message twice after a replay)."""
    ids = columns.column("event_id")
    if pc.count_distinct(ids).as_py() == columns.num_rows:
        return columns
    first = (
        pa.table({"event_id": ids, "i": pa.array(range(columns.num_rows), pa.int64())})
        .group_by("event_id", use_threads=False)
        .aggregate([("i", "min")])
        .column("i_min")
    )
    return columns.take(pc.take(first, pc.array_sort_indices(first)))


def _unique_by_event_id(rows: list[Row]) -> list[Row]:
    seen: set[str] = set()
    unique: list[Row] = []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            unique.append(row)
    return unique


def _to_arrow(spec: TableSpec, rows: list[Row]) -> tuple[pa.Table, list[tuple[Row, str]]]:
    """Transpose rows into Arrow columns; on failure, find the rows that cannot encode."""
    try:
        return _columns_to_table(spec, rows), []
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        pass
    good: list[Row] = []
    rejected: list[tuple[Row, str]] = []
    for row in rows:
        try:
            _columns_to_table(spec, [row])
            good.append(row)
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            rejected.append((row, f"cannot encode for {spec.name}: {exc}"))
    return _columns_to_table(spec, good), rejected


def _columns_to_table(spec: TableSpec, rows: list[Row]) -> pa.Table:
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [()] * len(spec.columns)
    arrays = [
        pa.array(values, type=arrow_type)
        for values, (_, arrow_type) in zip(columns, spec.columns, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=spec.schema)

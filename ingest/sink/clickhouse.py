"""ClickHouseSink: columnar (Arrow) inserts that are idempotent on event_id.

Why the lookup before insert: the raw tables are ReplacingMergeTree, so duplicates
converge on merge, but the spend_daily materialized view sees every inserted block and
would count a replayed cost twice. So each batch is deduplicated in memory, then the
event_ids already stored (within the batch's time range, helped by the bloom_filter index
on event_id) are dropped before inserting. Single writer per partition (consumer group)
makes the check-then-insert safe.

The lookup is needed only for rows at or below the table's floor: its newest time-column
value when this sink last read it (lazily, before the first write, after each partition
assignment and after any failed insert). A row above the floor was stored, if at all, by
this sink since then (one writer per partition), so it is checked against the event_ids
this sink inserted since: a set in memory, bounded by re-reading the floor. A live stream
from many partitions, whose batches interleave in time, thus pays no lookup; a replay
(old rows) is always checked, and so is everything after a failed or partial insert.

A batch ClickHouse refuses for good (ingest/sink/refusals.py: a violated constraint, a
value out of range, too many partitions in one block) is split in halves until the rows at
fault stand alone: every other row is stored, each refused row becomes a dead letter with
ClickHouse's reason (stored in dead_letters here, and published to the dlq topic by the
consumer). A refused dead letter is only logged: never a loop.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ingest.sink.base import Batch, BatchingSink
from ingest.sink.errors import PermanentSinkError, RetryableSinkError
from ingest.sink.refusals import classify_insert_error
from meterline.warehouse import SharedClient
from schemas.clickhouse.tables import DEAD_LETTERS, TABLES, Row, TableSpec, row_for
from schemas.events.v1 import DeadLetter

__all__ = ["ClickHouseSink"]

log = logging.getLogger(__name__)

# Keeps each lookup's parameter well under a server's URL/query size limits.
_LOOKUP_CHUNK = 20_000
_ONE_MS = timedelta(milliseconds=1)
# Bounds the memory of inserted event_ids per table (~100 bytes each).
_MAX_REMEMBERED_IDS = 500_000
# Each batch is already unique on event_id (the sorting key's last column), so the
# ReplacingMergeTree pass ClickHouse runs over an inserted block finds nothing to replace:
# skipping it halved the insert (chDB 26.9, 20,000-row Arrow blocks: requests 8.6 -> 4.5,
# costs 4.8-6.5 -> 2.7-2.9 us/row CPU). The setting reaches the materialized views'
# inserts too, where it changes nothing either: each view GROUPs BY its target's whole
# sorting key (migrations 0004, 0013), so its block has one row per key already, and
# every reader sums or merges the rollups' rows anyway.
_PLAIN_INSERT = {"optimize_on_insert": 0}


class ClickHouseSink(BatchingSink):
    def __init__(self, client: SharedClient, *, dedupe: bool = True) -> None:
        super().__init__()
        self.client = client
        self.dedupe = dedupe
        self.rows_written: Counter[str] = Counter()
        self.duplicates_dropped: Counter[str] = Counter()
        self.rows_rejected: Counter[str] = Counter()  # refused for good, dead-lettered
        self._unstored: list[DeadLetter] = []  # dead letters not yet in their table
        # Per table: the floor (None: the table was empty), and the event_ids inserted above it.
        self._floors: dict[str, datetime | None] = {}
        self._inserted: dict[str, set[str]] = {}
        self._stale: set[str] = set(TABLES)  # floors to re-read before the next write

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

    def on_partitions_assigned(self) -> None:
        # Rows of the new partitions may have been written by their previous owner.
        self._stale = set(TABLES)

    def _refresh_floor(self, spec: TableSpec) -> None:
        newest = self.client.query_rows(
            f"SELECT max({spec.time_column}), count() FROM {self.client.database}.{spec.name}"
        )[0]
        self._floors[spec.name] = _aware(newest[0]) if newest[1] else None
        self._inserted[spec.name] = set()
        self._stale.discard(spec.name)

    def write(self, table: str, batch: Batch) -> None:
        spec = TABLES[table]
        columns, rejected = _to_arrow(spec, batch.rows)
        for row, error in rejected:
            self._refuse_row(spec, dict(zip(spec.column_names, row, strict=True)), error)
        if batch.chunks:
            columns = pa.concat_tables([*batch.chunks, columns])
        fresh = _unique_event_ids(columns)
        ids: list[str] = []
        if self.dedupe and fresh.num_rows:
            if table in self._stale:
                self._refresh_floor(spec)
            fresh, ids = self._drop_stored(spec, fresh)
        self.duplicates_dropped[table] += batch.size - len(rejected) - fresh.num_rows
        if not fresh.num_rows:
            self._store_dead_letters()
            return
        # Until the insert returns, which of these rows are stored is unknown.
        self._stale.add(table)
        refused = self._insert(spec, fresh)
        self.rows_written[table] += fresh.num_rows - len(refused)
        if refused:
            gone = set(refused)
            ids = [event_id for event_id in ids if event_id not in gone]
        self._store_dead_letters()
        if self.dedupe:
            inserted = self._inserted[table]
            inserted.update(ids)
            self._stale.discard(table)
            if len(inserted) > _MAX_REMEMBERED_IDS:
                self._stale.add(table)  # the re-read floor covers them all

    def _insert(self, spec: TableSpec, rows: pa.Table) -> list[str]:
        """Insert `rows`; the event_ids of those ClickHouse refuses for good, each one
        dead-lettered. Raises RetryableSinkError (some halves may be stored by then: the
        table stays stale, so the retry looks them up)."""
        try:
            self._insert_once(spec.name, rows)
            return []
        except PermanentSinkError as exc:
            if rows.num_rows == 1:
                (record,) = rows.to_pylist()
                self._refuse_row(spec, record, str(exc))
                return [str(record.get("event_id"))]
            log.warning(
                "ClickHouse refused %d %s rows for good; splitting to find the rows at fault",
                rows.num_rows,
                spec.name,
            )
            half = rows.num_rows // 2
            return self._insert(spec, rows.slice(0, half)) + self._insert(spec, rows.slice(half))

    def _insert_once(self, table: str, rows: pa.Table) -> None:
        try:
            with self.client.lock:
                self.client.client.insert_arrow(
                    table, rows, database=self.client.database, settings=_PLAIN_INSERT
                )
        except Exception as exc:  # the database client's own errors, translated here
            raise classify_insert_error(exc, f"{rows.num_rows} rows for {table}") from exc

    def _refuse_row(self, spec: TableSpec, record: dict[str, Any], reason: str) -> None:
        log.error("dead-lettering a %s row ClickHouse cannot store: %s", spec.name, reason)
        self.rows_rejected[spec.name] += 1
        if spec is DEAD_LETTERS:
            return  # never loop on a dead letter that cannot be stored
        self.refuse(spec.name, [record], reason)
        self._unstored.append(self._dead_letters[-1])

    def _store_dead_letters(self) -> None:
        """Dead letters of this write into their table now (the dlq topic copy is
        published by the consumer and deduplicated by event_id)."""
        if not self._unstored:
            return
        rows = [row_for(dead_letter)[1] for dead_letter in self._unstored]
        self._unstored = []
        arrow_table, _ = _to_arrow(DEAD_LETTERS, _unique_by_event_id(rows))
        self._stale.add(DEAD_LETTERS.name)  # stored outside `write`'s bookkeeping
        try:
            self._insert_once(DEAD_LETTERS.name, arrow_table)
        except PermanentSinkError as exc:
            log.error("could not store %d dead letters: %s", arrow_table.num_rows, exc)

    def _drop_stored(self, spec: TableSpec, fresh: pa.Table) -> tuple[pa.Table, list[str]]:
        """`fresh` without the rows already stored, and the event_ids left."""
        ids = fresh.column("event_id").to_pylist()
        floor = self._floors[spec.name]
        times = fresh.column(spec.time_column)
        below = (
            pc.less_equal(times, pa.scalar(floor, type=times.type))
            if floor is not None
            else pa.array([False] * fresh.num_rows)
        )
        stored = set(self._stored_event_ids(spec, fresh.filter(below)))
        stored.update(self._inserted[spec.name].intersection(ids))
        if not stored:
            return fresh, ids
        keep = [event_id not in stored for event_id in ids]
        return fresh.filter(pa.array(keep)), [i for i, k in zip(ids, keep, strict=True) if k]

    def _stored_event_ids(self, spec: TableSpec, candidates: pa.Table) -> list[str]:
        if not candidates.num_rows:
            return []
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

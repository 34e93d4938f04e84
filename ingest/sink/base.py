"""The sink interface (STYLE §5, §10): buffer rows per table, write them on flush.

The consumer drives flushing from its checkpoint and commits offsets only after
`flush()` returned; a failed flush keeps every buffered row, so the retry writes the same
batch again (quix-streams clears its batch and seeks back instead; keeping it is simpler
without a pause/seek dance, and the write is idempotent).

A write that can never succeed (PermanentSinkError) must not be retried forever: its rows
become dead letters (`take_dead_letters`, which the consumer publishes to the dlq topic
before committing) and the stream goes on. A sink that can tell which rows are at fault
(ClickHouseSink bisects) refuses only those; otherwise the whole table batch is refused.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import pyarrow as pa

from ingest.sink.dead_letters import records_of, refused_row
from ingest.sink.errors import PermanentSinkError, RetryableSinkError, SinkError
from schemas.clickhouse.tables import Row
from schemas.events.v1 import DeadLetter

__all__ = ["Batch", "BatchingSink", "Sink"]


@dataclass
class Batch:
    """One table's buffered rows: row tuples (slow path) and Arrow chunks (fast path)."""

    rows: list[Row] = field(default_factory=list)
    chunks: list[pa.Table] = field(default_factory=list)
    size: int = 0


class Sink(ABC):
    def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare the destination (e.g. check tables exist)."""

    @abstractmethod
    def add(self, table: str, row: Row) -> None:
        """Buffer one row for `table`; never does I/O."""

    @abstractmethod
    def add_columns(self, table: str, columns: pa.Table) -> None:
        """Buffer rows already in Arrow columns with `table`'s schema; never does I/O."""

    @abstractmethod
    def flush(self) -> int:
        """Write everything buffered; return rows written. Raises SinkError, keeping rows."""

    @property
    @abstractmethod
    def pending_rows(self) -> int: ...

    @property
    @abstractmethod
    def largest_batch(self) -> int:
        """Rows buffered for the fullest table (the size trigger of the flush policy)."""

    def take_dead_letters(self) -> list[DeadLetter]:
        """Rows refused for good since the last call, as dead letters for the dlq topic."""
        return []

    def on_partitions_assigned(self) -> None:  # noqa: B027 - optional hook
        """Partitions changed hands: state derived from other writers may be stale."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; buffered rows are not flushed here."""


class BatchingSink(Sink):
    """One buffer per table; `flush` calls `write` per table and clears what was written."""

    def __init__(self) -> None:
        self._buffers: dict[str, Batch] = {}
        self._pending = 0
        self._dead_letters: list[DeadLetter] = []
        self.rows_refused = 0  # refused for good, dead-lettered

    def take_dead_letters(self) -> list[DeadLetter]:
        taken, self._dead_letters = self._dead_letters, []
        return taken

    def refuse(self, table: str, records: list[dict], reason: str) -> None:
        """Dead-letter rows of `table` that can never be written."""
        self.rows_refused += len(records)
        self._dead_letters.extend(refused_row(table, record, reason) for record in records)

    def _batch(self, table: str) -> Batch:
        batch = self._buffers.get(table)
        if batch is None:
            batch = self._buffers[table] = Batch()
        return batch

    def add(self, table: str, row: Row) -> None:
        batch = self._batch(table)
        batch.rows.append(row)
        batch.size += 1
        self._pending += 1

    def add_columns(self, table: str, columns: pa.Table) -> None:
        batch = self._batch(table)
        batch.chunks.append(columns)
        batch.size += columns.num_rows
        self._pending += columns.num_rows

    @property
    def pending_rows(self) -> int:
        return self._pending

    @property
    def largest_batch(self) -> int:
        return max((batch.size for batch in self._buffers.values()), default=0)

    def flush(self) -> int:
        return self.flush_buffers(self._buffers)

    def take_buffers(self) -> dict[str, Batch]:
        """Everything buffered, handed over (to `flush_buffers` on a writer thread): the
        buffers start empty again, so adding goes on while those are written."""
        taken, self._buffers = self._buffers, {}
        self._pending = 0
        return taken

    def restore_buffers(self, buffers: dict[str, Batch]) -> None:
        """Put back what `flush_buffers` could not write, before what was added since."""
        for table, left in buffers.items():
            batch = self._batch(table)
            batch.rows[:0] = left.rows
            batch.chunks[:0] = left.chunks
            batch.size += left.size
            self._pending += left.size

    def flush_buffers(self, buffers: dict[str, Batch]) -> int:
        """`flush` of `buffers` (this sink's own, or taken): what was written or refused
        leaves them, the rest stays for the retry."""
        written = 0
        for table in list(buffers):
            batch = buffers[table]
            if not batch.size:
                continue
            try:
                self.write(table, batch)
                written += batch.size
            except PermanentSinkError as exc:
                # Never writable as a whole: dead letters, not a retry loop.
                self.refuse(table, records_of(table, batch.rows, batch.chunks), str(exc))
            except SinkError:
                raise
            except Exception as exc:  # the database client's own errors
                raise RetryableSinkError(f"writing {batch.size} rows to {table}: {exc}") from exc
            # Only what was handled leaves the buffer: a later table's failure keeps its rows.
            del buffers[table]
            if buffers is self._buffers:
                self._pending -= batch.size
        return written

    @abstractmethod
    def write(self, table: str, batch: Batch) -> None:
        """Write one table's batch, all or nothing as far as the caller can tell."""

"""The sink interface (STYLE §5, §10): buffer rows per table, write them on flush.

The consumer drives flushing from its checkpoint and commits offsets only after
`flush()` returned; a failed flush keeps every buffered row, so the retry writes the same
batch again (quix-streams clears its batch and seeks back instead; keeping it is simpler
without a pause/seek dance, and the write is idempotent).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ingest.errors import RetryableSinkError, SinkError
from ingest.tables import Row

__all__ = ["BatchingSink", "Sink"]


class Sink(ABC):
    def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare the destination (e.g. check tables exist)."""

    @abstractmethod
    def add(self, table: str, row: Row) -> None:
        """Buffer one row for `table`; never does I/O."""

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

    def on_partitions_assigned(self) -> None:  # noqa: B027 - optional hook
        """Partitions changed hands: state derived from other writers may be stale."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; buffered rows are not flushed here."""


class BatchingSink(Sink):
    """One buffer per table; `flush` calls `write` per table and clears what was written."""

    def __init__(self) -> None:
        self._buffers: dict[str, list[Row]] = {}
        self._pending = 0

    def add(self, table: str, row: Row) -> None:
        buffer = self._buffers.get(table)
        if buffer is None:
            buffer = self._buffers[table] = []
        buffer.append(row)
        self._pending += 1

    @property
    def pending_rows(self) -> int:
        return self._pending

    @property
    def largest_batch(self) -> int:
        return max((len(rows) for rows in self._buffers.values()), default=0)

    def flush(self) -> int:
        written = 0
        for table in list(self._buffers):
            rows = self._buffers[table]
            if not rows:
                continue
            try:
                self.write(table, rows)
            except SinkError:
                raise
            except Exception as exc:  # the database client's own errors
                raise RetryableSinkError(f"writing {len(rows)} rows to {table}: {exc}") from exc
            # Only what was written leaves the buffer: a later table's failure keeps its rows.
            del self._buffers[table]
            self._pending -= len(rows)
            written += len(rows)
        return written

    @abstractmethod
    def write(self, table: str, rows: list[Row]) -> None:
        """Write one table's batch, all or nothing as far as the caller can tell."""

"""When to flush, and which offsets a successful flush allows to commit (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FlushPolicy", "OffsetTracker"]


@dataclass
class FlushPolicy:
    """Flush when a table's batch is full, or when the oldest pending row is old enough.

    A batch is per table (`largest_batch`); the total is capped too, so many half-full
    tables cannot hold an unbounded amount of memory.
    """

    batch_rows: int
    interval_s: float
    max_total_rows: int = 0
    _first_pending_at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.batch_rows < 1:
            raise ValueError("batch_rows must be >= 1")
        if self.max_total_rows <= 0:
            self.max_total_rows = 4 * self.batch_rows

    def note_pending(self, now: float) -> None:
        if self._first_pending_at is None:
            self._first_pending_at = now

    def due(self, largest_batch: int, pending_rows: int, now: float) -> bool:
        if pending_rows <= 0:
            return False
        if largest_batch >= self.batch_rows or pending_rows >= self.max_total_rows:
            return True
        started = self._first_pending_at if self._first_pending_at is not None else now
        return now - started >= self.interval_s

    def flushed(self) -> None:
        self._first_pending_at = None


class OffsetTracker:
    """The next offset to commit per (topic, partition), for messages already buffered."""

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}

    def record(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if offset + 1 > self._next.get(key, -1):
            self._next[key] = offset + 1

    def pending(self) -> dict[tuple[str, int], int]:
        return dict(self._next)

    def forget(self, partitions: list[tuple[str, int]]) -> None:
        for key in partitions:
            self._next.pop(key, None)

    def clear(self) -> None:
        self._next.clear()

    def __len__(self) -> int:
        return len(self._next)

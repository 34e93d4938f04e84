"""An in-memory sink for tests: keeps written rows, can be told to fail."""

from __future__ import annotations

from typing import Any

from ingest.errors import RetryableSinkError
from ingest.sinks.base import Batch, BatchingSink
from ingest.tables import TABLES, Row

__all__ = ["MemorySink"]


class MemorySink(BatchingSink):
    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, list[Row]] = {}
        self.write_calls: list[tuple[str, int]] = []
        self.fail_next_writes = 0  # simulate an outage of that many write attempts

    def write(self, table: str, batch: Batch) -> None:
        if self.fail_next_writes > 0:
            self.fail_next_writes -= 1
            raise RetryableSinkError(f"simulated outage writing {table}")
        self.write_calls.append((table, batch.size))
        rows = list(batch.rows)
        for chunk in batch.chunks:
            rows.extend(zip(*(column.to_pylist() for column in chunk.columns), strict=True))
        self.written.setdefault(table, []).extend(rows)

    def rows(self, table: str) -> list[dict[str, Any]]:
        names = TABLES[table].column_names
        return [dict(zip(names, row, strict=True)) for row in self.written.get(table, [])]

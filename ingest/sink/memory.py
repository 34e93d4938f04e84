"""An in-memory sink for tests: keeps written rows, can be told to fail (for a while, or
for good)."""

from __future__ import annotations

from typing import Any

from ingest.sink.base import Batch, BatchingSink
from ingest.sink.errors import PermanentSinkError, RetryableSinkError
from schemas.clickhouse.tables import TABLES, Row

__all__ = ["MemorySink"]


class MemorySink(BatchingSink):
    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, list[Row]] = {}
        self.write_calls: list[tuple[str, int]] = []
        self.fail_next_writes = 0  # simulate an outage of that many write attempts
        self.refuse_tables: set[str] = set()  # simulate a database refusing them for good

    def write(self, table: str, batch: Batch) -> None:
        if self.fail_next_writes > 0:
            self.fail_next_writes -= 1
            raise RetryableSinkError(f"simulated outage writing {table}")
        if table in self.refuse_tables:
            raise PermanentSinkError(f"simulated refusal of {table}")
        self.write_calls.append((table, batch.size))
        rows = list(batch.rows)
        for chunk in batch.chunks:
            rows.extend(zip(*(column.to_pylist() for column in chunk.columns), strict=True))
        self.written.setdefault(table, []).extend(rows)

    def rows(self, table: str) -> list[dict[str, Any]]:
        names = TABLES[table].column_names
        return [dict(zip(names, row, strict=True)) for row in self.written.get(table, [])]

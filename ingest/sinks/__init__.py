"""Sinks: where consumed events are written (ClickHouse; memory for tests)."""

from __future__ import annotations

from ingest.sinks.base import BatchingSink, Sink
from ingest.sinks.clickhouse import ClickHouseSink
from ingest.sinks.memory import MemorySink

__all__ = ["BatchingSink", "ClickHouseSink", "MemorySink", "Sink"]

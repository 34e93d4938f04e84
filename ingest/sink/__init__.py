"""The Kafka -> ClickHouse sink.

consumer (poll, batch, commit after the write) -> routing (message -> row or dead letter)
-> ClickHouseSink (idempotent on event_id; refusals split and dead-lettered); checkpoint
holds the flush and commit rules, status what /healthz reports. MemorySink is for tests.
"""

from __future__ import annotations

from ingest.sink.base import BatchingSink, Sink
from ingest.sink.clickhouse import ClickHouseSink
from ingest.sink.memory import MemorySink

__all__ = ["BatchingSink", "ClickHouseSink", "MemorySink", "Sink"]

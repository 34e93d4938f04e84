"""Ingest: Kafka -> ClickHouse sink and the read API (OTLP receiver to come).

Run it with `python -m ingest` or `meterline ingest`; the entry point is `ingest.server.serve`.
"""

from __future__ import annotations

__all__: list[str] = []

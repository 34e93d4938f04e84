"""Ingest: the process that owns the warehouse side of Meterline. Three jobs, three folders:

- `ingest/otlp/`: the OTLP/HTTP trace receiver (`POST /v1/traces`): authenticate the
  sender (`credentials.py` reads virtual keys and ingest tokens from the control topic),
  decode, normalize, publish spans to Kafka.
- `ingest/sink/`: the Kafka -> ClickHouse sink: consume every event topic, route
  messages to rows or dead letters, write in batches, commit after the write.
- `ingest/api/`: the read API (`/api/*`) dashboards, finance and processors query.

`ingest/controlplane/` puts the control plane back: after an embedded-broker restart it
re-publishes keys, budgets, policies and enforcement decisions from ClickHouse.

Run it with `python -m ingest` or `meterline ingest`; the entry point is `ingest.server.serve`.
"""

from __future__ import annotations

__all__: list[str] = []

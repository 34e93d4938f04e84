"""The read API (ARCHITECTURE §10): analytics over ClickHouse for dashboards and exports."""

from __future__ import annotations

from ingest.api.app import create_app

__all__ = ["create_app"]

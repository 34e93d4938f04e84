"""Errors of the ingest package.

IngestError
+-- SinkError
    +-- RetryableSinkError    ClickHouse unavailable or failing: retry the same batch
    +-- PermanentSinkError    the rows can never be written: dead-letter them
"""

from __future__ import annotations

__all__ = ["IngestError", "PermanentSinkError", "RetryableSinkError", "SinkError"]


class IngestError(Exception):
    """Root of every ingest error."""


class SinkError(IngestError):
    """A sink could not write its batch."""


class RetryableSinkError(SinkError):
    """Writing may succeed later (the database is down, a table is missing for now)."""


class PermanentSinkError(SinkError):
    """Writing these rows can never succeed; retrying would block the pipeline forever."""

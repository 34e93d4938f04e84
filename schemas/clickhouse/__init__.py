"""ClickHouse DDL: ordered migrations in `migrations/NNNN_<name>.sql` (see meterline.warehouse)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MIGRATIONS_DIR"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

"""ClickHouse: the DDL (ordered migrations in `migrations/NNNN_<name>.sql`, applied by
meterline.warehouse), the column each event field is stored in (`column`, declared on the
models), the tables and rows derived from those (`tables`) and the columnar fast path
that decodes JSON straight into those tables (`columnar`)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MIGRATIONS_DIR"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

"""How the read API renders values: exact money text, UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

__all__ = ["money_text", "utc"]


def money_text(value: Decimal) -> str:
    """Exact decimal text of an amount (never a float)."""
    return format(value, "f")


def utc(value: datetime) -> datetime:
    """chdb returns DateTime64(3, 'UTC') as a naive datetime: it is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value

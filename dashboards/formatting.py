"""How the dashboards write numbers: money from exact decimal text, never through a float."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from meterline.money import usd

__all__ = [
    "count",
    "decimal_sum",
    "money",
    "percent",
    "signed_money",
    "when",
]


def decimal_sum(values: Iterable[str | Decimal | None]) -> Decimal:
    """Exact sum of the read API's money strings (a float sum would drift)."""
    return sum((Decimal(v) for v in values if v is not None and v != ""), Decimal(0))


def money(value: str | Decimal | None, places: int | None = None) -> str:
    """The digits the amount needs (`$1,234.57`, `$0.0021`: never a misleading $0.00), as
    the CLI and the gateway write it; `places` fixes the decimals instead. Rounded half up
    from the exact value."""
    if value is None or value == "":
        return "—"
    return usd(value, places)


def signed_money(value: str | Decimal | None, places: int | None = None) -> str:
    if value is None or value == "":
        return "—"
    amount = Decimal(value)
    text = money(amount, places)
    return text if text.startswith("-") or text == money(0, places) else f"+{text}"


def percent(value: float | None, *, signed: bool = True, digits: int = 1) -> str:
    """`+12.5%`; None (the previous period had nothing) reads as `new`."""
    if value is None:
        return "new"
    return f"{value:+.{digits}f}%" if signed else f"{value:.{digits}f}%"


def count(value: int | float | None) -> str:
    return "—" if value is None else f"{int(value):,}"


def when(value: str | datetime | None) -> str:
    """A read API timestamp as `2025-05-03 14:07 UTC`."""
    if value is None or value == "":
        return "—"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC")

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
    "money_places",
    "percent",
    "signed_money",
    "when",
]

CENT = Decimal("0.01")


def decimal_sum(values: Iterable[str | Decimal | None]) -> Decimal:
    """Exact sum of the read API's money strings (a float sum would drift)."""
    return sum((Decimal(v) for v in values if v is not None and v != ""), Decimal(0))


def money_places(amounts: Iterable[Decimal]) -> int:
    """Cents, unless every amount is under a dollar: then tenths of a cent tell rows apart
    (an early deployment or a cheap model would otherwise read $0.00 everywhere)."""
    largest = max((abs(a) for a in amounts), default=Decimal(0))
    return 2 if largest >= 1 or largest == 0 else 4


def money(value: str | Decimal | None, places: int | None = 2) -> str:
    """`$1,234.57`: rounded half up to `places` decimals from the exact value; None: the
    digits the amount needs (`$0.0021`), as the CLI and the gateway write it."""
    if value is None or value == "":
        return "—"
    return usd(value, places)


def signed_money(value: str | Decimal | None, places: int = 2) -> str:
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

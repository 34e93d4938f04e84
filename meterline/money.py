"""How an amount of money is written for a person, in one place (CLI, gateway messages,
dashboards). Stored and exported values keep every decimal; only what people read is
rounded, and never to a misleading $0.00."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = ["usd"]

_MAX_PLACES = 18  # the warehouse's scale: nothing below it exists


def usd(value: Decimal | float | int | str, places: int | None = None) -> str:
    """`$1,234.57` from a dollar up; below a dollar, two significant digits (`$0.0021`,
    `$0.12`, `$0.01`); `$0.00` for nothing. `places` fixes the decimals instead (tables
    whose rows must line up). Rounded half up from the exact value (a float is read as it
    prints)."""
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if places is None:
        small = abs(amount) < 1 and abs(amount) >= Decimal(1).scaleb(-_MAX_PLACES)
        places = min(max(2, 1 - amount.adjusted()), _MAX_PLACES) if small else 2
        rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        while places > 2 and rounded == rounded.quantize(Decimal(1).scaleb(1 - places)):
            places -= 1  # $0.01, not $0.010: no trailing zero past the cents
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"${abs(rounded):,.{places}f}"
    return f"-{text}" if rounded < 0 else text

"""The instants the read API accepts: within ClickHouse's DateTime64 range.

ClickHouse documents DateTime64 for 1900-01-01 .. 2299-12-31; outside it, parameters fail
to parse (a 500 before this check) or clamp silently. A bound outside the range is a 400
naming the parameter, whichever route it came to.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ingest.api.errors import InvalidParameter

__all__ = ["TIME_MAX", "TIME_MIN", "check_instant"]

TIME_MIN = datetime(1900, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2300, 1, 1, tzinfo=UTC)  # an exclusive end may be exactly this


def check_instant(param: str, value: datetime) -> datetime:
    """`value` as an aware UTC instant (naive means UTC), or InvalidParameter naming `param`."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not TIME_MIN <= value <= TIME_MAX:
        raise InvalidParameter(
            param,
            f"{param!r} must be between {TIME_MIN:%Y-%m-%d} and {TIME_MAX:%Y-%m-%d} "
            f"(got {value.isoformat()})",
        )
    return value

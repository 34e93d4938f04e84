"""Which requests a budget's spend has counted: one identity for the gateway and processors.

A request's `SpendMark` is (the epoch millisecond of its start exactly as its events carry
it in `ts_start` / `request_ts`, its `request_id`). The id breaks ties inside one
millisecond; gateway request ids are UUIDv7, so within a gateway marks follow start order.

A BudgetState's watermark (`counted_through`, `counted_through_request_id`) is the greatest
mark whose cost it counted. A gateway keeps its own spend not yet in a state by mark and
forgets exactly the entries at or below the watermark, so the request a state already
covers is never counted again. Both sides derive marks only through these functions: a
copy of the timestamp at another precision (microseconds on one side, milliseconds on the
other) is what made a covered request count twice.

A watermark without an id (a reconcile from the warehouse, or an older processor) covers
every request of its millisecond.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

__all__ = [
    "WHOLE_MS",
    "SpendMark",
    "epoch_ms",
    "mark_at",
    "ms_datetime",
    "parse_watermark",
    "wire_ms",
]

# Sorts after any request id: "every request of this millisecond".
WHOLE_MS = "\U0010ffff"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class SpendMark(NamedTuple):
    """A request's place in spend order (tuple order: time, then id)."""

    ts_ms: int
    request_id: str


def epoch_ms(value: datetime) -> int:
    """Exact epoch milliseconds of a timestamp, truncated as the wire format truncates
    (integer arithmetic: no float rounding). Naive timestamps are UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS


def wire_ms(epoch_s: float) -> int:
    """The millisecond an event's timestamp field carries for a `time.time()` value: the
    same conversion as the events' formatter (to the microsecond, then truncated)."""
    return epoch_ms(datetime.fromtimestamp(epoch_s, UTC))


def ms_datetime(ts_ms: int) -> datetime:
    return _EPOCH + ts_ms * _MS


def mark_at(ts: datetime, request_id: str) -> SpendMark:
    return SpendMark(epoch_ms(ts), request_id)


def parse_watermark(counted_through: object, request_id: object) -> SpendMark | None:
    """A BudgetState's watermark from its JSON fields; None when it has none.

    Raises ValueError for a timestamp that is not ISO-8601 with a time zone."""
    if counted_through is None or counted_through == "":
        return None
    parsed = datetime.fromisoformat(str(counted_through))
    if parsed.tzinfo is None:
        raise ValueError("counted_through without a time zone")
    tiebreak = request_id if isinstance(request_id, str) and request_id else WHOLE_MS
    return SpendMark(epoch_ms(parsed), tiebreak)

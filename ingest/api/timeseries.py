"""Spend over time, stacked by one dimension: the showback query grouped by day or hour.

Days read spend_daily (like showback, whenever the range and dimensions allow); hours
read costs FINAL, so an hourly range is bounded. Groups beyond the `top` largest are
folded into one "(other)" series, keeping a chart readable and the answer small.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ingest.api.errors import InvalidParameter
from ingest.api.showback import (
    GROUPS,
    TIME_GROUPS,
    ShowbackQuery,
    aggregate,
    parse_showback,
)
from ingest.api.values import money_text
from meterline.warehouse import SharedClient
from schemas.api.read import TimeseriesPoint, TimeseriesResponse

__all__ = ["OTHER", "TimeseriesQuery", "parse_timeseries", "run_timeseries"]

OTHER = "(other)"
AUTO_HOURLY_UP_TO = timedelta(days=2)  # auto granularity: hours up to this range, else days
MAX_HOURLY_RANGE = timedelta(days=31)
MAX_TOP = 50


@dataclass(frozen=True)
class TimeseriesQuery:
    showback: ShowbackQuery  # grouped by the time bucket, then `by`
    granularity: str
    by: str | None
    top: int


def parse_timeseries(
    by: str | None,
    granularity: str,
    start: str | None,
    end: str | None,
    filters: dict[str, str | None],
    top: int,
) -> TimeseriesQuery:
    base = parse_showback(None, start, end, filters)
    dimension = by.strip().lower() if by and by.strip() else None
    if dimension is not None and (dimension not in GROUPS or dimension in TIME_GROUPS):
        choices = ", ".join(name for name in GROUPS if name not in TIME_GROUPS)
        raise InvalidParameter("by", f"invalid by value {by!r}; use one of {choices}")
    grain = granularity.strip().lower()
    if grain not in ("auto", "day", "hour"):
        raise InvalidParameter("granularity", "granularity is auto, day or hour")
    span = base.end - base.start if base.start is not None and base.end is not None else None
    if grain == "auto":
        grain = "hour" if span is not None and span <= AUTO_HOURLY_UP_TO else "day"
    if grain == "hour" and (span is None or span > MAX_HOURLY_RANGE):
        raise InvalidParameter(
            "granularity", "hourly series need 'from' and 'to' at most 31 days apart"
        )
    if not 1 <= top <= MAX_TOP:
        raise InvalidParameter("top", f"top must be between 1 and {MAX_TOP}")
    groups = [grain, *([dimension] if dimension else [])]
    showback = ShowbackQuery(groups, base.start, base.end, base.filters)
    return TimeseriesQuery(showback, grain, dimension, top)


def run_timeseries(client: SharedClient, query: TimeseriesQuery) -> TimeseriesResponse:
    rows, totals, source = aggregate(client, query.showback)
    by = query.by
    cost_of: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if by is not None:
            cost_of[str(getattr(row, by))] += Decimal(row.cost_usd)
    ranked = sorted(cost_of, key=lambda name: (-cost_of[name], name))
    series = ranked[: query.top]
    shown = set(series)
    if len(ranked) > query.top:
        series.append(OTHER)
    # (bucket, series) -> [cost, input tokens, output tokens, requests]
    points: dict[tuple[datetime, str | None], list[Any]] = {}
    for row in rows:
        at = row.hour if query.granularity == "hour" else _midnight(row.day)
        name = None if by is None else str(getattr(row, by))
        if name is not None and name not in shown:
            name = OTHER
        point = points.setdefault((at, name), [Decimal(0), 0, 0, 0])
        point[0] += Decimal(row.cost_usd)
        point[1] += row.input_tokens
        point[2] += row.output_tokens
        point[3] += row.requests
    order = {name: i for i, name in enumerate(series)}
    return TimeseriesResponse(
        from_=query.showback.start,
        to=query.showback.end,
        granularity=query.granularity,  # type: ignore[arg-type]
        by=by,
        source=source,  # type: ignore[arg-type]
        series=series,
        points=[
            TimeseriesPoint(
                t=at,
                group=name,
                cost_usd=money_text(cost),
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                requests=requests,
            )
            for (at, name), (cost, tokens_in, tokens_out, requests) in sorted(
                points.items(), key=lambda item: (item[0][0], order.get(item[0][1], -1))
            )
        ],
        totals=totals,
    )


def _midnight(day: date | None) -> datetime:
    assert day is not None
    return datetime.combine(day, time(0), tzinfo=UTC)

"""Showback: spend grouped by attribution. Parameter parsing and SQL, no HTTP here.

Spend (`cost_usd`) and what the response cache saved (`saved_usd`, `cache_hits`) come
side by side for every grouping. Day-aligned ranges read the spend_daily aggregate; a
bound inside a day reads costs FINAL (exact request time). Only whitelisted column names
reach the SQL text; every value is a query parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ingest.api.errors import InvalidParameter
from ingest.api.times import TIME_MIN, check_instant
from ingest.api.values import money_text, utc
from meterline.warehouse import SharedClient
from schemas.api.read import (
    ShowbackComparison,
    ShowbackResponse,
    ShowbackRow,
    ShowbackTotals,
)
from schemas.policies import CACHE_HITS

__all__ = [
    "FILTERS",
    "GROUPS",
    "TIME_GROUPS",
    "ShowbackQuery",
    "aggregate",
    "build_showback_sql",
    "parse_bound",
    "parse_group_by",
    "parse_showback",
    "run_showback",
]

# API name -> (spend_daily expression or None when it lacks it, costs expression)
GROUPS: dict[str, tuple[str | None, str]] = {
    "org": ("org", "org"),
    "team": ("team", "team"),
    "project": ("project", "project"),
    "key": ("key_id", "key_id"),
    "user": ("user", "user"),
    "model": ("model", "model"),
    "provider": ("provider", "provider"),
    "day": ("day", "toDate(request_ts)"),
    "hour": (None, "toStartOfHour(request_ts)"),
}
FILTERS: dict[str, tuple[str | None, str]] = {
    "org": ("org", "org"),
    "team": ("team", "team"),
    "project": ("project", "project"),
    "key": ("key_id", "key_id"),
    "user": ("user", "user"),
    "model": ("model", "model"),
    "provider": ("provider", "provider"),
}
TIME_GROUPS = ("day", "hour")
MOVERS = 10  # groups listed in a comparison's top movers


@dataclass(frozen=True)
class ShowbackQuery:
    group_by: list[str]
    start: datetime | None  # inclusive
    end: datetime | None  # exclusive
    filters: dict[str, str] = field(default_factory=dict)
    compare: bool = False  # add the previous period of the same length

    @property
    def day_aligned(self) -> bool:
        return all(bound is None or _is_midnight(bound) for bound in (self.start, self.end))

    @property
    def uses_daily(self) -> bool:
        """spend_daily answers it: whole days, and only the dimensions the aggregate keeps."""
        return (
            self.day_aligned
            and all(GROUPS[name][0] is not None for name in self.group_by)
            and all(FILTERS[name][0] is not None for name in self.filters)
        )


def _is_midnight(value: datetime) -> bool:
    return value.timetz().replace(tzinfo=None) == time(0)


def parse_group_by(values: Iterable[str] | None) -> list[str]:
    """`org,team` or repeated `group_by=` values; ordered, without duplicates."""
    groups: list[str] = []
    for value in values or ():
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in GROUPS:
                raise InvalidParameter(
                    "group_by",
                    f"invalid group_by value {part.strip()!r}; use one or more of "
                    + ", ".join(GROUPS),
                )
            if name not in groups:
                groups.append(name)
    return groups


def parse_bound(param: str, text: str | None, *, is_end: bool) -> datetime | None:
    """An ISO date or datetime as an aware UTC instant (naive means UTC).

    A plain date as `to` includes that whole day, so the instant is the next midnight.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(0), tzinfo=UTC)
            return check_instant(param, start + timedelta(days=1) if is_end else start)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        # astimezone can leave datetime's own range (year 1 at +01:00): OverflowError.
        return check_instant(param, value)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, InvalidParameter):
            raise
        raise InvalidParameter(
            param, f"invalid {param!r} value {text[:64]!r}; use an ISO date or datetime"
        ) from None


def parse_showback(
    group_by: Sequence[str] | None,
    start: str | None,
    end: str | None,
    filters: dict[str, str | None],
    compare: str | None = None,
) -> ShowbackQuery:
    start_at = parse_bound("from", start, is_end=False)
    end_at = parse_bound("to", end, is_end=True)
    if start_at is not None and end_at is not None and start_at >= end_at:
        raise InvalidParameter("to", "'to' must be after 'from'")
    clean = {name: value for name, value in filters.items() if value is not None}
    unknown = set(clean) - set(FILTERS)
    if unknown:
        raise InvalidParameter(sorted(unknown)[0], "unknown filter")
    groups = parse_group_by(group_by)
    if compare is not None and compare.strip():
        if compare.strip().lower() != "previous":
            raise InvalidParameter("compare", "compare takes one value: previous")
        if start_at is None or end_at is None:
            raise InvalidParameter("compare", "compare=previous needs both 'from' and 'to'")
        if any(name in TIME_GROUPS for name in groups):
            raise InvalidParameter(
                "compare", "compare=previous cannot group by day or hour (periods differ)"
            )
        # The previous period is queried too: it must be within range as well.
        if start_at - (end_at - start_at) < TIME_MIN:
            raise InvalidParameter(
                "compare", f"the previous period would start before {TIME_MIN:%Y-%m-%d}"
            )
    return ShowbackQuery(groups, start_at, end_at, clean, compare=bool(compare and compare.strip()))


def build_showback_sql(query: ShowbackQuery, database: str) -> tuple[str, dict[str, Any], str]:
    """SQL, parameters and source table for one showback query."""
    daily = query.uses_daily
    column = 0 if daily else 1
    selects = [f"{GROUPS[name][column]} AS g_{name}" for name in query.group_by]
    where: list[str] = []
    params: dict[str, Any] = {}
    if daily:
        source = "spend_daily"
        measures = [
            "sum(cost_usd)",
            "sum(input_tokens)",
            "sum(output_tokens)",
            "sum(requests)",
            "sum(unpriced_requests)",
            "sum(saved_usd)",
            "sum(cache_hits)",
            "sum(rejected_requests)",
        ]
        table = f"{database}.spend_daily"
        if query.start is not None:
            where.append("day >= {start:Date}")
            params["start"] = query.start.date()
        if query.end is not None:
            where.append("day < {end:Date}")
            params["end"] = query.end.date()
    else:
        source = "costs"
        measures = [
            "sum(total_cost)",
            "sum(input_tokens)",
            "sum(output_tokens)",
            "count()",
            "countIf(NOT priced)",
            "sum(saved_cost)",
            f"countIf(cache IN ({', '.join(repr(s) for s in CACHE_HITS)}))",
            "countIf(rejected)",
        ]
        table = f"{database}.costs FINAL"
        if query.start is not None:
            where.append("request_ts >= {start:DateTime64(3, 'UTC')}")
            params["start"] = query.start
        if query.end is not None:
            where.append("request_ts < {end:DateTime64(3, 'UTC')}")
            params["end"] = query.end
    for name, value in query.filters.items():
        where.append(f"{FILTERS[name][column]} = {{f_{name}:String}}")
        params[f"f_{name}"] = value
    sql = f"SELECT {', '.join([*selects, *measures])} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if selects:
        aliases = ", ".join(f"g_{name}" for name in query.group_by)
        sql += f" GROUP BY {aliases} ORDER BY {aliases}"
    return sql, params, source


def run_showback(client: SharedClient, query: ShowbackQuery) -> ShowbackResponse:
    rows, totals, source = aggregate(client, query)
    previous = None
    if query.compare:
        assert query.start is not None and query.end is not None  # parse_showback checked
        span = query.end - query.start
        before = replace(query, start=query.start - span, end=query.start, compare=False)
        rows, previous = _compare(query, rows, totals, before, *aggregate(client, before)[:2])
    return ShowbackResponse(
        group_by=query.group_by,
        from_=query.start,
        to=query.end,
        source=source,  # type: ignore[arg-type]
        rows=rows,
        totals=totals,
        previous=previous,
    )


def aggregate(
    client: SharedClient, query: ShowbackQuery
) -> tuple[list[ShowbackRow], ShowbackTotals, str]:
    """The groups of one query with their measures, and the totals over them."""
    sql, params, source = build_showback_sql(query, client.database)
    result = client.query_rows(sql, params)
    width = len(query.group_by)
    rows: list[ShowbackRow] = []
    total_cost = total_saved = Decimal(0)
    totals = [0, 0, 0, 0, 0, 0]
    for record in result:
        groups = dict(zip(query.group_by, record[:width], strict=True))
        if groups.get("hour") is not None:
            groups["hour"] = utc(groups["hour"])
        cost, input_tokens, output_tokens, requests, unpriced, saved, hits, refused = record[width:]
        if not query.group_by and not requests:
            continue  # an ungrouped aggregate over nothing still returns one row
        cost, saved = Decimal(cost or 0), Decimal(saved or 0)
        counts = [
            int(input_tokens or 0),
            int(output_tokens or 0),
            int(requests),
            int(unpriced),
            int(hits or 0),
            int(refused or 0),
        ]
        total_cost += cost
        total_saved += saved
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        rows.append(
            ShowbackRow(
                cost_usd=money_text(cost),
                input_tokens=counts[0],
                output_tokens=counts[1],
                requests=counts[2],
                unpriced_requests=counts[3],
                saved_usd=money_text(saved),
                cache_hits=counts[4],
                rejected_requests=counts[5],
                **groups,
            )
        )
    summary = ShowbackTotals(
        cost_usd=money_text(total_cost),
        input_tokens=totals[0],
        output_tokens=totals[1],
        requests=totals[2],
        unpriced_requests=totals[3],
        saved_usd=money_text(total_saved),
        cache_hits=totals[4],
        rejected_requests=totals[5],
    )
    return rows, summary, source


def _compare(
    query: ShowbackQuery,
    rows: list[ShowbackRow],
    totals: ShowbackTotals,
    before: ShowbackQuery,
    previous_rows: list[ShowbackRow],
    previous_totals: ShowbackTotals,
) -> tuple[list[ShowbackRow], ShowbackComparison]:
    """Rows with their previous-period cost and change, and the groups that moved most."""

    def key(row: ShowbackRow) -> tuple[Any, ...]:
        return tuple(getattr(row, name) for name in query.group_by)

    earlier = {key(row): Decimal(row.cost_usd) for row in previous_rows}
    now = {key(row): Decimal(row.cost_usd) for row in rows}
    compared = [
        row.model_copy(update=_change(Decimal(row.cost_usd), earlier.get(key(row), Decimal(0))))
        for row in rows
    ]
    gone = [
        ShowbackRow(
            cost_usd="0",
            input_tokens=0,
            output_tokens=0,
            requests=0,
            unpriced_requests=0,
            **{name: getattr(row, name) for name in query.group_by},
            **_change(Decimal(0), earlier[key(row)]),
        )
        for row in previous_rows
        if key(row) not in now
    ]
    movers = sorted(
        (row for row in [*compared, *gone] if row.change_usd and Decimal(row.change_usd)),
        key=lambda row: (-abs(Decimal(row.change_usd or 0)), key(row)),
    )[:MOVERS]
    total_change = _change(Decimal(totals.cost_usd), Decimal(previous_totals.cost_usd))
    comparison = ShowbackComparison(
        from_=before.start,
        to=before.end,
        totals=previous_totals,
        change_usd=total_change["change_usd"],
        change_pct=total_change["change_pct"],
        movers=movers,
    )
    return compared, comparison


def _change(current: Decimal, previous: Decimal) -> dict[str, Any]:
    pct = float((current - previous) / previous * 100) if previous else None
    return {
        "previous_cost_usd": money_text(previous),
        "change_usd": money_text(current - previous),
        "change_pct": round(pct, 4) if pct is not None else None,
    }

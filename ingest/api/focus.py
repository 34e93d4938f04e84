"""FinOps FOCUS-style CSV export: one row per day x attribution x provider x model.

Read from spend_daily (whole days only), one calendar month (= billing period) per query,
so a long export streams in bounded memory and never holds the ClickHouse client for
long: the sink keeps writing between chunks. Money keeps every decimal it has.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ingest.api.errors import InvalidParameter
from ingest.api.showback import FILTERS, parse_showback
from ingest.api.sql import Where
from ingest.api.values import money_text
from meterline.warehouse import SharedClient

__all__ = ["FOCUS_COLUMNS", "FocusQuery", "focus_filename", "focus_rows", "parse_focus"]

FOCUS_COLUMNS = (
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "BillingCurrency",
    "ProviderName",
    "ServiceCategory",
    "ServiceName",
    "ResourceId",
    "ChargeCategory",
    "ChargeDescription",
    "BilledCost",
    "EffectiveCost",
    "ConsumedQuantity",
    "ConsumedUnit",
    "Tags",
)

_SQL = """
SELECT day, org, team, project, key_id, provider, model,
    sum(cost_usd), sum(input_tokens) + sum(output_tokens)
FROM {table}{where}
GROUP BY day, org, team, project, key_id, provider, model
ORDER BY day, org, team, project, key_id, provider, model
"""


@dataclass(frozen=True)
class FocusQuery:
    start: date  # inclusive
    end: date  # exclusive
    filters: dict[str, str]


def parse_focus(start: str | None, end: str | None, filters: dict[str, str | None]) -> FocusQuery:
    query = parse_showback(None, start, end, filters)
    if query.start is None or query.end is None:
        raise InvalidParameter(
            "from" if query.start is None else "to", "the export needs 'from' and 'to' dates"
        )
    if not query.day_aligned:
        raise InvalidParameter("from", "the export is per day: give dates, not times of day")
    if not query.uses_daily:
        name = next(n for n in query.filters if FILTERS[n][0] is None)
        raise InvalidParameter(name, f"the export cannot filter by {name}")
    return FocusQuery(query.start.date(), query.end.date(), query.filters)


def focus_filename(query: FocusQuery) -> str:
    last = query.end - timedelta(days=1)
    return f"meterline-focus-{query.start.isoformat()}-{last.isoformat()}.csv"


def focus_rows(client: SharedClient, query: FocusQuery) -> Iterator[str]:
    """CSV text: the header, then one chunk per billing month."""
    yield _csv([FOCUS_COLUMNS])
    month = query.start.replace(day=1)
    while month < query.end:
        following = _next_month(month)
        lower, upper = max(month, query.start), min(following, query.end)
        where = Where().time_range("day", lower, upper, "Date")
        for name, value in query.filters.items():
            where.eq(str(FILTERS[name][0]), value)
        rows = client.query_rows(
            _SQL.format(table=f"{client.database}.spend_daily", where=where.sql), where.params
        )
        if rows:
            yield _csv(_line(row, month, following) for row in rows)
        month = following


def _line(row: Sequence[Any], month: date, following: date) -> list[str]:
    day, org, team, project, key_id, provider, model, cost, tokens = row
    cost_text = money_text(Decimal(cost))
    return [
        _stamp(month),
        _stamp(following),
        _stamp(day),
        _stamp(day + timedelta(days=1)),
        "USD",
        provider,
        "AI and Machine Learning",
        model,
        model,
        "Usage",
        "LLM tokens",
        cost_text,
        cost_text,  # no discounts or commitments are modelled: effective = billed
        str(int(tokens)),
        "Tokens",
        _tags(org, team, project, key_id),
    ]


def _csv(lines: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return buffer.getvalue()


@lru_cache(maxsize=65_536)  # a month repeats the same attributions on every day
def _tags(org: str, team: str, project: str, key_id: str) -> str:
    tags = {"org": org, "team": team, "project": project, "key": key_id}
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=4096)
def _stamp(day: date) -> str:
    return datetime.combine(day, time(0), tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)

"""FinOps FOCUS 1.2 CSV export: one row per day x attribution x provider x model x token kind,
and one for the answers the response cache served there (billed 0, ListCost = the saving).

Read from spend_daily (whole days only, priced spend only), one calendar month (= billing
period) per query, so a long export streams in bounded memory and never holds the
ClickHouse client for long: the sink keeps writing between chunks. Money keeps every decimal
it has. The mapping of Meterline's data onto FOCUS columns is in docs/focus.md.
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

from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import TieredPrices

from ingest.api.errors import InvalidParameter
from ingest.api.showback import FILTERS, parse_showback
from ingest.api.sql import Where
from ingest.api.values import money_text
from meterline.warehouse import SharedClient

__all__ = [
    "CACHE_METER",
    "FOCUS_COLUMNS",
    "TOKEN_KINDS",
    "FocusQuery",
    "focus_filename",
    "focus_lines",
    "focus_rows",
    "list_unit_prices",
    "parse_focus",
]

FOCUS_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)

# Token kind -> its meter name. Uncached input, output, cache read and cache write tokens
# are priced at different rates, so each is its own row (ListCost = ListUnitPrice x quantity).
TOKEN_KINDS = {
    "input": "Input Tokens",
    "output": "Output Tokens",
    "cache_read": "Cache Read Tokens",
    "cache_write": "Cache Write Tokens",
}
# Response-cache hits (issue 16): one line per group with hits, quantity in requests.
CACHE_METER = "Response Cache Hits"
CACHE_UNIT = "Requests"
UNATTRIBUTED = "(unattributed)"
_PER_MTOK = Decimal(1_000_000)

_SQL = """
SELECT day, org, team, project, key_id, provider, model,
    sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(input_cost_usd), sum(output_cost_usd), sum(cache_read_cost_usd), sum(cache_write_cost_usd),
    sum(saved_usd), sum(cache_hits)
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
        # Unpriced usage has no charge to bill (showback lists it as unpriced); rejected
        # requests never reached a provider and cost nothing.
        where = Where().time_range("day", lower, upper, "Date").add("priced")
        for name, value in query.filters.items():
            where.eq(str(FILTERS[name][0]), value)
        rows = client.query_rows(
            _SQL.format(table=f"{client.database}.spend_daily", where=where.sql), where.params
        )
        lines = [line for row in rows for line in focus_lines(row, month, following)]
        if lines:
            yield _csv(lines)
        month = following


def focus_lines(row: Sequence[Any], month: date, following: date) -> list[list[str]]:
    """The FOCUS rows of one spend_daily group: one per token kind that has tokens or cost."""
    day, org, team, project, key_id, provider, model = row[:7]
    input_tokens, output_tokens, read_tokens, write_tokens = (int(n) for n in row[7:11])
    costs = dict(zip(TOKEN_KINDS, (Decimal(c) for c in row[11:15]), strict=True))
    # input_tokens is the whole prompt, cache tokens included (processors.cost.logic).
    quantities = {
        "input": input_tokens - read_tokens - write_tokens,
        "output": output_tokens,
        "cache_read": read_tokens,
        "cache_write": write_tokens,
    }
    list_prices = list_unit_prices(provider, model, day)
    common = _common(day, month, following, org, team, project, key_id, provider, model)
    lines = []
    for kind, meter in TOKEN_KINDS.items():
        quantity, cost = quantities[kind], costs[kind]
        if not quantity and not cost:
            continue
        contracted_unit = _unit_price(cost, quantity)
        list_unit = list_prices[kind] if list_prices is not None else contracted_unit
        list_cost = list_unit * quantity if list_unit is not None else cost
        sku = f"{provider}/{model}"
        values = {
            **common,
            "BilledCost": money_text(cost),
            "ChargeDescription": f"{model} {meter.lower()} via {provider}",
            "ConsumedQuantity": str(quantity),
            "ContractedCost": money_text(cost),
            "ContractedUnitPrice": _price_text(contracted_unit),
            "EffectiveCost": money_text(cost),  # no commitments modelled: effective = billed
            "ListCost": money_text(list_cost),
            "ListUnitPrice": _price_text(list_unit),
            "PricingQuantity": str(quantity),
            "SkuId": sku,
            "SkuMeter": meter,
            "SkuPriceId": f"{sku}/{kind}",
        }
        lines.append([values[name] for name in FOCUS_COLUMNS])
    hits, saved = int(row[16]), Decimal(row[15])
    if hits:
        lines.append(_cache_line(common, provider, model, hits, saved))
    return lines


def _cache_line(
    common: dict[str, str], provider: str, model: str, hits: int, saved: Decimal
) -> list[str]:
    """Answers served from the response cache, as FOCUS states a saving: a usage line
    billed 0 whose ListCost is what the answers would have cost (genai-prices, as spend),
    so ListCost - EffectiveCost is the saving; quantity in requests."""
    sku = f"{provider}/{model}"
    values = {
        **common,
        "BilledCost": "0",
        "ChargeDescription": f"{model} answers served from the Meterline response cache",
        "ConsumedQuantity": str(hits),
        "ConsumedUnit": CACHE_UNIT,
        "ContractedCost": "0",
        "ContractedUnitPrice": "0",
        "EffectiveCost": "0",
        "ListCost": money_text(saved),
        "ListUnitPrice": _price_text(saved / hits),
        "PricingQuantity": str(hits),
        "PricingUnit": CACHE_UNIT,
        "SkuId": sku,
        "SkuMeter": CACHE_METER,
        "SkuPriceId": f"{sku}/cache_hit",
    }
    return [values[name] for name in FOCUS_COLUMNS]


@lru_cache(maxsize=4096)  # read-only results: callers never change them
def list_unit_prices(provider: str, model: str, day: date) -> dict[str, Decimal] | None:
    """genai-prices' list price per token of each kind on `day` (base tier), or None when
    genai-prices does not know the model (then the contracted price is also the list price)."""
    snapshot = get_snapshot()
    for provider_id in (provider or None, None):
        try:
            _, info = snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            continue
        price = info.get_prices(datetime.combine(day, time(12), tzinfo=UTC))
        input_price = _base(price.input_mtok)
        read, write = _base(price.cache_read_mtok), _base(price.cache_write_mtok)
        per_mtok = {
            "input": input_price,
            "output": _base(price.output_mtok),
            # No cache price: genai-prices charges those tokens as plain input.
            "cache_read": input_price if read is None else read,
            "cache_write": input_price if write is None else write,
        }
        return {kind: (value or Decimal(0)) / _PER_MTOK for kind, value in per_mtok.items()}
    return None


def _base(price: Decimal | TieredPrices | None) -> Decimal | None:
    return price.base if isinstance(price, TieredPrices) else price


def _unit_price(cost: Decimal, quantity: int) -> Decimal | None:
    # Exact for a flat price; the average over the day for a tiered one.
    return cost / quantity if quantity else None


def _price_text(value: Decimal | None) -> str:
    return "" if value is None else money_text(value.normalize() if value else Decimal(0))


@lru_cache(maxsize=65_536)  # a month repeats the same attributions on every day
def _common(
    day: date,
    month: date,
    following: date,
    org: str,
    team: str,
    project: str,
    key_id: str,
    provider: str,
    model: str,
) -> dict[str, str]:
    account = org or UNATTRIBUTED
    return {
        "BillingAccountId": account,
        "BillingAccountName": account,
        "BillingCurrency": "USD",
        "BillingPeriodEnd": _stamp(following),
        "BillingPeriodStart": _stamp(month),
        "ChargeCategory": "Usage",
        "ChargeClass": "",  # null: no row corrects an earlier period
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": _stamp(day + timedelta(days=1)),
        "ChargePeriodStart": _stamp(day),
        "ConsumedUnit": "Tokens",
        "InvoiceIssuerName": provider or UNATTRIBUTED,
        "PricingUnit": "Tokens",
        "ProviderName": provider or UNATTRIBUTED,
        "PublisherName": provider or UNATTRIBUTED,
        "ResourceId": key_id,
        "ResourceName": key_id,
        "ResourceType": "Virtual Key" if key_id else "",
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": model,
        "ServiceSubcategory": "Generative AI",
        "SubAccountId": f"{account}/{team}" if team else "",
        "SubAccountName": team,
        "Tags": _tags(org, team, project, key_id),
    }


def _csv(lines: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return buffer.getvalue()


def _tags(org: str, team: str, project: str, key_id: str) -> str:
    tags = {"org": org, "team": team, "project": project, "key": key_id}
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=4096)
def _stamp(day: date) -> str:
    return datetime.combine(day, time(0), tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)

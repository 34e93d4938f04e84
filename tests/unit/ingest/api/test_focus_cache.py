"""FOCUS lines for response-cache hits: billed 0, the saving as ListCost - EffectiveCost."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

from ingest.api.focus import CACHE_METER, FOCUS_COLUMNS, focus_lines
from processors.cost.logic import Pricer
from schemas.events.v1 import RequestEvent
from tests.focus_conformance import check_row

DAY = date(2026, 3, 14)
AT = datetime(2026, 3, 14, 9, tzinfo=UTC)
MONTH, NEXT = date(2026, 3, 1), date(2026, 4, 1)


def _request(i: int, cache: str) -> RequestEvent:
    return RequestEvent(
        request_id=f"r{i}",
        ts_start=AT,
        ts_end=AT,
        latency_ms=1.0,
        endpoint="/v1/chat/completions",
        status_code=200,
        provider="openai",
        model_used="gpt-4o-mini",
        input_tokens=1000 + 7 * i,
        output_tokens=300 + 3 * i,
        cache=cache,
    )


def _lines(statuses: list[str]) -> tuple[list[dict[str, str]], list]:
    pricer = Pricer()
    costs = [pricer.price(_request(i, status)) for i, status in enumerate(statuses)]
    row = (
        DAY,
        "acme",
        "search",
        "web",
        "k1",
        "openai",
        "gpt-4o-mini",
        *(sum(getattr(c, n) for c in costs) for n in ("input_tokens", "output_tokens")),
        0,
        0,
        *(
            sum((getattr(c, n) for c in costs), Decimal(0))
            for n in ("input_cost", "output_cost", "cache_read_cost", "cache_write_cost")
        ),
        sum((c.saved_cost for c in costs), Decimal(0)),
        sum(c.cache != "miss" for c in costs),
    )
    text = io.StringIO()
    csv.writer(text).writerows([FOCUS_COLUMNS, *focus_lines(row, MONTH, NEXT)])
    return list(csv.DictReader(io.StringIO(text.getvalue()))), costs


def test_hits_are_one_conforming_line_whose_list_cost_is_the_exact_saving() -> None:
    rows, costs = _lines(["miss", "hit", "hit", "semantic_hit"])
    assert all(check_row(row) == [] for row in rows), [check_row(r) for r in rows]
    (cache,) = [r for r in rows if r["SkuMeter"] == CACHE_METER]
    saved = sum((c.saved_cost for c in costs), Decimal(0))
    assert Decimal(cache["ListCost"]) == saved > 0
    assert cache["BilledCost"] == cache["EffectiveCost"] == cache["ContractedCost"] == "0"
    assert (cache["PricingQuantity"], cache["ConsumedUnit"]) == ("3", "Requests")
    assert (
        cache["ChargeCategory"] == "Usage" and cache["SkuPriceId"] == "openai/gpt-4o-mini/cache_hit"
    )
    billed = sum(Decimal(r["BilledCost"]) for r in rows)
    assert billed == sum((c.total_cost for c in costs), Decimal(0))  # hits add nothing billed


def test_no_hits_no_cache_line() -> None:
    rows, _ = _lines(["miss", "miss"])
    assert all(r["SkuMeter"] != CACHE_METER for r in rows) and rows

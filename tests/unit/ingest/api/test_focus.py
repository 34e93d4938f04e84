"""FOCUS 1.2 rows from spend_daily groups priced by the real pricer (genai-prices, overrides)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

from ingest.api.focus import FOCUS_COLUMNS, focus_lines, list_unit_prices
from meterline.settings import PriceOverride
from processors.cost.logic import Pricer
from schemas.events.v1 import RequestEvent
from tests.focus_conformance import check_header, check_row

DAY = date(2026, 3, 14)
AT = datetime(2026, 3, 14, 9, tzinfo=UTC)
MONTH, NEXT = date(2026, 3, 1), date(2026, 4, 1)


def _group(pricer: Pricer, provider: str, model: str, requests: list[tuple[int, int, int]]):
    """A spend_daily row (as the read API selects it) summed from really priced requests."""
    costs = [
        pricer.price(
            RequestEvent(
                request_id=f"r{i}",
                ts_start=AT,
                ts_end=AT,
                latency_ms=1.0,
                endpoint="/v1/chat/completions",
                status_code=200,
                provider=provider,
                model_used=model,
                input_tokens=inputs,
                output_tokens=outputs,
                cache_read_tokens=cached,
            )
        )
        for i, (inputs, outputs, cached) in enumerate(requests)
    ]
    sums = [
        sum(getattr(c, name) for c in costs)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    ]
    money = [
        sum((getattr(c, name) for c in costs), Decimal(0))
        for name in ("input_cost", "output_cost", "cache_read_cost", "cache_write_cost")
    ]
    total = sum((c.total_cost for c in costs), Decimal(0))
    cache = (  # spend_daily's saved_usd and cache_hits (issue 16)
        sum((c.saved_cost for c in costs), Decimal(0)),
        sum(c.cache in ("hit", "semantic_hit") for c in costs),
    )
    return (DAY, "acme", "search", "web", "k1", provider, model, *sums, *money, *cache), total


def _rows(lines: list[list[str]]) -> list[dict[str, str]]:
    text = io.StringIO()
    csv.writer(text).writerows([FOCUS_COLUMNS, *lines])
    return list(csv.DictReader(io.StringIO(text.getvalue())))


def test_header_has_every_column_focus_requires() -> None:
    assert check_header(list(FOCUS_COLUMNS)) == []
    assert "missing column ListCost" in check_header([c for c in FOCUS_COLUMNS if c != "ListCost"])


def test_list_priced_rows_conform_and_sum_to_the_cost() -> None:
    group, total = _group(Pricer(), "openai", "gpt-4o-mini", [(1000, 200, 400), (300, 50, 0)])
    rows = _rows(focus_lines(group, MONTH, NEXT))
    assert [row["SkuMeter"] for row in rows] == [
        "Input Tokens",
        "Output Tokens",
        "Cache Read Tokens",
    ]
    assert all(check_row(row) == [] for row in rows), [check_row(row) for row in rows]
    assert sum(Decimal(row["BilledCost"]) for row in rows) == total > 0
    by_meter = {row["SkuMeter"]: row for row in rows}
    assert by_meter["Input Tokens"]["PricingQuantity"] == "900"  # 1300 prompt - 400 cached
    assert Decimal(by_meter["Input Tokens"]["ListUnitPrice"]) == Decimal("0.15") / 1_000_000
    assert all(Decimal(r["ListCost"]) == Decimal(r["ContractedCost"]) for r in rows)  # list price
    assert {row["ProviderName"] for row in rows} == {"openai"}
    assert rows[0]["SkuPriceId"] == "openai/gpt-4o-mini/input"


def test_override_is_the_contracted_price_and_genai_prices_the_list_price() -> None:
    cheaper = PriceOverride(name="deal", input_mtok=Decimal("0.10"), output_mtok=Decimal("0.30"))
    pricer = Pricer({"gpt-4o-mini": cheaper})
    group, total = _group(pricer, "openai", "gpt-4o-mini", [(2000, 1000, 0)])
    rows = _rows(focus_lines(group, MONTH, NEXT))
    assert all(check_row(row) == [] for row in rows), [check_row(row) for row in rows]
    output = next(row for row in rows if row["SkuMeter"] == "Output Tokens")
    assert Decimal(output["ContractedUnitPrice"]) == Decimal("0.30") / 1_000_000
    assert Decimal(output["ListUnitPrice"]) == Decimal("0.6") / 1_000_000
    assert Decimal(output["ListCost"]) == 2 * Decimal(output["ContractedCost"])
    assert sum(Decimal(row["BilledCost"]) for row in rows) == total


def test_a_model_genai_prices_does_not_know_lists_at_its_contracted_price() -> None:
    local = PriceOverride(name="self-hosted", input_mtok=Decimal("0.05"), output_mtok=Decimal("1"))
    assert list_unit_prices("vllm", "acme-local-7b", DAY) is None
    group, total = _group(Pricer({"acme-local-7b": local}), "vllm", "acme-local-7b", [(70, 3, 0)])
    rows = _rows(focus_lines(group, MONTH, NEXT))
    assert all(check_row(row) == [] for row in rows)
    assert [row["ListUnitPrice"] for row in rows] == ["0.00000005", "0.000001"]
    assert sum(Decimal(row["ListCost"]) for row in rows) == total


def test_the_checker_catches_a_broken_row() -> None:
    group, _ = _group(Pricer(), "openai", "gpt-4o-mini", [(10, 10, 0)])
    row = _rows(focus_lines(group, MONTH, NEXT))[0]
    assert check_row({**row, "ListCost": "1"}) == ["ListCost != ListUnitPrice x PricingQuantity"]
    assert "ChargeFrequency='Daily'" in check_row({**row, "ChargeFrequency": "Daily"})
    assert "BillingAccountId is null" in check_row({**row, "BillingAccountId": ""})

"""A response-cache hit costs nothing and saves exactly what its answer costs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage

from meterline.settings import PriceOverride
from processors.cost.logic import GENAI_PRICES_SOURCE, Pricer
from schemas.events.v1 import RequestEvent

TS = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)


def request(**overrides: Any) -> RequestEvent:
    values: dict[str, Any] = {
        "request_id": "req-hit",
        "ts_start": TS,
        "ts_end": TS,
        "latency_ms": 0.4,
        "key_id": "key-1",
        "org": "acme",
        "provider": "anthropic",
        "model_used": "claude-3-5-haiku-latest",
        "endpoint": "/v1/messages",
        "status_code": 200,
        "input_tokens": 1234,
        "output_tokens": 567,
        "cache_read_tokens": 200,
        "cache": "hit",
        "cache_source_event_id": "ev-original",
    }
    values.update(overrides)
    return RequestEvent(**values)


@pytest.mark.parametrize("status", ["hit", "semantic_hit"])
def test_a_hit_costs_zero_and_saves_the_exact_genai_price(status: str) -> None:
    event = request(cache=status)
    cost = Pricer().price(event)
    expected = genai_prices.calc_price(
        Usage(input_tokens=1234, output_tokens=567, cache_read_tokens=200),
        model_ref="claude-3-5-haiku-latest",
        provider_id="anthropic",
        genai_request_timestamp=TS,
    ).total_price
    assert cost.saved_cost == expected > 0
    assert cost.total_cost == cost.input_cost == cost.output_cost == Decimal(0)
    assert (cost.input_tokens, cost.output_tokens, cost.cache_read_tokens) == (0, 0, 0)
    assert (cost.cache, cost.priced, cost.price_source) == (status, True, GENAI_PRICES_SOURCE)
    assert (cost.provider, cost.model) == ("anthropic", "claude-3-5-haiku-latest")


def test_a_miss_is_charged_as_always_and_saves_nothing() -> None:
    cost = Pricer().price(request(cache="miss"))
    assert cost.total_cost > 0 and cost.saved_cost == 0 and cost.cache == "miss"
    assert Pricer().price(request(cache=None)).cache is None


def test_an_override_prices_the_saving_and_stamps_its_source() -> None:
    overrides = {"claude-3-5-haiku-latest": PriceOverride(name="neg", input_mtok=Decimal("2"))}
    cost = Pricer(overrides).price(request(cache_read_tokens=0))
    assert cost.saved_cost == Decimal("2") * 1234 / 1_000_000
    assert cost.price_source == "override:neg"


def test_a_hit_on_an_unknown_model_is_flagged_unpriced() -> None:
    cost = Pricer().price(request(model_used="no-such-model-xyz", provider="mock"))
    assert (cost.priced, cost.saved_cost, cost.total_cost) == (False, 0, 0)

"""The budget guard's spend estimate prices cache reads and writes at their own rates."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from gateway.pricing import PriceEstimator
from meterline.settings import PriceOverride


def test_cache_reads_and_writes_are_priced_as_such() -> None:
    estimator = PriceEstimator()
    usage = Usage(
        input_tokens=1000, cache_read_tokens=600, cache_write_tokens=300, output_tokens=50
    )
    exact = calc_price(usage, "claude-3-5-haiku-latest", provider_id="anthropic").total_price
    estimate = estimator.cost("anthropic", "claude-3-5-haiku-latest", 1000, 50, 600, 300)
    assert estimate == pytest.approx(float(exact), rel=1e-9)
    plain = estimator.cost("anthropic", "claude-3-5-haiku-latest", 1000, 50)
    assert estimate != pytest.approx(plain)


def test_overrides_without_cache_prices_charge_the_input_rate() -> None:
    override = PriceOverride(input_mtok=Decimal("2"), output_mtok=Decimal("4"))
    with_cache = PriceOverride(
        input_mtok=Decimal("2"), output_mtok=Decimal("4"), cache_read_mtok=Decimal("0.5")
    )
    plain = PriceEstimator({"local": override}).cost("x", "local", 1000, 10, 400, 0)
    cached = PriceEstimator({"local": with_cache}).cost("x", "local", 1000, 10, 400, 0)
    assert plain == pytest.approx((1000 * 2 + 10 * 4) / 1e6)
    assert cached == pytest.approx((600 * 2 + 400 * 0.5 + 10 * 4) / 1e6)


def test_unknown_models_estimate_nothing() -> None:
    assert PriceEstimator().cost("nobody", "no-such-model", 10**6, 10**6, 5, 5) == 0.0

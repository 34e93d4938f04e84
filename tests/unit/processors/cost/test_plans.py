"""Price plans give genai-prices' own calc_price, digit for digit, for every bundled price."""

from __future__ import annotations

import random
from decimal import Decimal

from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice, Tier, TieredPrices, Usage

from processors.cost.plans import plan_for


def _every_bundled_price() -> list[ModelPrice]:
    prices = []
    for provider in get_snapshot().providers:
        for model in provider.models:
            if isinstance(model.prices, ModelPrice):
                prices.append(model.prices)
            else:
                prices += [conditional.prices for conditional in model.prices]
    return prices


def _usages(rng: random.Random, n: int) -> list[tuple[int, int, int, int]]:
    usages = [(0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0), (200_001, 5, 200_001, 0)]
    for _ in range(n):
        total = rng.choice([rng.randrange(0, 2_000), rng.randrange(0, 2_000_000)])
        read = rng.randrange(0, total + 1) if rng.random() < 0.5 else 0
        write = rng.randrange(0, total - read + 1) if rng.random() < 0.3 else 0
        usages.append((total, rng.randrange(0, 50_000), read, write))
    return usages


def _expected(price: ModelPrice, tokens: tuple[int, int, int, int]) -> list[str] | None:
    i, o, r, w = tokens
    try:
        got = price.calc_price(
            Usage(input_tokens=i, output_tokens=o, cache_read_tokens=r, cache_write_tokens=w)
        )
    except ValueError:
        return None
    return [str(got["input_price"]), str(got["output_price"]), str(got["total_price"])]


def test_a_plan_prices_every_bundled_price_as_calc_price_does() -> None:
    rng = random.Random(13)
    planned = 0
    for price in _every_bundled_price():
        plan = plan_for(price)
        if plan is None:
            continue  # left to calc_price itself
        planned += 1
        for tokens in _usages(rng, 4):
            got = plan.calc(tokens)
            expected = _expected(price, tokens)
            if got is None:
                continue  # the caller asks calc_price
            assert expected is not None, (price, tokens)
            assert [str(d) for d in got] == expected, (price, tokens)
    assert planned > 300  # nearly every bundled price is token-priced


def test_tiers_and_fees_are_priced_exactly() -> None:
    price = ModelPrice(
        input_mtok=TieredPrices(
            base=Decimal("1.25"), tiers=[Tier(start=200_000, price=Decimal("2.5"))]
        ),
        output_mtok=Decimal("10"),
        cache_read_mtok=Decimal("0.3125"),
        requests_kcount=Decimal("0.7"),
    )
    plan = plan_for(price)
    assert plan is not None
    for tokens in [(199_999, 10, 0, 0), (200_001, 10, 100_000, 0), (0, 0, 0, 0)]:
        got = plan.calc(tokens)
        assert got is not None
        assert [str(d) for d in got] == _expected(price, tokens)


def test_a_negative_count_is_left_to_genai_prices() -> None:
    price = ModelPrice(input_mtok=Decimal("1"), cache_read_mtok=Decimal("0.1"))
    plan = plan_for(price)
    assert plan is not None
    assert plan.calc((10, 0, 11, 0)) is None  # more cached than input: calc_price rejects it
    assert plan.calc((-1, 0, 0, 0)) is None


def test_the_plan_of_a_price_is_learned_once() -> None:
    price = ModelPrice(input_mtok=Decimal("3"), output_mtok=Decimal("15"))
    assert plan_for(price) is plan_for(price)

"""Pricing logic: exact Decimal money, equal to genai-prices, overrides, unknown models."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import orjson
import pytest
from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice

from meterline.settings import PriceOverride
from processors.cost.logic import (
    GENAI_PRICES_SOURCE,
    Pricer,
    PricingError,
    RejectedEvent,
    cost_for_payload,
    never_reached_a_provider,
    parse_request,
    price_request,
)
from schemas.events.v1 import CostEvent, RequestEvent

TS = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
MILLION = Decimal(1_000_000)


def request(**overrides: Any) -> RequestEvent:
    values: dict[str, Any] = {
        "request_id": "req-1",
        "ts_start": TS,
        "ts_end": datetime(2025, 10, 1, 12, 0, 2, tzinfo=UTC),
        "latency_ms": 2000.0,
        "key_id": "key-1",
        "org": "acme",
        "team": "search",
        "project": "bot",
        "user": "ann",
        "session_id": "sess-1",
        "provider": "openai",
        "model_used": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "status_code": 200,
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_read_tokens": 200,
    }
    values.update(overrides)
    return RequestEvent(**values)


def genai_total(event: RequestEvent, provider_id: str | None) -> Decimal:
    usage = Usage(
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cache_read_tokens=event.cache_read_tokens,
        cache_write_tokens=event.cache_write_tokens,
    )
    model = event.model_used or event.model_requested
    assert model is not None
    return genai_prices.calc_price(
        usage, model_ref=model, provider_id=provider_id, genai_request_timestamp=event.ts_start
    ).total_price


def parts_sum(cost: CostEvent) -> Decimal:
    return cost.input_cost + cost.output_cost + cost.cache_read_cost + cost.cache_write_cost


def test_gpt_4o_mini_price_by_hand() -> None:
    cost = price_request(request())

    # 800 uncached input at 0.15, 200 cached at 0.075, 500 output at 0.60 per MTok.
    assert cost.input_cost == Decimal(800) * Decimal("0.15") / MILLION
    assert cost.cache_read_cost == Decimal(200) * Decimal("0.075") / MILLION
    assert cost.output_cost == Decimal(500) * Decimal("0.6") / MILLION
    assert cost.total_cost == Decimal("0.000435")
    assert cost.priced is True
    assert cost.price_source == GENAI_PRICES_SOURCE == f"genai-prices@{genai_prices.__version__}"


@pytest.mark.parametrize(
    ("provider", "model", "tokens"),
    [
        ("openai", "gpt-4o-mini", {"input_tokens": 1234, "output_tokens": 567}),
        (
            "openai",
            "gpt-4o",
            {"input_tokens": 5000, "output_tokens": 900, "cache_read_tokens": 4096},
        ),
        (
            "anthropic",
            "claude-sonnet-4-5",
            {
                "input_tokens": 3000,
                "output_tokens": 700,
                "cache_read_tokens": 1000,
                "cache_write_tokens": 500,
            },
        ),
        (
            "anthropic",
            "claude-3-5-sonnet-20241022",
            {"input_tokens": 10, "output_tokens": 1, "cache_write_tokens": 5},
        ),
        # Over the 200k threshold every token pays the higher tier.
        (
            "google",
            "gemini-2.5-pro",
            {"input_tokens": 250_000, "output_tokens": 2000, "cache_read_tokens": 50_000},
        ),
    ],
)
def test_total_equals_genai_prices_exactly(
    provider: str, model: str, tokens: dict[str, int]
) -> None:
    event = request(provider=provider, model_used=model, **{"cache_read_tokens": 0, **tokens})

    cost = price_request(event)

    assert cost.priced is True
    assert cost.total_cost == genai_total(event, provider)
    assert parts_sum(cost) == cost.total_cost
    for value in (cost.input_cost, cost.output_cost, cost.cache_read_cost, cost.total_cost):
        assert isinstance(value, Decimal)
    assert cost.total_cost > 0


def test_tiered_price_applies_above_threshold() -> None:
    below = price_request(
        request(
            provider="google",
            model_used="gemini-2.5-pro",
            input_tokens=199_000,
            output_tokens=0,
            cache_read_tokens=0,
        )
    )
    above = price_request(
        request(
            provider="google",
            model_used="gemini-2.5-pro",
            input_tokens=250_000,
            output_tokens=1000,
            cache_read_tokens=0,
        )
    )

    assert below.input_cost == Decimal(199_000) * Decimal("1.25") / MILLION
    assert above.input_cost == Decimal(250_000) * Decimal("2.5") / MILLION
    assert above.output_cost == Decimal(1000) * Decimal(15) / MILLION


def test_cache_write_and_read_split_for_anthropic() -> None:
    cost = price_request(
        request(
            provider="anthropic",
            model_used="claude-3-5-sonnet-20241022",
            input_tokens=2000,
            output_tokens=100,
            cache_read_tokens=1000,
            cache_write_tokens=600,
        )
    )

    assert cost.cache_read_cost == Decimal(1000) * Decimal("0.3") / MILLION
    assert cost.cache_write_cost == Decimal(600) * Decimal("3.75") / MILLION
    assert cost.input_cost == Decimal(400) * Decimal(3) / MILLION  # 2000 - 1000 - 600
    assert cost.output_cost == Decimal(100) * Decimal(15) / MILLION
    assert parts_sum(cost) == cost.total_cost


def test_cache_write_without_a_cache_write_price_is_plain_input() -> None:
    # OpenAI does not charge cache writes: those tokens are ordinary input.
    cost = price_request(request(input_tokens=1000, cache_read_tokens=0, cache_write_tokens=300))

    assert cost.cache_write_cost == 0
    assert cost.input_cost == Decimal(1000) * Decimal("0.15") / MILLION
    assert parts_sum(cost) == cost.total_cost


def test_override_beats_genai_prices() -> None:
    overrides = {
        "gpt-4o-mini": PriceOverride(
            name="negotiated",
            input_mtok=Decimal("0.10"),
            output_mtok=Decimal("0.40"),
            cache_read_mtok=Decimal("0.01"),
        )
    }

    cost = price_request(request(), overrides)

    assert cost.price_source == "override:negotiated"
    assert cost.priced is True
    assert cost.input_cost == Decimal(800) * Decimal("0.10") / MILLION
    assert cost.cache_read_cost == Decimal(200) * Decimal("0.01") / MILLION
    assert cost.output_cost == Decimal(500) * Decimal("0.40") / MILLION
    assert cost.total_cost == Decimal("0.000282")


def test_override_prices_a_model_genai_prices_does_not_know() -> None:
    overrides = {
        "llama-3-70b-local": PriceOverride(
            name="selfhost", input_mtok=Decimal(1), output_mtok=Decimal(2)
        )
    }

    cost = price_request(
        request(provider="vllm", model_used="llama-3-70b-local", cache_read_tokens=100), overrides
    )

    # No cache price configured: cached tokens are charged as input.
    assert cost.input_cost == Decimal("0.001")
    assert cost.cache_read_cost == 0
    assert cost.total_cost == Decimal("0.002")
    assert cost.price_source == "override:selfhost"


def test_unknown_model_is_flagged_not_free() -> None:
    cost = price_request(request(provider="vllm", model_used="totally-unknown-model-xyz"))

    assert cost.priced is False
    assert cost.total_cost == 0
    assert cost.model == "totally-unknown-model-xyz"
    assert cost.price_source == GENAI_PRICES_SOURCE


def test_request_without_model_still_gets_one_unpriced_cost() -> None:
    # A provider answered but named no model: counted in showback, flagged as unpriced.
    # (A request refused before routing is `rejected`, tested below.)
    cost = price_request(
        request(
            model_used=None,
            model_requested=None,
            provider="vllm",
            status_code=200,
            input_tokens=0,
            output_tokens=0,
            cache_read_tokens=0,
        )
    )

    assert cost.priced is False
    assert cost.model is None
    assert cost.total_cost == 0


def test_failed_request_with_known_model_costs_zero_and_is_priced() -> None:
    cost = price_request(
        request(status_code=502, input_tokens=0, output_tokens=0, cache_read_tokens=0)
    )

    assert cost.priced is True
    assert cost.total_cost == 0


def test_model_requested_is_used_when_model_used_is_missing() -> None:
    cost = price_request(request(model_used=None, model_requested="gpt-4o-mini"))

    assert cost.model == "gpt-4o-mini"
    assert cost.total_cost == Decimal("0.000435")


@pytest.mark.parametrize("provider", ["mock", None, "anthropic"])
def test_provider_outside_genai_prices_falls_back_to_model_matching(provider: str | None) -> None:
    cost = price_request(request(provider=provider))

    assert cost.priced is True
    assert cost.total_cost == Decimal("0.000435")
    assert cost.provider == provider


def test_cost_event_is_deterministic_and_carries_the_request() -> None:
    event = request()
    pricer = Pricer()

    first, second = pricer.price(event), pricer.price(event)

    assert first.to_json() == second.to_json()
    assert first.event_id == event.event_id
    assert first.request_id == "req-1"
    assert first.request_ts == TS
    assert first.source_type == "request"
    assert (first.key_id, first.org, first.team, first.project, first.user, first.session_id) == (
        "key-1",
        "acme",
        "search",
        "bot",
        "ann",
        "sess-1",
    )
    assert (first.input_tokens, first.output_tokens, first.cache_read_tokens) == (1000, 500, 200)


def test_money_serializes_as_exact_decimal_strings() -> None:
    body = orjson.loads(price_request(request()).to_json())

    assert body["total_cost"] == "0.000435"
    assert body["priced"] is True
    assert CostEvent.model_validate(body).total_cost == Decimal("0.000435")


def test_cache_tokens_beyond_input_are_rejected_not_mispriced() -> None:
    with pytest.raises(PricingError, match="cache_read_tokens"):
        price_request(request(input_tokens=100, cache_read_tokens=500))


def test_negative_tokens_are_rejected() -> None:
    with pytest.raises(PricingError, match="output_tokens"):
        price_request(request(output_tokens=-5))


# --- parsing raw payloads ---------------------------------------------------------------


def test_non_json_payload_is_rejected_with_reason() -> None:
    with pytest.raises(RejectedEvent, match="Invalid JSON"):
        cost_for_payload(b"\xff\x00 not json", Pricer())


def test_missing_fields_are_named() -> None:
    body = orjson.loads(request().to_json())
    del body["request_id"], body["status_code"]

    with pytest.raises(RejectedEvent) as info:
        parse_request(orjson.dumps(body))

    assert "request_id" in info.value.reason
    assert "status_code" in info.value.reason


def test_wrong_types_are_named() -> None:
    body = orjson.loads(request().to_json())
    body["input_tokens"] = "lots"

    with pytest.raises(RejectedEvent, match="input_tokens"):
        cost_for_payload(orjson.dumps(body), Pricer())


def test_null_value_is_rejected() -> None:
    with pytest.raises(RejectedEvent, match="empty"):
        cost_for_payload(None, Pricer())


def test_other_event_types_are_rejected() -> None:
    body = orjson.loads(request().to_json())
    body["event_type"] = "span"

    with pytest.raises(RejectedEvent, match="event_type"):
        parse_request(orjson.dumps(body))


def test_newer_schema_version_and_unknown_fields_are_still_priced() -> None:
    body = orjson.loads(request().to_json())
    body["schema_version"] = 7
    body["some_future_field"] = {"x": 1}

    cost = cost_for_payload(orjson.dumps(body), Pricer())

    assert cost.total_cost == Decimal("0.000435")


def test_logic_never_imports_faust() -> None:
    code = (
        "import sys, processors.cost.logic; "
        "sys.exit(1 if any(m == 'faust' or m.startswith('faust.') for m in sys.modules) else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)

    assert result.returncode == 0, result.stderr.decode()


def _reference_cache_cost(model_price: Any, usage: Usage, kind: str) -> Decimal:
    """genai-prices' own arithmetic for the cache units of one kind, every other price 0."""
    prices = {k: v for k, v in vars(model_price).items() if not k.startswith("_") and v is not None}
    cache_keys = {k for k in prices if k.startswith("cache_") and f"_{kind}" in k}
    if not cache_keys:
        return Decimal(0)
    only = {k: (v if k in cache_keys else Decimal(0)) for k, v in prices.items()}
    return ModelPrice(**only).calc_price(usage)["total_price"]


def test_cache_split_matches_genai_prices_for_every_bundled_model() -> None:
    tokens = {
        "input_tokens": 300_000,
        "output_tokens": 1000,
        "cache_read_tokens": 70_000,
        "cache_write_tokens": 30_000,
    }
    usage = Usage(**tokens)
    checked = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            event = request(provider=provider.id, model_used=model.id, **tokens)
            try:
                expected = genai_prices.calc_price(
                    usage, model_ref=model.id, provider_id=provider.id, genai_request_timestamp=TS
                )
            except (LookupError, ValueError):
                continue  # not priced per token, or matched elsewhere: not our concern here
            if expected.model is not model:
                continue
            cost = price_request(event)
            prices = expected.model_price
            assert cost.total_cost == expected.total_price, model.id
            assert cost.output_cost == expected.output_price, model.id
            assert cost.cache_read_cost == _reference_cache_cost(prices, usage, "read"), model.id
            assert cost.cache_write_cost == _reference_cache_cost(prices, usage, "write"), model.id
            assert parts_sum(cost) == cost.total_cost
            checked += 1
    assert checked > 300


@pytest.mark.parametrize(
    ("status", "error_type", "model"),
    [
        (401, "invalid_api_key", None),
        (403, "blocked", "gpt-4o-mini"),
        (413, "request_too_large", "gpt-4o-mini"),
        (429, "rate_limit_exceeded", "gpt-4o-mini"),
        (400, "invalid_request_error", None),  # no model
    ],
)
def test_a_request_no_provider_saw_costs_exactly_0_and_is_not_unpriced(
    status: int, error_type: str, model: str | None
) -> None:
    refused = request(
        provider=None, model_used=model, status_code=status, error_type=error_type, output_tokens=0
    )
    assert never_reached_a_provider(refused)
    cost = price_request(refused)
    assert cost.rejected and cost.priced and cost.price_source == "rejected"
    assert cost.total_cost == 0 and cost.input_tokens == cost.output_tokens == 0


def test_an_upstream_error_or_a_success_is_not_a_refusal() -> None:
    for served in (request(), request(status_code=429), request(status_code=502)):
        assert not never_reached_a_provider(served)
        assert not price_request(served).rejected

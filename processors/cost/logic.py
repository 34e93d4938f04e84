"""Pricing: one RequestEvent in, exactly one CostEvent out. Pure: no Kafka, no Faust.

Token convention (the same as genai-prices and OpenAI's usage block):
`input_tokens` is the WHOLE prompt, cached tokens included; `cache_read_tokens` and
`cache_write_tokens` are the parts of it read from / written to the provider's cache.
So uncached input = input_tokens - cache_read_tokens - cache_write_tokens, and each part
is charged exactly once at its own rate. The gateway records OpenAI's `prompt_tokens`
as input_tokens and `prompt_tokens_details.cached_tokens` as cache_read_tokens; for
Anthropic, whose `input_tokens` excludes cache tokens, it must add them. A request whose
cache tokens exceed its input tokens breaks the convention and is rejected (dead letter)
rather than priced wrongly.

A response-cache hit (RequestEvent.cache `hit` or `semantic_hit`) carries its original
answer's provider, model and tokens: its CostEvent costs 0 with 0 tokens (nothing was
billed, no budget moves) and `saved_cost` is what those tokens cost, priced the same way.

Money is Decimal end to end. `total_cost` is genai-prices' `total_price` to the last
digit; the four parts always sum to it (input_cost also carries any non-token fee).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib.metadata import version

from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id, get_snapshot
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    PriceCalculation,
    Provider,
    TieredPrices,
    Usage,
    calc_unit_price,
)
from pydantic import ValidationError

from meterline.settings import PriceOverride
from processors.cost.plans import Tokens, plan_for
from processors.decoded import decode
from processors.errors import Rejected, describe_validation_error
from schemas.events.v1 import CostEvent, RequestEvent
from schemas.policies import CACHE_HITS

__all__ = [
    "GENAI_PRICES_SOURCE",
    "REJECTED_SOURCE",
    "STAGE",
    "CostSplit",
    "Pricer",
    "PricingError",
    "Quote",
    "RejectedEvent",
    "TokenUsage",
    "cost_for_payload",
    "never_reached_a_provider",
    "parse_request",
    "price_request",
]

GENAI_PRICES_SOURCE = f"genai-prices@{version('genai-prices')}"
REJECTED_SOURCE = "rejected"  # price_source of a request no provider saw (costs 0)
STAGE = "processors.cost"
_ZERO = Decimal(0)
_PER_MTOK = 1_000_000  # genai-prices' `per` for every token unit
_MAX_CACHED_PROVIDERS = 1000
# No provider processed them: nothing to count (a refusal, or a response-cache hit).
_NO_TOKENS = {
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
}


class RejectedEvent(Rejected):
    """The input cannot become a CostEvent; `reason` says why (goes to the dead letter)."""


class PricingError(RejectedEvent):
    """The event parsed but its usage cannot be priced (e.g. cache tokens > input tokens)."""


@dataclass(frozen=True)
class CostSplit:
    input_cost: Decimal
    output_cost: Decimal
    cache_read_cost: Decimal
    cache_write_cost: Decimal
    total_cost: Decimal

    @classmethod
    def zero(cls) -> CostSplit:
        return cls(_ZERO, _ZERO, _ZERO, _ZERO, _ZERO)


@dataclass(frozen=True)
class TokenUsage:
    """What is priced, whatever it came from (a gateway request or an ingested span)."""

    model: str | None
    provider: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    at: datetime  # prices are time-aware


@dataclass(frozen=True)
class Quote:
    split: CostSplit
    price_source: str
    priced: bool


class Pricer:
    """Prices token usage from genai-prices' bundled data, with per-model overrides first."""

    def __init__(self, overrides: Mapping[str, PriceOverride] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._override_prices = {
            model: _override_model_price(override) for model, override in self._overrides.items()
        }
        self._genai_provider: dict[str, bool] = {}  # provider name -> known to genai-prices

    def price(self, event: RequestEvent) -> CostEvent:
        model = event.model_used or event.model_requested
        if never_reached_a_provider(event):
            # Exactly 0, and known to be: not an unpriced model (no warning, no guess).
            cost = _cost_event(event, model, CostSplit.zero(), REJECTED_SOURCE, True)
            return cost.model_copy(update={"rejected": True, **_NO_TOKENS})
        quote = self.quote(
            TokenUsage(
                model=model,
                provider=event.provider,
                input_tokens=event.input_tokens,
                output_tokens=event.output_tokens,
                cache_read_tokens=event.cache_read_tokens,
                cache_write_tokens=event.cache_write_tokens,
                at=event.ts_start,
            )
        )
        if event.cache in CACHE_HITS:
            return _saving_event(event, model, quote)
        return _cost_event(event, model, quote.split, quote.price_source, quote.priced)

    def quote(self, tokens: TokenUsage) -> Quote:
        """The exact price of `tokens`; unknown models give `priced=False`, never a silent 0."""
        model = tokens.model
        usage = _usage_of(tokens)
        if model and model in self._overrides:
            split = _override_split(self._override_prices[model], usage, tokens)
            return Quote(split, f"override:{self._overrides[model].name}", True)
        if model:
            provider = tokens.provider if self._is_genai_provider(tokens.provider) else None
            priced = _genai_price(model, provider, usage, tokens)
            if priced is not None:
                model_price, output_price, total_price = priced
                split = _split_of(
                    model_price, tokens, total_price=total_price, output_price=output_price
                )
                return Quote(split, GENAI_PRICES_SOURCE, True)
        return Quote(CostSplit.zero(), GENAI_PRICES_SOURCE, False)

    def _is_genai_provider(self, provider: str | None) -> bool:
        # Looked up once per name: the scan over genai-prices' providers costs ~20 us.
        if not provider:
            return False
        known = self._genai_provider.get(provider)
        if known is None:
            known = find_provider_by_id(get_snapshot().providers, provider) is not None
            if len(self._genai_provider) < _MAX_CACHED_PROVIDERS:
                self._genai_provider[provider] = known
        return known


def never_reached_a_provider(event: RequestEvent) -> bool:
    """The gateway refused it itself: an error, and no provider was tried (the gateway sets
    `provider` from the routing's tries; a cache hit is a success, never a refusal)."""
    return event.status_code >= 400 and not event.provider


def price_request(
    event: RequestEvent, overrides: Mapping[str, PriceOverride] | None = None
) -> CostEvent:
    """One-off convenience; long-lived callers keep a `Pricer`."""
    return Pricer(overrides).price(event)


def parse_request(payload: bytes) -> RequestEvent:
    """Validate raw bytes from the requests topic; unknown fields are ignored."""
    try:
        return decode(RequestEvent, payload)
    except ValidationError as exc:
        raise RejectedEvent(f"invalid RequestEvent: {describe_validation_error(exc)}") from exc


def cost_for_payload(payload: bytes | None, pricer: Pricer) -> CostEvent:
    """Raw message value -> CostEvent, or RejectedEvent with a reason for the dead letter."""
    if payload is None:
        raise RejectedEvent("invalid RequestEvent: empty message (null value)")
    return pricer.price(parse_request(payload))


# --- genai-prices ---------------------------------------------------------------------


def _usage_of(tokens: TokenUsage) -> Usage | None:
    """genai-prices' Usage of `tokens`; None when a price plan can do without one."""
    if min(_counts_of(tokens)) >= 0:
        return None  # built only if genai-prices itself must price (`_full_usage`)
    return _full_usage(tokens)


def _counts_of(tokens: TokenUsage) -> Tokens:
    return (
        tokens.input_tokens,
        tokens.output_tokens,
        tokens.cache_read_tokens,
        tokens.cache_write_tokens,
    )


def _full_usage(tokens: TokenUsage) -> Usage:
    try:
        return Usage(
            input_tokens=tokens.input_tokens,
            output_tokens=tokens.output_tokens,
            cache_read_tokens=tokens.cache_read_tokens,
            cache_write_tokens=tokens.cache_write_tokens,
        )
    except ValueError as exc:  # negative counts
        raise PricingError(f"invalid token counts: {exc}") from exc


def _genai_price(
    model: str, provider: str | None, usage: Usage | None, tokens: TokenUsage
) -> tuple[ModelPrice, Decimal, Decimal] | None:
    """(model price, output price, total price) as genai-prices' calc_price gives them,
    through the model price's plan when it has one; None when the model is unknown."""
    snapshot = get_snapshot()
    found = _find_model(snapshot, model, provider)
    if found is not None and found[0].id != "groq":  # groq bills some audio its own way
        try:
            model_price = found[1].get_prices(tokens.at)
        except LookupError:
            pass  # calc_price below says what genai-prices makes of it
        else:
            plan = plan_for(model_price)
            priced = plan.calc(_counts_of(tokens)) if plan is not None else None
            if priced is not None:
                return model_price, priced[1], priced[2]
    calculation = _genai_calculation(model, provider, usage or _full_usage(tokens), tokens.at)
    if calculation is None:
        return None
    return calculation.model_price, calculation.output_price, calculation.total_price


def _genai_calculation(
    model: str, provider: str | None, usage: Usage, at: datetime
) -> PriceCalculation | None:
    """genai-prices' calculation, or None when it does not know the model.

    `provider` is a genai-prices provider id or None. A local provider name ("mock",
    "vllm") would only make the lookup fail, so the caller passes None and we match on
    the model alone; the model-only match is also the fallback when the provider does
    not list the model.
    """
    snapshot = get_snapshot()
    attempts = [provider, None] if provider else [None]
    for provider_id in attempts:
        found = _find_model(snapshot, model, provider_id)
        if found is None:
            continue
        genai_provider, model_info = found
        try:
            # What genai_prices.calc_price does once the model is found, exactly.
            return model_info.calc_price(
                usage,
                genai_provider,
                genai_request_timestamp=at,
                auto_update_timestamp=snapshot.timestamp if snapshot.from_auto_update else None,
            )
        except LookupError:
            continue
        except ValueError as exc:  # usage that contradicts itself, e.g. cache > input
            raise PricingError(f"cannot price {model!r}: {exc}") from exc
    return None


# (snapshot, model, provider id) -> genai-prices' match, None when it has none. Matching a
# model reference scans the providers' match rules (most of calc_price's time); the
# match depends only on these, so it is looked up once. Bounded: names come from traffic.
_found: dict[tuple[int, str, str | None], tuple[Provider, ModelInfo] | None] = {}
_found_snapshot: list[DataSnapshot] = []
_MAX_CACHED_MODELS = 10_000


def _find_model(
    snapshot: DataSnapshot, model: str, provider_id: str | None
) -> tuple[Provider, ModelInfo] | None:
    if not _found_snapshot or _found_snapshot[0] is not snapshot:  # a new snapshot: forget
        _found.clear()
        _found_snapshot[:] = [snapshot]
    key = (id(snapshot), model, provider_id)
    try:
        return _found[key]
    except KeyError:
        pass
    try:
        found: tuple[Provider, ModelInfo] | None = snapshot.find_provider_model(
            model, None, provider_id, None
        )
    except LookupError:
        found = None
    if len(_found) < _MAX_CACHED_MODELS:
        _found[key] = found
    return found


def _split_of(
    model_price: ModelPrice, tokens: TokenUsage, total_price: Decimal, output_price: Decimal
) -> CostSplit:
    """Split a price into input / output / cache read / cache write, summing to the total.

    We report only the four base usage keys, so in genai-prices' decomposition the cache
    read (write) leaf is exactly `cache_read_tokens` (`cache_write_tokens`) when that unit
    has a price, charged by its own `calc_unit_price` with the tier chosen by the total
    input tokens. A test checks this against genai-prices for every bundled model.
    """
    read_price, write_price = model_price.cache_read_mtok, model_price.cache_write_mtok
    cache_read = _cache_cost(read_price, tokens.cache_read_tokens, tokens.input_tokens)
    cache_write = _cache_cost(write_price, tokens.cache_write_tokens, tokens.input_tokens)
    # Whatever is neither output nor cache (uncached input, per-request fees) is input.
    input_cost = total_price - output_price - cache_read - cache_write
    return CostSplit(input_cost, output_price, cache_read, cache_write, total_price)


def _cache_cost(price: Decimal | TieredPrices | None, tokens: int, input_tokens: int) -> Decimal:
    # No price for the cache unit: genai-prices charges those tokens as plain input.
    if price is None or not tokens:
        return _ZERO
    return calc_unit_price(price, tokens, input_tokens, _PER_MTOK)


def _override_split(model_price: ModelPrice, usage: Usage | None, tokens: TokenUsage) -> CostSplit:
    plan = plan_for(model_price)
    priced = plan.calc(_counts_of(tokens)) if plan is not None else None
    if priced is not None:
        return _split_of(model_price, tokens, total_price=priced[2], output_price=priced[1])
    try:
        result = model_price.calc_price(usage or _full_usage(tokens))
    except ValueError as exc:
        raise PricingError(f"cannot price usage {usage!r}: {exc}") from exc
    return _split_of(
        model_price, tokens, total_price=result["total_price"], output_price=result["output_price"]
    )


def _override_model_price(override: PriceOverride) -> ModelPrice:
    # Unset cache prices mean cache tokens are charged as plain input, as in genai-prices.
    return ModelPrice(
        input_mtok=override.input_mtok,
        output_mtok=override.output_mtok,
        cache_read_mtok=override.cache_read_mtok,
        cache_write_mtok=override.cache_write_mtok,
    )


# --- events ---------------------------------------------------------------------------


def _cost_event(
    event: RequestEvent, model: str | None, split: CostSplit, source: str, priced: bool
) -> CostEvent:
    # Deterministic: the same request always yields the same CostEvent (same event_id,
    # same ts), so a replay after a crash is deduplicated by the sink.
    return CostEvent(
        event_id=event.event_id,
        ts=event.ts_end,
        source=STAGE,
        request_id=event.request_id,
        source_type="request",
        request_ts=event.ts_start,
        key_id=event.key_id,
        org=event.org,
        team=event.team,
        project=event.project,
        user=event.user,
        session_id=event.session_id,
        provider=event.provider,
        model=model,
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cache_read_tokens=event.cache_read_tokens,
        cache_write_tokens=event.cache_write_tokens,
        input_cost=split.input_cost,
        output_cost=split.output_cost,
        cache_read_cost=split.cache_read_cost,
        cache_write_cost=split.cache_write_cost,
        total_cost=split.total_cost,
        price_source=source,
        priced=priced,
        cache=event.cache,
    )


def _saving_event(event: RequestEvent, model: str | None, quote: Quote) -> CostEvent:
    # A hit bills nothing: the costs and tokens stay 0, the quote is what it saved.
    billed = _cost_event(event, model, CostSplit.zero(), quote.price_source, quote.priced)
    return billed.model_copy(
        update={
            **_NO_TOKENS,
            "cache": event.cache,
            "saved_cost": quote.split.total_cost,
        }
    )

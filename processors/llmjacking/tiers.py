"""Price tier of a model and the spend of a call, looked up once per model name. Pure.

Reuses the cost agent's `Pricer` (genai-prices plus the configured overrides), so the
"pricier model" and "spend rate" features rank models as spend is computed. Unknown models
have no tier (None): they can be enumeration probes, never "pricier". The detector's spend
is a float estimate (input and output tokens at list prices): a rate compared with a
rate, never billed or stored; the exact Decimal cost is the cost agent's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from meterline.settings import PriceOverride
from processors.cost.logic import Pricer, TokenUsage

__all__ = ["ModelTiers"]

# A typical chat call; cache tokens left out so every model is compared alike.
_REFERENCE_INPUT = 1000
_REFERENCE_OUTPUT = 500
_PER = 1_000_000  # tokens quoted to find the per-token prices
_MAX_CACHED = 5000  # model names come from client traffic


class ModelTiers:
    def __init__(self, overrides: Mapping[str, PriceOverride] | None = None) -> None:
        self._pricer = Pricer(overrides)
        self._rates: dict[str, tuple[float, float] | None] = {}
        self._at = datetime.now(UTC)  # one price snapshot: tiers only need the ranking

    def rates(self, model: str | None) -> tuple[float, float] | None:
        """(USD per input token, USD per output token), None for an unpriced model."""
        if not model:
            return None
        if model in self._rates:
            return self._rates[model]
        found = self._quote(model, _PER, 0), self._quote(model, 0, _PER)
        rates = None if None in found else (found[0] / _PER, found[1] / _PER)  # type: ignore[operator]
        if len(self._rates) < _MAX_CACHED:
            self._rates[model] = rates
        return rates

    def price(self, model: str | None) -> float | None:
        """USD of a reference call (1,000 tokens in, 500 out); None if unpriced or free."""
        rates = self.rates(model)
        if rates is None:
            return None
        price = rates[0] * _REFERENCE_INPUT + rates[1] * _REFERENCE_OUTPUT
        return price if price > 0 else None

    def cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float:
        rates = self.rates(model)
        return 0.0 if rates is None else rates[0] * input_tokens + rates[1] * output_tokens

    def _quote(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        quote = self._pricer.quote(
            TokenUsage(model, None, input_tokens, output_tokens, 0, 0, self._at)
        )
        return float(quote.split.total_cost) if quote.priced else None

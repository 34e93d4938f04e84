"""Price tier of a model: USD for a reference call, looked up once per model name. Pure.

Reuses the cost agent's `Pricer` (genai-prices plus the configured overrides), so the
"more expensive model" signal ranks models exactly as spend is computed. Unknown models
have no tier (None): they can be enumeration probes, never "expensive".
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
_MAX_CACHED = 5000  # model names come from client traffic


class ModelTiers:
    def __init__(self, overrides: Mapping[str, PriceOverride] | None = None) -> None:
        self._pricer = Pricer(overrides)
        self._cache: dict[str, float | None] = {}
        self._at = datetime.now(UTC)  # one price snapshot: tiers only need the ranking

    def price(self, model: str | None) -> float | None:
        if not model:
            return None
        if model in self._cache:
            return self._cache[model]
        quote = self._pricer.quote(
            TokenUsage(model, None, _REFERENCE_INPUT, _REFERENCE_OUTPUT, 0, 0, self._at)
        )
        price = (
            float(quote.split.total_cost) if quote.priced and quote.split.total_cost > 0 else None
        )
        if len(self._cache) < _MAX_CACHED:
            self._cache[model] = price
        return price

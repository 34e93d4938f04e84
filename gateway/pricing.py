"""A cheap spend estimate for the local budget guard: USD per token, memoized per model.

Exact money is the processors' job (Decimal, cache splits, tiers); the guard only needs
"about how much did this gateway spend since the last BudgetState", so each model's
input/output price is looked up once (price overrides first, then genai-prices) and a
request costs two multiplications. Unknown models count as 0 here (the processors flag
them as unpriced).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from meterline.settings import PriceOverride

__all__ = ["PriceEstimator"]

log = logging.getLogger(__name__)

_MTOK = 1_000_000


class PriceEstimator:
    def __init__(self, overrides: Mapping[str, PriceOverride] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._rates: dict[tuple[str | None, str], tuple[float, float]] = {}

    def rates(self, provider: str | None, model: str) -> tuple[float, float]:
        """(USD per input token, USD per output token)."""
        found = self._rates.get((provider, model))
        if found is None:
            found = self._lookup(provider, model)
            if len(self._rates) < 10_000:  # clients choose model names: bound the memo
                self._rates[(provider, model)] = found
        return found

    def cost(
        self, provider: str | None, model: str, input_tokens: int, output_tokens: int
    ) -> float:
        rate_in, rate_out = self.rates(provider, model)
        return input_tokens * rate_in + output_tokens * rate_out

    def _lookup(self, provider: str | None, model: str) -> tuple[float, float]:
        override = self._overrides.get(model)
        if override is not None:
            return float(override.input_mtok) / _MTOK, float(override.output_mtok) / _MTOK
        from genai_prices import Usage, calc_price

        # Our provider names are routing names ("mock", "local-vllm"); when genai-prices
        # does not know one, match on the model alone, as the cost processor does.
        for provider_id in dict.fromkeys((provider, None)):
            try:
                price = calc_price(
                    Usage(input_tokens=_MTOK, output_tokens=_MTOK), model, provider_id=provider_id
                )
            except Exception:  # unknown model or provider: try the next, never an error
                continue
            return float(price.input_price) / _MTOK, float(price.output_price) / _MTOK
        return 0.0, 0.0

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

Rates = tuple[float, float, float, float]  # USD per token: input, output, cache read, write


class PriceEstimator:
    def __init__(self, overrides: Mapping[str, PriceOverride] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._rates: dict[tuple[str | None, str], Rates] = {}

    def rates(self, provider: str | None, model: str) -> Rates:
        """USD per token: (input, output, cache read, cache write)."""
        found = self._rates.get((provider, model))
        if found is None:
            found = self._lookup(provider, model)
            if len(self._rates) < 10_000:  # clients choose model names: bound the memo
                self._rates[(provider, model)] = found
        return found

    def cost(
        self,
        provider: str | None,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """`input_tokens` is the whole prompt, cache reads and writes included (as in
        RequestEvent); each part at its own rate (Anthropic reads ~0.1x, writes ~1.25x)."""
        rate_in, rate_out, rate_read, rate_write = self.rates(provider, model)
        uncached = max(0, input_tokens - cache_read_tokens - cache_write_tokens)
        return (
            uncached * rate_in
            + cache_read_tokens * rate_read
            + cache_write_tokens * rate_write
            + output_tokens * rate_out
        )

    def _lookup(self, provider: str | None, model: str) -> Rates:
        override = self._overrides.get(model)
        if override is not None:
            rate_in = float(override.input_mtok) / _MTOK
            read = override.cache_read_mtok
            write = override.cache_write_mtok
            return (
                rate_in,
                float(override.output_mtok) / _MTOK,
                float(read) / _MTOK if read is not None else rate_in,
                float(write) / _MTOK if write is not None else rate_in,
            )
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
            rate_in = float(price.input_price) / _MTOK
            # A prompt read (written) whole from the cache: its input price is that rate.
            cached = []
            for part in ("cache_read_tokens", "cache_write_tokens"):
                try:
                    usage = Usage(input_tokens=_MTOK, **{part: _MTOK})
                    cached.append(float(price.model_price.calc_price(usage)["input_price"]) / _MTOK)
                except Exception:  # no cache price: the plain input rate
                    cached.append(rate_in)
            return rate_in, float(price.output_price) / _MTOK, cached[0], cached[1]
        return 0.0, 0.0, 0.0, 0.0

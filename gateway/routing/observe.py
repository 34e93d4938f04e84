"""Prometheus series of routing: tries per upstream, retries, fallbacks, breaker states.

Derived after each request from its attempts (nothing is counted on the router's inner
loop), and the breaker states read from the router at scrape time.
"""

from __future__ import annotations

from gateway.metrics import Metrics, label_value
from gateway.routing.router import Attempt, Router

__all__ = ["BREAKER_STATE", "FALLBACKS", "RETRIES", "RoutingMetrics"]

RETRIES = "meterline_gateway_retries_total"
FALLBACKS = "meterline_gateway_fallbacks_total"
BREAKER_STATE = "meterline_gateway_breaker_state"
_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class RoutingMetrics:
    def __init__(self, metrics: Metrics, router: Router) -> None:
        self._metrics = metrics
        self._router = router
        metrics.counter(RETRIES, "Tries after a failure within the same group, by deployment.")
        metrics.counter(FALLBACKS, "Moves to a fallback group, by group left and group tried.")
        metrics.gauge_series(
            BREAKER_STATE,
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open.",
            self._breakers,
        )

    def _breakers(self) -> list[tuple[str, float]]:
        now = self._router.now()
        return [
            (
                f'deployment="{label_value(d.name)}",provider="{label_value(d.provider_name)}"',
                _STATE_VALUE[d.breaker.state_at(now)],
            )
            for d in self._router.deployments
        ]

    def observe(self, attempts: list[Attempt]) -> None:
        previous: Attempt | None = None
        for attempt in attempts:
            outcome = str(attempt.status) if attempt.status else attempt.error or "error"
            self._metrics.observe_upstream(
                attempt.provider,
                attempt.deployment,
                attempt.model,
                outcome,
                attempt.latency_ms / 1000,
            )
            if previous is not None:
                if previous.group == attempt.group:
                    labels = f'deployment="{label_value(previous.deployment)}"'
                    self._metrics.inc(RETRIES, labels)
                else:
                    left, tried = label_value(previous.group), label_value(attempt.group)
                    self._metrics.inc(FALLBACKS, f'from="{left}",to="{tried}"')
            previous = attempt

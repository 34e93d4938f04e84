"""A circuit breaker per deployment: a dead upstream costs one probe, not a timeout per
request.

closed --(`failures` consecutive failures)--> open --(`cooldown_s`)--> half-open
half-open: exactly one request (the probe) goes through; its success closes the breaker,
its failure opens it for another cooldown. Times are monotonic seconds passed in.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    __slots__ = (
        "_before_success",
        "_cooldown_s",
        "_failures",
        "_opened_at",
        "_probing",
        "failures",
        "state",
    )

    def __init__(self, failures: int, cooldown_s: float) -> None:
        self._failures = failures
        self._cooldown_s = cooldown_s
        self.state: BreakerState = "closed"
        self.failures = 0  # consecutive
        self._opened_at = 0.0
        self._probing = False
        self._before_success = 0  # the consecutive failures the last success reset

    def state_at(self, now: float) -> BreakerState:
        """The state as the next request would find it (an open breaker past its
        cooldown is half-open), for display; `state` changes only when asked to pass."""
        if self.state == "open" and now >= self._opened_at + self._cooldown_s:
            return "half_open"
        return self.state

    def available(self, now: float) -> bool:
        """Whether a request could go now (without claiming the half-open probe)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return now >= self._opened_at + self._cooldown_s
        return not self._probing

    def acquire(self, now: float) -> bool:
        """Claim the right to send one request; in half-open, only the probe gets it."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if now < self._opened_at + self._cooldown_s:
                return False
            self.state = "half_open"
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        self.state = "closed"
        self._before_success = self.failures
        self.failures = 0
        self._probing = False

    def success_retracted(self, now: float) -> None:
        """What looked like a success failed after all (a stream broke off after its first
        event): a failure that continues the run the success had reset."""
        self.failures = max(self.failures, self._before_success)
        self._before_success = 0
        self.failure(now)

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.state == "half_open" or self.failures >= self._failures:
            self.state = "open"
            self._opened_at = now
        self._probing = False

    def release(self) -> None:
        """The request ended in a way that says nothing of the upstream's health (a client
        error, a cancelled call): a probe may be sent again."""
        self._probing = False

"""The enforcement step of the hot path: staleness policy, decisions, throttles, budgets.

`admit()` raises the error to answer (403 / 429 / 503) or returns the ids of the budgets
the request counts against. Dict lookups only; the clocks are injected so the logic is
unit-tested without Kafka or real time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from gateway.budgets import BudgetGuard
from gateway.enforcement import DEFAULT_THROTTLE_RPM, EnforcementView
from gateway.errors import Blocked, BudgetExceeded, EnforcementUnavailable, Throttled
from gateway.metrics import Metrics
from gateway.ratelimit import SubjectThrottle
from gateway.record import RequestRecord
from schemas.subjects import request_subjects
from schemas.topics import control_key

__all__ = ["STALE_COUNTER", "Enforcer"]

log = logging.getLogger(__name__)

STALE_COUNTER = "meterline_gateway_enforcement_stale_total"
_LOG_EVERY_S = 10.0


class Enforcer:
    def __init__(
        self,
        view: EnforcementView,
        budgets: BudgetGuard,
        *,
        view_age_s: Callable[[], float],
        stale_after_s: float,
        fail_mode: Literal["open", "closed"],
        metrics: Metrics,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.view = view
        self.budgets = budgets
        self.throttle = SubjectThrottle()
        self._view_age_s = view_age_s
        self._stale_after_s = stale_after_s
        self._fail_closed = fail_mode == "closed"
        self._metrics = metrics
        self._wall = wall
        self._monotonic = monotonic
        self._logged_at = -_LOG_EVERY_S
        metrics.counter(STALE_COUNTER, "Requests decided while the enforcement view was stale.")

    def admit(self, record: RequestRecord) -> tuple[str, ...]:
        """Raise Blocked/Throttled/BudgetExceeded/EnforcementUnavailable, or return the ids
        of the budgets this request's spend counts against."""
        key = record.key
        assert key is not None  # authenticated before
        age = self._view_age_s()
        if age > self._stale_after_s:
            self._stale(record, age)
        subjects = request_subjects(key.subjects, record.session_id)
        now = self._wall()
        block, throttles = self.view.check(subjects, now)
        if block is not None:
            record.enforcement = block.summary()
            raise Blocked(
                f"{block.subject} is blocked ({block.source}): {block.reason or 'no reason given'}",
                subject=block.subject,
                source=block.source,
                reason=block.reason,
            )
        for decision in throttles:
            record.enforcement = decision.summary()
            wait = self.throttle.acquire(decision.subject, decision.throttle_rpm, self._monotonic())
            if wait:
                raise Throttled(
                    f"{decision.subject} is throttled to {decision.throttle_rpm} requests per "
                    f"minute ({decision.source}): {decision.reason or 'no reason given'}",
                    headers={"retry-after": str(wait)},
                )
        budget_ids = self.budgets.budgets_for(key.budget_ids, subjects)
        if budget_ids:
            hit = self.budgets.check(budget_ids, now)
            if hit is not None:
                record.enforcement = hit.summary()
                if hit.action == "block":
                    raise BudgetExceeded(
                        hit.message(),
                        subject=hit.subject,
                        source="budget",
                        reason="hard budget limit reached",
                        extra={"budget_id": hit.budget_id},
                    )
                rpm = hit.throttle_rpm if hit.throttle_rpm is not None else DEFAULT_THROTTLE_RPM
                wait = self.throttle.acquire(
                    control_key("budget", hit.budget_id), rpm, self._monotonic()
                )
                if wait:
                    raise Throttled(
                        f"{hit.message()}; throttled to {rpm} requests per minute",
                        headers={"retry-after": str(wait)},
                    )
        return budget_ids

    def _stale(self, record: RequestRecord, age: float) -> None:
        mode = "closed" if self._fail_closed else "open"
        self._metrics.inc(STALE_COUNTER, f'mode="{mode}"')
        record.enforcement = {"action": f"fail_{mode}", "source": "stale_view"}
        now = self._monotonic()
        if now - self._logged_at >= _LOG_EVERY_S:  # one line per interval, not per request
            self._logged_at = now
            log.warning(
                "enforcement view is %.1fs old (limit %.1fs): failing %s",
                age,
                self._stale_after_s,
                mode,
            )
        if self._fail_closed:
            raise EnforcementUnavailable(
                "the gateway cannot confirm current enforcement decisions (control plane "
                "unreachable or lagging); retry later",
                headers={"retry-after": "5"},
            )

"""The local budget guard (ARCHITECTURE §8): refuse a request that would cross a hard limit.

It keeps the BudgetRecords (control topic) and the latest BudgetState per budget
(`meterline.budgets`), plus this gateway's own estimated spend since that snapshot
(`gateway.pricing`). A budget applies to a request when its subject is one of the
request's subjects or its id is in the key's `budget_ids`. A budget is exhausted when its
latest state says `hard`, or when the snapshot's spend plus our own spend since reaches
the limit. What happens then follows `action_on_hard`: `block` refuses (403), `throttle`
limits the budget to `throttle_rpm`, `alert` lets traffic through.

Choices, kept cheap on purpose: money here is a float estimate (the processors hold the
exact Decimal books); our own spend resets with each new snapshot, which may not yet
include our last few requests, so overspend stays bounded by about one snapshot interval
of this gateway's traffic; a snapshot whose period has ended is ignored; a budget with no
snapshot yet is not enforced locally (the processors' decisions still are).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.enforcement import parse_ts

__all__ = ["BudgetGuard", "BudgetHit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Budget:
    budget_id: str
    subject: str
    limit_usd: float
    action_on_hard: str
    throttle_rpm: int | None
    record: dict[str, Any]


@dataclass(slots=True)
class _Snapshot:
    subject: str
    spent_usd: float
    limit_usd: float
    status: str
    period_end: float | None
    record: dict[str, Any]
    local_usd: float = 0.0  # this gateway's estimate since the snapshot


@dataclass(frozen=True, slots=True)
class BudgetHit:
    """An exhausted budget that applies to a request."""

    budget_id: str
    subject: str
    action: str  # block | throttle
    spent_usd: float
    limit_usd: float
    throttle_rpm: int | None

    def summary(self) -> dict[str, str]:
        return {
            "action": self.action,
            "subject": self.subject,
            "source": "budget",
            "budget_id": self.budget_id,
        }

    def message(self) -> str:
        return (
            f"budget '{self.budget_id}' for {self.subject} reached its hard limit "
            f"(about ${self.spent_usd:.2f} of ${self.limit_usd:.2f} spent this period)"
        )


def _money(value: Any) -> float:
    return float(value) if value is not None else 0.0


class BudgetGuard:
    def __init__(self) -> None:
        self._budgets: dict[str, _Budget] = {}
        self._states: dict[str, _Snapshot] = {}
        self._by_subject: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()  # writers only

    def __len__(self) -> int:
        return len(self._budgets)

    # --- writers (reader thread, admin routes) ----------------------------------------

    def apply_record(self, record: dict[str, Any]) -> bool:
        """Apply one BudgetRecord (as a dict) from the control topic."""
        budget_id, subject = record.get("budget_id"), record.get("subject")
        if not isinstance(budget_id, str) or not budget_id or not isinstance(subject, str):
            return False
        if record.get("deleted"):
            return self.remove(budget_id)
        rpm = record.get("throttle_rpm")
        budget = _Budget(
            budget_id=budget_id,
            subject=subject,
            limit_usd=_money(record.get("limit_usd")),
            action_on_hard=str(record.get("action_on_hard") or "block"),
            throttle_rpm=rpm if isinstance(rpm, int) else None,
            record=record,
        )
        with self._lock:
            old = self._budgets.get(budget_id)
            if old is not None and old.subject != subject:
                self._unindex(old.subject, budget_id)
            self._budgets[budget_id] = budget
            ids = self._by_subject.get(subject, ())
            if budget_id not in ids:
                self._by_subject[subject] = (*ids, budget_id)
        return True

    def remove(self, budget_id: str) -> bool:
        with self._lock:
            old = self._budgets.pop(budget_id, None)
            self._states.pop(budget_id, None)
            if old is None:
                return False
            self._unindex(old.subject, budget_id)
            return True

    def _unindex(self, subject: str, budget_id: str) -> None:
        ids = tuple(b for b in self._by_subject.get(subject, ()) if b != budget_id)
        if ids:
            self._by_subject[subject] = ids
        else:
            self._by_subject.pop(subject, None)

    def apply_state(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one BudgetState from `meterline.budgets` (the latest per budget wins)."""
        if value is None:
            return False
        try:
            record = orjson.loads(value)
            budget_id = record["budget_id"]
            snapshot = _Snapshot(
                subject=str(record["subject"]),
                spent_usd=_money(record.get("spent_usd")),
                limit_usd=_money(record.get("limit_usd")),
                status=str(record.get("status") or "ok"),
                period_end=parse_ts(record.get("period_end")),
                record=record,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("budgets: skipping a record that is not a BudgetState")
            return False
        if not isinstance(budget_id, str):
            return False
        self._states[budget_id] = snapshot  # a new snapshot restarts our own estimate
        return True

    # --- the hot path ---------------------------------------------------------------

    def budgets_for(
        self, key_budget_ids: tuple[str, ...], subjects: tuple[str, ...]
    ) -> tuple[str, ...]:
        """Ids of the budgets that apply to a request (usually none: one dict get each)."""
        if not self._by_subject:
            return key_budget_ids
        found = key_budget_ids
        for subject in subjects:
            ids = self._by_subject.get(subject)
            if ids:
                found = (*found, *(b for b in ids if b not in found))
        return found

    def check(self, budget_ids: tuple[str, ...], now: float) -> BudgetHit | None:
        """The first exhausted budget with a block/throttle action, blocks before throttles."""
        throttled: BudgetHit | None = None
        for budget_id in budget_ids:
            budget = self._budgets.get(budget_id)
            state = self._states.get(budget_id)
            if budget is None or state is None or budget.action_on_hard == "alert":
                continue
            if state.period_end is not None and state.period_end <= now:
                continue  # a finished period says nothing about this one
            spent = state.spent_usd + state.local_usd
            limit = budget.limit_usd or state.limit_usd
            if state.status != "hard" and not (limit > 0 and spent >= limit):
                continue
            hit = BudgetHit(
                budget_id=budget_id,
                subject=budget.subject,
                action="throttle" if budget.action_on_hard == "throttle" else "block",
                spent_usd=spent,
                limit_usd=limit,
                throttle_rpm=budget.throttle_rpm,
            )
            if hit.action == "block":
                return hit
            throttled = throttled or hit
        return throttled

    def add_spend(self, budget_ids: tuple[str, ...], usd: float) -> None:
        if usd <= 0:
            return
        for budget_id in budget_ids:
            state = self._states.get(budget_id)
            if state is not None:
                state.local_usd += usd

    # --- admin listing --------------------------------------------------------------

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for budget_id, budget in sorted(self._budgets.items()):
            item = dict(budget.record)
            state = self._states.get(budget_id)
            if state is not None:
                item["state"] = {
                    "spent_usd": state.record.get("spent_usd"),
                    "percent_used": state.record.get("percent_used"),
                    "status": state.status,
                    "period_end": state.record.get("period_end"),
                    "local_estimate_usd": round(state.local_usd, 6),
                }
            out.append(item)
        return out

"""The local budget guard (ARCHITECTURE §8): refuse a request that would cross a hard limit.

It keeps the BudgetRecords (control topic) and the latest BudgetState per budget
(`meterline.budgets`), plus this gateway's own estimated spend since that snapshot
(`gateway.pricing`). A budget applies to a request when its subject is one of the
request's subjects or its id is in the key's `budget_ids`. A budget is exhausted when its
latest state says `hard`, or when the snapshot's spend plus our own spend not yet in it
reaches the limit. What happens then follows `action_on_hard`: `block` refuses (403),
`throttle` limits the budget to `throttle_rpm`, `alert` lets traffic through.

"Not yet in it": a snapshot counts every cost up to its watermark (`counted_through` +
`counted_through_request_id`: the greatest request mark it counted, schemas.spend), and
the pipeline lags by a second or so. Each budget keeps a ledger of this gateway's own
spend by the same mark (the request's start millisecond exactly as its event carries it,
then its request id); a snapshot drops every entry at or below its watermark and the rest
stay counted. So the request a snapshot covers is never counted twice, a stream of
lagging snapshots never hides our recent spend, and overspend is bounded by the requests
already in flight. (Requests of one budget that finish out of start order can leave the
ledger one snapshot early: an undercount for at most the pipeline's lag.)

Refusal and exhaustion are one condition: the gateway refuses when the snapshot's spend
plus its own uncovered spend has reached the limit, the processors mark the budget `hard`
(and publish the decision and the alert) when their count of the same requests has. The
gateway never refuses on a forecast of the next request, so once the ledger is covered a
refusing gateway and a `hard` state agree. (Only the estimate differs: the gateway prices
with input/output rates, the processors exactly; an over-estimate can refuse early until
the next snapshot replaces it.)

Across gateways: with Kafka, each gateway also reports the spend it adds to a ledger every
0.2 s on the internal `rate-usage` topic (gateway/rate_share.py, schemas/rate_usage.py),
and adds every other gateway's to its own ledgers by the same marks. So every gateway
counts the fleet's spend that no snapshot covers yet, and a budget overspends by what is
in flight plus one report interval, even while the processors lag or are down (their
snapshots then stop coming, and the ledgers keep counting).

Choices, kept cheap on purpose: money here is a float estimate (the processors hold the
exact Decimal books); a snapshot whose period has ended is ignored; a budget with no
snapshot yet is not enforced locally (the processors' decisions still are).
"""

from __future__ import annotations

import heapq
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.enforcement import parse_ts
from meterline.money import usd
from schemas.rate_usage import SharedSpend
from schemas.spend import SpendMark, parse_watermark

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
    counted_through: SpendMark | None  # the watermark (schemas.spend)
    record: dict[str, Any]


@dataclass(slots=True)
class _Ledger:
    """This gateway's own spend on one budget that no snapshot covers yet."""

    # A min-heap by mark: requests finish out of start order, and a snapshot must drop
    # every covered entry, not just a covered prefix of the arrival order.
    entries: list[tuple[SpendMark, float]] = field(default_factory=list)  # (mark, usd)
    marks: set[SpendMark] = field(default_factory=set)  # a report read twice counts once
    total: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, mark: SpendMark, usd: float) -> None:
        with self.lock:
            if mark in self.marks:
                return
            self.marks.add(mark)
            heapq.heappush(self.entries, (mark, usd))
            self.total += usd

    def drop_through(self, watermark: SpendMark) -> None:
        """Forget every entry a snapshot covers (mark <= its watermark)."""
        with self.lock:
            while self.entries and self.entries[0][0] <= watermark:
                mark, usd = heapq.heappop(self.entries)
                self.marks.discard(mark)
                self.total -= usd
            if not self.entries:
                self.total = 0.0  # no float drift left behind


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
            f"(about {usd(self.spent_usd)} of {usd(self.limit_usd)} spent this period)"
        )


def _money(value: Any) -> float:
    return float(value) if value is not None else 0.0


_MAX_UNREPORTED = 20_000  # spend entries waiting for the next report (one report's worth)


class BudgetGuard:
    def __init__(self) -> None:
        self._budgets: dict[str, _Budget] = {}
        self._states: dict[str, _Snapshot] = {}
        self._ledgers: dict[str, _Ledger] = {}
        self._by_subject: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()  # writers only
        # Our spend for the other gateways (rate_share.py turns it on; off, nobody drains).
        self.share_spend = False
        self._unreported: list[SharedSpend] = []

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
            self._ledgers.pop(budget_id, None)
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
                counted_through=parse_watermark(
                    record.get("counted_through"), record.get("counted_through_request_id")
                ),
                record=record,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("budgets: skipping a record that is not a BudgetState")
            return False
        if not isinstance(budget_id, str):
            return False
        previous = self._states.get(budget_id)
        if previous is not None and previous.period_end != snapshot.period_end:
            self._ledgers.pop(budget_id, None)  # a new period: our old spend is not in it
        self._states[budget_id] = snapshot
        ledger = self._ledgers.get(budget_id)
        if ledger is not None and snapshot.counted_through is not None:
            ledger.drop_through(snapshot.counted_through)
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
            spent = state.spent_usd + self._local_usd(budget_id)
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

    def add_spend(self, budget_ids: tuple[str, ...], usd: float, mark: SpendMark) -> None:
        """Count our own spend on the request with this mark (schemas.spend: its start
        millisecond as its event carries it, and its request id)."""
        if usd <= 0:
            return
        for budget_id in budget_ids:
            if budget_id not in self._budgets:
                continue
            self._ledger(budget_id).add(mark, usd)
            if self.share_spend and len(self._unreported) < _MAX_UNREPORTED:
                self._unreported.append(SharedSpend(budget_id, mark.ts_ms, mark.request_id, usd))

    def _ledger(self, budget_id: str) -> _Ledger:
        ledger = self._ledgers.get(budget_id)
        if ledger is None:
            ledger = self._ledgers.setdefault(budget_id, _Ledger())
        return ledger

    def drain_spend(self) -> tuple[SharedSpend, ...]:
        """Our spend since the last call, for the other gateways."""
        taken, self._unreported = self._unreported, []
        return tuple(taken)

    def add_reported(self, entries: tuple[SharedSpend, ...]) -> int:
        """Count another gateway's spend until a snapshot covers it; returns how many
        entries counted (a budget unknown here, or a mark already covered, does not)."""
        counted = 0
        for entry in entries:
            if entry.usd <= 0 or entry.budget_id not in self._budgets:
                continue
            mark = SpendMark(entry.ts_ms, entry.request_id)
            state = self._states.get(entry.budget_id)
            covered = state.counted_through if state is not None else None
            if covered is not None and mark <= covered:
                continue
            self._ledger(entry.budget_id).add(mark, entry.usd)
            counted += 1
        return counted

    # --- queries ----------------------------------------------------------------------

    def spent_estimate(self, budget_id: str) -> float | None:
        """The latest snapshot's spend plus ours that it does not cover; None before any."""
        state = self._states.get(budget_id)
        return None if state is None else state.spent_usd + self._local_usd(budget_id)

    def _local_usd(self, budget_id: str) -> float:
        ledger = self._ledgers.get(budget_id)
        return ledger.total if ledger is not None else 0.0

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for budget_id, budget in sorted(self._budgets.items()):
            item = dict(budget.record)
            state = self._states.get(budget_id)
            if state is not None:
                local = self._local_usd(budget_id)
                limit = budget.limit_usd or state.limit_usd
                # As the guard sees it: our own spend since the snapshot can already have
                # crossed the limit (the request was refused) before the processors say so.
                crossed = limit > 0 and state.spent_usd + local >= limit
                item["state"] = {
                    "spent_usd": state.record.get("spent_usd"),
                    "percent_used": state.record.get("percent_used"),
                    "status": "hard" if crossed else state.status,
                    "period_end": state.record.get("period_end"),
                    "local_estimate_usd": round(local, 6),
                }
            out.append(item)
        return out

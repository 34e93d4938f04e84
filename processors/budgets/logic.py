"""Budgets: spend per budget and calendar period, states, enforcement. Pure: no Kafka, no Faust.

A cost counts against every budget whose subject covers it (key, user, team, project,
org) and is assigned to a period by its `request_ts` in the budget's time zone, the same
timestamp the ClickHouse showback aggregates use, so `reconcile` can seed from there.

Spend is idempotent: each (budget, period) remembers the event_ids it counted, because
CostEvents (and the BudgetSpend records fanned out of them) are delivered at least once.
A budget has one subject, so this is a dedupe by (cost event_id, subject). That costs
memory proportional to the priced requests in the period; `reconcile` compacts it to
the warehouse's sum of the costs before a time (`until`), the later ones kept by event
id, and closed periods are dropped at rollover.

Ownership: with several processors workers, each owns the budget subjects of its
partitions of the budget-spend topic (schemas.budget_spend). Every worker knows every
budget (the control topic), but a book publishes states and decisions only for the
subjects `owns` accepts; `release` forgets the spend and decisions of subjects another
worker took, and `take_over` publishes a gained subject's states and live decisions once
its spend is restored (`reconcile`).

Enforcement is per subject, not per budget: a subject is blocked (or throttled) while
any of its budgets with a block/throttle action is exhausted, until the latest of their
period ends; a decision is published only when that outcome changes, so crossing a hard
limit yields one decision per period, and lifting it yields one tombstone. Budgets whose
`action_on_hard` is `alert` only report `status="hard"` in their BudgetState.

Exhausted means `spent >= limit`, and it is the gateway's refusal condition too: a
gateway refuses when the latest state's spend plus its own spend the state does not
cover yet reaches the limit (gateway/budgets.py); it never refuses on a forecast of the
next request. Both count the same requests, identified the same way (schemas.spend:
each state's watermark is the greatest request mark counted), so when a gateway starts
refusing, these states reach `hard` from the same costs, and the block decision (every
gateway) and the "budget exhausted" alert (processors/alerts) follow. Inferring
exhaustion from refusals instead (or from "remaining < a typical request") would declare
a budget exhausted that the books say is not, and could not be lifted exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import ValidationError

from processors.decoded import decode
from processors.errors import Rejected, describe_validation_error
from schemas.budget_spend import BudgetSpend
from schemas.budgets import BudgetPeriod, BudgetStatus
from schemas.events.v1 import BudgetRecord, BudgetState, CostEvent, EnforcementDecision, utc_now
from schemas.spend import WHOLE_MS, SpendMark, epoch_ms, mark_at, ms_datetime
from schemas.subjects import attribution_subjects
from schemas.topics import BUDGETS, ENFORCEMENT, control_record_id, enforcement_key

__all__ = [
    "STAGE",
    "BudgetBook",
    "BudgetUpdate",
    "RecentCosts",
    "RejectedMessage",
    "parse_control",
    "parse_cost",
    "parse_spend",
    "period_bounds",
    "spend_records",
]

STAGE = "processors.budgets"
_ZERO = Decimal(0)
_US_PER_HOUR = Decimal(3_600_000_000)


class RejectedMessage(Rejected):
    """Input that cannot be used; `reason` goes to the dead letter."""


# --- periods --------------------------------------------------------------------------


def period_bounds(ts: datetime, period: BudgetPeriod, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the calendar day / week (from Monday) / month holding `ts`."""
    zone = _zone(timezone)
    day = _utc(ts).astimezone(zone).date()
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return _midnight(start, zone), _midnight(end, zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # Where DST skips or repeats midnight, the date begins at the later instant: the
    # transition itself (skipped), or the second midnight (so the repeated hour stays in
    # the day it is labelled with).
    first = datetime.combine(day, time(), tzinfo=zone)
    return max(first.astimezone(UTC), first.replace(fold=1).astimezone(UTC))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RejectedMessage(f"unknown time zone {name!r}") from exc


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- parsing --------------------------------------------------------------------------


def parse_cost(payload: bytes | None) -> CostEvent:
    if payload is None:
        raise RejectedMessage("invalid CostEvent: empty message (null value)")
    try:
        return decode(CostEvent, payload)
    except ValidationError as exc:
        reason = describe_validation_error(exc, count_omitted=False)
        raise RejectedMessage(f"invalid CostEvent: {reason}") from exc


def parse_spend(payload: bytes | None) -> BudgetSpend:
    if payload is None:
        raise RejectedMessage("invalid BudgetSpend: empty message (null value)")
    try:
        return BudgetSpend.model_validate_json(payload)
    except ValidationError as exc:
        reason = describe_validation_error(exc, count_omitted=False)
        raise RejectedMessage(f"invalid BudgetSpend: {reason}") from exc


def spend_records(cost: CostEvent, watched: Container[str] | None = None) -> list[BudgetSpend]:
    """A cost fanned out to every subject of its attribution (none for a zero cost): each
    budget covering the cost watches one of these subjects. With `watched` (the subjects
    some budget watches), only to those: a subject no budget watches counts nothing."""
    if not cost.total_cost:
        return []
    subjects = attribution_subjects(cost.key_id, cost.org, cost.team, cost.project, cost.user)
    if watched is not None:
        subjects = [subject for subject in subjects if subject in watched]
    return [
        BudgetSpend(
            event_id=cost.event_id,
            subject=subject,
            amount=cost.total_cost,
            ts=cost.ts,
            request_ts=cost.request_ts,
            request_id=cost.request_id,
        )
        for subject in subjects
    ]


def parse_control(key: bytes | None, value: bytes | None) -> BudgetRecord | str | None:
    """A control record -> a BudgetRecord, a budget_id to drop (tombstone of
    `budget:<id>`), or None for anything that is not about budgets (keys, policies)."""
    if value is None:
        return control_record_id(key, "budget")
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RejectedMessage(f"control record is not JSON: {exc}") from exc
    if not isinstance(record, dict) or record.get("event_type") != "budget":
        return None
    try:
        budget = BudgetRecord.model_validate(record)
    except ValidationError as exc:
        reason = describe_validation_error(exc, count_omitted=False)
        raise RejectedMessage(f"invalid BudgetRecord: {reason}") from exc
    _zone(budget.timezone)
    return budget


# --- the book -------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetUpdate:
    """One record to publish: `topic` is a base name (schemas.topics); value None lifts."""

    topic: str
    key: str
    value: BudgetState | EnforcementDecision | None

    def payload(self) -> bytes | None:
        return None if self.value is None else self.value.to_json()


# Stored costs by event id: (request_ts, amount).
RecentCosts = Mapping[str, tuple[datetime, Decimal]]


@dataclass
class _Spend:
    """Spend of one budget in one period, counted once per event_id."""

    start: datetime
    end: datetime
    spent: Decimal = _ZERO
    counted: dict[str, tuple[datetime, Decimal]] = field(default_factory=dict)
    seeded_until: datetime | None = None  # costs before this are in the reconciled figure
    exhausted_at: datetime | None = None
    # The watermark (schemas.spend): the greatest request mark counted.
    latest: SpendMark | None = None

    def add(self, event_id: str, at: datetime, amount: Decimal, request_id: str) -> bool:
        if event_id in self.counted or (self.seeded_until is not None and at < self.seeded_until):
            return False
        self.counted[event_id] = (at, amount)
        self.spent += amount
        self._advance(mark_at(at, request_id))
        return True

    def seed(
        self,
        before: Decimal,
        until: datetime,
        recent: RecentCosts,
    ) -> None:
        """The warehouse's figure: `before` sums every cost with request_ts < `until`;
        `recent` is each stored cost from `until` on, by event id. Merged by event id with
        what was counted here from `until` on (which the warehouse may not hold yet), so
        nothing counts twice and nothing counted is dropped: seeding again with the same
        `until` never lowers the spend."""
        later = {eid: item for eid, item in self.counted.items() if item[0] >= until}
        self.counted = later | dict(recent)
        self.spent = before + sum((amount for _, amount in self.counted.values()), _ZERO)
        self.seeded_until = until
        # Every request before `until` is in; later ones as far as counted.
        self._advance(SpendMark(epoch_ms(until) - 1, WHOLE_MS))
        for at, _ in recent.values():
            self._advance(mark_at(at, ""))

    def _advance(self, mark: SpendMark) -> None:
        self.latest = mark if self.latest is None else max(mark, self.latest)


class BudgetBook:
    """Budgets by subject and their spend; every change returns the records to publish.

    `now` is injectable so period rollover is testable; call `tick()` periodically to roll
    periods over (fresh states, expired blocks lifted) when no cost arrives.
    """

    def __init__(
        self,
        now: Callable[[], datetime] = utc_now,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self._now = now
        # Whether this book publishes for a subject (default: every subject, one worker).
        self._owns = owns or (lambda subject: True)
        self._budgets: dict[str, BudgetRecord] = {}
        self._by_subject: dict[str, set[str]] = {}
        self._current: dict[str, _Spend] = {}  # budget_id -> spend of its current period
        self._spend: dict[tuple[str, datetime], _Spend] = {}  # (budget_id, period start)
        self._published: dict[str, EnforcementDecision] = {}  # subject -> our live decision
        # Earliest period end of any budget: until then `_roll` has nothing to do.
        self._next_roll: datetime | None = None

    # queries

    def budget(self, budget_id: str) -> BudgetRecord | None:
        return self._budgets.get(budget_id)

    def spent(self, budget_id: str) -> Decimal:
        current = self._current.get(budget_id)
        return current.spent if current is not None else _ZERO

    def decision(self, subject: str) -> EnforcementDecision | None:
        return self._published.get(subject)

    def current_periods(
        self, subjects: Iterable[str] | None = None
    ) -> list[tuple[str, str, datetime, datetime]]:
        """(budget_id, subject, period start, period end) of every budget (of `subjects`
        only, if given), to reconcile."""
        self._roll(self._now())
        wanted = None if subjects is None else set(subjects)
        return [
            (budget_id, self._budgets[budget_id].subject, spend.start, spend.end)
            for budget_id, spend in sorted(self._current.items())
            if wanted is None or self._budgets[budget_id].subject in wanted
        ]

    def subjects(self) -> set[str]:
        """Every subject some budget watches."""
        return {budget.subject for budget in self._budgets.values()}

    # changes

    def apply(self, record: BudgetRecord) -> list[BudgetUpdate]:
        """Create, change or (deleted=True) remove a budget."""
        if record.deleted:
            return self.remove(record.budget_id)
        _zone(record.timezone)
        old = self._budgets.get(record.budget_id)
        touched = {record.subject}
        if old is not None:
            touched.add(old.subject)
            self._by_subject.get(old.subject, set()).discard(record.budget_id)
            if (old.subject, old.period, old.timezone) != (
                record.subject,
                record.period,
                record.timezone,
            ):
                self._forget_spend(record.budget_id)  # counted under another definition
        self._budgets[record.budget_id] = record
        self._by_subject.setdefault(record.subject, set()).add(record.budget_id)
        if record.budget_id not in self._current:
            self._next_roll = None  # gives the new budget its current period
        now = self._now()
        updates = self._roll(now)
        if self._owns(record.subject):
            updates.append(self._state(record.budget_id, now))
        updates.extend(self._decide(touched, now))
        return updates

    def remove(self, budget_id: str) -> list[BudgetUpdate]:
        record = self._budgets.pop(budget_id, None)
        if record is None:
            return []
        self._by_subject.get(record.subject, set()).discard(budget_id)
        self._forget_spend(budget_id)
        return self._decide({record.subject}, self._now())

    def record(self, cost: CostEvent) -> list[BudgetUpdate]:
        """Count a cost (once per event_id) against every budget covering it."""
        return self._count(spend_records(cost))

    def record_spend(self, spend: BudgetSpend) -> list[BudgetUpdate]:
        """Count one subject's share of a cost (once per (event_id, subject))."""
        return self._count([spend] if spend.amount else [])

    def release(self, subjects: Iterable[str]) -> None:
        """Another worker owns `subjects` now: forget their spend and live decisions
        (without lifting them: the new owner publishes from now on)."""
        for subject in set(subjects):
            self._published.pop(subject, None)
            for budget_id in self._by_subject.get(subject, ()):
                self._forget_spend(budget_id)

    def take_over(self, subjects: Iterable[str]) -> list[BudgetUpdate]:
        """`subjects` are ours and their spend is restored: their budgets' states, and the
        decisions their budgets call for (`owns` must accept them by now)."""
        now = self._now()
        updates = self._roll(now)
        owned = sorted(s for s in set(subjects) if self._owns(s))
        for subject in owned:
            for budget_id in sorted(self._by_subject.get(subject, ())):
                if budget_id in self._current:
                    updates.append(self._state(budget_id, now))
        updates.extend(self._decide(owned, now))
        return updates

    def _count(self, shares: list[BudgetSpend]) -> list[BudgetUpdate]:
        if not shares:
            return []
        now = self._now()
        updates = self._roll(now)
        touched: set[str] = set()
        for share in shares:
            at = _utc(share.request_ts)
            subject = share.subject
            for budget_id in sorted(self._by_subject.get(subject, ())):
                spend = self._spend_for(budget_id, at)
                added = spend is not None and spend.add(
                    share.event_id, at, share.amount, share.request_id
                )
                if not added:
                    continue
                if spend is self._current[budget_id] and self._owns(subject):
                    updates.append(self._state(budget_id, now))
                    touched.add(subject)
        updates.extend(self._decide(touched, now))
        return updates

    def tick(self) -> list[BudgetUpdate]:
        """Roll over every budget whose period ended; lift what expired with it."""
        return self._roll(self._now())

    def reconcile(
        self,
        spend_by_budget_period: Mapping[tuple[str, datetime], Decimal],
        until: datetime | None = None,
        recent: Mapping[tuple[str, datetime], RecentCosts] | None = None,
    ) -> list[BudgetUpdate]:
        """Replace spend with an authoritative figure: the sum of every cost whose
        request_ts is before `until` (default: now), plus the stored costs from `until`
        on (`recent`, by event id) merged with those counted here; later deliveries of a
        cost before `until` or of one already counted are ignored (_Spend.seed)."""
        now = self._now()
        until = _utc(until or now)
        updates = self._roll(now)
        touched: set[str] = set()
        for (budget_id, period_start), amount in sorted(spend_by_budget_period.items()):
            if budget_id not in self._budgets:
                continue
            spend = self._spend_for(budget_id, _utc(period_start), allow_past=True)
            if spend is None:
                continue
            spend.seed(amount, until, (recent or {}).get((budget_id, period_start), {}))
            subject = self._budgets[budget_id].subject
            if spend is self._current[budget_id] and self._owns(subject):
                updates.append(self._state(budget_id, now))
                touched.add(subject)
        updates.extend(self._decide(touched, now))
        return updates

    # internals

    def _spend_for(self, budget_id: str, at: datetime, allow_past: bool = False) -> _Spend | None:
        current = self._current[budget_id]
        if current.start <= at < current.end:
            return current
        budget = self._budgets[budget_id]
        start, end = period_bounds(at, budget.period, budget.timezone)
        if start < current.start and not allow_past:
            return None  # a late cost of a period already closed
        return self._spend.setdefault((budget_id, start), _Spend(start, end))

    def _roll(self, now: datetime) -> list[BudgetUpdate]:
        if self._next_roll is not None and now < self._next_roll:
            return []
        updates: list[BudgetUpdate] = []
        rolled: set[str] = set()
        closed = False
        for budget_id, budget in self._budgets.items():
            current = self._current.get(budget_id)
            if current is not None and now < current.end:
                continue
            start, end = period_bounds(now, budget.period, budget.timezone)
            self._current[budget_id] = self._spend.setdefault(
                (budget_id, start), _Spend(start, end)
            )
            closed = closed or current is not None
            if current is not None and self._owns(budget.subject):
                # (a new budget gets its state from apply())
                updates.append(self._state(budget_id, now))
                rolled.add(budget.subject)
        if closed:
            self._spend = {
                key: spend for key, spend in self._spend.items() if spend.end > now
            }  # closed periods are final; ClickHouse keeps the history
        self._next_roll = min((spend.end for spend in self._current.values()), default=None)
        return updates + self._decide(rolled, now)

    def _forget_spend(self, budget_id: str) -> None:
        self._next_roll = None
        self._current.pop(budget_id, None)
        self._spend = {key: s for key, s in self._spend.items() if key[0] != budget_id}

    def _state(self, budget_id: str, now: datetime) -> BudgetUpdate:
        budget = self._budgets[budget_id]
        spend = self._current[budget_id]
        status = _status(spend.spent, budget)
        if status == "hard":
            spend.exhausted_at = spend.exhausted_at or now
        else:
            spend.exhausted_at = None
        burn = _burn_rate(spend.spent, spend.start, now)
        latest = spend.latest
        state = BudgetState(
            ts=now,
            source=STAGE,
            budget_id=budget_id,
            subject=budget.subject,
            period=budget.period,
            period_start=spend.start,
            period_end=spend.end,
            spent_usd=spend.spent,
            limit_usd=budget.limit_usd,
            percent_used=_percent(spend.spent, budget.limit_usd),
            burn_rate_usd_per_hour=burn,
            projected_exhaustion=spend.exhausted_at
            or _projection(spend.spent, budget.limit_usd, burn, now, spend.end),
            status=status,
            counted_through=ms_datetime(latest.ts_ms) if latest else None,
            counted_through_request_id=(
                latest.request_id if latest and latest.request_id != WHOLE_MS else None
            ),
        )
        return BudgetUpdate(BUDGETS, budget_id, state)

    def _decide(self, subjects: Iterable[str], now: datetime) -> list[BudgetUpdate]:
        updates = []
        for subject in sorted(subjects):
            if not self._owns(subject):
                continue  # its owner decides
            wanted = self._wanted(subject, now)
            live = self._published.get(subject)
            if wanted is None and live is not None:
                del self._published[subject]
                updates.append(BudgetUpdate(ENFORCEMENT, enforcement_key("budget", subject), None))
            elif wanted is not None and (
                live is None or _outcome(live) != _outcome(wanted) or live.reason != wanted.reason
            ):
                self._published[subject] = wanted
                key = enforcement_key("budget", subject)
                updates.append(BudgetUpdate(ENFORCEMENT, key, wanted))
        return updates

    def _wanted(self, subject: str, now: datetime) -> EnforcementDecision | None:
        exhausted = [
            self._budgets[budget_id]
            for budget_id in sorted(self._by_subject.get(subject, ()))
            if budget_id in self._current
            and self._budgets[budget_id].action_on_hard != "alert"
            and _status(self._current[budget_id].spent, self._budgets[budget_id]) == "hard"
        ]
        if not exhausted:
            return None
        # Block wins over throttle (a throttle without an rpm fails closed, as a block).
        blocking = [b for b in exhausted if b.action_on_hard == "block" or b.throttle_rpm is None]
        chosen = blocking or exhausted
        rpm = None if blocking else min(b.throttle_rpm or 0 for b in chosen)
        names = ", ".join(f"{b.budget_id} ({b.period}, {b.limit_usd:f} USD)" for b in chosen)
        return EnforcementDecision(
            ts=now,
            source="budget",
            subject=subject,
            action="block" if blocking else "throttle",
            rpm=rpm,
            reason=f"budget exhausted: {names}",
            expires_at=max(self._current[b.budget_id].end for b in chosen),
            decided_at=now,
        )


def _outcome(decision: EnforcementDecision) -> tuple[str, int | None, datetime | None]:
    return decision.action, decision.rpm, decision.expires_at


def _status(spent: Decimal, budget: BudgetRecord) -> BudgetStatus:
    if spent >= budget.limit_usd:
        return "hard"  # nothing left (a zero budget is exhausted from the start)
    if _percent(spent, budget.limit_usd) >= budget.soft_pct:
        return "soft"
    return "ok"


def _percent(spent: Decimal, limit: Decimal) -> float:
    return float(spent * 100 / limit) if limit > 0 else 100.0


def _burn_rate(spent: Decimal, start: datetime, now: datetime) -> Decimal:
    """Average USD per hour since the period began."""
    elapsed_us = (now - start) // timedelta(microseconds=1)
    return spent * _US_PER_HOUR / elapsed_us if elapsed_us > 0 else _ZERO


def _projection(
    spent: Decimal, limit: Decimal, burn: Decimal, now: datetime, end: datetime
) -> datetime | None:
    """When the rest of the limit is gone at the current burn rate; None if not this period."""
    if burn <= 0:
        return None
    remaining_us = (limit - spent) * _US_PER_HOUR / burn
    if remaining_us >= (end - now) // timedelta(microseconds=1):
        return None  # the period resets first (also keeps huge values out of timedelta)
    at = now + timedelta(microseconds=int(remaining_us))
    return at.replace(microsecond=at.microsecond // 1000 * 1000)  # wire precision

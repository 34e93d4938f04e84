"""The gateway's spend ledger and the processors' watermark identify a request the same way
(schemas.spend), so a request is never counted twice (issue 10).

The real pieces meet here: the gateway's RequestEvent timestamp (gateway.record), the
processors' BudgetBook turning CostEvents into BudgetStates, their JSON on the wire, and
the gateway's BudgetGuard reading them, under random start times (many inside one
millisecond, sub-millisecond parts), completion orders and snapshot arrivals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.budgets import BudgetGuard
from gateway.record import iso_ms
from processors.budgets.logic import BudgetBook
from schemas.events.v1 import BudgetRecord, CostEvent
from schemas.ids import new_event_id
from schemas.spend import SpendMark, epoch_ms, parse_watermark, wire_ms
from schemas.topics import BUDGETS

BASE_S = 1_800_000_000.0  # 2027-01-15T08:00:00Z: every request falls in one day
NOW = datetime(2027, 1, 15, 12, tzinfo=UTC)
BUDGET = BudgetRecord(budget_id="b", subject="key:k1", period="day", limit_usd=Decimal(10**9))


@given(st.floats(min_value=1e9, max_value=4e9, allow_nan=False))
def test_the_mark_is_the_millisecond_the_event_carries(epoch_s: float) -> None:
    """The gateway's ledger mark and its event's ts_start are one value, not two copies."""
    carried = CostEvent(
        request_id="r", request_ts=iso_ms(epoch_s), price_source="x", priced=True
    ).request_ts
    assert wire_ms(epoch_s) == epoch_ms(carried)
    assert parse_watermark(iso_ms(epoch_s), "r") == SpendMark(wire_ms(epoch_s), "r")


def test_the_issue_case_the_last_covered_request_leaves_the_ledger() -> None:
    """Before: the ledger kept microseconds, the watermark milliseconds, so the request a
    state had just counted (started at .123456 s) stayed in the ledger and counted twice."""
    guard, book = _pair()
    started = BASE_S + 0.123456
    request_id = new_event_id()
    guard.add_spend(("b",), 1.0, SpendMark(wire_ms(started), request_id))
    for update in book.record(_cost(request_id, started, 1)):
        if update.topic == BUDGETS:
            guard.apply_state(b"b", update.payload())
    assert guard.spent_estimate("b") == 1.0  # not 2.0
    assert guard.listing()[0]["state"]["local_estimate_usd"] == 0


Op = str  # "add": a request finishes at the gateway; "count": the processors count the next
# emitted cost; "deliver": the gateway applies the next published BudgetState(s)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), sequential=st.booleans())
def test_the_ledger_never_counts_a_request_twice(data: st.DataObject, sequential: bool) -> None:
    n = data.draw(st.integers(1, 20), label="requests")
    # Starts within a few milliseconds: many share one; sub-millisecond parts vary.
    starts = sorted(BASE_S + us / 1e6 for us in data.draw(_offsets(n), label="start us"))
    ids = [new_event_id() for _ in starts]  # UUIDv7 at start, as RequestRecord makes them
    usd = data.draw(st.lists(st.integers(1, 9), min_size=n, max_size=n), label="usd")
    # Completion order = the order the gateway adds spend and emits events (and, on one
    # partition, the order the processors count). Sequential traffic completes in start order.
    order = list(range(n)) if sequential else data.draw(st.permutations(range(n)), label="done")
    ops: list[Op] = data.draw(st.lists(st.sampled_from(["add", "count", "deliver"])), label="ops")

    guard, book = _pair()
    added: list[int] = []
    counted = 0
    published: list[bytes] = []
    delivered = 0

    def step(op: Op) -> None:
        nonlocal counted, delivered
        if op == "add" and len(added) < n:
            i = order[len(added)]
            guard.add_spend(("b",), float(usd[i]), SpendMark(wire_ms(starts[i]), ids[i]))
            added.append(i)
        elif op == "count" and counted < len(added):
            i = added[counted]
            counted += 1
            published.extend(
                u.payload() or b""
                for u in book.record(_cost(ids[i], starts[i], usd[i]))
                if u.topic == BUDGETS
            )
        elif op == "deliver" and delivered < len(published):
            # Sometimes several at once: a reader that lags sees only the latest that matters.
            take = data.draw(st.integers(1, len(published) - delivered), label="deliver")
            for payload in published[delivered : delivered + take]:
                guard.apply_state(b"b", payload)
            delivered += take
        truth = float(sum(usd[i] for i in added))
        view = guard.spent_estimate("b") or 0.0
        assert view <= truth + 1e-9, (view, truth)  # never a request counted twice
        if sequential:
            assert view == truth, (view, truth)  # and none dropped

    for op in ops:
        step(op)
    for op in ["add"] * n + ["count"] * n + ["deliver"] * (n + 1):  # traffic stops, lag ends
        step(op)
    assert guard.spent_estimate("b") == float(sum(usd))  # every request once, exactly
    assert guard.listing()[0]["state"]["local_estimate_usd"] == 0  # nothing left as "local"


def _offsets(n: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, 4_000), min_size=n, max_size=n)


def _pair() -> tuple[BudgetGuard, BudgetBook]:
    guard = BudgetGuard()
    guard.apply_record(BUDGET.model_dump(mode="json"))
    book = BudgetBook(now=lambda: NOW)
    for update in book.apply(BUDGET):
        if update.topic == BUDGETS:
            guard.apply_state(b"b", update.payload())
    return guard, book


def _cost(request_id: str, started: float, usd: int) -> CostEvent:
    """The cost the processors derive from the gateway's event (request_ts = ts_start)."""
    return CostEvent(
        event_id=new_event_id(),
        request_id=request_id,
        request_ts=iso_ms(started),  # type: ignore[arg-type]
        key_id="k1",
        total_cost=Decimal(usd),
        price_source="override:test",
        priced=True,
    )


def _fleet_guard() -> BudgetGuard:
    guard = BudgetGuard()
    guard.apply_record({"budget_id": "b", "subject": "key:k1", "limit_usd": "3"})
    guard.apply_state(b"b", orjson.dumps(_state(spent="0", through=None)))
    return guard


def _state(spent: str, through: SpendMark | None) -> dict[str, object]:
    return {
        "budget_id": "b",
        "subject": "key:k1",
        "spent_usd": spent,
        "limit_usd": "3",
        "status": "ok",
        "period_end": "2099-01-01T00:00:00.000Z",
        "counted_through": None if through is None else iso_ms(through.ts_ms / 1000),
        "counted_through_request_id": None if through is None else through.request_id,
    }


def test_each_gateway_counts_the_others_spend_until_a_state_covers_it() -> None:
    first, second = _fleet_guard(), _fleet_guard()
    first.share_spend = True
    marks = [SpendMark(wire_ms(BASE_S + i), f"r{i}") for i in range(3)]
    for mark in marks[:2]:
        first.add_spend(("b",), 1.0, mark)
    report = first.drain_spend()
    assert first.drain_spend() == ()  # each entry is reported once
    assert second.add_reported(report) == 2
    assert second.add_reported(report) == 2  # read twice (at-least-once) ...
    assert second.spent_estimate("b") == 2.0  # ... counted once
    second.add_spend(("b",), 1.0, marks[2])  # its own request reaches the limit
    assert second.check(("b",), BASE_S) is not None
    # The processors' state covers the first two: they leave both ledgers, nothing twice.
    covered = orjson.dumps(_state(spent="2", through=marks[1]))
    for guard in (first, second):
        guard.apply_state(b"b", covered)
    assert first.spent_estimate("b") == 2.0 and second.spent_estimate("b") == 3.0
    assert second.add_reported(report) == 0  # a late copy of a covered report: nothing


def test_spend_is_kept_for_the_others_only_when_someone_reports_it() -> None:
    guard = _fleet_guard()  # no rate sharing (no Kafka): nothing piles up
    guard.add_spend(("b",), 1.0, SpendMark(wire_ms(BASE_S), "r"))
    assert guard.drain_spend() == ()

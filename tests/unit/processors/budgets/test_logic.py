"""Budget accounting: periods, covering budgets, idempotency, states and decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from processors.budgets.logic import (
    BudgetBook,
    BudgetUpdate,
    RejectedMessage,
    parse_control,
    parse_cost,
    period_bounds,
)
from schemas.events.v1 import BudgetRecord, BudgetState, CostEvent, EnforcementDecision, KeyRecord
from schemas.topics import parse_enforcement_key

T0 = datetime(2024, 5, 15, 6, 0, tzinfo=UTC)  # a Wednesday, 06:00 UTC
DAY_START = datetime(2024, 5, 15, tzinfo=UTC)
DAY_END = datetime(2024, 5, 16, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def budget(
    budget_id: str = "b1", subject: str = "key:k1", limit: str = "10", **kw: Any
) -> BudgetRecord:
    values: dict[str, Any] = {"period": "day"} | kw
    return BudgetRecord(budget_id=budget_id, subject=subject, limit_usd=limit, **values)


def cost(event_id: str, total: str, at: datetime = T0, **attribution: Any) -> CostEvent:
    fields: dict[str, Any] = {
        "key_id": "k1",
        "org": "acme",
        "team": "search",
        "request_id": f"req-{event_id}",
    } | attribution
    return CostEvent(
        event_id=event_id,
        request_ts=at,
        total_cost=Decimal(total),
        price_source="override:test",
        priced=True,
        **fields,
    )


def states(updates: list[BudgetUpdate]) -> dict[str, BudgetState]:
    found = {}
    for update in updates:
        if isinstance(update.value, BudgetState):
            assert update.topic == "budgets" and update.key == update.value.budget_id
            found[update.key] = update.value
    return found


def decisions(updates: list[BudgetUpdate]) -> list[tuple[str, EnforcementDecision | None]]:
    """(subject, decision or None for a lift) of the enforcement updates."""
    found = []
    for update in updates:
        if update.topic != "enforcement":
            continue
        source, subject = parse_enforcement_key(update.key)
        assert source == "budget"  # the budget's own slot: never lifts another source's
        assert update.value is None or isinstance(update.value, EnforcementDecision)
        found.append((subject, update.value))
    return found  # type: ignore[return-value]


# --- periods --------------------------------------------------------------------------


def test_day_periods_in_new_york_follow_dst() -> None:
    spring = period_bounds(utc(2024, 3, 10, 12), "day", "America/New_York")
    autumn = period_bounds(utc(2024, 11, 3, 12), "day", "America/New_York")
    late_evening = period_bounds(utc(2024, 3, 10, 4, 30), "day", "America/New_York")

    assert spring == (utc(2024, 3, 10, 5), utc(2024, 3, 11, 4))  # 23 hours
    assert autumn == (utc(2024, 11, 3, 4), utc(2024, 11, 4, 5))  # 25 hours
    assert late_evening == (utc(2024, 3, 9, 5), utc(2024, 3, 10, 5))  # 23:30 local on the 9th


def test_midnight_dst_changes_in_santiago() -> None:
    # 2024-09-08: 00:00 jumps to 01:00; 2024-04-07: 00:00 falls back to 23:00 of the 6th.
    skipped = period_bounds(utc(2024, 9, 8, 12), "day", "America/Santiago")
    repeated_hour = period_bounds(utc(2024, 4, 7, 3, 30), "day", "America/Santiago")

    assert skipped == (utc(2024, 9, 8, 4), utc(2024, 9, 9, 3))
    assert repeated_hour == (utc(2024, 4, 6, 3), utc(2024, 4, 7, 4))  # 25 hours


def test_weeks_start_on_monday_and_months_roll_over_the_year() -> None:
    week = period_bounds(utc(2024, 3, 13, 12), "week", "America/New_York")
    month = period_bounds(utc(2024, 3, 15), "month", "America/New_York")
    # Still December in UTC, already January (Monday) in Berlin.
    new_year = period_bounds(utc(2024, 12, 31, 23), "month", "Europe/Berlin")
    sunday_night = period_bounds(utc(2024, 3, 17, 23, 30), "week", "Europe/Berlin")

    assert week == (utc(2024, 3, 11, 4), utc(2024, 3, 18, 4))  # Monday 00:00 EDT
    assert month == (utc(2024, 3, 1, 5), utc(2024, 4, 1, 4))
    assert new_year == (utc(2024, 12, 31, 23), utc(2025, 1, 31, 23))
    assert sunday_night == (utc(2024, 3, 17, 23), utc(2024, 3, 24, 23))


# --- the book -------------------------------------------------------------------------


def test_a_cost_counts_against_every_covering_budget() -> None:
    book = BudgetBook(Clock())
    book.apply(budget("b-key", "key:k1"))
    book.apply(budget("b-team", "team:acme/search", "100"))
    book.apply(budget("b-org", "org:acme", "1000"))
    book.apply(budget("b-other", "key:k2", "5"))

    first = states(book.record(cost("e1", "2.5")))
    second = states(book.record(cost("e2", "1.5", key_id="k2", team="ml")))

    assert {k: s.spent_usd for k, s in first.items()} == {
        "b-key": Decimal("2.5"),
        "b-team": Decimal("2.5"),
        "b-org": Decimal("2.5"),
    }
    assert {k: s.spent_usd for k, s in second.items()} == {
        "b-other": Decimal("1.5"),
        "b-org": Decimal("4.0"),
    }
    assert first["b-team"].subject == "team:acme/search" and first["b-key"].percent_used == 25.0


def test_a_redelivered_cost_is_counted_once() -> None:
    book = BudgetBook(Clock())
    book.apply(budget())
    book.record(cost("e1", "3"))

    again = book.record(cost("e1", "3"))

    assert again == []
    assert book.spent("b1") == Decimal(3)
    assert states(book.record(cost("e2", "0.25")))["b1"].spent_usd == Decimal("3.25")


def test_soft_then_hard_emits_exactly_one_block_until_period_end() -> None:
    book = BudgetBook(Clock())
    created = book.apply(budget(soft_pct=75))

    ok = book.record(cost("e1", "5"))
    soft = book.record(cost("e2", "3"))
    hard = book.record(cost("e3", "2"))  # exactly the limit: nothing left
    more = book.record(cost("e4", "1"))

    assert [states(u)["b1"].status for u in (created, ok, soft, hard, more)] == [
        "ok",
        "ok",
        "soft",
        "hard",
        "hard",
    ]
    assert decisions(created) == decisions(ok) == decisions(soft) == decisions(more) == []
    [(subject, decision)] = decisions(hard)
    assert subject == "key:k1" and decision is not None
    assert (decision.action, decision.source, decision.rpm) == ("block", "budget", None)
    assert decision.expires_at == DAY_END and decision.decided_at == T0
    assert "b1" in decision.reason
    assert book.decision("key:k1") == decision


def test_raising_the_limit_above_spend_lifts_the_block() -> None:
    book = BudgetBook(Clock())
    book.apply(budget(limit="1"))
    book.record(cost("e1", "3"))

    still_over = book.apply(budget(limit="2"))
    raised = book.apply(budget(limit="5"))

    [(_, changed)] = decisions(still_over)  # the reason names the new limit, still a block
    assert changed is not None and changed.action == "block" and "2 USD" in changed.reason
    assert decisions(raised) == [("key:k1", None)]
    assert raised[-1].payload() is None  # a tombstone on the wire
    assert states(raised)["b1"].status == "ok" and states(raised)["b1"].spent_usd == 3
    assert book.decision("key:k1") is None


def test_rollover_on_the_clock_lifts_and_starts_from_zero() -> None:
    clock = Clock()
    book = BudgetBook(clock)
    book.apply(budget(limit="1"))
    book.record(cost("e1", "2"))

    clock.now = DAY_END - timedelta(milliseconds=1)
    before = book.tick()
    clock.now = DAY_END + timedelta(seconds=5)
    rolled = book.tick()
    again = book.tick()

    assert before == [] and again == []
    fresh = states(rolled)["b1"]
    assert (fresh.spent_usd, fresh.status) == (Decimal(0), "ok")
    assert (fresh.period_start, fresh.period_end) == (DAY_END, DAY_END + timedelta(days=1))
    assert decisions(rolled) == [("key:k1", None)]
    # A late cost of the closed day counts nowhere; today's costs count from zero.
    assert book.record(cost("e2", "1", at=T0)) == []
    assert states(book.record(cost("e3", "0.5", at=clock.now)))["b1"].spent_usd == Decimal("0.5")


def test_burn_rate_and_projected_exhaustion_are_exact() -> None:
    clock = Clock()  # 06:00, six hours into the day
    book = BudgetBook(clock)
    book.apply(budget(limit="10"))

    state = states(book.record(cost("e1", "3")))["b1"]

    assert state.burn_rate_usd_per_hour == Decimal("0.5")
    assert state.projected_exhaustion == utc(2024, 5, 15, 20)  # 7 USD left at 0.5 USD/h
    clock.now = utc(2024, 5, 15, 12)
    slow = states(book.apply(budget(limit="100")))["b1"]
    assert slow.burn_rate_usd_per_hour == Decimal("0.25")
    assert slow.projected_exhaustion is None  # would run out after the day resets
    clock.now = utc(2024, 5, 15, 13)
    hard = states(book.record(cost("e2", "97")))["b1"]
    assert hard.status == "hard" and hard.projected_exhaustion == clock.now


def test_throttle_carries_rpm_block_wins_and_alert_only_decides_nothing() -> None:
    book = BudgetBook(Clock())
    book.apply(budget("b-throttle", limit="1", action_on_hard="throttle", throttle_rpm=6))
    book.apply(budget("b-slow", limit="1", action_on_hard="throttle", throttle_rpm=2))
    book.apply(budget("b-org", "org:acme", "1", action_on_hard="alert"))

    hard = book.record(cost("e1", "1"))

    assert {k: s.status for k, s in states(hard).items()} == {
        "b-throttle": "hard",
        "b-slow": "hard",
        "b-org": "hard",
    }
    [(subject, throttle)] = decisions(hard)  # nothing for org:acme: alert only
    assert subject == "key:k1" and throttle is not None
    assert (throttle.action, throttle.rpm) == ("throttle", 2)
    blocked = book.apply(budget("b-slow", limit="1", action_on_hard="block"))  # spend kept
    [(_, block)] = decisions(blocked)
    assert block is not None and (block.action, block.rpm) == ("block", None)


def test_deleting_a_budget_lifts_its_block_but_not_anothers() -> None:
    book = BudgetBook(Clock())
    book.apply(budget("b-day", limit="1"))
    book.apply(budget("b-week", limit="1", period="week"))
    book.record(cost("e1", "1"))
    week_end = utc(2024, 5, 20)
    assert book.decision("key:k1") is not None
    assert book.decision("key:k1").expires_at == week_end  # type: ignore[union-attr]

    without_day = book.apply(budget("b-day", limit="1", deleted=True))
    without_week = book.remove("b-week")

    [(_, still)] = decisions(without_day)  # the weekly budget still blocks: new reason only
    assert still is not None and (still.action, still.expires_at) == ("block", week_end)
    assert "b-week" in still.reason and "b-day" not in still.reason
    assert decisions(without_week) == [("key:k1", None)]
    assert book.budget("b-week") is None and book.remove("b-week") == []


def test_a_zero_budget_blocks_from_the_start() -> None:
    book = BudgetBook(Clock())

    created = book.apply(budget(limit="0"))

    assert states(created)["b1"].status == "hard" and states(created)["b1"].percent_used == 100.0
    assert [value.action for _, value in decisions(created) if value] == ["block"]


def test_reconcile_seeds_spend_without_counting_twice() -> None:
    clock = Clock()
    book = BudgetBook(clock)
    book.apply(budget(limit="10"))
    book.record(cost("e-old", "1", at=utc(2024, 5, 15, 4)))  # also in the seed's sum
    book.record(cost("e-new", "2", at=utc(2024, 5, 15, 5, 30)))  # after it, not stored yet
    stored = {"e-stored": (utc(2024, 5, 15, 5, 10), Decimal("0.5"))}  # stored, not seen here

    until = utc(2024, 5, 15, 5)
    seeded = book.reconcile(
        {("b1", DAY_START): Decimal("4")}, until=until, recent={("b1", DAY_START): stored}
    )

    assert states(seeded)["b1"].spent_usd == Decimal("6.5")
    assert book.record(cost("e-old", "1", at=utc(2024, 5, 15, 4))) == []
    assert book.record(cost("e-other", "1", at=utc(2024, 5, 15, 4, 30))) == []  # in the sum
    assert book.record(cost("e-new", "2", at=utc(2024, 5, 15, 5, 30))) == []
    assert book.record(cost("e-stored", "0.5", at=utc(2024, 5, 15, 5, 10))) == []
    assert book.reconcile({("nope", DAY_START): Decimal(1)}) == []
    hard = book.reconcile({("b1", DAY_START): Decimal("12")})  # until now: all in the sum
    assert states(hard)["b1"].spent_usd == Decimal(12)
    assert [subject for subject, _ in decisions(hard)] == ["key:k1"]


def test_reconcile_counts_costs_that_arrive_out_of_request_order() -> None:
    """A worker killed mid-load: its requests are priced after the rebalance, so their
    costs reach the new owner (and the warehouse) after newer ones. Merged by event id,
    each counts once, whichever comes first, and reconciling again never lowers spend."""
    clock = Clock()
    book = BudgetBook(clock)
    book.apply(budget(limit="100"))
    until = utc(2024, 5, 15, 5)
    newest = {"e-3": (utc(2024, 5, 15, 5, 50), Decimal(3))}  # stored; e-2 (5:40) is late
    first = book.reconcile(
        {("b1", DAY_START): Decimal(10)}, until=until, recent={("b1", DAY_START): newest}
    )
    assert states(first)["b1"].spent_usd == Decimal(13)
    late = book.record(cost("e-2", "2", at=utc(2024, 5, 15, 5, 40)))  # older than e-3
    assert states(late)["b1"].spent_usd == Decimal(15)
    assert book.record(cost("e-3", "3", at=utc(2024, 5, 15, 5, 50))) == []  # stored already
    both = {**newest, "e-2": (utc(2024, 5, 15, 5, 40), Decimal(2))}
    again = book.reconcile(
        {("b1", DAY_START): Decimal(10)}, until=until, recent={("b1", DAY_START): both}
    )
    assert states(again)["b1"].spent_usd == Decimal(15)


def test_budgets_in_a_local_time_zone_use_local_days() -> None:
    clock = Clock(utc(2024, 3, 10, 4, 30))  # 23:30 on the 9th in New York
    book = BudgetBook(clock)
    book.apply(budget(timezone="America/New_York"))

    state = states(book.record(cost("e1", "1", at=clock.now)))["b1"]
    clock.now = utc(2024, 3, 10, 5)  # midnight in New York
    rolled = states(book.tick())["b1"]

    assert (state.period_start, state.period_end) == (utc(2024, 3, 9, 5), utc(2024, 3, 10, 5))
    assert (rolled.period_start, rolled.period_end) == (utc(2024, 3, 10, 5), utc(2024, 3, 11, 4))
    assert rolled.spent_usd == 0


def test_zero_cost_changes_nothing() -> None:
    book = BudgetBook(Clock())
    book.apply(budget())

    assert book.record(cost("e1", "0")) == []


# --- parsing --------------------------------------------------------------------------


def test_control_records_for_budgets_only() -> None:
    record = budget()
    key = KeyRecord(key_id="k1", key_hash="0" * 64, org="acme")

    assert parse_control(b"budget:b1", record.to_json()) == record
    assert parse_control(b"budget:b1", None) == "b1"
    assert parse_control(b"key:k1", None) is None
    assert parse_control(b"key:k1", key.to_json()) is None
    with pytest.raises(RejectedMessage, match="not JSON"):
        parse_control(b"budget:b1", b"\xff")
    with pytest.raises(RejectedMessage, match="limit_usd"):
        parse_control(b"budget:b1", b'{"event_type": "budget", "budget_id": "b", "subject": "x"}')
    with pytest.raises(RejectedMessage, match="time zone"):
        parse_control(b"budget:b1", budget(timezone="Mars/Olympus").to_json())


def test_costs_that_do_not_parse_are_rejected_with_a_reason() -> None:
    assert parse_cost(cost("e1", "1.25").to_json()).total_cost == Decimal("1.25")
    with pytest.raises(RejectedMessage, match="null value"):
        parse_cost(None)
    with pytest.raises(RejectedMessage, match="request_id"):
        parse_cost(b'{"event_type": "cost"}')


def test_the_watermark_is_the_greatest_request_mark_counted() -> None:
    """counted_through + counted_through_request_id (schemas.spend): exactly the request's
    ms and id, the greatest counted, never lowered by a late cost of an earlier request."""
    book = BudgetBook(Clock())
    book.apply(budget())
    at = utc(2024, 5, 15, 5, 59, 59) + timedelta(microseconds=123_000)
    first = states(book.record(cost("e1", "1", at, request_id="req-b")))["b1"]
    assert (first.counted_through, first.counted_through_request_id) == (at, "req-b")
    same_ms = states(book.record(cost("e2", "1", at, request_id="req-a")))["b1"]
    assert (same_ms.counted_through, same_ms.counted_through_request_id) == (at, "req-b")
    earlier = states(book.record(cost("e3", "1", at - timedelta(seconds=1))))["b1"]
    assert (earlier.counted_through, earlier.counted_through_request_id) == (at, "req-b")
    assert earlier.spent_usd == Decimal(3)
    # A reconcile covers whole milliseconds before its `until`: no id.
    until = at + timedelta(seconds=1)
    seeded = states(book.reconcile({("b1", DAY_START): Decimal("3")}, until=until))["b1"]
    last_ms = until - timedelta(milliseconds=1)
    assert (seeded.counted_through, seeded.counted_through_request_id) == (last_ms, None)

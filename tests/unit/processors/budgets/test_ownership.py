"""Budgets keyed by subject (issue 13): costs fanned out per subject, counted once per
(event_id, subject), and a book that publishes only for the subjects it owns."""

from __future__ import annotations

from decimal import Decimal

from processors.budgets.logic import BudgetBook, RejectedMessage, parse_spend, spend_records
from schemas.budget_spend import BudgetSpend, spend_partition
from schemas.events.v1 import EnforcementDecision
from tests.unit.processors.budgets.test_logic import (
    DAY_START,
    Clock,
    budget,
    cost,
    decisions,
    states,
)


def test_a_cost_fans_out_to_every_subject_of_its_attribution() -> None:
    shares = spend_records(cost("c1", "0.30", project="p", user="ann"))
    assert {s.subject for s in shares} == {
        "key:k1",
        "org:acme",
        "team:acme/search",
        "project:acme/p",
        "user:ann",
    }
    assert {(s.event_id, s.amount, s.request_id) for s in shares} == {
        ("c1", Decimal("0.30"), "req-c1")
    }
    assert spend_records(cost("c2", "0")) == []  # nothing to count


def test_a_cost_fans_out_only_to_the_subjects_some_budget_watches() -> None:
    book = BudgetBook()
    shares = spend_records(cost("c1", "0.30", project="p", user="ann"), {"org:acme", "user:bob"})
    assert [s.subject for s in shares] == ["org:acme"]
    assert spend_records(cost("c1", "0.30"), book.subjects()) == []  # no budget at all


def test_spend_records_round_trip_exactly() -> None:
    (share, *_) = spend_records(cost("c1", "0.000000123"))
    assert b'"amount":"0.000000123"' in share.to_json()
    assert parse_spend(share.to_json()) == share
    for bad in (None, b"{", b'{"event_id": "e"}'):
        try:
            parse_spend(bad)
        except RejectedMessage as exc:
            assert "invalid BudgetSpend" in exc.reason
        else:
            raise AssertionError(f"{bad!r} accepted")


def test_spend_partition_is_stable_and_in_range() -> None:
    assert spend_partition("org:acme", 6) == spend_partition("org:acme", 6)
    assert {spend_partition(f"key:k{i}", 4) for i in range(40)} == {0, 1, 2, 3}
    assert spend_partition("org:acme", 1) == 0


def counted(book: BudgetBook, shares: list[BudgetSpend]) -> Decimal:
    for share in shares:
        book.record_spend(share)
    return book.spent("b-org")


def test_per_subject_spend_gives_the_same_book_and_counts_once() -> None:
    whole, split = BudgetBook(Clock()), BudgetBook(Clock())
    for book in (whole, split):
        book.apply(budget("b-org", "org:acme", "1"))
        book.apply(budget("b-team", "team:acme/search", "1"))
    costs = [cost(f"c{i}", "0.25", key_id=f"k{i}") for i in range(5)]
    for c in costs:
        whole.record(c)
    shares = [s for c in costs for s in spend_records(c)]
    assert counted(split, shares + shares[:7]) == whole.spent("b-org") == Decimal("1.25")
    assert split.spent("b-team") == whole.spent("b-team")


def test_a_book_publishes_only_for_owned_subjects() -> None:
    mine: set[str] = {"org:acme"}
    book = BudgetBook(Clock(), owns=lambda subject: subject in mine)
    updates = book.apply(budget("b-org", "org:acme", "0.5"))
    updates += book.apply(budget("b-team", "team:acme/search", "0.5"))
    assert set(states(updates)) == {"b-org"}
    updates = []
    for share in spend_records(cost("c1", "0.75")):
        if share.subject in mine:  # the agent hands a worker only its partitions' spend
            updates += book.record_spend(share)
    assert states(updates)["b-org"].status == "hard"
    assert [subject for subject, _ in decisions(updates)] == ["org:acme"]


def test_release_then_take_over_restates_without_lifting() -> None:
    mine: set[str] = {"org:acme"}
    book = BudgetBook(Clock(), owns=lambda subject: subject in mine)
    book.apply(budget("b-org", "org:acme", "0.5"))
    (share,) = [s for s in spend_records(cost("c1", "0.75")) if s.subject == "org:acme"]
    book.record_spend(share)
    assert book.spent("b-org") == Decimal("0.75")

    mine.clear()  # another worker owns it now: forget, publish nothing, lift nothing
    book.release({"org:acme"})
    assert book.spent("b-org") == 0 and book.decision("org:acme") is None
    assert book.tick() == []

    # Gained again: restored from the warehouse while not published yet, then taken over.
    assert book.current_periods({"org:acme"})[0][:3] == ("b-org", "org:acme", DAY_START)
    assert book.reconcile({("b-org", DAY_START): Decimal("0.75")}, until=DAY_START) == []
    mine.add("org:acme")
    updates = book.take_over({"org:acme", "team:acme/search"})
    assert states(updates)["b-org"].spent_usd == Decimal("0.75")
    ((subject, decision),) = decisions(updates)
    assert subject == "org:acme" and isinstance(decision, EnforcementDecision)
    assert decision.action == "block"

"""What a person reads about a budget: the block message and the listing's status right
after the gateway refused on its own spend, before the processors' next state."""

from __future__ import annotations

import orjson

from gateway.budgets import BudgetGuard
from schemas.spend import SpendMark

PERIOD_END = "2999-01-01T00:00:00.000Z"


def _guard(limit: str, spent: str) -> BudgetGuard:
    guard = BudgetGuard()
    guard.apply_record(
        {"budget_id": "b", "subject": "key:k1", "limit_usd": limit, "action_on_hard": "block"}
    )
    state = {
        "budget_id": "b",
        "subject": "key:k1",
        "spent_usd": spent,
        "limit_usd": limit,
        "status": "ok",
        "period_end": PERIOD_END,
    }
    guard.apply_state(b"b", orjson.dumps(state))
    return guard


def test_a_small_budget_reads_in_the_digits_it_needs() -> None:
    guard = _guard("0.01", "0.009")
    guard.add_spend(("b",), 0.0021, SpendMark(1, "r1"))
    hit = guard.check(("b",), now=0)
    assert hit is not None
    assert "about $0.011 of $0.01 spent this period" in hit.message()


def test_the_listing_reads_hard_as_soon_as_the_gateway_refuses() -> None:
    guard = _guard("1", "0.999")
    assert guard.listing()[0]["state"]["status"] == "ok"
    guard.add_spend(("b",), 0.002, SpendMark(1, "r1"))
    assert guard.check(("b",), now=0) is not None
    assert guard.listing()[0]["state"]["status"] == "hard"

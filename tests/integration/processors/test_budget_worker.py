"""Budgets in the real worker (`python -m processors`) against the real tansu broker."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.settings import Settings
from schemas.events.v1 import BudgetRecord, BudgetState, CostEvent, DeadLetter, EnforcementDecision
from schemas.topics import BUDGETS, CONTROL, COSTS, DLQ, ENFORCEMENT
from tests.conftest import free_port
from tests.integration.processors.worker_helpers import (
    Record,
    TopicReader,
    produce,
    worker_process,
)

pytestmark = pytest.mark.integration


def cost(index: int, total: str) -> CostEvent:
    now = datetime.now(UTC)
    return CostEvent(
        event_id=f"cost-{index}",
        request_id=f"req-{index}",
        request_ts=now,
        ts=now,
        key_id="k1",
        org="acme",
        team="search",
        total_cost=Decimal(total),
        price_source="override:test",
        priced=True,
    )


def budget(budget_id: str, subject: str, limit: str) -> Record:
    record = BudgetRecord(budget_id=budget_id, subject=subject, period="day", limit_usd=limit)
    return f"budget:{budget_id}".encode(), record.to_json()


def test_budget_states_and_a_block_then_a_lift(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        broker, processors_port=free_port(), processors={"budget": {"tick_interval_s": 1.0}}
    )
    log_path = tmp_path / "worker.log"
    produce(
        settings,
        CONTROL,
        [
            budget("b-key", "key:k1", "0"),  # superseded below: must never block
            budget("b-key", "key:k1", "0.001"),
            budget("b-org", "org:acme", "100"),
            (b"policy:p1", b'{"event_type": "policy", "policy_id": "p1"}'),  # not ours
            (b"key:k9", None),  # tombstone of a key: not ours
        ],
    )
    costs = [cost(index, "0.0004") for index in range(4)]
    items: list[Record] = [(b"k1", c.to_json()) for c in costs]
    items.insert(2, (b"k1", costs[0].to_json()))  # redelivered: must not count twice
    items.insert(3, (b"k1", b"{not a cost"))
    produce(settings, COSTS, items)
    reader = TopicReader(settings, [BUDGETS, ENFORCEMENT, DLQ])
    enforcement = reader.records[settings.topic(ENFORCEMENT)]

    with worker_process(settings, log_path) as worker:
        reader.read_until(lambda: len(enforcement) >= 1, timeout_s=60, log=log_path)
        produce(settings, CONTROL, [budget("b-key", "key:k1", "1")])  # raised above spend
        budget_states = reader.records[settings.topic(BUDGETS)]

        def lifted_and_restated() -> bool:
            # The lift and the fresh state go to two topics: wait for both.
            return len(enforcement) >= 2 and any(
                b'"limit_usd":"1"' in (v or b"") for _, v in budget_states
            )

        reader.read_until(lifted_and_restated, timeout_s=30, log=log_path)
        reader.read_until(
            lambda: len(reader.records[settings.topic(DLQ)]) >= 1, timeout_s=10, log=log_path
        )
        # The org's spend comes through its own budget-spend partition: wait for all of it.
        reader.read_until(
            lambda: any(
                b'"budget_id":"b-org"' in (v or b"") and b'"spent_usd":"0.0016"' in (v or b"")
                for _, v in budget_states
            ),
            timeout_s=30,
            log=log_path,
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    reader.close()

    (block_key, block_value), (lift_key, lift_value) = enforcement
    decision = EnforcementDecision.model_validate_json(block_value or b"")
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert block_key == lift_key == b"budget|key:k1"
    assert (decision.action, decision.source, decision.rpm) == ("block", "budget", None)
    assert decision.expires_at == datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)
    assert "b-key" in decision.reason
    assert lift_value is None  # tombstone

    states = [
        (key, BudgetState.model_validate_json(value or b""))
        for key, value in reader.records[settings.topic(BUDGETS)]
    ]
    assert all(key == state.budget_id.encode() for key, state in states)
    key_states = [state for _, state in states if state.budget_id == "b-key"]
    seen = [(s.spent_usd, s.limit_usd, s.status) for s in key_states]
    # States are coalesced (the latest per budget at most every 250 ms), but each status
    # change goes out at once: the first soft and hard states are there, and the last.
    assert seen[0] == (Decimal("0"), Decimal("0.001"), "ok")
    assert (Decimal("0.0008"), Decimal("0.001"), "soft") in seen
    assert (Decimal("0.0012"), Decimal("0.001"), "hard") in seen
    assert seen[-2:] == [
        (Decimal("0.0016"), Decimal("0.001"), "hard"),
        (Decimal("0.0016"), Decimal("1"), "ok"),
    ]
    assert seen[1:-1] == sorted(seen[1:-1])  # never backwards
    assert set(seen) <= {
        (Decimal("0"), Decimal("0.001"), "ok"),
        (Decimal("0.0004"), Decimal("0.001"), "ok"),
        (Decimal("0.0008"), Decimal("0.001"), "soft"),
        (Decimal("0.0012"), Decimal("0.001"), "hard"),
        (Decimal("0.0016"), Decimal("0.001"), "hard"),
        (Decimal("0.0016"), Decimal("1"), "ok"),
    }
    soft = next(state for state in key_states if state.status == "soft")
    assert soft.percent_used == 80.0
    org_spent = [state.spent_usd for _, state in states if state.budget_id == "b-org"]
    assert org_spent[0] == Decimal(0) and org_spent[-1] == Decimal("0.0016")
    assert org_spent == sorted(org_spent)
    assert set(org_spent) <= {Decimal("0.0004") * n for n in range(5)}

    (_, letter_value), *_ = reader.records[settings.topic(DLQ)]
    letter = DeadLetter.model_validate_json(letter_value or b"")
    assert letter.stage == "processors.budgets" and "invalid CostEvent" in letter.error
    assert letter.original_topic == settings.topic(COSTS)

"""The enforcement view and the enforcer, with injected clocks (no Kafka, no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from gateway.budgets import BudgetGuard
from gateway.enforcement import EnforcementView
from gateway.enforcer import Enforcer
from gateway.errors import Blocked, BudgetExceeded, EnforcementUnavailable, Throttled
from gateway.keys import KeyStore
from gateway.metrics import Metrics
from gateway.record import RequestRecord
from schemas.events import BudgetRecord, BudgetState, EnforcementDecision, KeyRecord
from schemas.spend import SpendMark, wire_ms

NOW = 1_800_000_000.0


def _decision(subject: str, action: str = "block", **extra: object) -> bytes:
    return EnforcementDecision(
        subject=subject,
        action=action,  # type: ignore[arg-type]
        reason=str(extra.pop("reason", "testing")),
        source=str(extra.pop("source", "manual")),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    ).to_json()


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def test_sources_are_independent_and_a_tombstone_lifts_only_its_own() -> None:
    view = EnforcementView()
    assert view.apply(b"manual|key:k1", _decision("key:k1", "block", reason="first"))
    assert view.apply(b"manual|key:k1", _decision("key:k1", "throttle", rpm=5))  # latest wins
    assert view.apply(b"llmjacking|key:k1", _decision("key:k1", "block", source="llmjacking"))
    block, throttles = view.check(("key:k1", "org:acme"), NOW)
    assert block is not None and (block.action, block.source) == ("block", "llmjacking")
    assert throttles == []

    # Lifting the llmjacking block leaves the manual throttle in force.
    assert view.apply(b"llmjacking|key:k1", None) is True
    block, throttles = view.check(("key:k1",), NOW)
    assert block is None and [(t.source, t.rpm) for t in throttles] == [("manual", 5)]
    assert view.apply(b"budget|key:k1", None) is False  # the budget never decided here

    # A tombstone without a source (an older producer) lifts every source.
    view.apply(b"budget|key:k1", _decision("key:k1", "block", source="budget"))
    assert view.apply(b"key:k1", None) is True
    assert view.check(("key:k1",), NOW) == (None, [])
    assert view.apply(b"key:k1", None) is False  # nothing left to lift


def test_expired_decisions_are_ignored_at_lookup_and_garbage_is_skipped() -> None:
    view = EnforcementView()
    view.apply(b"manual|org:acme", _decision("org:acme", expires_at=_at(NOW + 10)))
    assert view.check(("org:acme",), NOW)[0] is not None
    assert view.check(("org:acme",), NOW + 10)[0] is None
    assert view.active(NOW + 10) == []
    assert view.apply(b"org:x", b"not json") is False
    assert view.apply(b"org:x", orjson.dumps({"subject": "org:x", "action": "nuke"})) is False
    assert len(view) == 1


def test_block_beats_throttle_and_allow_changes_nothing() -> None:
    view = EnforcementView()
    view.apply(b"manual|team:acme/ml", _decision("team:acme/ml", "throttle", rpm=3))
    view.apply(b"manual|user:ana", _decision("user:ana", "allow"))
    block, throttles = view.check(("key:k", "user:ana", "team:acme/ml"), NOW)
    assert block is None and [t.subject for t in throttles] == ["team:acme/ml"]
    view.apply(b"manual|session:s", _decision("session:s"))
    block, _ = view.check(("key:k", "user:ana", "team:acme/ml", "session:s"), NOW)
    assert block is not None and block.subject == "session:s"


class Clock:
    def __init__(self) -> None:
        self.wall = NOW
        self.mono = 100.0
        self.age = 0.0


def _enforcer(clock: Clock, fail_mode: str = "open") -> tuple[Enforcer, Metrics]:
    metrics = Metrics()
    enforcer = Enforcer(
        EnforcementView(),
        BudgetGuard(),
        view_age_s=lambda: clock.age,
        stale_after_s=5.0,
        fail_mode=fail_mode,  # type: ignore[arg-type]
        metrics=metrics,
        wall=lambda: clock.wall,
        monotonic=lambda: clock.mono,
    )
    return enforcer, metrics


def _request(session: str | None = None, budget_ids: list[str] | None = None) -> RequestRecord:
    store = KeyStore()
    store.apply(
        KeyRecord(
            key_id="k1", key_hash="h", org="acme", team="ml", budget_ids=budget_ids or []
        ).model_dump(mode="json")
    )
    record = RequestRecord(endpoint="/v1/chat/completions", session_id=session)
    record.key = store.get("k1")
    return record


def test_enforcer_blocks_naming_subject_reason_and_source() -> None:
    clock = Clock()
    enforcer, _ = _enforcer(clock)
    assert enforcer.admit(_request()) == ()
    enforcer.view.apply(b"session:s1", _decision("session:s1", reason="loop", source="agent_loop"))
    assert enforcer.admit(_request(session="s2")) == ()
    record = _request(session="s1")
    with pytest.raises(Blocked) as info:
        enforcer.admit(record)
    body = orjson.loads(info.value.render())["error"]
    assert (info.value.status, body["code"], body["subject"], body["source"], body["reason"]) == (
        403,
        "blocked",
        "session:s1",
        "agent_loop",
        "loop",
    )
    assert record.enforcement == {
        "action": "block",
        "subject": "session:s1",
        "source": "agent_loop",
        "reason": "loop",
    }


def test_enforcer_throttles_with_retry_after() -> None:
    clock = Clock()
    enforcer, _ = _enforcer(clock)
    enforcer.view.apply(b"team:acme/ml", _decision("team:acme/ml", "throttle", rpm=1))
    enforcer.admit(_request())
    with pytest.raises(Throttled) as info:
        enforcer.admit(_request())
    assert (info.value.status, info.value.headers) == (429, {"retry-after": "60"})
    clock.mono += 60
    record = _request()
    enforcer.admit(record)
    assert record.enforcement is not None and record.enforcement["action"] == "throttle"


def test_stale_view_fails_open_or_closed_and_is_counted() -> None:
    clock = Clock()
    clock.age = 6.0
    opened, metrics = _enforcer(clock, "open")
    record = _request()
    opened.admit(record)
    assert record.enforcement == {"action": "fail_open", "source": "stale_view"}
    closed, closed_metrics = _enforcer(clock, "closed")
    with pytest.raises(EnforcementUnavailable) as info:
        closed.admit(_request())
    assert info.value.status == 503
    assert 'meterline_gateway_enforcement_stale_total{mode="open"} 1' in metrics.render()
    assert 'meterline_gateway_enforcement_stale_total{mode="closed"} 1' in closed_metrics.render()
    clock.age = 1.0
    closed.admit(_request())  # fresh again: served


def _budget(budget_id: str, subject: str, action: str = "block", **extra: object) -> dict:
    return orjson.loads(
        BudgetRecord(
            budget_id=budget_id,
            subject=subject,
            period="day",
            limit_usd="10",  # type: ignore[arg-type]
            action_on_hard=action,  # type: ignore[arg-type]
            **extra,  # type: ignore[arg-type]
        ).to_json()
    )


def _state(
    budget_id: str,
    subject: str,
    spent: str,
    status: str = "ok",
    end: float = NOW + 3600,
    counted_through: float | None = None,
    counted_id: str | None = None,
):
    return BudgetState(
        budget_id=budget_id,
        subject=subject,
        period="day",
        period_start=_at(end - 86400),
        period_end=_at(end),
        spent_usd=spent,  # type: ignore[arg-type]
        limit_usd="10",  # type: ignore[arg-type]
        percent_used=float(spent) * 10,
        status=status,  # type: ignore[arg-type]
        counted_through=_at(counted_through) if counted_through is not None else None,
        counted_through_request_id=counted_id,
    ).to_json()


def _mark(epoch: float, request_id: str) -> SpendMark:
    return SpendMark(wire_ms(epoch), request_id)


def test_budget_hard_state_blocks_by_subject_and_by_key_budget_ids() -> None:
    clock = Clock()
    enforcer, _ = _enforcer(clock)
    guard = enforcer.budgets
    guard.apply_record(_budget("b_team", "team:acme/ml"))
    guard.apply_record(_budget("b_key", "key:other"))
    assert enforcer.admit(_request()) == ("b_team",)  # no state yet: nothing to enforce
    assert guard.apply_state(b"b_team", _state("b_team", "team:acme/ml", "10.5", "hard"))
    with pytest.raises(BudgetExceeded) as info:
        enforcer.admit(_request())
    body = orjson.loads(info.value.render())["error"]
    assert (body["code"], body["budget_id"], body["source"]) == (
        "budget_exceeded",
        "b_team",
        "budget",
    )
    assert "b_team" in body["message"]

    guard.apply_state(b"b_team", _state("b_team", "team:acme/ml", "1"))
    assert enforcer.admit(_request(budget_ids=["b_key"])) == ("b_key", "b_team")
    clock.wall = NOW + 7200  # the snapshot's period ended: it no longer speaks
    guard.apply_state(b"b_team", _state("b_team", "team:acme/ml", "99", "hard"))
    assert enforcer.admit(_request()) == ("b_team",)


def test_local_spend_counts_until_a_snapshot_covers_it() -> None:
    clock = Clock()
    enforcer, _ = _enforcer(clock)
    guard = enforcer.budgets
    guard.apply_record(_budget("b", "org:acme"))
    guard.apply_state(b"b", _state("b", "org:acme", "9.0", counted_through=NOW - 10))
    ids = enforcer.admit(_request())
    guard.add_spend(ids, 0.6, _mark(NOW - 5, "r1"))
    enforcer.admit(_request())  # 9.6 of 10
    guard.add_spend(ids, 0.6, _mark(NOW - 4, "r2"))
    with pytest.raises(BudgetExceeded):
        enforcer.admit(_request())  # 10.2 of 10
    # A lagging snapshot (it has counted only the first request) does not hide the second.
    guard.apply_state(
        b"b", _state("b", "org:acme", "9.6", counted_through=NOW - 5, counted_id="r1")
    )
    with pytest.raises(BudgetExceeded):
        enforcer.admit(_request())
    # A snapshot that covers both (and says the spend was lower) lifts the local refusal.
    guard.apply_state(
        b"b", _state("b", "org:acme", "9.5", counted_through=NOW - 4, counted_id="r2")
    )
    enforcer.admit(_request())
    # A new period starts from a clean ledger.
    guard.add_spend(ids, 5.0, _mark(NOW - 3, "r3"))
    guard.apply_state(b"b", _state("b", "org:acme", "0", end=NOW + 90000))
    enforcer.admit(_request())


def test_budget_actions_throttle_and_alert_and_removal() -> None:
    clock = Clock()
    enforcer, _ = _enforcer(clock)
    guard = enforcer.budgets
    guard.apply_record(_budget("b", "org:acme", "throttle", throttle_rpm=1))
    guard.apply_state(b"b", _state("b", "org:acme", "11", "hard"))
    enforcer.admit(_request())
    with pytest.raises(Throttled):
        enforcer.admit(_request())
    guard.apply_record(_budget("b", "org:acme", "alert"))
    enforcer.admit(_request())
    assert guard.remove("b") and enforcer.admit(_request()) == ()
    assert guard.apply_state(b"b", b"{}") is False

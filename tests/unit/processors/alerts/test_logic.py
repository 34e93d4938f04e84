"""What pages someone: budget crossings, new decisions, anomalies, and de-duplication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterline.settings import AlertSettings
from processors.alerts.logic import (
    Alerter,
    BudgetCrossings,
    Deduplicator,
    Outcome,
    RejectedMessage,
)
from schemas.events.v1 import Anomaly, BudgetState, EnforcementDecision

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
TODAY = datetime(2025, 3, 10, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


def state(status: str, period_start: datetime = TODAY, budget_id: str = "b1") -> BudgetState:
    spent = {"ok": "1", "soft": "85", "hard": "120"}[status]
    return BudgetState(
        ts=NOW,
        budget_id=budget_id,
        subject="team:acme/ml",
        period="day",
        period_start=period_start,
        period_end=period_start + timedelta(days=1),
        spent_usd=Decimal(spent),
        limit_usd=Decimal(100),
        percent_used=float(spent),
        status=status,  # type: ignore[arg-type]
    )


def decision(subject: str = "key:key_1", **overrides: object) -> EnforcementDecision:
    values: dict[str, object] = {
        "subject": subject,
        "action": "block",
        "reason": "llmjacking: 40 models in 60 s",
        "source": "llmjacking",
        "decided_at": NOW,
    }
    values.update(overrides)
    return EnforcementDecision(**values)  # type: ignore[arg-type]


def anomaly(subject: str = "key:key_1", kind: str = "llmjacking") -> Anomaly:
    return Anomaly(
        ts=NOW,
        kind=kind,
        subject=subject,
        score=0.97,
        severity="critical",
        signals=["40 distinct models in 60 s", "new client IP"],
        evidence={"models": 40, "client_ip": "203.0.113.9"},
        source="processors.llmjacking",
    )


def alerter(clock: FakeClock | None = None, **overrides: object) -> Alerter:
    return Alerter(
        AlertSettings.model_validate(overrides),
        dashboard_url="http://127.0.0.1:8501/",
        clock=clock or FakeClock(),
        now=lambda: NOW,
    )


def kinds(outcome: Outcome) -> list[str]:
    return [notice.alert.kind for notice in outcome.notices]


# --- budget crossings -----------------------------------------------------------------


def test_ok_to_soft_alerts_once_and_a_repeat_is_no_crossing() -> None:
    crossings = BudgetCrossings()

    assert crossings.observe(state("ok")) is None
    assert crossings.observe(state("soft")) == "soft"
    assert crossings.observe(state("soft")) is None


def test_soft_to_hard_and_ok_to_hard_are_crossings_hard_repeat_is_not() -> None:
    crossings = BudgetCrossings()

    assert crossings.observe(state("soft")) == "soft"  # first state: the period began at ok
    assert crossings.observe(state("hard")) == "hard"
    assert crossings.observe(state("hard")) is None
    assert crossings.observe(state("ok", budget_id="b2")) is None
    assert crossings.observe(state("hard", budget_id="b2")) == "hard"


def test_going_down_is_no_crossing_but_crossing_again_is() -> None:
    crossings = BudgetCrossings()
    for status in ("soft", "hard"):
        crossings.observe(state(status))

    assert crossings.observe(state("soft")) is None  # limit raised
    assert crossings.observe(state("hard")) == "hard"
    assert crossings.observe(state("ok")) is None
    assert crossings.observe(state("soft")) == "soft"


def test_new_period_resets_and_a_late_state_of_an_old_period_is_ignored() -> None:
    crossings = BudgetCrossings()
    tomorrow = TODAY + timedelta(days=1)
    crossings.observe(state("soft"))

    assert crossings.observe(state("soft", period_start=tomorrow)) == "soft"
    assert crossings.observe(state("hard", period_start=TODAY)) is None
    assert crossings.observe(state("soft", period_start=tomorrow)) is None


def test_alerter_budget_alerts_once_per_crossing_with_the_numbers() -> None:
    subject = alerter()

    outcomes = [subject.on_budget_state(b"b1", state(s).to_json()) for s in ("ok", "soft", "soft")]
    hard = subject.on_budget_state(b"b1", state("hard").to_json())

    assert [kinds(o) for o in outcomes] == [[], ["budget:soft:b1"], []]
    assert kinds(hard) == ["budget:hard:b1"]
    alert = hard.notices[0].alert
    assert alert.severity == "high" and alert.subject == "team:acme/ml"
    assert "120 of 100 USD (120.0%)" in alert.reason and alert.security is False


def test_budget_tombstone_forgets_the_budget() -> None:
    subject = alerter(dedup_window_s=0)
    subject.on_budget_state(b"b1", state("soft").to_json())

    assert subject.on_budget_state(b"b1", None) == Outcome()
    assert kinds(subject.on_budget_state(b"b1", state("soft").to_json())) == ["budget:soft:b1"]


# --- enforcement ----------------------------------------------------------------------


def test_each_new_decision_alerts_once_and_redelivery_does_not() -> None:
    subject = alerter()
    first = decision()

    assert kinds(subject.on_decision(b"key:key_1", first.to_json(), NOW)) == [
        "enforcement:block:llmjacking"
    ]
    assert subject.on_decision(b"key:key_1", first.to_json(), NOW) == Outcome()
    # same decision re-published (other envelope, same decided_at): not new either
    again = decision(event_id="other-envelope")
    assert subject.on_decision(b"key:key_1", again.to_json(), NOW) == Outcome()
    throttle = decision(action="throttle", rpm=5, source="budget", reason="budget exhausted")
    assert kinds(subject.on_decision(b"key:key_1", throttle.to_json(), NOW)) == [
        "enforcement:throttle:budget"
    ]


def test_security_decisions_are_routed_to_security_with_a_dashboard_link() -> None:
    subject = alerter()

    llmjacking = subject.on_decision(b"key:key_1", decision().to_json(), NOW).notices[0].alert
    budget = decision("team:acme/ml", source="budget", reason="budget exhausted")
    by_budget = subject.on_decision(b"team:acme/ml", budget.to_json(), NOW).notices[0].alert

    assert llmjacking.security is True
    assert llmjacking.link == "http://127.0.0.1:8501/security?subject=key%3Akey_1"
    assert by_budget.security is False and by_budget.link is None


def test_tombstone_gives_a_lifted_notice_about_the_known_decision() -> None:
    subject = alerter()
    subject.on_decision(b"llmjacking|key:key_1", decision().to_json(), NOW)

    lifted = subject.on_decision(b"llmjacking|key:key_1", None, NOW).notices[0].alert
    unknown = subject.on_decision(b"manual|team:acme/ml", None, NOW).notices[0].alert

    assert (lifted.kind, lifted.subject, lifted.severity) == (
        "enforcement:lifted",
        "key:key_1",
        "low",
    )
    assert lifted.title == "Lifted the block of key:key_1" and lifted.security is True
    assert unknown.subject == "team:acme/ml" and unknown.security is False
    # once lifted, the same decision is new again (held back only by the dedup window)
    again = subject.on_decision(b"llmjacking|key:key_1", decision().to_json(), NOW)
    assert [alert.kind for alert in again.suppressed] == ["enforcement:block:llmjacking"]


def test_lift_notices_can_be_turned_off() -> None:
    subject = alerter(on_lift=False)

    assert subject.on_decision(b"key:key_1", None, NOW) == Outcome()


def test_stale_events_update_state_but_do_not_page() -> None:
    subject = alerter(max_age_s=60)
    old = decision(decided_at=NOW - timedelta(hours=2))

    assert subject.on_decision(b"key:key_1", old.to_json(), NOW) == Outcome()
    assert subject.on_decision(b"key:key_1", old.to_json(), NOW) == Outcome()
    assert subject.on_decision(b"key:key_1", None, NOW - timedelta(hours=1)) == Outcome()
    stale_state = state("soft").model_copy(update={"ts": NOW - timedelta(hours=2)})
    assert subject.on_budget_state(b"b1", stale_state.to_json()) == Outcome()
    assert subject.on_budget_state(b"b1", state("soft").to_json()) == Outcome()  # no new crossing


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"key:key_1", b"{not json", "invalid EnforcementDecision"),
        (b"key:key_1", b'{"subject": "key:key_1"}', "action: Field required"),
        (None, None, "tombstone without a key"),
    ],
)
def test_unusable_enforcement_records_are_rejected(
    key: bytes | None, value: bytes | None, reason: str
) -> None:
    with pytest.raises(RejectedMessage) as caught:
        alerter().on_decision(key, value, NOW)

    assert reason in caught.value.reason


def test_unusable_anomalies_and_states_are_rejected() -> None:
    subject = alerter()

    with pytest.raises(RejectedMessage, match="invalid Anomaly"):
        subject.on_anomaly(None)
    with pytest.raises(RejectedMessage, match="invalid Anomaly: severity"):
        subject.on_anomaly(anomaly().to_json().replace(b'"critical"', b'"apocalyptic"'))
    with pytest.raises(RejectedMessage, match="invalid BudgetState"):
        subject.on_budget_state(b"b1", b"[]")


# --- anomalies and de-duplication -----------------------------------------------------


def test_a_burst_of_anomalies_is_one_alert_and_the_next_counts_the_rest() -> None:
    clock = FakeClock()
    subject = alerter(clock)

    outcomes = [subject.on_anomaly(anomaly().to_json()) for _ in range(20)]
    other_subject = subject.on_anomaly(anomaly("key:key_2").to_json())
    other_kind = subject.on_anomaly(anomaly(kind="agent_loop").to_json())
    clock.seconds += 600
    later = subject.on_anomaly(anomaly().to_json())

    assert sum(len(o.notices) for o in outcomes) == 1
    assert sum(len(o.suppressed) for o in outcomes) == 19
    first = outcomes[0].notices[0]
    assert first.suppressed_before == 0 and first.alert.security is True
    assert first.alert.link == "http://127.0.0.1:8501/security?subject=key%3Akey_1"
    assert first.alert.title == "LLMjacking suspected on key:key_1"
    assert len(other_subject.notices) == len(other_kind.notices) == 1
    assert later.notices[0].suppressed_before == 19


def test_deduplicator_window_opens_with_each_alert_sent() -> None:
    clock = FakeClock()
    dedup = Deduplicator(10.0, clock)

    assert dedup.admit("s", "k") == 0
    clock.seconds += 9.9
    assert dedup.admit("s", "k") is None
    assert dedup.admit("s", "k") is None
    clock.seconds += 0.1
    assert dedup.admit("s", "k") == 2
    clock.seconds += 5
    assert dedup.admit("s", "k") is None
    clock.seconds += 5
    assert dedup.admit("s", "k") == 1


def test_deduplicator_with_no_window_admits_everything() -> None:
    dedup = Deduplicator(0.0, FakeClock())

    assert [dedup.admit("s", "k") for _ in range(3)] == [0, 0, 0]


def test_deduplicator_memory_is_bounded() -> None:
    clock = FakeClock()
    dedup = Deduplicator(10.0, clock, max_keys=3)
    for subject in ("a", "b", "c", "d"):
        dedup.admit(subject, "k")

    assert dedup.admit("a", "k") == 0  # forgotten (oldest), so admitted again
    assert dedup.admit("d", "k") is None  # still remembered

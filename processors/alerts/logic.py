"""Alerts: which budget states, enforcement decisions and anomalies page someone. Pure.

- Budgets: a crossing is a change of status within one budget's period, ok -> soft or
  anything -> hard; a repeated status is not a crossing, and a new period starts at ok.
- Enforcement: every decision not alerted before (per subject: action, source,
  decided_at), and optionally a notice when a tombstone lifts it.
- Anomalies: every one, subject to the de-duplication window like everything else.

De-duplication allows one alert per (subject, kind) per window and counts what it held
back, so a burst of detections becomes one page that says how many followed. All this
state is in memory: a restart of the processors may re-send the latest alert once
(at-least-once), which is acceptable for notifications. Events older than `max_age_s`
only update the state, so a consumer reading old history never pages for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import ValidationError

from meterline.settings import AlertSettings
from processors.budgets.logic import RejectedMessage
from processors.errors import describe_validation_error
from schemas.events.v1 import Anomaly, BudgetState, EnforcementDecision, utc_now
from schemas.severity import Severity
from schemas.subjects import key_id_of
from schemas.topics import parse_enforcement_key

__all__ = [
    "SECURITY_SOURCES",
    "STAGE",
    "Alert",
    "Alerter",
    "BudgetCrossings",
    "DecisionLedger",
    "Deduplicator",
    "Notice",
    "Outcome",
    "RejectedMessage",
]

STAGE = "processors.alerts"
Category = Literal["budget", "enforcement", "anomaly"]
# Decisions from these detectors also go to the security webhooks.
SECURITY_SOURCES = frozenset({"llmjacking", "agent_loop"})
_M = TypeVar("_M", BudgetState, EnforcementDecision, Anomaly)


@dataclass(frozen=True)
class Alert:
    """What happened, to whom, and what to do; `kind` + `subject` is the dedup identity."""

    category: Category
    kind: str
    subject: str
    severity: Severity
    title: str
    reason: str
    source: str
    at: datetime
    signals: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    advice: str | None = None
    link: str | None = None
    security: bool = False


@dataclass(frozen=True)
class Notice:
    """An alert to send; `suppressed_before` similar ones were held back since the last."""

    alert: Alert
    suppressed_before: int = 0


@dataclass(frozen=True)
class Outcome:
    notices: list[Notice] = field(default_factory=list)
    suppressed: list[Alert] = field(default_factory=list)


# --- state ----------------------------------------------------------------------------


class BudgetCrossings:
    """Soft and hard crossings from the sequence of BudgetStates, per budget and period.

    Only the latest period of each budget is kept: states of a period are ordered (the
    budgets topic is keyed by budget_id), and a state of an older period arrives late.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[datetime, str]] = {}  # budget_id -> (period start, status)

    def observe(self, state: BudgetState) -> Literal["soft", "hard"] | None:
        known = self._last.get(state.budget_id)
        if known is not None and state.period_start < known[0]:
            return None
        same_period = known is not None and known[0] == state.period_start
        previous = known[1] if known is not None and same_period else "ok"
        self._last[state.budget_id] = (state.period_start, state.status)
        if state.status == previous:
            return None
        if state.status == "hard":
            return "hard"
        return "soft" if state.status == "soft" and previous == "ok" else None

    def forget(self, budget_id: str) -> None:
        self._last.pop(budget_id, None)


class DecisionLedger:
    """The live decision per enforcement record key, to tell a new decision from a
    re-delivered one and to know what a tombstone lifts."""

    def __init__(self) -> None:
        self._live: dict[str, EnforcementDecision] = {}

    def record(self, key: str, decision: EnforcementDecision) -> bool:
        """Remember the decision; True when it was not seen before."""
        previous = self._live.get(key)
        self._live[key] = decision
        return previous is None or _identity(previous) != _identity(decision)

    def lift(self, key: str) -> EnforcementDecision | None:
        """Forget the key's decision; return it when it was known."""
        return self._live.pop(key, None)


def _identity(decision: EnforcementDecision) -> tuple[str, str, datetime]:
    return decision.action, decision.source, decision.decided_at


class Deduplicator:
    """One alert per (subject, kind) per window; counts the alerts it holds back.

    The window opens with each alert sent; `clock` (seconds, monotonic) is injectable.
    A window of 0 lets everything through. Memory is bounded by `max_keys`: past it,
    expired windows are forgotten first, then the oldest ones.
    """

    def __init__(
        self,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[tuple[str, str], list[float]] = {}  # key -> [opened, suppressed]

    def admit(self, subject: str, kind: str) -> int | None:
        """None to hold the alert back; else how many were held back since the last one."""
        now = self._clock()
        key = (subject, kind)
        window = self._windows.get(key)
        if window is not None and now - window[0] < self._window_s:
            window[1] += 1
            return None
        self._windows.pop(key, None)  # re-inserted last: dict order is age order
        self._windows[key] = [now, 0]
        self._prune(now)
        return int(window[1]) if window is not None else 0

    def _prune(self, now: float) -> None:
        if len(self._windows) <= self._max_keys:
            return
        self._windows = {
            key: window for key, window in self._windows.items() if now - window[0] < self._window_s
        }
        while len(self._windows) > self._max_keys:
            del self._windows[next(iter(self._windows))]


# --- the alerter ----------------------------------------------------------------------


class Alerter:
    """Raw topic records in, alerts out; raises RejectedMessage for unusable input.

    `clock` drives de-duplication (monotonic seconds), `now` the staleness check.
    """

    def __init__(
        self,
        config: AlertSettings,
        *,
        dashboard_url: str,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._dashboard_url = dashboard_url.rstrip("/")
        self._max_age = timedelta(seconds=config.max_age_s) if config.max_age_s > 0 else None
        self._alert_on_lift = config.on_lift
        self._now = now
        self._crossings = BudgetCrossings()
        self._decisions = DecisionLedger()
        self._dedup = Deduplicator(config.dedup_window_s, clock)

    def on_budget_state(self, key: bytes | None, value: bytes | None) -> Outcome:
        if value is None:  # a tombstone of a budget_id: the budget is gone
            if key:
                self._crossings.forget(key.decode(errors="replace"))
            return Outcome()
        state = _parse(BudgetState, value)
        crossing = self._crossings.observe(state)
        if crossing is None or not self._fresh(state.ts):
            return Outcome()
        return self._admit([_budget_alert(state, crossing)])

    def on_decision(self, key: bytes | None, value: bytes | None, written_at: datetime) -> Outcome:
        """An enforcement record; `written_at` (the record's time) dates a tombstone."""
        if value is None:
            if not key:
                raise RejectedMessage("enforcement tombstone without a key")
            record_key = key.decode(errors="replace")
            lifted = self._decisions.lift(record_key)
            if not self._alert_on_lift or not self._fresh(written_at):
                return Outcome()
            subject = lifted.subject if lifted is not None else parse_enforcement_key(record_key)[1]
            return self._admit([self._lift_alert(subject, lifted, written_at)])
        decision = _parse(EnforcementDecision, value)
        record_key = key.decode(errors="replace") if key else decision.subject
        if not self._decisions.record(record_key, decision) or not self._fresh(decision.decided_at):
            return Outcome()
        return self._admit([self._decision_alert(decision)])

    def on_anomaly(self, value: bytes | None) -> Outcome:
        if value is None:
            raise RejectedMessage("invalid Anomaly: empty message (null value)")
        anomaly = _parse(Anomaly, value)
        if not self._fresh(anomaly.ts):
            return Outcome()
        return self._admit([self._anomaly_alert(anomaly)])

    # internals

    def _fresh(self, at: datetime) -> bool:
        return self._max_age is None or self._now() - at <= self._max_age

    def _admit(self, alerts: list[Alert]) -> Outcome:
        outcome = Outcome()
        for alert in alerts:
            suppressed_before = self._dedup.admit(alert.subject, alert.kind)
            if suppressed_before is None:
                outcome.suppressed.append(alert)
            else:
                outcome.notices.append(Notice(alert, suppressed_before))
        return outcome

    def _security_link(self, subject: str) -> str:
        return f"{self._dashboard_url}/security?subject={quote(subject, safe='')}"

    def _decision_alert(self, decision: EnforcementDecision) -> Alert:
        security = decision.source in SECURITY_SOURCES
        evidence: dict[str, Any] = {"decided_at": decision.decided_at}
        if decision.rpm is not None:
            evidence["rpm"] = decision.rpm
        evidence["expires_at"] = decision.expires_at or "never (until lifted)"
        if decision.anomaly_id:
            evidence["anomaly_id"] = decision.anomaly_id
        return Alert(
            category="enforcement",
            kind=f"enforcement:{decision.action}:{decision.source}",
            subject=decision.subject,
            severity=_DECISION_SEVERITY[decision.action],
            title=_decision_title(decision),
            reason=decision.reason,
            source=decision.source,
            at=decision.decided_at,
            evidence=evidence,
            advice=_decision_advice(decision),
            link=self._security_link(decision.subject) if security else None,
            security=security,
        )

    def _lift_alert(self, subject: str, lifted: EnforcementDecision | None, at: datetime) -> Alert:
        security = lifted is not None and lifted.source in SECURITY_SOURCES
        what = _ACTION_NOUN[lifted.action] if lifted is not None else "enforcement decision"
        evidence: dict[str, Any] = {}
        if lifted is not None:
            evidence = {"lifted_reason": lifted.reason, "decided_at": lifted.decided_at}
        return Alert(
            category="enforcement",
            kind="enforcement:lifted",
            subject=subject,
            severity="low",
            title=f"Lifted the {what} of {subject}",
            reason=f"The {what} of {subject} was lifted; requests are served again.",
            source=lifted.source if lifted is not None else "enforcement",
            at=at,
            evidence=evidence,
            link=self._security_link(subject) if security else None,
            security=security,
        )

    def _anomaly_alert(self, anomaly: Anomaly) -> Alert:
        evidence: dict[str, Any] = {
            "score": round(anomaly.score, 3),
            "recommended_action": anomaly.recommended_action,
            "anomaly_id": anomaly.anomaly_id,
            **anomaly.evidence,
        }
        reason = "; ".join(anomaly.signals) or f"{anomaly.kind} detected (score {anomaly.score})"
        return Alert(
            category="anomaly",
            kind=f"anomaly:{anomaly.kind}",
            subject=anomaly.subject,
            severity=anomaly.severity,
            title=f"{_label(anomaly.kind)} suspected on {anomaly.subject}",
            reason=reason,
            source=anomaly.source,
            at=anomaly.ts,
            signals=tuple(anomaly.signals),
            evidence=evidence,
            link=self._security_link(anomaly.subject),
            security=True,
        )


# --- alert contents -------------------------------------------------------------------

_DECISION_SEVERITY: dict[str, Severity] = {"block": "high", "throttle": "medium", "allow": "low"}
_ACTION_NOUN = {"block": "block", "throttle": "throttle", "allow": "allow override"}


def _budget_alert(state: BudgetState, crossing: Literal["soft", "hard"]) -> Alert:
    period = f"{state.period} from {_day(state.period_start)} to {_day(state.period_end)}"
    spent = f"{state.spent_usd:f} of {state.limit_usd:f} USD ({state.percent_used:.1f}%)"
    evidence: dict[str, Any] = {
        "budget_id": state.budget_id,
        "spent_usd": state.spent_usd,
        "limit_usd": state.limit_usd,
        "burn_rate_usd_per_hour": state.burn_rate_usd_per_hour,
    }
    if state.projected_exhaustion is not None:
        evidence["projected_exhaustion"] = state.projected_exhaustion
    title = (
        f"Budget exhausted: {state.subject}"
        if crossing == "hard"
        else f"Budget soft limit reached: {state.subject}"
    )
    return Alert(
        category="budget",
        kind=f"budget:{crossing}:{state.budget_id}",
        subject=state.subject,
        severity="high" if crossing == "hard" else "medium",
        title=title,
        reason=f"Budget {state.budget_id} has used {spent} of its {period}.",
        source=state.source,
        at=state.ts,
        evidence=evidence,
    )


def _decision_title(decision: EnforcementDecision) -> str:
    if decision.action == "block":
        return f"Blocked {decision.subject}"
    if decision.action == "throttle":
        limit = f" to {decision.rpm} requests/min" if decision.rpm is not None else ""
        return f"Throttled {decision.subject}{limit}"
    return f"Allow override for {decision.subject}"


def _decision_advice(decision: EnforcementDecision) -> str | None:
    if decision.action == "allow":
        return None
    lift = f"To lift it: `meterline unblock {decision.subject}`."
    key_id = key_id_of(decision.subject)
    if decision.action == "block" and key_id is not None:
        return (
            f"Key {key_id} is blocked on every gateway: its requests are refused. "
            "If the key may have leaked, rotate it: create a new key with the admin API "
            "(`POST /admin/keys`) or `meterline keys create --org <org>`, move the "
            f"application to it, then revoke this one (`meterline keys revoke {key_id}`). " + lift
        )
    return lift


def _label(kind: str) -> str:
    names = {"llmjacking": "LLMjacking", "agent_loop": "Runaway agent loop"}
    return names.get(kind, kind.replace("_", " ").capitalize())


def _day(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _parse(model: type[_M], value: bytes) -> _M:
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        reason = describe_validation_error(exc, count_omitted=False)
        raise RejectedMessage(f"invalid {model.__name__}: {reason}") from exc

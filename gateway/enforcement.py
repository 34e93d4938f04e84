"""The enforcement view: the latest EnforcementDecision per subject and source.

Filled from the compacted `meterline.enforcement` topic (Kafka key = `<source>|<subject>`,
see `schemas.topics.enforcement_key`; a tombstone lifts that source's decision) by
`meterline.views.ViewReader`, and by the admin API at once. Sources are independent: a
subject is blocked while any source blocks it. A decision whose `expires_at` has passed
is ignored at lookup time, so expiry needs no timer. `allow` decisions are kept (they are
listed) but change nothing: they do not override a block.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas.enforcement import ENFORCEMENT_ACTIONS
from schemas.topics import parse_enforcement_key

__all__ = ["Decision", "EnforcementView", "parse_ts"]

log = logging.getLogger(__name__)

_ACTIONS = frozenset(ENFORCEMENT_ACTIONS)
DEFAULT_THROTTLE_RPM = 60  # a throttle decision without `rpm`


def parse_ts(value: Any) -> float | None:
    """An ISO-8601 timestamp (the events' wire format) as epoch seconds; None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return parsed.timestamp()


@dataclass(frozen=True, slots=True)
class Decision:
    subject: str
    action: str  # block | throttle | allow
    reason: str
    source: str
    rpm: int | None = None
    expires_at: float | None = None  # epoch seconds
    decided_at: float | None = None
    record: dict[str, Any] | None = None  # as received, for the admin listing

    def active(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now

    @property
    def throttle_rpm(self) -> int:
        return self.rpm if self.rpm is not None and self.rpm >= 0 else DEFAULT_THROTTLE_RPM

    def summary(self) -> dict[str, str]:
        """What RequestEvent.enforcement records when this decision is applied."""
        out = {"action": self.action, "subject": self.subject, "source": self.source}
        if self.reason:
            out["reason"] = self.reason[:200]
        if self.action == "throttle":
            out["rpm"] = str(self.throttle_rpm)
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any], subject: str | None = None) -> Decision | None:
        action = record.get("action")
        subject = record.get("subject") or subject
        if action not in _ACTIONS or not isinstance(subject, str) or not subject:
            return None
        rpm = record.get("rpm")
        return cls(
            subject=subject,
            action=str(action),
            reason=str(record.get("reason") or ""),
            source=str(record.get("source") or "unknown"),
            rpm=rpm if isinstance(rpm, int) and not isinstance(rpm, bool) else None,
            expires_at=parse_ts(record.get("expires_at")),
            decided_at=parse_ts(record.get("decided_at")),
            record=record,
        )


class EnforcementView:
    """subject -> source -> Decision. Written by the reader thread and admin routes, read
    by the event loop. Writers replace a subject's inner dict (copy-on-write), so a reader
    never sees one half-changed."""

    def __init__(self) -> None:
        self._by_subject: dict[str, dict[str, Decision]] = {}
        self._lock = threading.Lock()  # writers only; a dict get needs no lock

    def __len__(self) -> int:
        return sum(len(sources) for sources in list(self._by_subject.values()))

    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one record of the enforcement topic; False if it was ignored."""
        source, subject = parse_enforcement_key((key or b"").decode(errors="replace"))
        if value is None:
            return self.lift(subject, source)
        try:
            record = orjson.loads(value)
            decision = Decision.from_record(record, subject) if isinstance(record, dict) else None
        except (orjson.JSONDecodeError, ValueError, TypeError):
            decision = None
        if decision is None:
            log.warning("enforcement: skipping a record that is not a decision")
            return False
        self.put(decision)
        return True

    def put(self, decision: Decision) -> None:
        with self._lock:
            sources = dict(self._by_subject.get(decision.subject, {}))
            sources[decision.source] = decision
            self._by_subject[decision.subject] = sources

    def lift(self, subject: str, source: str | None = None) -> bool:
        """Lift one source's decision on `subject`, or every source's when None."""
        with self._lock:
            sources = self._by_subject.get(subject)
            if not sources:
                return False
            if source is None:
                del self._by_subject[subject]
                return True
            if source not in sources:
                return False
            remaining = {name: d for name, d in sources.items() if name != source}
            if remaining:
                self._by_subject[subject] = remaining
            else:
                del self._by_subject[subject]
            return True

    def sources(self, subject: str, now: float) -> list[Decision]:
        """Every active decision on `subject`, one per source."""
        return [d for d in self._by_subject.get(subject, {}).values() if d.active(now)]

    def get(self, subject: str, now: float) -> Decision | None:
        """The decision that counts for `subject`: a block first, then a throttle."""
        decisions = self.sources(subject, now)
        return min(decisions, key=_precedence) if decisions else None

    def check(
        self, subjects: tuple[str, ...], now: float
    ) -> tuple[Decision | None, list[Decision]]:
        """(the first active block, the active throttles) among `subjects`."""
        if not self._by_subject:  # the common case: nothing is enforced anywhere
            return None, []
        throttles: list[Decision] = []
        table = self._by_subject
        for subject in subjects:
            sources = table.get(subject)
            if not sources:
                continue
            for decision in sources.values():
                if not decision.active(now):
                    continue
                if decision.action == "block":
                    return decision, []
                if decision.action == "throttle":
                    throttles.append(decision)
        return None, throttles

    def active(self, now: float) -> list[Decision]:
        return sorted(
            (
                d
                for sources in list(self._by_subject.values())
                for d in sources.values()
                if d.active(now)
            ),
            key=lambda d: (d.subject, d.source),
        )


def _precedence(decision: Decision) -> tuple[int, int]:
    order = {"block": 0, "throttle": 1}.get(decision.action, 2)
    return order, decision.throttle_rpm if decision.action == "throttle" else 0

"""Detector policies from the control topic, and what detectors publish. Pure.

A PolicyRecord(kind, subject="org:<org>", mode) sets how a detector acts for that org.
The llmjacking and agent-loop detectors each keep a `PolicyBook` of their own kind, fed
by `processors.budgets.control.ControlReader` (the whole compacted control topic, read
from the beginning on every start). Control records are keyed `policy:<policy_id>`; a
tombstone or `deleted=True` removes the policy and the default mode applies again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from processors.errors import Rejected, describe_validation_error
from schemas.events.v1 import Event, policy_record
from schemas.policies import POLICY_MODES
from schemas.topics import control_record_id

__all__ = ["PolicyBook", "Publication", "RejectedPolicy"]


@dataclass(frozen=True)
class Publication:
    """One record for a detector's agent to send: `topic` is a base name (schemas.topics)."""

    topic: str
    key: str
    value: Event

    def payload(self) -> bytes:
        return self.value.to_json()


class RejectedPolicy(Rejected):
    """A policy record of our kind that cannot be used; `reason` goes to the dead letter."""


@dataclass(frozen=True)
class _Policy:
    subject: str
    mode: str
    params: dict[str, object]


class PolicyBook:
    """The live policies of one kind; `mode()` answers for a request's subjects."""

    def __init__(self, kind: str, default: str) -> None:
        self.kind = kind
        self.modes = frozenset(POLICY_MODES[kind])  # KeyError: not a policy kind
        self.default = default
        self._by_id: dict[str, _Policy] = {}
        self._by_subject: dict[str, str] = {}  # subject -> policy_id (the latest wins)

    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one control record; True if it was a policy of our kind."""
        if value is None:
            policy_id = control_record_id(key, "policy")
            return policy_id is not None and self._remove(policy_id)
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RejectedPolicy(f"control record is not JSON: {exc}") from exc
        if not isinstance(record, dict) or record.get("event_type") != "policy":
            return False
        if record.get("kind") != self.kind:
            # Another kind, or the same id re-used for another kind: ours is gone.
            return self._remove(str(record.get("policy_id", "")))
        mode = record.get("mode")
        if not record.get("deleted") and isinstance(mode, str) and mode not in self.modes:
            # Said before validating, so the dead letter names this kind's modes.
            allowed = ", ".join(sorted(self.modes))
            raise RejectedPolicy(
                f"invalid PolicyRecord: {self.kind} mode {mode!r} is not one of {allowed}"
            )
        try:
            policy = policy_record(record)
        except ValidationError as exc:
            raise RejectedPolicy(f"invalid PolicyRecord: {describe_validation_error(exc)}") from exc
        if policy.deleted:
            return self._remove(policy.policy_id)
        self._remove(policy.policy_id)
        self._by_id[policy.policy_id] = _Policy(policy.subject, policy.mode, dict(policy.params))
        self._by_subject[policy.subject] = policy.policy_id
        return True

    def mode(self, subjects: Iterable[str]) -> tuple[str, dict[str, object]]:
        """(mode, params) of the first subject with a policy, else (default, {})."""
        for subject in subjects:
            policy_id = self._by_subject.get(subject)
            if policy_id is not None:
                policy = self._by_id[policy_id]
                return policy.mode, policy.params
        return self.default, {}

    def _remove(self, policy_id: str) -> bool:
        policy = self._by_id.pop(policy_id, None)
        if policy is None:
            return False
        if self._by_subject.get(policy.subject) == policy_id:
            del self._by_subject[policy.subject]
            # An older policy of the same subject applies again (the latest one left).
            for other_id, other in self._by_id.items():
                if other.subject == policy.subject:
                    self._by_subject[policy.subject] = other_id
        return True

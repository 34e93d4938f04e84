"""Guardrail modes per key, team, project, user or org, from PolicyRecords.

A PolicyRecord `{subject, kind: "guardrail:<name>", mode}` on the control topic (key
`policy:<policy_id>`) sets one guardrail's mode for one subject. A request uses the mode
of its key's most specific subject that has one (`key:` > `user:` > `team:` >
`project:` > `org:`, the order of `KeyInfo.subjects`), else the settings default.
Written by the view reader thread, read by the event loop: plain dict gets.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import Any

from schemas.policies import GUARDRAIL_MODES, GUARDRAILS, GuardrailMode, guardrail_of

__all__ = ["GuardrailPolicies", "policy_id_for"]


def policy_id_for(subject: str, kind: str) -> str:
    """One policy per subject and kind, so setting it again replaces it."""
    return "pol_" + hashlib.sha256(f"{subject}\x1f{kind}".encode()).hexdigest()[:16]


class GuardrailPolicies:
    def __init__(self, defaults: Mapping[str, str]) -> None:
        unknown = set(defaults) - set(GUARDRAILS)
        if unknown:
            raise ValueError(f"gateway.guardrail.modes: unknown guardrails {sorted(unknown)}")
        bad = {name: mode for name, mode in defaults.items() if mode not in GUARDRAIL_MODES}
        if bad:
            raise ValueError(
                f"gateway.guardrail.modes: unknown modes {bad}; use one of {GUARDRAIL_MODES}"
            )
        self.defaults: dict[str, GuardrailMode] = {g: defaults.get(g, "off") for g in GUARDRAILS}  # type: ignore[misc]
        self._modes: dict[tuple[str, str], GuardrailMode] = {}  # (subject, guardrail) -> mode
        self._records: dict[str, dict[str, Any]] = {}  # policy_id -> record
        self._lock = threading.Lock()  # writers only

    def __len__(self) -> int:
        return len(self._records)

    def modes(self, subjects: tuple[str, ...]) -> dict[str, GuardrailMode]:
        """Each guardrail's mode for a request whose key has these subjects."""
        if not self._modes:
            return self.defaults
        table = self._modes
        resolved = dict(self.defaults)
        for guardrail in GUARDRAILS:
            for subject in subjects:
                mode = table.get((subject, guardrail))
                if mode is not None:
                    resolved[guardrail] = mode
                    break
        return resolved

    def apply_record(self, record: dict[str, Any]) -> bool:
        """Apply one PolicyRecord (as a dict); False if it is not a guardrail policy."""
        policy_id, subject, kind = (record.get(f) for f in ("policy_id", "subject", "kind"))
        if not all(isinstance(v, str) and v for v in (policy_id, subject, kind)):
            return False
        guardrail = guardrail_of(kind)  # type: ignore[arg-type]
        if guardrail is None:
            return False  # other kinds (llmjacking, agent_loop) belong to the processors
        if record.get("deleted"):
            return self.remove(policy_id)  # type: ignore[arg-type]
        mode = record.get("mode")
        if mode not in GUARDRAIL_MODES:
            return False
        with self._lock:
            self._drop(policy_id)  # type: ignore[arg-type]
            self._records[policy_id] = dict(record)  # type: ignore[index]
            self._modes[(subject, guardrail)] = mode  # type: ignore[index]
        return True

    def remove(self, policy_id: str) -> bool:
        with self._lock:
            return self._drop(policy_id)

    def _drop(self, policy_id: str) -> bool:
        old = self._records.pop(policy_id, None)
        if old is None:
            return False
        slot = (old["subject"], guardrail_of(old["kind"]) or "")
        self._modes.pop(slot, None)
        for other in self._records.values():  # another record for the same slot takes over
            if (other["subject"], guardrail_of(other["kind"])) == slot:
                self._modes[slot] = other["mode"]
        return True

    def get(self, policy_id: str) -> dict[str, Any] | None:
        return self._records.get(policy_id)

    def listing(self) -> list[dict[str, Any]]:
        return sorted(self._records.values(), key=lambda r: (r["subject"], r["kind"]))

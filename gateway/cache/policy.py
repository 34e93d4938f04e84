"""Cache policy per key, user, team, project or org: PolicyRecords of kind `cache` (admin
API), the YAML's `gateway.cache.policies`, then the `gateway.cache` defaults.

A request uses the most specific subject's policy (`key:` > `user:` > `team:` >
`project:` > `org:`, the order of `KeyInfo.subjects`); a policy's params (`ttl_s`,
`similarity`, `scope`) fall back to the defaults one by one. Written by the view reader
thread, read by the event loop: plain dict gets.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from meterline.settings import CacheSettings
from schemas.policies import CACHE, CACHE_MODES, CacheMode
from schemas.topics import parse_control_key

__all__ = ["CachePolicies", "CachePolicy", "policy_params_error"]

Scope = Literal["org", "key"]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    mode: CacheMode
    ttl_s: float
    similarity: float
    scope: Scope


def policy_params_error(params: Mapping[str, Any]) -> tuple[str, str] | None:
    """(param, message) for the first bad cache-policy param, or None when all are valid."""
    for name, value in params.items():
        if name == "ttl_s":
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                return name, "ttl_s must be a number of seconds > 0"
        elif name == "similarity":
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1:
                return name, "similarity must be a cosine similarity in (0, 1]"
        elif name == "scope":
            if value not in ("org", "key"):
                return name, "scope must be org or key"
        else:
            return name, f"unknown cache policy param '{name}'; use ttl_s, similarity, scope"
    return None


class CachePolicies:
    def __init__(self, settings: CacheSettings) -> None:
        self.default = CachePolicy(
            settings.mode, settings.ttl_s, settings.similarity, settings.scope
        )
        self._configured = {
            subject: self._from(p.mode, p.model_dump(exclude_none=True, exclude={"mode"}))
            for subject, p in settings.policies.items()
        }
        self._from_records: dict[str, CachePolicy] = {}  # subject -> policy (admin API)
        self._records: dict[str, dict[str, Any]] = {}  # policy_id -> record
        self._lock = threading.Lock()  # writers only

    @property
    def any_on(self) -> bool:
        """Whether some request may use the cache (else the gateway skips it at once)."""
        return self.default.mode != "off" or bool(self._configured) or bool(self._from_records)

    def for_subjects(self, subjects: tuple[str, ...]) -> CachePolicy:
        records, configured = self._from_records, self._configured
        if records or configured:
            for subject in subjects:
                policy = records.get(subject) or configured.get(subject)
                if policy is not None:
                    return policy
        return self.default

    def _from(self, mode: CacheMode, params: Mapping[str, Any]) -> CachePolicy:
        base = self.default
        return CachePolicy(
            mode,
            float(params.get("ttl_s", base.ttl_s)),
            float(params.get("similarity", base.similarity)),
            params.get("scope", base.scope),
        )

    # --- the control topic ------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one control-topic record if it is a cache policy; False otherwise."""
        if value is None:
            record_type, record_id = parse_control_key((key or b"").decode(errors="replace"))
            return record_type == "policy" and self.remove(record_id)
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(record, dict) or record.get("event_type") != "policy":
            return False
        return self.apply_record(record)

    def apply_record(self, record: dict[str, Any]) -> bool:
        policy_id, subject = record.get("policy_id"), record.get("subject")
        if record.get("kind") != CACHE or not isinstance(policy_id, str):
            return False
        if record.get("deleted"):
            return self.remove(policy_id)
        mode, params = record.get("mode"), record.get("params") or {}
        if (
            not isinstance(subject, str)
            or mode not in CACHE_MODES
            or not isinstance(params, dict)
            or policy_params_error(params) is not None
        ):
            return False
        with self._lock:
            self._drop(policy_id)
            self._records[policy_id] = dict(record)
            self._from_records[subject] = self._from(mode, params)  # type: ignore[arg-type]
        return True

    def remove(self, policy_id: str) -> bool:
        with self._lock:
            return self._drop(policy_id)

    def _drop(self, policy_id: str) -> bool:
        old = self._records.pop(policy_id, None)
        if old is None:
            return False
        self._from_records.pop(old["subject"], None)
        return True

    def get(self, policy_id: str) -> dict[str, Any] | None:
        return self._records.get(policy_id)

    def listing(self) -> list[dict[str, Any]]:
        return sorted(self._records.values(), key=lambda r: r["subject"])

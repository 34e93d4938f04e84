"""Virtual keys: generation, and the in-memory view every gateway instance keeps.

Only the SHA-256 of a secret is stored (`schemas.ids.hash_key`). The view is filled from
the compacted control topic by `gateway.control.ControlReader`; lookups are one dict get.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any

from schemas.ids import hash_key
from schemas.subjects import attribution_subjects

__all__ = ["KEY_PREFIX", "KeyInfo", "KeyStore", "new_key", "revoked_view"]

KEY_PREFIX = "ml-"


def new_key() -> tuple[str, str]:
    """(key_id, secret); the secret has 256 random bits."""
    return f"key_{secrets.token_hex(8)}", KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    key_hash: str
    org: str
    team: str = ""
    project: str = ""
    user: str = ""
    models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_ids: tuple[str, ...] = ()
    # key:, user:, team:, project:, org: subjects, derived once (enforcement lookups)
    subjects: tuple[str, ...] = ()

    def allows(self, model: str) -> bool:
        if self.models is None:
            return True
        for pattern in self.models:
            if pattern == "*" or pattern == model:
                return True
            if pattern.endswith("*") and model.startswith(pattern[:-1]):
                return True
        return False

    def public(self) -> dict[str, Any]:
        """Attribution shown by the admin API (no hash, no secret)."""
        return {
            "key_id": self.key_id,
            "org": self.org,
            "team": self.team,
            "project": self.project,
            "user": self.user,
            "models": list(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_ids": list(self.budget_ids),
        }


def revoked_view(record: dict[str, Any]) -> dict[str, Any]:
    """A revoked KeyRecord as the admin API lists it."""
    fields = ("key_id", "org", "team", "project", "user", "models", "rpm", "tpm", "budget_ids")
    view = {name: record.get(name) for name in fields}
    view.update(revoked=True, revoked_at=record.get("ts"), revoked_by=record.get("created_by"))
    return view


class KeyStore:
    """hash -> KeyInfo. Written by the control reader thread, read by the event loop."""

    def __init__(self) -> None:
        self._by_hash: dict[str, KeyInfo] = {}
        self._hash_by_id: dict[str, str] = {}
        # key_id -> what the admin API lists for a revoked key: it stays visible as revoked.
        self._revoked: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # writers only; a dict get needs no lock

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, secret: str) -> KeyInfo | None:
        return self._by_hash.get(hash_key(secret))

    def get(self, key_id: str) -> KeyInfo | None:
        key_hash = self._hash_by_id.get(key_id)
        return self._by_hash.get(key_hash) if key_hash else None

    def all(self) -> list[KeyInfo]:
        return list(self._by_hash.values())

    def revoked(self) -> list[dict[str, Any]]:
        """The revoked keys as the admin API lists them (no hash): who revoked, when."""
        return list(self._revoked.values())

    def apply(self, record: dict[str, Any]) -> bool:
        """Apply one KeyRecord (as a dict). Returns False if the record is unusable."""
        key_id, key_hash = record.get("key_id"), record.get("key_hash")
        if not isinstance(key_id, str) or not isinstance(key_hash, str) or not key_id:
            return False
        if record.get("revoked"):
            self.remove(key_id)
            self._revoked[key_id] = revoked_view(record)
            return True
        models = record.get("models")
        org, team = str(record.get("org") or ""), str(record.get("team") or "")
        project, user = str(record.get("project") or ""), str(record.get("user") or "")
        info = KeyInfo(
            key_id=key_id,
            key_hash=key_hash,
            org=org,
            team=team,
            project=project,
            user=user,
            subjects=attribution_subjects(key_id, org, team, project, user),
            models=tuple(str(m) for m in models) if isinstance(models, list) else None,
            rpm=record.get("rpm") if isinstance(record.get("rpm"), int) else None,
            tpm=record.get("tpm") if isinstance(record.get("tpm"), int) else None,
            budget_ids=tuple(str(b) for b in record.get("budget_ids") or ()),
        )
        with self._lock:
            old_hash = self._hash_by_id.get(key_id)
            if old_hash is not None and old_hash != key_hash:
                self._by_hash.pop(old_hash, None)
            self._by_hash[key_hash] = info
            self._hash_by_id[key_id] = key_hash
            self._revoked.pop(key_id, None)
        return True

    def remove(self, key_id: str) -> bool:
        with self._lock:
            self._revoked.pop(key_id, None)
            key_hash = self._hash_by_id.pop(key_id, None)
            if key_hash is None:
                return False
            self._by_hash.pop(key_hash, None)
            return True

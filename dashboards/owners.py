"""Whose a subject is: `key:k_3f9…` means nothing to a person, `key:k_3f9… (acme/search,
jane@acme.example)` does. Pure functions over the owners the page looked up (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas.subjects import key_id_of, key_subject, parse_subject

__all__ = ["key_ids_to_resolve", "owner_of", "owner_text", "subject_label"]

Owner = Mapping[str, Any]  # org, team, project, user: a key listing or a request row


def owner_text(owner: Owner) -> str:
    """`acme/search/checkout, jane@acme.example`: org and what is set below it, then the user."""
    scope = "/".join(part for part in (owner.get(n) for n in ("org", "team", "project")) if part)
    return ", ".join(part for part in (scope, owner.get("user") or "") if part)


def key_ids_to_resolve(
    subjects: Iterable[str], evidence: Iterable[Mapping[str, Any]] = ()
) -> list[str]:
    """Every key a subject names, or an anomaly's evidence names (a session's key)."""
    found = {key_id_of(s) for s in subjects} | {e.get("key_id") for e in evidence}
    return sorted(k for k in found if k)


def owner_of(subject: str, owners: Mapping[str, Owner], via_key: str | None = None) -> str:
    """Whose the subject is: a key's owner, or for a session the key it ran under
    (`via_key`, from the evidence) and its owner; "unknown" for a key found nowhere.
    Team, org, project and user subjects name their owner already: "—"."""
    kind, _ = parse_subject(subject)
    key_id = key_id_of(subject)
    if key_id is not None:
        owner = owners.get(key_id)
        return owner_text(owner) if owner else "unknown"
    if kind == "session" and via_key:
        owner = owners.get(via_key)
        return f"{key_subject(via_key)}, {owner_text(owner)}" if owner else key_subject(via_key)
    return "—"


def subject_label(subject: str, owners: Mapping[str, Owner], via_key: str | None = None) -> str:
    """`key:k_1 (acme/search, jane@acme.example)`; a subject naming its owner as it is."""
    owner = owner_of(subject, owners, via_key)
    return subject if owner == "—" else f"{subject} ({owner})"

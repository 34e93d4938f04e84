"""Identifiers: time-ordered event ids and virtual-key hashing."""

from __future__ import annotations

import hashlib
import uuid

import uuid_utils

__all__ = ["deterministic_id", "hash_key", "new_event_id"]

_NAMESPACE = uuid.UUID("6f1c3a52-9d0e-4c41-9a4b-2f6e8f1d7c30")


def new_event_id() -> str:
    """A UUIDv7: unique, and sortable by creation time."""
    return str(uuid_utils.uuid7())


def deterministic_id(*parts: str) -> str:
    """The same id for the same inputs, so a reprocessed input yields the same event."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def hash_key(secret: str) -> str:
    """Hash of a virtual key. Keys are 256-bit random, so a plain SHA-256 is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()

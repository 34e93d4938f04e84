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


_NAMESPACE_BYTES = _NAMESPACE.bytes


def deterministic_id(*parts: str) -> str:
    """The same id for the same inputs, so a reprocessed input yields the same event.

    `str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))` without building a UUID object:
    SHA-1 of namespace + name, version 5 and RFC 4122 variant bits set, 8-4-4-4-12 hex.
    Measured ~4.4 us instead of ~7 us in one run on a busy 2-vCPU machine
    (tests/unit/schemas/test_ids_fast.py checks identity).
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def hash_key(secret: str) -> str:
    """Hash of a virtual key. Keys are 256-bit random, so a plain SHA-256 is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()

"""Who a secret belongs to: the credentials published on the control topic.

Two kinds, both stored only as the SHA-256 of their secret (`schemas.ids.hash_key`):
- a virtual key (KeyRecord, control key `key:<key_id>`): the LLM proxy and OTLP ingest;
- an ingest token (IngestTokenRecord, `ingest_token:<token_id>`): OTLP ingest only.

`CredentialBook` is the in-memory view a service builds by reading the whole compacted
control topic (records, revocations and tombstones); `lookup(secret)` is one dict get.
Every service that checks a credential applies control records through this one parser,
so a revocation means the same thing everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from schemas.ids import hash_key
from schemas.topics import control_key, parse_control_key

__all__ = [
    "CREDENTIAL_KINDS",
    "Credential",
    "CredentialBook",
    "CredentialKind",
    "credential_from_record",
]

CredentialKind = Literal["key", "ingest_token"]
CREDENTIAL_KINDS: tuple[CredentialKind, ...] = ("key", "ingest_token")

# record field holding (id, secret hash) per credential kind (= the record's event_type)
_FIELDS: dict[str, tuple[str, str]] = {
    "key": ("key_id", "key_hash"),
    "ingest_token": ("token_id", "token_hash"),
}


@dataclass(frozen=True, slots=True)
class Credential:
    kind: CredentialKind
    credential_id: str
    secret_hash: str
    org: str
    team: str = ""
    project: str = ""
    user: str = ""
    name: str = ""
    revoked: bool = False

    @property
    def key_id(self) -> str | None:
        """The virtual key id spend is attributed to; an ingest token has none."""
        return self.credential_id if self.kind == "key" else None

    @property
    def control_key(self) -> str:
        return control_key(self.kind, self.credential_id)


def credential_from_record(record: Mapping[str, Any]) -> Credential | None:
    """A KeyRecord or IngestTokenRecord (as decoded JSON) -> Credential (revoked ones
    included, with `revoked=True`); None for any other record or an unusable one."""
    kind = record.get("event_type")
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return None
    credential_id, secret_hash = record.get(fields[0]), record.get(fields[1])
    if not isinstance(credential_id, str) or not credential_id:
        return None
    if not isinstance(secret_hash, str) or not secret_hash:
        return None
    return Credential(
        kind=kind,  # type: ignore[arg-type]
        credential_id=credential_id,
        secret_hash=secret_hash,
        org=_text(record.get("org")),
        team=_text(record.get("team")),
        project=_text(record.get("project")),
        user=_text(record.get("user")),
        name=_text(record.get("name")),
        revoked=bool(record.get("revoked")),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class CredentialBook:
    """hash -> Credential, for the kinds asked for. Written by one reader thread, read
    anywhere (a dict get needs no lock)."""

    def __init__(self, kinds: tuple[CredentialKind, ...] = CREDENTIAL_KINDS) -> None:
        self._kinds = frozenset(kinds)
        self._by_hash: dict[str, Credential] = {}
        self._hash_by_key: dict[str, str] = {}  # control key -> hash
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, secret: str) -> Credential | None:
        return self._by_hash.get(hash_key(secret))

    def get(self, kind: CredentialKind, credential_id: str) -> Credential | None:
        secret_hash = self._hash_by_key.get(control_key(kind, credential_id))
        return self._by_hash.get(secret_hash) if secret_hash else None

    def all(self, kind: CredentialKind | None = None) -> list[Credential]:
        return [c for c in list(self._by_hash.values()) if kind is None or c.kind == kind]

    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one raw control-topic message; False if it is not about a credential."""
        if value is None:  # tombstone
            record_type, record_id = parse_control_key((key or b"").decode(errors="replace"))
            return record_type in self._kinds and self.remove(record_type, record_id)  # type: ignore[arg-type]
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            return False
        return isinstance(record, dict) and self.apply_record(record)

    def apply_record(self, record: Mapping[str, Any]) -> bool:
        credential = credential_from_record(record)
        if credential is None or credential.kind not in self._kinds:
            return False
        if credential.revoked:
            self.remove(credential.kind, credential.credential_id)
            return True
        with self._lock:
            old_hash = self._hash_by_key.get(credential.control_key)
            if old_hash is not None and old_hash != credential.secret_hash:
                self._by_hash.pop(old_hash, None)
            self._by_hash[credential.secret_hash] = credential
            self._hash_by_key[credential.control_key] = credential.secret_hash
        return True

    def remove(self, kind: CredentialKind, credential_id: str) -> bool:
        with self._lock:
            secret_hash = self._hash_by_key.pop(control_key(kind, credential_id), None)
            if secret_hash is None:
                return False
            self._by_hash.pop(secret_hash, None)
            return True

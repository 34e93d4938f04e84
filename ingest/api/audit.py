"""The audit trail: every control-plane change (keys, budgets, policies, ingest tokens) and
every enforcement decision, lifts included, with who, what, when and the values before and
after. Read from control_records (every version of every record) and enforcement_decisions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, get_args

from ingest.api.sql import Where
from ingest.api.values import utc
from meterline.warehouse import SharedClient
from schemas.api.read import AuditEntry, AuditKind, AuditResponse

__all__ = ["AUDIT_KINDS", "audit_entries", "control_action", "readable_payload"]

AUDIT_KINDS: tuple[AuditKind, ...] = get_args(AuditKind)
_CONTROL_KINDS = tuple(kind for kind in AUDIT_KINDS if kind != "enforcement")
# Envelope fields say nothing a person needs; a key's hash is no secret but no use either.
_HIDDEN = frozenset({"event_id", "event_type", "schema_version", "source", "ts", "key_hash"})

# Each version next to the one before it: the window runs over every version of a record,
# the time range applies after it, so the first change in the range still has its `before`.
_CONTROL_SQL = """
SELECT ts, record_type, record_id, subject, org, deleted, who, payload, before, before_deleted
FROM (
    SELECT ts, event_id, record_type, record_id, subject, org, deleted, who, payload,
        lagInFrame(payload, 1, '') OVER versions AS before,
        lagInFrame(deleted, 1, false) OVER versions AS before_deleted
    FROM {db}.control_records FINAL{inner}
    WINDOW versions AS (PARTITION BY record_type, record_id ORDER BY ts, event_id
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
){outer}
ORDER BY ts DESC, event_id DESC LIMIT {{limit:UInt32}}
"""
_DECISION_SQL = """
SELECT ts, event_id, subject, action, reason, source, rpm, expires_at, decided_by,
    before_action, before_reason, before_rpm, before_expires_at, has_before
FROM (
    SELECT ts, event_id, subject, action, reason, source, rpm, expires_at, decided_by,
        lagInFrame(action) OVER history AS before_action,
        lagInFrame(reason) OVER history AS before_reason,
        lagInFrame(rpm) OVER history AS before_rpm,
        lagInFrame(expires_at) OVER history AS before_expires_at,
        row_number() OVER history > 1 AS has_before
    FROM {db}.enforcement_decisions FINAL{inner}
    WINDOW history AS (PARTITION BY subject, source ORDER BY ts, event_id
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
){outer}
ORDER BY ts DESC, event_id DESC LIMIT {{limit:UInt32}}
"""


def control_action(record_type: str, deleted: bool, previous: str, previous_deleted: bool) -> str:
    """What a control-record version did: create, update, or revoke (keys) / delete."""
    if deleted:
        return "revoke" if record_type == "key" else "delete"
    return "create" if not previous or previous_deleted else "update"


def readable_payload(payload: str) -> dict[str, Any] | None:
    """A stored record as a person reads it (no envelope fields, no key hash)."""
    if not payload:
        return None
    record = json.loads(payload)
    return {name: value for name, value in record.items() if name not in _HIDDEN}


def audit_entries(
    client: SharedClient,
    *,
    start: datetime | None,
    end: datetime | None,
    kind: AuditKind | None = None,
    subject: str | None = None,
    who: str | None = None,
    limit: int,
) -> AuditResponse:
    entries: list[AuditEntry] = []
    if kind is None or kind != "enforcement":
        entries += _control(client, start, end, kind, subject, who, limit)
    if kind is None or kind == "enforcement":
        entries += _decisions(client, start, end, subject, who, limit)
    entries.sort(key=lambda entry: entry.ts, reverse=True)
    return AuditResponse(count=min(len(entries), limit), entries=entries[:limit])


def _control(client, start, end, kind, subject, who, limit) -> list[AuditEntry]:
    inner = Where().any_of("record_type", [kind] if kind else list(_CONTROL_KINDS))
    inner.eq("subject", subject)
    outer = Where()
    outer.params = inner.params  # one parameter namespace for both clauses
    outer.time_range("ts", start, end).eq("who", who)
    sql = _CONTROL_SQL.format(db=client.database, inner=inner.sql, outer=outer.sql)
    rows = client.query_rows(sql, {**outer.params, "limit": limit})
    return [_control_entry(row) for row in rows]


def _control_entry(row: Sequence[Any]) -> AuditEntry:
    ts, record_type, record_id, subject, org, deleted, who, payload, before, before_deleted = row
    return AuditEntry(
        ts=utc(ts),
        kind=record_type,
        action=control_action(record_type, deleted, before, before_deleted),
        record_id=record_id,
        subject=subject,
        org=org or None,
        who=who or None,
        before=readable_payload(before),
        after=readable_payload(payload),
    )


def _decisions(client, start, end, subject, who, limit) -> list[AuditEntry]:
    inner = Where().eq("subject", subject)
    outer = Where()
    outer.params = inner.params
    outer.time_range("ts", start, end).eq("decided_by", who)
    sql = _DECISION_SQL.format(db=client.database, inner=inner.sql, outer=outer.sql)
    rows = client.query_rows(sql, {**outer.params, "limit": limit})
    return [_decision_entry(row) for row in rows]


def _decision_entry(row: Sequence[Any]) -> AuditEntry:
    ts, event_id, subject, action, reason, source, rpm, expires_at, decided_by = row[:9]
    before_action, before_reason, before_rpm, before_expires, has_before = row[9:]
    after = _decision_values(action, reason, rpm, expires_at)
    before = (
        _decision_values(before_action, before_reason, before_rpm, before_expires)
        if has_before
        else None
    )
    return AuditEntry(
        ts=utc(ts),
        kind="enforcement",
        action=action,
        record_id=event_id,
        subject=subject,
        who=decided_by or None,
        source=source,
        reason=reason or None,
        before=before,
        after=after,
    )


def _decision_values(action, reason, rpm, expires_at) -> dict[str, Any]:
    expires = utc(expires_at).isoformat() if expires_at is not None else None
    return {"action": action, "reason": reason, "rpm": rpm, "expires_at": expires}

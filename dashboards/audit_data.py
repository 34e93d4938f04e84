"""Audit page data: the read API's control changes and enforcement decisions as a table,
each change spelled as `field: before → after` (no Streamlit)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from dashboards.formatting import when

__all__ = ["AUDIT_KINDS", "audit_table", "changes"]

AUDIT_KINDS = ["key", "budget", "policy", "ingest_token", "enforcement"]
# Envelope and bookkeeping fields: they change on every record, they are not the change.
_NOISE = {
    "event_id",
    "event_type",
    "schema_version",
    "ts",
    "source",  # the envelope's; a decision's source has its own column
    "created_at",
    "created_by",
    "decided_at",
    "decided_by",
    "key_hash",
    "token_hash",
    # the record's own name: the Subject column says it already
    "key_id",
    "budget_id",
    "policy_id",
    "token_id",
    "subject",
}


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    """`rpm: 60 → 120; models: none → gpt-4o` for the fields that differ; a record made
    from nothing lists what it was made with, a removed one what it was."""
    before, after = before or {}, after or {}
    names = [n for n in (*after, *(n for n in before if n not in after)) if n not in _NOISE]
    if not before or not after:
        shown = after or before
        present = [n for n in names if shown.get(n) not in (None, "", [], {})]
        return "; ".join(f"{n}: {_value(shown[n])}" for n in present)
    return "; ".join(
        f"{n}: {_value(before.get(n))} → {_value(after.get(n))}"
        for n in names
        if before.get(n) != after.get(n)
    )


def audit_table(entries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Newest first, as the read API answers; `Who` is the person (or the detector)."""
    return pd.DataFrame.from_records(
        [
            {
                "When": when(e["ts"]),
                "Who": e.get("who") or "unknown",
                "What": f"{e['kind']} {e['action']}",
                "Subject": e["subject"],
                "Org": e.get("org") or "—",
                "Source": e.get("source") or "—",
                "Reason": e.get("reason") or "—",
                "Change": changes(e.get("before"), e.get("after")) or "—",
            }
            for e in entries
        ],
        columns=["When", "Who", "What", "Subject", "Org", "Source", "Reason", "Change"],
    )

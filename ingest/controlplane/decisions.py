"""Which enforcement decisions are in force, as the warehouse knows it.

One implementation, used by the control-plane restore (re-publishing them after an
embedded-broker restart) and by the read API's `/api/enforcement`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from meterline.warehouse import SharedClient
from schemas.enforcement import ENFORCEMENT_ACTIONS
from schemas.events.v1 import EnforcementDecision

__all__ = ["DECISION_COLUMNS", "active_decisions"]

DECISION_COLUMNS = (
    "event_id",
    "ts",
    "schema_version",
    "subject",
    "action",
    "reason",
    "source",
    "rpm",
    "expires_at",
    "decided_at",
    "anomaly_id",
    "decided_by",
)


def active_decisions(
    client: SharedClient, now: datetime, subject: str | None = None
) -> list[EnforcementDecision]:
    """The latest decision per (subject, source), unless it was lifted or has expired.

    A lift row with source '*' (a tombstone without a source) lifts every source's
    decision made before it."""
    latest = ", ".join(f"argMax({name}, (ts, event_id))" for name in DECISION_COLUMNS)
    where, params = "", {}
    if subject is not None:
        where, params = " WHERE subject = {subject:String}", {"subject": subject}
    rows = client.query_rows(
        f"SELECT {latest} FROM {client.database}.enforcement_decisions FINAL{where} "
        "GROUP BY subject, source",
        params,
    )
    records: list[dict[str, Any]] = [dict(zip(DECISION_COLUMNS, row, strict=True)) for row in rows]
    lifted_all = {r["subject"]: r["ts"] for r in records if r["source"] == "*"}
    decisions = []
    for record in records:
        if record["action"] not in ENFORCEMENT_ACTIONS:
            continue  # 'lift': a tombstone was the last word for this source
        if record["subject"] in lifted_all and lifted_all[record["subject"]] >= record["ts"]:
            continue
        record["anomaly_id"] = record["anomaly_id"] or None
        record["decided_by"] = record["decided_by"] or None
        decision = EnforcementDecision.model_validate(record)
        if decision.expires_at is None or decision.expires_at > now:
            decisions.append(decision)
    return decisions

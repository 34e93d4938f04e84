"""Topic names (ARCHITECTURE §3), without the configurable prefix."""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "ANOMALIES",
    "BUDGETS",
    "BUDGET_SPEND",
    "COMPACTED_TOPICS",
    "CONTROL",
    "CONTROL_RECORD_TYPES",
    "COSTS",
    "DLQ",
    "DRIFT",
    "ENFORCEMENT",
    "ENFORCEMENT_KEY_SEPARATOR",
    "GUARDRAILS",
    "RATE_USAGE",
    "REQUESTS",
    "SPANS",
    "TOPICS",
    "TOPIC_CONFIGS",
    "ControlRecordType",
    "control_key",
    "control_record_id",
    "enforcement_key",
    "parse_control_key",
    "parse_enforcement_key",
]

REQUESTS: Final = "requests"
SPANS: Final = "spans"
GUARDRAILS: Final = "guardrails"
COSTS: Final = "costs"
BUDGETS: Final = "budgets"
# Internal: each cost's spend per budget subject, keyed and partitioned by the subject
# (schemas.budget_spend), so one processors worker owns each subject's budgets.
BUDGET_SPEND: Final = "budget-spend"
# Internal: each gateway's RPM/TPM consumption per key, read by every other gateway so a
# key's limit holds across the fleet (schemas.rate_usage); short-lived, no consumer group.
RATE_USAGE: Final = "rate-usage"
ANOMALIES: Final = "anomalies"
DRIFT: Final = "drift"
ENFORCEMENT: Final = "enforcement"
CONTROL: Final = "control"
DLQ: Final = "dlq"

TOPICS: Final = (
    REQUESTS,
    SPANS,
    GUARDRAILS,
    COSTS,
    BUDGETS,
    BUDGET_SPEND,
    RATE_USAGE,
    ANOMALIES,
    DRIFT,
    ENFORCEMENT,
    CONTROL,
    DLQ,
)
COMPACTED_TOPICS: Final = frozenset({ENFORCEMENT, CONTROL})
# Topic configs beyond the defaults: rate usage matters for a minute at most.
TOPIC_CONFIGS: Final[dict[str, dict[str, str]]] = {RATE_USAGE: {"retention.ms": "300000"}}


# Enforcement records are keyed per (source, subject): `<source>|<subject>`. Each source
# (budget, llmjacking, agent_loop, guardrail, manual) owns its own compacted slot, so a
# budget lifting its block never lifts a manual or llmjacking block on the same subject.
# Sources are fixed identifiers without "|", so splitting at the first "|" is unambiguous.
ENFORCEMENT_KEY_SEPARATOR: Final = "|"


def enforcement_key(source: str, subject: str) -> str:
    return f"{source}{ENFORCEMENT_KEY_SEPARATOR}{subject}"


def parse_enforcement_key(key: str) -> tuple[str | None, str]:
    """(source, subject); a key without a source (older producers) gives (None, key)."""
    source, separator, subject = key.partition(ENFORCEMENT_KEY_SEPARATOR)
    if not separator or not source or ":" in source:
        return None, key
    return source, subject


# Control records are keyed `<record_type>:<record_id>`: `key:<key_id>`,
# `ingest_token:<token_id>`, `budget:<budget_id>`, `policy:<policy_id>`. Record types are
# fixed identifiers without ":" (each equals its record's `event_type`), so splitting at the
# first ":" is unambiguous.
ControlRecordType = Literal["key", "ingest_token", "budget", "policy"]
CONTROL_RECORD_TYPES: Final[tuple[ControlRecordType, ...]] = (
    "key",
    "ingest_token",
    "budget",
    "policy",
)


def control_key(record_type: ControlRecordType, record_id: str) -> str:
    return f"{record_type}:{record_id}"


def parse_control_key(key: str) -> tuple[str, str]:
    """(record_type, record_id); a key without ":" gives ("", key)."""
    record_type, separator, record_id = key.partition(":")
    return (record_type, record_id) if separator else ("", key)


def control_record_id(key: bytes | str | None, record_type: ControlRecordType) -> str | None:
    """The record id of a control key of `record_type` (e.g. a tombstone's `budget:<id>`),
    None for a key of another type. Readers of the control topic use it to route tombstones."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else (key or "")
    found_type, record_id = parse_control_key(text)
    return record_id if found_type == record_type else None

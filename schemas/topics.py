"""Topic names (ARCHITECTURE §3), without the configurable prefix."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ANOMALIES",
    "BUDGETS",
    "COMPACTED_TOPICS",
    "CONTROL",
    "COSTS",
    "DLQ",
    "DRIFT",
    "ENFORCEMENT",
    "ENFORCEMENT_KEY_SEPARATOR",
    "GUARDRAILS",
    "REQUESTS",
    "SPANS",
    "TOPICS",
    "control_key",
    "enforcement_key",
    "parse_control_key",
    "parse_enforcement_key",
]

REQUESTS: Final = "requests"
SPANS: Final = "spans"
GUARDRAILS: Final = "guardrails"
COSTS: Final = "costs"
BUDGETS: Final = "budgets"
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
    ANOMALIES,
    DRIFT,
    ENFORCEMENT,
    CONTROL,
    DLQ,
)
COMPACTED_TOPICS: Final = frozenset({ENFORCEMENT, CONTROL})


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
# fixed identifiers without ":", so splitting at the first ":" is unambiguous.
def control_key(record_type: str, record_id: str) -> str:
    return f"{record_type}:{record_id}"


def parse_control_key(key: str) -> tuple[str, str]:
    """(record_type, record_id); a key without ":" gives ("", key)."""
    record_type, separator, record_id = key.partition(":")
    return (record_type, record_id) if separator else ("", key)

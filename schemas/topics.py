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
    "enforcement_key",
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

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
    "GUARDRAILS",
    "REQUESTS",
    "SPANS",
    "TOPICS",
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

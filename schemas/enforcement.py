"""The vocabulary of enforcement decisions (ARCHITECTURE §4): what is done to a subject and
who decided it.

`EnforcementDecision` (schemas.events) types its fields with these; the gateway's view,
the admin API, ingest's decision history and the detectors use the same names. A source
owns its slot on the compacted enforcement topic (`schemas.topics.enforcement_key`).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "ACTOR_HEADER",
    "DECISION_SOURCES",
    "ENFORCEMENT_ACTIONS",
    "LIFT",
    "DecisionSource",
    "EnforcementAction",
    "HistoryAction",
]

EnforcementAction = Literal["block", "throttle", "allow"]
ENFORCEMENT_ACTIONS: Final[tuple[EnforcementAction, ...]] = get_args(EnforcementAction)

# In the decision history (ClickHouse, read API), a tombstone on the enforcement topic is
# stored as a row with action `lift`: that source's decision on the subject was lifted.
LIFT: Final = "lift"
HistoryAction = Literal[EnforcementAction, "lift"]

# A tombstone has no value to say who lifted the decision: the admin API names the person
# in this Kafka header, and the sink stores it as the lift's `decided_by`.
ACTOR_HEADER: Final = "meterline-actor"

DecisionSource = Literal["budget", "llmjacking", "agent_loop", "guardrail", "manual"]
DECISION_SOURCES: Final[tuple[DecisionSource, ...]] = get_args(DecisionSource)

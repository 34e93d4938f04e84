"""The vocabulary of enforcement decisions (ARCHITECTURE §4): what is done to a subject and
who decided it.

`EnforcementDecision` (schemas.events) types its fields with these; the gateway's view,
the admin API, ingest's decision history and the detectors use the same names. A source
owns its slot on the compacted enforcement topic (`schemas.topics.enforcement_key`).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "DECISION_SOURCES",
    "ENFORCEMENT_ACTIONS",
    "DecisionSource",
    "EnforcementAction",
]

EnforcementAction = Literal["block", "throttle", "allow"]
ENFORCEMENT_ACTIONS: Final[tuple[EnforcementAction, ...]] = get_args(EnforcementAction)

DecisionSource = Literal["budget", "llmjacking", "agent_loop", "guardrail", "manual"]
DECISION_SOURCES: Final[tuple[DecisionSource, ...]] = get_args(DecisionSource)

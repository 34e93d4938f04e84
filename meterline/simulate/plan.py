"""What a simulation will send, decided before anything is sent.

A scenario turns a seed into a `Plan`: the keys (and budgets) to create, plus a stream of
`Step`s ordered by their offset from the start. Plans are pure data, so the same seed
gives the same plan whatever the gateway answers, and a test can inspect one without a
network. Steps come from generators because `normal` may run forever.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice, takewhile
from typing import Any, Literal

from schemas.budgets import BudgetPeriod, HardLimitAction
from schemas.subjects import key_subject, session_subject

__all__ = ["BudgetSpec", "KeySpec", "Plan", "Step", "merge_steps"]

Message = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A virtual key to create; steps name it by `name` (its id exists only once created)."""

    name: str
    org: str
    team: str
    project: str
    user: str = ""


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    key: str  # KeySpec.name; the budget's subject is that key
    limit_usd: str
    period: BudgetPeriod = "day"
    action_on_hard: HardLimitAction = "block"


@dataclass(frozen=True, slots=True)
class Step:
    """One request: when, with which key, from where, and what ground truth it carries.

    `detector` names the detector that should catch the malicious step's subject:
    `llmjacking` (subject key), `agent_loop` (session), `budget` (key), `drift` (app).
    """

    at_s: float
    key: str
    scenario: str
    stage: str
    malicious: bool = False
    detector: str | None = None
    action: Literal["chat", "models"] = "chat"
    model: str = ""
    messages: tuple[Message, ...] = ()
    max_tokens: int | None = None
    stream: bool = False
    tools: tuple[Message, ...] = ()
    tool_arguments: str | None = None  # the mock provider answers with exactly this call
    client_ip: str | None = None
    user_agent: str | None = None
    session_id: str | None = None
    app: str | None = None

    def subjects(self) -> list[str]:
        """Subjects the ground truth is kept for (key names are resolved when sent)."""
        subjects = [key_subject(self.key)]
        if self.session_id:
            subjects.append(session_subject(self.session_id))
        if self.app:
            subjects.append(f"app:{self.app}")
        return subjects


def merge_steps(*streams: Iterable[Step]) -> Iterator[Step]:
    """One stream ordered by offset; ties keep the order of `streams` (stable)."""
    return heapq.merge(*streams, key=lambda step: step.at_s)


@dataclass
class Plan:
    scenario: str
    keys: list[KeySpec]
    steps: Iterable[Step]
    budgets: list[BudgetSpec] = field(default_factory=list)

    def take(self, limit: int | None = None, until_s: float | None = None) -> list[Step]:
        """The first steps (for tests and dry runs); never call without a bound on `normal`
        with no duration."""
        steps: Iterable[Step] = self.steps
        if until_s is not None:
            steps = takewhile(lambda step: step.at_s < until_s, steps)
        return list(islice(steps, limit))

"""Agent-loop signals and how they make a score and a severity. Pure.

A signal has a strength: medium (a step or cost limit reached) or strong (a loop
pattern). Loops are high, limits medium, both together critical:

- medium needs one medium signal;
- high needs one strong signal, or two signals of which one is at least medium;
- critical needs three signals of which two are at least medium.

The score is a noisy-or of the signals' weights, so it grows with the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MEDIUM", "STRONG", "Signal", "combine"]

MEDIUM, STRONG = 2, 3
_WEIGHT = {MEDIUM: 0.5, STRONG: 0.8}


@dataclass(frozen=True)
class Signal:
    name: str
    strength: int
    evidence: dict[str, Any] = field(default_factory=dict)


def combine(signals: list[Signal]) -> tuple[float, int]:
    """(score in [0, 1], severity rank: 0 low .. 3 critical)."""
    miss = 1.0
    for signal in signals:
        miss *= 1 - _WEIGHT[signal.strength]
    strengths = sorted((signal.strength for signal in signals), reverse=True)
    medium_plus = sum(1 for strength in strengths if strength >= MEDIUM)
    if len(strengths) >= 3 and medium_plus >= 2:
        rank = 3
    elif (strengths and strengths[0] == STRONG) or (len(strengths) >= 2 and medium_plus >= 1):
        rank = 2
    elif medium_plus >= 1:
        rank = 1
    else:
        rank = 0
    return round(1 - miss, 4), rank

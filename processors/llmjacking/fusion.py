"""Signal fusion: explainable features -> log-odds -> severity. Pure.

Each feature (features.py) contributes points: log-odds (nats) that the key is being
used by someone else, growing with how far the feature moved (a log of the ratio to
the key's or its peers' normal, or a count of probes). Points add up, so several
moderate signals together reach enforcement while none of them alone would; the
probability is `sigmoid(PRIOR + points)`, PRIOR set so that a block means "more likely
abuse than not".

Features belong to groups, and a group's points are capped: identity (new networks,
new user agents, odd hours) and usage (rate, spend, pricier models) each stay below
the block on their own, because a key that moves to a new network, a batch job spike
or a model upgrade is a legitimate change; abuse is a new identity *and* new usage.
Tradecraft (validation probes, model enumeration, key checks from a new network) is
uncapped: legitimate clients do not send `max_tokens: -1` or call five model names that
do not exist. Rotation (a key that lives in a few networks suddenly calling from many
networks none of its peers know: a proxy pool) has its own cap, below the block: a
fleet of new CI runners looks alike, a stolen key used *differently* from them does not.

The weights were set from the published tradecraft before the evaluation draws
(`meterline eval detections`) and are not tuned per seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALERT_POINTS",
    "BLOCK_POINTS",
    "CRITICAL_POINTS",
    "Contribution",
    "Fused",
    "fuse",
]

IDENTITY, USAGE, TRADECRAFT, ROTATION = "identity", "usage", "tradecraft", "rotation"
GROUP_CAP = {IDENTITY: 5.4, USAGE: 3.9, TRADECRAFT: math.inf, ROTATION: 3.0}
ALERT_POINTS = 4.0  # medium: reported, never blocks
BLOCK_POINTS = 5.5  # high: blocks under `enforce`
CRITICAL_POINTS = 8.0
PRIOR = -BLOCK_POINTS  # P(abuse) = 0.5 at the block threshold


@dataclass(frozen=True, slots=True)
class Contribution:
    name: str
    group: str
    points: float
    evidence: dict[str, Any] = field(default_factory=dict)  # what moved, from what to what


@dataclass(frozen=True, slots=True)
class Fused:
    points: float
    probability: float
    rank: int  # 0 low, 1 medium, 2 high, 3 critical
    contributions: tuple[Contribution, ...]  # those with points, largest first
    groups: dict[str, float]  # points per group, after its cap

    def breakdown(self) -> dict[str, float]:
        return {c.name: round(c.points, 2) for c in self.contributions}


def fuse(contributions: list[Contribution]) -> Fused:
    by_group: dict[str, float] = {}
    for c in contributions:
        by_group[c.group] = by_group.get(c.group, 0.0) + c.points
    groups = {group: round(min(total, GROUP_CAP[group]), 2) for group, total in by_group.items()}
    points = sum(min(total, GROUP_CAP[group]) for group, total in by_group.items())
    if points >= CRITICAL_POINTS:
        rank = 3
    elif points >= BLOCK_POINTS:
        rank = 2
    elif points >= ALERT_POINTS:
        rank = 1
    else:
        rank = 0
    kept = tuple(sorted((c for c in contributions if c.points > 0), key=lambda c: -c.points))
    return Fused(points, 1.0 / (1.0 + math.exp(-(PRIOR + points))), rank, kept, groups)

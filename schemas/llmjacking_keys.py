"""What the LLMjacking detector has learned about one key, for the worker that takes the
key's partition over: the internal, compacted `llmjacking-keys` topic.

Requests are keyed by key_id, so one processors worker holds each key's learned normal.
When a rebalance moves the key's requests partition to another worker (one joined, left
or was killed), the new owner reads this topic's partition of the same number before it
judges the key's next request, so the key keeps its history instead of being young
again. The owner publishes a key's snapshot every few seconds when it learned something,
and at once when the partition is revoked.

Wire form (orjson), keyed by key_id, on the partition of the key's requests (modulo this
topic's partition count: a compacted topic is never grown, the requests topic may be):
`{"partition": <the key's requests partition>, "key_id", "org", "team", "app",
"first_seen", "last_seen", "quiet_from", "blocked_until", "blocked_rank", "learned":
{"requests", "first", "last", "networks": {network: ts}, "user_agents": {agent: ts},
"models": {model: count}, "hours": [24 counts], "rate": [alpha, mean, var, n], "spend":
[alpha, mean, var, n]}}`; times in unix seconds (null where unknown). Decoding bounds every value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "KeySnapshot",
    "LearnedNormal",
    "decode_key_snapshot",
    "encode_key_snapshot",
]

_MAX_TEXT = 512
_MAX_ENTRIES = 1_024  # networks, user agents or models of one key (the detector keeps fewer)
_MAX_COUNT = 10**12

Ewma = tuple[float, float, float, int]  # alpha, mean, variance, n


@dataclass(frozen=True, slots=True)
class LearnedNormal:
    requests: int = 0
    first: float | None = None
    last: float | None = None
    networks: dict[str, float] = field(default_factory=dict)  # -> last learned (unix s)
    user_agents: dict[str, float] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)
    hours: tuple[int, ...] = (0,) * 24
    rate: Ewma = (0.1, 0.0, 0.0, 0)
    spend: Ewma = (0.1, 0.0, 0.0, 0)


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    partition: int  # of the requests topic: the new owner takes the keys of its partitions
    key_id: str
    org: str
    team: str
    app: str | None
    first_seen: float
    last_seen: float
    learned: LearnedNormal
    quiet_from: float | None = None  # suspicion: nothing learned before this
    blocked_until: float | None = None
    blocked_rank: int = 0


def encode_key_snapshot(snapshot: KeySnapshot) -> bytes:
    learned = snapshot.learned
    return orjson.dumps(
        {
            "partition": snapshot.partition,
            "key_id": snapshot.key_id,
            "org": snapshot.org,
            "team": snapshot.team,
            "app": snapshot.app,
            "first_seen": snapshot.first_seen,
            "last_seen": snapshot.last_seen,
            "quiet_from": snapshot.quiet_from,
            "blocked_until": snapshot.blocked_until,
            "blocked_rank": snapshot.blocked_rank,
            "learned": {
                "requests": learned.requests,
                "first": learned.first,
                "last": learned.last,
                "networks": learned.networks,
                "user_agents": learned.user_agents,
                "models": learned.models,
                "hours": learned.hours,
                "rate": learned.rate,
                "spend": learned.spend,
            },
        }
    )


def _text(value: Any, what: str, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ValueError(f"{what} must be a string of at most {_MAX_TEXT} characters")
    return value


def _time(value: Any, what: str, nullable: bool = True) -> float | None:
    if value is None and nullable:
        return None
    if type(value) not in (int, float) or not 0 <= value < 10**11:
        raise ValueError(f"{what} must be a unix time in seconds")
    return float(value)


def _count(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_COUNT:
        raise ValueError(f"{what} must be a count")
    return value


def _entries(value: Any, what: str, read: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) > _MAX_ENTRIES:
        raise ValueError(f"{what} must be an object of at most {_MAX_ENTRIES} entries")
    return {_text(k, what) or "": read(v, what) for k, v in value.items()}


def _ewma(value: Any, what: str) -> Ewma:
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError(f"{what} must be [alpha, mean, variance, n]")
    alpha, mean, var, n = value
    if not all(type(v) in (int, float) and v >= 0 for v in (alpha, mean, var)) or alpha > 1:
        raise ValueError(f"{what} must hold non-negative numbers, alpha at most 1")
    return float(alpha), float(mean), float(var), _count(n, what)


def _learned(value: Any) -> LearnedNormal:
    if not isinstance(value, dict):
        raise ValueError("learned must be an object")
    hours = value.get("hours")
    if not isinstance(hours, list) or len(hours) != 24:
        raise ValueError("learned.hours must be 24 counts")
    return LearnedNormal(
        requests=_count(value.get("requests"), "learned.requests"),
        first=_time(value.get("first"), "learned.first"),
        last=_time(value.get("last"), "learned.last"),
        networks=_entries(value.get("networks"), "learned.networks", _time_entry),
        user_agents=_entries(value.get("user_agents"), "learned.user_agents", _time_entry),
        models=_entries(value.get("models"), "learned.models", _count),
        hours=tuple(_count(h, "learned.hours") for h in hours),
        rate=_ewma(value.get("rate"), "learned.rate"),
        spend=_ewma(value.get("spend"), "learned.spend"),
    )


def _time_entry(value: Any, what: str) -> float:
    return _time(value, what, nullable=False) or 0.0


def decode_key_snapshot(value: bytes) -> KeySnapshot:
    """The snapshot, or ValueError naming what is wrong with it."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("expected an object")
    first_seen = _time(data.get("first_seen"), "first_seen", nullable=False) or 0.0
    partition = data.get("partition")
    if type(partition) is not int or not 0 <= partition < 100_000:
        raise ValueError("partition must be a partition number")
    return KeySnapshot(
        partition=partition,
        key_id=_text(data.get("key_id"), "key_id") or "",
        org=_text(data.get("org"), "org") or "",
        team=_text(data.get("team"), "team") or "",
        app=_text(data.get("app"), "app", nullable=True),
        first_seen=first_seen,
        last_seen=_time(data.get("last_seen"), "last_seen", nullable=False) or first_seen,
        learned=_learned(data.get("learned")),
        quiet_from=_time(data.get("quiet_from"), "quiet_from"),
        blocked_until=_time(data.get("blocked_until"), "blocked_until"),
        blocked_rank=_count(data.get("blocked_rank", 0), "blocked_rank"),
    )

"""What one processors worker learned as normal traffic, for the others: the internal
`llmjacking-peers` topic.

The LLMjacking detector judges a young key against its peers (its team, app, org and every
key). Requests are keyed by key_id, so each worker sees only its share of the keys; each
worker therefore publishes what it learned (after probation: traffic judged normal) about
once a second, and every worker applies what the others learned to its own peer
baselines, so a young key is judged against every peer whichever worker holds it. Every
worker reads every batch (no consumer group) and skips its own.

Wire form (orjson): `{"worker": "<instance id>", "at": <unix seconds>, "items": [[org,
team, app, ts, network, user_agent, model, hour, requests, spend], ...]}`; `ts` in unix
seconds, `app`, `network`, `user_agent` and `model` may be null; `hour` -1 marks a closed
minute's volume (`requests`, `spend` in USD), else one request (0-23: its hour of day).
Decoding bounds every value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas.report_json import load_report

__all__ = ["PeerItem", "PeerLearning", "decode_peer_learning", "encode_peer_learning"]

MAX_ITEMS = 20_000  # per batch: a sender splits a bigger one
_MAX_TEXT = 512
_MAX_COUNT = 10**9


@dataclass(frozen=True, slots=True)
class PeerItem:
    org: str
    team: str
    app: str | None
    ts: float  # unix seconds
    network: str | None
    user_agent: str | None
    model: str | None
    hour: int  # -1: a closed minute's volume
    requests: int
    spend: float


@dataclass(frozen=True, slots=True)
class PeerLearning:
    worker: str
    at: float  # unix seconds when it was sent
    items: list[PeerItem]


def encode_peer_learning(batch: PeerLearning) -> bytes:
    return orjson.dumps(
        {
            "worker": batch.worker,
            "at": batch.at,
            "items": [
                [
                    i.org,
                    i.team,
                    i.app,
                    i.ts,
                    i.network,
                    i.user_agent,
                    i.model,
                    i.hour,
                    i.requests,
                    i.spend,
                ]
                for i in batch.items
            ],
        }
    )


def _text(value: Any, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ValueError(f"expected a string of at most {_MAX_TEXT} characters")
    return value


def _item(entry: Any) -> PeerItem:
    if not isinstance(entry, list) or len(entry) != 10:
        raise ValueError("each item is a list of 10 values")
    org, team, app, ts, network, agent, model, hour, requests, spend = entry
    if type(ts) not in (int, float) or type(spend) not in (int, float) or spend < 0:
        raise ValueError("ts and spend must be numbers")
    if type(hour) is not int or not -1 <= hour <= 23:
        raise ValueError("hour must be -1 (a minute) or 0-23")
    if type(requests) is not int or not 0 <= requests <= _MAX_COUNT:
        raise ValueError("requests must be a count")
    return PeerItem(
        _text(org, nullable=False) or "",
        _text(team, nullable=False) or "",
        _text(app),
        float(ts),
        _text(network),
        _text(agent),
        _text(model),
        hour,
        requests,
        float(spend),
    )


def decode_peer_learning(value: bytes) -> PeerLearning:
    """The batch, or ValueError naming what is wrong with it."""
    data, sender, at = load_report(value, "worker")
    items = data.get("items")
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise ValueError(f"items must be a list of at most {MAX_ITEMS}")
    return PeerLearning(sender, at, [_item(entry) for entry in items])

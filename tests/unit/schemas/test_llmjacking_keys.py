"""The llmjacking-keys snapshot: one key's learned normal, the same after the wire, bounded
when read."""

from __future__ import annotations

import orjson
import pytest

from schemas.llmjacking_keys import (
    KeySnapshot,
    LearnedNormal,
    decode_key_snapshot,
    encode_key_snapshot,
)

SNAPSHOT = KeySnapshot(
    partition=3,
    key_id="key_1",
    org="acme",
    team="ml",
    app=None,
    first_seen=1_700_000_000.0,
    last_seen=1_700_086_400.5,
    learned=LearnedNormal(
        requests=120,
        first=1_700_000_000.0,
        last=1_700_080_000.0,
        networks={"10.1.2.0/24": 1_700_080_000.0},
        user_agents={"OpenAI/Python 1.99.0": 1_700_080_000.0},
        models={"gpt-4o-mini": 100, "gpt-4.1-nano": 20},
        hours=tuple(range(24)),
        rate=(0.1, 4.5, 1.25, 30),
        spend=(0.1, 0.002, 0.000001, 30),
    ),
    quiet_from=None,
    blocked_until=1_700_090_000.0,
    blocked_rank=3,
)


def test_a_snapshot_survives_the_wire() -> None:
    assert decode_key_snapshot(encode_key_snapshot(SNAPSHOT)) == SNAPSHOT


def _with(**changes: object) -> bytes:
    data = orjson.loads(encode_key_snapshot(SNAPSHOT))
    for path, value in changes.items():
        target = data
        *parents, last = path.split("__")
        for name in parents:
            target = target[name]
        target[last] = value
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "expected an object"),
        (_with(key_id="k" * 600), "key_id must be a string"),
        (_with(first_seen="yesterday"), "first_seen must be a unix time"),
        (_with(learned__requests=-1), "learned.requests must be a count"),
        (_with(learned__hours=[0] * 23), "learned.hours must be 24 counts"),
        (_with(learned__rate=[2.0, 0, 0, 1]), "learned.rate must hold"),
        (_with(learned__networks={f"n{i}": 1.0 for i in range(2_000)}), "at most 1024"),
        (_with(learned__models={"m": 1.5}), "learned.models must be a count"),
        (_with(blocked_rank="high"), "blocked_rank must be a count"),
        (_with(partition=-1), "partition must be a partition number"),
    ],
)
def test_what_cannot_be_read_is_named(value: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_key_snapshot(value)

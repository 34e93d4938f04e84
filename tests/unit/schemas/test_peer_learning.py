"""The llmjacking-peers batch: what one processors worker learned, bounded when read."""

from __future__ import annotations

import orjson
import pytest

from schemas.peer_learning import (
    MAX_ITEMS,
    PeerItem,
    PeerLearning,
    decode_peer_learning,
    encode_peer_learning,
)

ITEM = PeerItem("acme", "ml", None, 1765000000.25, "10.1.2", "app/1.0", "gpt-4o", 9, 0, 0.0)
MINUTE = PeerItem("acme", "ml", "rag", 1765000060.0, None, None, None, -1, 12, 0.0375)


def test_a_batch_round_trips() -> None:
    batch = PeerLearning("w-1", 1765000001.5, [ITEM, MINUTE])
    assert decode_peer_learning(encode_peer_learning(batch)) == batch


def _batch(*items: object) -> bytes:
    return orjson.dumps({"worker": "w", "at": 1, "items": list(items)})


GOOD = ["acme", "ml", None, 1.0, None, None, None, 3, 0, 0.0]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"{", "not JSON"),
        (b"[]", "worker id"),
        (orjson.dumps({"worker": "w", "items": []}), "`at`"),
        (orjson.dumps({"worker": "w", "at": 1, "items": {}}), "items must be"),
        (orjson.dumps({"worker": "w", "at": 1, "items": [GOOD] * (MAX_ITEMS + 1)}), "at most"),
        (_batch(GOOD[:9]), "10 values"),
        (_batch([*GOOD[:7], 24, 0, 0.0]), "hour"),
        (_batch([*GOOD[:8], -1, 0.0]), "requests"),
        (_batch([*GOOD[:9], -0.5]), "spend"),
        (_batch(["x" * 600, *GOOD[1:]]), "at most 512"),
        (_batch([None, *GOOD[1:]]), "string"),
    ],
)
def test_a_bad_batch_is_refused_naming_the_problem(value: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_peer_learning(value)

"""deterministic_id is uuid5 by hand: the same text as uuid.uuid5 on many random inputs."""

from __future__ import annotations

import random
import uuid

from schemas.ids import _NAMESPACE, deterministic_id


def _random_text(rng: random.Random) -> str:
    alphabet = "abcXYZ019-_:/ \x1f\u00e9\u4e2d\U0001f600"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))


def test_deterministic_id_is_uuid5_of_the_joined_parts() -> None:
    rng = random.Random(5)
    for _ in range(20_000):
        parts = [_random_text(rng) for _ in range(rng.randrange(1, 5))]
        assert deterministic_id(*parts) == str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))
    assert deterministic_id() == str(uuid.uuid5(_NAMESPACE, ""))

"""A key's learned normal handed from the worker that lost its partition to the one that
gained it: the new owner judges the key as the old one would have."""

from __future__ import annotations

from typing import Any

from meterline.settings import Settings
from processors.llmjacking.handoff import KeyHandoff, key_state, snapshot_of
from schemas.llmjacking_keys import KeySnapshot, decode_key_snapshot
from tests.unit.processors.llmjacking.test_logic import (
    after_normal,
    anomalies,
    attack,
    detector,
    normal_key,
    run,
)


class Topic:
    """What the handoff sent (the sending itself is tested with a real broker)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, KeySnapshot]] = []  # (partition of llmjacking-keys, ...)

    async def send(self, key: bytes, value: bytes, partition: int) -> None:
        self.sent.append((partition, decode_key_snapshot(value)))

    def snapshots(self) -> list[KeySnapshot]:
        return [snapshot for _, snapshot in self.sent]


def _handoff(det: Any, topic: Topic, partitions: int = 8) -> KeyHandoff:
    settings = Settings(topic_partitions=partitions)  # llmjacking-keys: as many or more
    return KeyHandoff(settings, topic, det)  # type: ignore[arg-type]  # a stand-in topic


def test_a_key_state_survives_its_snapshot() -> None:
    det = detector()
    run(det, normal_key(3, "k3"))
    before = det.keys["k3"]
    after = key_state(snapshot_of(before, 0))
    for name in ("requests", "first", "last", "networks", "user_agents", "models", "hours"):
        assert getattr(after.baseline, name) == getattr(before.baseline, name), name
    assert after.baseline.rate == before.baseline.rate
    assert after.baseline.spend == before.baseline.spend
    assert (after.org, after.team, after.first_seen, after.last_seen) == (
        before.org,
        before.team,
        before.first_seen,
        before.last_seen,
    )


async def test_only_keys_that_learned_are_sent_again_and_a_handover_sends_all() -> None:
    det, topic = detector(), Topic()
    handoff = _handoff(det, topic)
    for key_id, partition in (("k1", 0), ("k2", 1)):
        events = normal_key(int(key_id[1]), key_id)
        run(det, events)
        handoff.note(key_id, partition)
    assert await handoff.publish() == 2
    assert sorted((p, s.partition, s.key_id) for p, s in topic.sent) == [
        (0, 0, "k1"),
        (1, 1, "k2"),
    ]
    assert await handoff.publish() == 0  # nothing learned since
    assert await handoff.publish({1}) == 1  # partition 1 revoked: its keys, learned or not
    assert topic.sent[-1][1].key_id == "k2"


async def test_the_new_owner_blocks_a_stolen_key_as_the_old_owner_would() -> None:
    old, topic = detector(default="enforce"), Topic()
    history = normal_key(1, "k-victim")
    run(old, history)
    handoff = _handoff(old, topic)
    handoff.note("k-victim", 4)
    await handoff.publish({4})

    new = detector(default="enforce")
    taken = _handoff(new, Topic()).take_over(topic.snapshots())
    assert taken == 1
    learned = new.keys["k-victim"].baseline.requests
    assert learned == old.keys["k-victim"].baseline.requests >= 0.9 * len(history)

    found = anomalies(run(new, attack("k-victim", after_normal(history))))
    assert found and found[0].severity == "high"
    assert found[0].evidence["key_learned_requests"] == learned  # judged as a known key
    young = anomalies(run(detector(default="enforce"), attack("k-young", after_normal(history))))
    assert all(a.evidence["key_learned_requests"] == 0 for a in young)


async def test_a_grown_requests_topic_maps_onto_the_keys_topic_partitions() -> None:
    det, topic = detector(), Topic()
    handoff = _handoff(det, topic, partitions=2)  # requests grew to 6; this topic has 2
    run(det, normal_key(2, "k-late"))
    handoff.note("k-late", 5)
    await handoff.publish()
    [(sent_to, snapshot)] = topic.sent
    assert (sent_to, snapshot.partition) == (1, 5)


async def test_a_snapshot_that_learned_less_does_not_replace_the_key() -> None:
    det = detector()
    run(det, normal_key(5, "k5"))
    stale = snapshot_of(det.keys["k5"], 0)
    run(det, normal_key(6, "k5", days=1, start=after_normal(normal_key(5, "k5"))))
    handoff = _handoff(det, Topic())
    assert handoff.take_over([stale]) == 0
    assert det.keys["k5"].baseline.requests > stale.learned.requests

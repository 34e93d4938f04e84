"""A key's learned normal follows its requests partition from worker to worker, over the
internal compacted `llmjacking-keys` topic (schemas/llmjacking_keys.py).

- The owner notes each key's requests partition, and every `handoff_interval_s` sends a
  snapshot of each key that learned something since its last one, on that partition
  number of `llmjacking-keys` (modulo its partition count: a compacted topic is never
  grown, the requests topic may be); when a rebalance revokes the partition it sends all
  of that partition's keys at once and waits for the broker to have them.
- A worker given a requests partition it did not hold reads that partition of
  `llmjacking-keys` to its end before the batch loop hands it a request of it (the
  rebalance listener is awaited), and takes each key whose snapshot learned more than
  what it has itself (nothing, usually). Keys of partitions it lost are dropped: their
  new owner has them.

A worker SIGKILLed loses at most `handoff_interval_s` of learning: its successor starts
from the last snapshot. The current window (what is new in it, probes) starts over; the
key's suspicion (`quiet_from`) and our block travel with it. A snapshot that cannot be
read is logged and skipped: the key is then judged as a young key, against its peers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from meterline.settings import Settings
from processors.llmjacking.logic import LlmjackingDetector
from processors.llmjacking.profile import Baseline, Ewma, KeyState
from processors.streams import OutputTopic
from schemas.llmjacking_keys import (
    KeySnapshot,
    LearnedNormal,
    decode_key_snapshot,
    encode_key_snapshot,
)
from schemas.topics import LLMJACKING_KEYS

__all__ = ["KeyHandoff", "key_state", "snapshot_of"]

log = logging.getLogger(__name__)

_POLL_MS = 200


def _ts(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _at(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def snapshot_of(key: KeyState, partition: int) -> KeySnapshot:
    """`key`'s snapshot; `partition`: its requests partition."""
    b = key.baseline
    return KeySnapshot(
        partition=partition,
        key_id=key.key_id,
        org=key.org,
        team=key.team,
        app=key.app,
        first_seen=key.first_seen.timestamp(),
        last_seen=key.last_seen.timestamp(),
        learned=LearnedNormal(
            requests=b.requests,
            first=_ts(b.first),
            last=_ts(b.last),
            networks={name: at.timestamp() for name, at in b.networks.items()},
            user_agents={name: at.timestamp() for name, at in b.user_agents.items()},
            models=dict(b.models),
            hours=tuple(b.hours),
            rate=(b.rate.alpha, b.rate.mean, b.rate.var, b.rate.n),
            spend=(b.spend.alpha, b.spend.mean, b.spend.var, b.spend.n),
        ),
        quiet_from=_ts(key.quiet_from),
        blocked_until=_ts(key.blocked_until),
        blocked_rank=key.blocked_rank,
    )


def key_state(snapshot: KeySnapshot) -> KeyState:
    learned = snapshot.learned
    baseline = Baseline(
        requests=learned.requests,
        first=_at(learned.first),
        last=_at(learned.last),
        networks={name: _at(ts) or _epoch() for name, ts in learned.networks.items()},
        user_agents={name: _at(ts) or _epoch() for name, ts in learned.user_agents.items()},
        models=Counter(learned.models),
        hours=list(learned.hours),
        rate=Ewma(*learned.rate),
        spend=Ewma(*learned.spend),
        price_stale=True,  # the usual price is computed again from the models
    )
    return KeyState(
        key_id=snapshot.key_id,
        org=snapshot.org,
        team=snapshot.team,
        app=snapshot.app,
        first_seen=_at(snapshot.first_seen) or _epoch(),
        last_seen=_at(snapshot.last_seen) or _epoch(),
        baseline=baseline,
        quiet_from=_at(snapshot.quiet_from),
        blocked_until=_at(snapshot.blocked_until),
        blocked_rank=snapshot.blocked_rank,
    )


def _epoch() -> datetime:
    return datetime.fromtimestamp(0, UTC)


def _progress(key: KeyState) -> tuple[int, int, float | None, float | None]:
    """What changes when a key learned something worth handing over."""
    b = key.baseline
    return b.requests, b.rate.n, _ts(key.quiet_from), _ts(key.blocked_until)


class KeyHandoff:
    """Publishes the keys this worker learned and takes over those of partitions it gains."""

    def __init__(
        self,
        settings: Settings,
        output: OutputTopic,
        detector: LlmjackingDetector,
        taken_over: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._settings = settings
        self._output = output
        self._detector = detector
        self._taken_over = taken_over  # a metric
        self._partition: dict[str, int] = {}  # key_id -> its requests partition
        self._sent: dict[str, tuple[int, int, float | None, float | None]] = {}
        self.owned: set[int] = set()  # requests partitions this worker holds
        # Partitions of llmjacking-keys (read from the broker; at least topic_partitions).
        self._partitions = max(settings.topic_partitions, 1) if settings is not None else 1

    def note(self, key_id: str, partition: int) -> None:
        """`key_id`'s requests arrive on `partition` (called per request)."""
        self._partition[key_id] = partition

    async def publish(self, partitions: set[int] | None = None) -> int:
        """Snapshots of the keys that learned something since their last one (every key of
        `partitions`, when given: they are being handed over). Returns how many."""
        keys = self._detector.keys
        sent = 0
        for key_id, partition in list(self._partition.items()):
            key = keys.get(key_id)
            if key is None:  # evicted by the detector's bound
                del self._partition[key_id]
                self._sent.pop(key_id, None)
                continue
            progress = _progress(key)
            handing_over = partitions is not None and partition in partitions
            if not handing_over and self._sent.get(key_id) == progress:
                continue
            await self._output.send(
                key=key_id.encode(),
                value=encode_key_snapshot(snapshot_of(key, partition)),
                partition=partition % self._partitions,
            )
            self._sent[key_id] = progress
            sent += 1
        return sent

    async def assigned(self, partitions: set[int]) -> None:
        """This worker now holds `partitions` of the requests topic: drop the keys of those
        it lost, take over the keys of those it gained (before any of their requests)."""
        gained, lost = partitions - self.owned, self.owned - partitions
        self.owned = set(partitions)
        if lost:
            gone = [k for k, p in self._partition.items() if p in lost]
            for key_id in gone:
                self._detector.keys.pop(key_id, None)
                del self._partition[key_id]
                self._sent.pop(key_id, None)
        if gained:
            taken = self.take_over(await self._read(gained))
            self._taken_over(taken)
            if taken:
                log.info("llmjacking: %d keys taken over on partitions %s", taken, sorted(gained))

    def take_over(self, snapshots: Iterable[KeySnapshot]) -> int:
        """Install each snapshot whose key learned more there than here."""
        taken = 0
        keys = self._detector.keys
        for snapshot in snapshots:
            mine = keys.get(snapshot.key_id)
            if mine is not None and mine.baseline.requests >= snapshot.learned.requests:
                continue
            keys[snapshot.key_id] = state = key_state(snapshot)
            self._partition[snapshot.key_id] = snapshot.partition
            self._sent[snapshot.key_id] = _progress(state)
            taken += 1
        while len(keys) > self._detector.config.max_keys:
            keys.popitem(last=False)
        return taken

    async def _read(self, partitions: set[int]) -> list[KeySnapshot]:
        """Every snapshot of the keys of requests `partitions`, oldest first; what arrives
        after we looked at the end is a later owner's business. Gives up after
        `handoff_read_timeout_s`."""
        timeout_s = self._settings.processors.llmjacking.handoff_read_timeout_s
        try:
            return await asyncio.wait_for(self._read_to_end(partitions), timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the keys are judged as young ones: worse, not wrong
            log.warning(
                "llmjacking: could not read key snapshots of partitions %s (%s); "
                "their keys start over",
                sorted(partitions),
                exc or type(exc).__name__,
            )
            return []

    async def _read_to_end(self, partitions: set[int]) -> list[KeySnapshot]:
        topic = self._settings.topic(LLMJACKING_KEYS)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        out: list[KeySnapshot] = []
        try:
            found = consumer.partitions_for_topic(topic)
            if not found:
                await consumer.force_metadata_update()
                found = consumer.partitions_for_topic(topic)
            if not found:
                raise LookupError(f"no topic {topic}")
            self._partitions = len(found)
            wanted = {p % self._partitions for p in partitions}
            assigned = [TopicPartition(topic, p) for p in sorted(wanted)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            ends = await consumer.end_offsets(assigned)
            left = {tp for tp in assigned if ends[tp] > 0}
            while left:
                batches = await consumer.getmany(*left, timeout_ms=_POLL_MS)
                for records in batches.values():
                    for record in records:
                        if record.value is None:
                            continue
                        try:
                            snapshot = decode_key_snapshot(record.value)
                        except ValueError as exc:
                            log.warning("llmjacking: skipped a key snapshot: %s", exc)
                            continue
                        if snapshot.partition in partitions:
                            out.append(snapshot)
                for tp in list(left):
                    if await consumer.position(tp) >= ends[tp]:
                        left.discard(tp)
        finally:
            await consumer.stop()
        return out

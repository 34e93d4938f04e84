"""Has the ClickHouse sink stored every cost the processors have fanned out?

A worker that gains budget-spend partitions takes over spend another worker counted:
records before the committed offset, which it will not see again. Each came from a
cost the processors' group has consumed from the costs topic (and committed, or it will
be fanned out again). So once the sink's group has committed at least as far on every
costs partition, every such cost is in the warehouse, and the restore's warehouse figure
holds all of them (reconcile.py). Offsets are read from the broker (OffsetFetch), the
same committed offsets each group resumes from.
"""

from __future__ import annotations

import asyncio
import logging

from confluent_kafka import Consumer, KafkaException, TopicPartition

from meterline.kafka import consumer_config
from meterline.settings import Settings
from schemas.topics import COSTS

__all__ = ["sink_caught_up", "wait_for_sink"]

log = logging.getLogger(__name__)

_TIMEOUT_S = 5.0


def _committed(settings: Settings, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of `topic` (negative: none)."""
    consumer = Consumer(consumer_config(settings, group_id))
    try:
        metadata = consumer.list_topics(topic, timeout=_TIMEOUT_S).topics[topic]
        parts = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=_TIMEOUT_S)}
    finally:
        consumer.close()


def sink_caught_up(settings: Settings) -> bool:
    """Whether, on every costs partition, the sink's committed offset has reached the
    processors' (a partition the processors never committed asks nothing)."""
    topic = settings.topic(COSTS)
    processors = _committed(settings, settings.processors.app_id, topic)
    sink = _committed(settings, settings.ingest.sink.group_id, topic)
    return all(done < 0 or sink.get(p, -1) >= done for p, done in processors.items())


async def wait_for_sink(settings: Settings, timeout_s: float, every_s: float = 0.25) -> bool:
    """Until the sink has caught up (True) or `timeout_s` passed (False; logged unless
    `timeout_s` is 0, a single look)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            if await asyncio.to_thread(sink_caught_up, settings):
                return True
        except (KafkaException, KeyError) as exc:  # KeyError: no costs topic (yet)
            log.warning("budgets: cannot read the sink's progress (%r)", exc)
        if loop.time() + every_s > deadline:
            if timeout_s > 0:
                log.warning(
                    "budgets: the sink has not stored every fanned-out cost after %.0fs; "
                    "restoring anyway and reconciling again until it has",
                    timeout_s,
                )
            return False
        await asyncio.sleep(every_s)

"""Peer baselines shared by every processors worker over the internal `llmjacking-peers`
topic (schemas/peer_learning.py): each worker publishes what its keys taught their peers,
about once a second, and applies every other worker's batches.

The reader assigns every partition itself (no consumer group: every worker needs every
batch) and starts at the end: what was learned before this worker started is in its
snapshot (store.py) or was never its to know; a batch read twice around a restart only
counts a few normal requests twice in a baseline. A batch that cannot be read is logged
and skipped: it only carries what others learned.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from meterline.settings import Settings
from processors.streams import OutputTopic
from schemas.peer_learning import (
    MAX_ITEMS,
    PeerItem,
    PeerLearning,
    decode_peer_learning,
    encode_peer_learning,
)
from schemas.topics import LLMJACKING_PEERS

__all__ = ["PeerSharing"]

log = logging.getLogger(__name__)

_POLL_MS = 500
_RETRY_S = 1.0


class PeerSharing:
    """Publishes this worker's learned peer items and feeds the others' to `learn`."""

    def __init__(
        self,
        settings: Settings,
        output: OutputTopic,
        learn: Callable[[Iterable[PeerItem]], None],
        applied: Callable[[int], None],
    ) -> None:
        self._settings = settings
        self._output = output
        self._learn = learn
        self._applied = applied  # items taken from other workers (a metric)
        self.worker = uuid.uuid4().hex  # this process: its own batches are skipped

    async def publish(self, items: list[PeerItem]) -> None:
        for start in range(0, len(items), MAX_ITEMS):
            batch = PeerLearning(self.worker, time.time(), items[start : start + MAX_ITEMS])
            await self._output.send(key=self.worker.encode(), value=encode_peer_learning(batch))

    async def run(self) -> None:
        """Read the other workers' batches forever (again from the end after a failure)."""
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("llmjacking: peer reader failed; reading again")
                await asyncio.sleep(_RETRY_S)

    def apply(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            batch = decode_peer_learning(value)
        except ValueError as exc:
            log.warning("llmjacking: skipped a peer batch that cannot be read: %s", exc)
            return
        if batch.worker != self.worker:
            self._learn(batch.items)
            self._applied(len(batch.items))

    async def _read(self) -> None:
        topic = self._settings.topic(LLMJACKING_PEERS)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic)
            while not partitions:
                await consumer.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    await asyncio.sleep(_RETRY_S)
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_end(*assigned)
            while True:
                batches = await consumer.getmany(timeout_ms=_POLL_MS)
                for records in batches.values():
                    for record in records:
                        self.apply(record.value)
        finally:
            await consumer.stop()

"""The processors' consumer: batches from one consumer group, handled, sent, then committed.

Why not Faust's agents: Faust's per-message stream machinery alone costs ~125-145 us of
CPU per message on these machines (a no-op agent, `events()` or `take(1000)` alike:
~3,400 messages/s), a third of the 10,000 events/s a worker must do; aiokafka's own
`getmany` fetches the same messages for ~4 us each. So one aiokafka consumer (in the
consumer group `processors.app_id`) reads every input topic, and for each batch:

1. hands it to the pipeline (processors/streams.py: each topic's messages to each of its
   stages, in partition order);
2. waits until every output sent so far is acknowledged (processors/outputs.py);
3. commits the batch's offsets. A batch whose outputs failed is read again from its
   first offsets instead (at-least-once; every sink deduplicates on event_id).

Rebalances: the pipeline's listeners (budgets' hand-over and restore) run when aiokafka
revokes or assigns partitions, after the batch in hand is committed.
(confluent-kafka's consumer fetches for ~2 us, but librdkafka 2.16 crashed the worker,
SIGSEGV in its metadata cache, when a subscribed topic was deleted, as an embedded-broker
restart does.)
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faust.types import Message
from mode import Service

from meterline.kafka import METADATA_REFRESH_MS
from meterline.settings import Settings
from processors.metrics import ProcessorMetrics

__all__ = [
    "BatchLoop",
    "Pipeline",
    "first_offsets",
    "next_offsets",
    "oldest_ages",
    "to_message",
]

log = logging.getLogger(__name__)

MAX_BATCH = 5_000  # messages per batch at most; fewer whenever fewer are waiting
_POLL_MS = 100
_FLUSH_TIMEOUT_S = 30.0
_RETRY_S = 1.0
_FETCH_BYTES = 8 * 1024 * 1024
_LAG_EVERY_S = 1.0  # consumer lag sampled for /metrics at most this often


class Pipeline(Protocol):
    """What the loop drives (processors/streams.py)."""

    def topics(self) -> list[str]: ...

    def handle(self, batch: Sequence[Message]) -> Awaitable[None]: ...

    def assigned(self, partitions: set[tuple[str, int]]) -> Awaitable[None]: ...

    def revoked(self, partitions: set[tuple[str, int]]) -> Awaitable[None]: ...

    def stopped(self) -> None: ...

    @property
    def failures(self) -> int:
        """Output deliveries failed so far."""
        ...

    def flush(self, timeout_s: float) -> bool: ...


def to_message(record: ConsumerRecord[bytes, bytes]) -> Message:
    """A fetched record as the Message the stages (and the dead letters) read."""
    return Message(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=record.timestamp / 1000,
        timestamp_type=record.timestamp_type,
        headers=list(record.headers or []),
        key=record.key,
        value=record.value,
        checksum=None,
    )


def next_offsets(batch: Iterable[Message]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the offset to commit after `batch`: its last offset + 1."""
    offsets: dict[tuple[str, int], int] = {}
    for message in batch:
        tp = (message.topic, message.partition)
        offsets[tp] = max(offsets.get(tp, -1), message.offset + 1)
    return offsets


def first_offsets(batch: Iterable[Message]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the first offset of `batch`: where to read it again from."""
    offsets: dict[tuple[str, int], int] = {}
    for message in batch:
        tp = (message.topic, message.partition)
        offsets[tp] = min(offsets.get(tp, message.offset), message.offset)
    return offsets


class BatchLoop(Service):
    """Consumes while the Faust app runs; a clean stop finishes the batch in hand first."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        metrics: ProcessorMetrics | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._settings = settings
        self._pipeline = pipeline
        self._metrics = metrics
        self._lag_sampled = 0.0
        self._stopping = False
        self._task: asyncio.Future[None] | None = None
        self._batch = asyncio.Lock()  # held while a batch is handled, sent and committed
        self.assigned: set[tuple[str, int]] = set()

    async def on_start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def on_stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await asyncio.wait([self._task])
        self._pipeline.stopped()

    async def _run(self) -> None:
        settings = self._settings
        session_ms = settings.kafka_session_timeout_ms
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            group_id=settings.processors.app_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 3, 100),
            max_partition_fetch_bytes=_FETCH_BYTES,
            metadata_max_age_ms=METADATA_REFRESH_MS,  # a topic created again is seen soon
        )
        consumer.subscribe(self._pipeline.topics(), listener=_Listener(self))
        try:
            await consumer.start()
            while not self._stopping:
                fetched = await consumer.getmany(timeout_ms=_POLL_MS, max_records=MAX_BATCH)
                # Partitions merged in record-time order (each partition's own order kept):
                # stages whose state spans partitions (drift scopes, an org's keys) see the
                # traffic interleaved as it happened, not one partition after the other.
                merged = heapq.merge(*fetched.values(), key=_record_time)
                batch = [to_message(r) for r in merged]
                if batch:
                    async with self._batch:
                        await self._process(consumer, batch)
                await self._sample_lag(consumer)
        except Exception:  # the worker must not look alive while nothing is consumed
            log.exception("processors: the consumer failed")
            raise
        finally:
            await consumer.stop()

    async def _process(self, consumer: AIOKafkaConsumer, batch: list[Message]) -> None:
        failures = self._pipeline.failures
        try:
            await self._pipeline.handle(batch)
            loop = asyncio.get_running_loop()
            delivered = await loop.run_in_executor(None, self._pipeline.flush, _FLUSH_TIMEOUT_S)
        except Exception:
            log.exception("processors: a batch of %d failed; reading it again", len(batch))
            delivered = False
        if delivered and self._pipeline.failures == failures:
            offsets = next_offsets(batch)
            try:
                await consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
            except KafkaError as exc:  # e.g. a rebalance: the new owner reads it again
                log.info("processors: commit failed (%s)", exc)
                return
            if self._metrics is not None:
                self._metrics.batch_committed(oldest_ages(batch, time.time()))
            return
        for (topic, partition), offset in first_offsets(batch).items():
            if (topic, partition) in self.assigned:
                consumer.seek(TopicPartition(topic, partition), offset)
        await asyncio.sleep(_RETRY_S)

    async def _sample_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Messages between this worker's position and each partition's end, per topic."""
        now = time.monotonic()
        if self._metrics is None or now - self._lag_sampled < _LAG_EVERY_S:
            return
        self._lag_sampled = now
        lag: dict[str, int] = dict.fromkeys(self._pipeline.topics(), 0)
        for tp in consumer.assignment():
            end = consumer.highwater(tp)  # known once a fetch returned for the partition
            if end is None:
                continue
            try:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(end - await consumer.position(tp), 0)
            except KafkaError:  # the partition moved meanwhile: the next sample has it
                continue
        self._metrics.consumer_lag(lag)

    async def revoked(self, partitions: set[tuple[str, int]]) -> None:
        async with self._batch:  # the batch in hand is committed first
            self.assigned -= partitions
            await self._pipeline.revoked(partitions)

    async def assigned_now(self, partitions: set[tuple[str, int]]) -> None:
        self.assigned = set(partitions)
        await self._pipeline.assigned(set(partitions))


def oldest_ages(batch: Iterable[Message], now_s: float) -> dict[str, float]:
    """topic -> seconds since the oldest record of `batch` in it was written."""
    oldest: dict[str, float] = {}
    for message in batch:
        written = message.timestamp
        if written < oldest.get(message.topic, float("inf")):
            oldest[message.topic] = written
    return {topic: now_s - written for topic, written in oldest.items()}


def _record_time(record: ConsumerRecord[bytes, bytes]) -> int:
    return record.timestamp


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: BatchLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._loop.revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._loop.assigned_now({(tp.topic, tp.partition) for tp in assigned})

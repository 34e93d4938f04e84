"""Every BudgetRecord of the control topic, read from the beginning on each start.

No consumer group (ARCHITECTURE §7): every worker needs every budget, and a committed
group offset would skip the records a restarted worker must re-read to rebuild its
in-memory book. `ready` is set once the topic has been read up to its end, so costs
are not counted against a half-loaded book.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faust.types import Message

from meterline.settings import Settings
from schemas.topics import CONTROL

__all__ = ["ControlReader"]

log = logging.getLogger(__name__)

_POLL_MS = 500
_RETRY_S = 1.0


class ControlReader:
    """Reads the control topic forever, handing each record to `on_record` in order."""

    def __init__(self, settings: Settings, on_record: Callable[[Message], Awaitable[None]]) -> None:
        self._settings = settings
        self._topic = settings.topic(CONTROL)
        self._on_record = on_record
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Read forever; after a failure, read again from the beginning (harmless: while
        loading, only the latest record per key is applied)."""
        while True:
            try:
                await self._read_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("budgets: control reader failed; reading again from the start")
                self.ready.set()  # a broken reader must not hold the costs back forever
                await asyncio.sleep(_RETRY_S)

    async def _read_all(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._settings.processors.budget.control_ready_timeout_s
            # While loading, keep only the latest record per key (compacted-topic
            # semantics), so superseded versions never flap a decision.
            pending: dict[object, Message] | None = {}
            while True:
                batches = await consumer.getmany(timeout_ms=_POLL_MS)
                for records in batches.values():
                    for record in records:
                        message = _message(record)
                        if pending is None:
                            await self._on_record(message)
                            continue
                        key = (
                            record.key
                            if record.key is not None
                            else (record.partition, record.offset)
                        )
                        pending.pop(key, None)  # re-inserted: ordered by its latest version
                        pending[key] = message
                if pending is None:
                    continue
                caught_up = await self._caught_up(consumer, ends, idle=not batches)
                if not caught_up and loop.time() < deadline:
                    continue
                if not caught_up:  # tansu's end offsets can be off (ARCHITECTURE §7)
                    log.warning("budgets: control topic not caught up in time; going on")
                for message in pending.values():
                    await self._on_record(message)
                pending = None
                log.info("budgets: control topic loaded")
                self.ready.set()
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        while True:
            await consumer.topics()  # refreshes metadata
            found = consumer.partitions_for_topic(self._topic)
            if found:
                return [TopicPartition(self._topic, p) for p in sorted(found)]
            await asyncio.sleep(0.5)  # topic not created yet (broker starting)

    async def _caught_up(
        self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], idle: bool
    ) -> bool:
        # A fetch came back empty and every position reached the end seen at start.
        if not idle:
            return False
        for partition, end in ends.items():
            if await consumer.position(partition) < end:
                return False
        return True


def _message(record: ConsumerRecord) -> Message:
    # The dead-letter publisher speaks Faust's Message.
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

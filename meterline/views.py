"""One background reader of compacted topics, for every in-memory view (ARCHITECTURE §7):
a gateway's keys, budgets and decisions, ingest's credentials.

It assigns all partitions of its topics (a gateway: `meterline.control`,
`meterline.enforcement` and `meterline.budgets`) from the beginning, with no consumer
group, and hands each record to that topic's apply function. It also tracks how fresh
the views are: the view is fresh at time T when, at T, every partition had been read to
its end and the broker answered. A reader that lags, or a broker that stops answering,
makes `age_s` grow; the gateway's enforcer turns that into fail-open or fail-closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from meterline.kafka import consumer_config
from meterline.settings import Settings

__all__ = ["Apply", "ViewReader"]

log = logging.getLogger(__name__)

Apply = Callable[[bytes | None, bytes | None], bool]
_PROBE_EVERY_S = 0.5


class ViewReader:
    """Background thread; `handlers` maps full topic names to apply functions. The first
    topic is required before reading starts; the others are added when they exist."""

    def __init__(self, settings: Settings, handlers: dict[str, Apply]) -> None:
        self._settings = settings
        self._handlers = handlers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="view-reader", daemon=True)
        self._started = time.monotonic()
        self._fresh_at: float | None = None
        self._assigned: set[str] = set()
        self._pending: set[tuple[str, int]] = set()  # partitions not yet read to their end
        self.records_applied = 0

    @property
    def age_s(self) -> float:
        """Seconds since the views were last known complete (since start if never)."""
        return time.monotonic() - (self._fresh_at or self._started)

    @property
    def ready(self) -> bool:
        """The views were complete at least once: every key, budget and decision is known."""
        return self._fresh_at is not None

    @property
    def caught_up(self) -> bool:
        return len(self._assigned) == len(self._handlers) and not self._pending

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _assign_new(self, consumer: Consumer) -> None:
        try:
            metadata = consumer.list_topics(timeout=1.0)
        except KafkaException:
            return
        partitions = []
        for topic in self._handlers:
            info = metadata.topics.get(topic)
            if topic in self._assigned or info is None or info.error is not None:
                continue
            if not info.partitions:
                continue
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in info.partitions]
            self._pending |= {(topic, p) for p in info.partitions}
            self._assigned.add(topic)
        if partitions:
            consumer.incremental_assign(partitions)

    def _probe(self, consumer: Consumer) -> None:
        """Ask the broker something; a view that is caught up and reachable is fresh."""
        if len(self._assigned) < len(self._handlers):
            self._assign_new(consumer)
        try:
            consumer.list_topics(next(iter(self._handlers)), timeout=1.0)
        except KafkaException:
            return
        if self.caught_up:
            self._fresh_at = time.monotonic()

    def _run(self) -> None:
        # Short fetch waits: a block must reach every gateway well within a second, and
        # the embedded broker answers an idle fetch only when the wait runs out.
        consumer = Consumer(
            consumer_config(
                self._settings, None, **{"enable.partition.eof": True, "fetch.wait.max.ms": 50}
            )
        )
        required = next(iter(self._handlers))
        try:
            while not self._stop.is_set() and required not in self._assigned:
                self._assign_new(consumer)
                if required not in self._assigned:
                    self._stop.wait(0.5)  # topic not there yet (broker starting)
            probed = 0.0
            while not self._stop.is_set():
                self._poll_once(consumer)
                now = time.monotonic()
                if now - probed >= _PROBE_EVERY_S:
                    probed = now
                    self._probe(consumer)
        finally:
            consumer.close()

    def _poll_once(self, consumer: Consumer) -> None:
        try:
            message = consumer.poll(0.1)
        except KafkaException as exc:
            log.warning("views: poll failed (%s)", exc)
            return
        if message is None:
            return
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._pending.discard((message.topic(), message.partition()))
                if self.caught_up:
                    self._fresh_at = time.monotonic()
            else:
                log.debug("views: %s", error.name())
            return
        self._pending.add((message.topic(), message.partition()))
        apply = self._handlers.get(message.topic())
        try:
            if apply is not None and apply(message.key(), message.value()):
                self.records_applied += 1
        except Exception:  # garbage must never stop the view
            log.exception("views: could not apply a record from %s", message.topic())

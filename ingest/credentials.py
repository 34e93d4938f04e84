"""`CredentialReader`: the control topic -> a CredentialBook (virtual keys, ingest tokens).

Like every reader of a compacted topic (ARCHITECTURE §7) it assigns all partitions itself
and reads from the beginning, with no consumer group: each ingest instance needs every
credential, and no group join may delay a revocation. `caught_up` says whether every
partition was read to its end once, so an unknown credential before that is "not known
yet" (503, the exporter retries), not "wrong" (401).
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from meterline.kafka import consumer_config
from meterline.settings import Settings
from schemas.credentials import CredentialBook
from schemas.topics import CONTROL

__all__ = ["CredentialReader"]

log = logging.getLogger(__name__)


class CredentialReader:
    def __init__(self, settings: Settings, book: CredentialBook | None = None) -> None:
        self._settings = settings
        self._topic = settings.topic(CONTROL)
        self.book = book if book is not None else CredentialBook()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="credential-reader", daemon=True)
        self._pending: set[int] | None = None  # partitions not yet read to their end
        self.records_applied = 0

    @property
    def caught_up(self) -> bool:
        return self._pending is not None and not self._pending

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        # Short fetch waits: a new or revoked key should count within a fraction of a second.
        consumer = Consumer(
            consumer_config(
                self._settings, None, **{"enable.partition.eof": True, "fetch.wait.max.ms": 50}
            )
        )
        try:
            while not self._stop.is_set() and self._pending is None:
                self._assign(consumer)
            while not self._stop.is_set():
                self._poll_once(consumer)
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> None:
        try:
            info = consumer.list_topics(self._topic, timeout=1.0).topics.get(self._topic)
        except KafkaException:
            info = None
        if info is None or info.error is not None or not info.partitions:
            self._stop.wait(0.5)  # the topic does not exist yet (broker starting)
            return
        consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in info.partitions])
        self._pending = set(info.partitions)

    def _poll_once(self, consumer: Consumer) -> None:
        try:
            message = consumer.poll(0.1)
        except KafkaException as exc:
            log.warning("credentials: poll failed (%s)", exc)
            return
        if message is None:
            return
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF and self._pending is not None:
                self._pending.discard(message.partition())
            else:
                log.debug("credentials: %s", error.name())
            return
        try:
            if self.book.apply(message.key(), message.value()):
                self.records_applied += 1
        except Exception:  # garbage must never stop the view
            log.exception("credentials: could not apply a control record")

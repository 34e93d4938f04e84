"""The control topic (`meterline.control`, compacted): publish key changes, materialize them.

Every gateway instance reads the whole topic itself: it assigns all partitions from the
beginning with no consumer group (ARCHITECTURE §7), so no rebalance can delay a change.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from gateway.keys import KeyStore
from meterline.kafka import consumer_config, producer_config
from meterline.settings import Settings
from schemas.topics import CONTROL

__all__ = ["ControlPublisher", "ControlReader", "apply_control_record"]

log = logging.getLogger(__name__)


def apply_control_record(store: KeyStore, key: bytes | None, value: bytes | None) -> bool:
    """Apply one control record to the key view; False if it was ignored."""
    if value is None:  # tombstone: only `key:<id>` subjects mean something here
        subject = (key or b"").decode(errors="replace")
        return subject.startswith("key:") and store.remove(subject[4:])
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        log.warning("control: skipping a record that is not JSON")
        return False
    if not isinstance(record, dict) or record.get("event_type") != "key":
        return False  # budgets, policies: not this view's business
    return store.apply(record)


class ControlReader:
    """Background thread: assign every partition of the control topic, apply each record."""

    def __init__(self, settings: Settings, store: KeyStore) -> None:
        self._settings = settings
        self._store = store
        self._topic = settings.topic(CONTROL)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control-reader", daemon=True)
        self.records_applied = 0

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _assign(self, consumer: Consumer) -> bool:
        try:
            metadata = consumer.list_topics(self._topic, timeout=1.0)
        except KafkaException:
            return False
        info = metadata.topics.get(self._topic)
        if info is None or info.error is not None or not info.partitions:
            return False
        consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in sorted(info.partitions)]
        )
        return True

    def _run(self) -> None:
        consumer = Consumer(
            consumer_config(self._settings, None, **{"enable.partition.eof": False})
        )
        try:
            while not self._stop.is_set() and not self._assign(consumer):
                self._stop.wait(0.5)  # topic not there yet (broker starting)
            while not self._stop.is_set():
                self._poll_once(consumer)
        finally:
            consumer.close()

    def _poll_once(self, consumer: Consumer) -> None:
        try:
            message = consumer.poll(0.2)
        except KafkaException as exc:
            log.warning("control: poll failed (%s)", exc)
            return
        if message is None:
            return
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.debug("control: %s", error.name())
            return
        try:
            if apply_control_record(self._store, message.key(), message.value()):
                self.records_applied += 1
        except Exception:  # garbage must never stop the view
            log.exception("control: could not apply a record")


class ControlPublisher:
    """Publishes control records and waits for the broker to acknowledge them."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.topic(CONTROL)
        self._timeout_s = settings.emitter_delivery_timeout_ms / 1000
        self._producer = Producer(producer_config(settings, **{"linger.ms": 0}))
        self._lock = threading.Lock()

    def publish(self, key: str, value: bytes) -> None:
        """Blocking (run it off the event loop); raises ConnectionError if not delivered."""
        outcome: list[KafkaError | None] = []

        def deliver(error: KafkaError | None, _message: Any) -> None:
            outcome.append(error)

        with self._lock:
            try:
                self._producer.produce(self._topic, value, key.encode(), on_delivery=deliver)
            except (BufferError, KafkaException) as exc:
                raise ConnectionError(f"control topic unavailable: {exc}") from exc
            if self._producer.flush(self._timeout_s + 1):
                # Not acknowledged in time: withdraw it, so a 503 never turns into a change.
                self._producer.purge()
                self._producer.poll(0)
        if not outcome or outcome[0] is not None:
            reason = outcome[0].name() if outcome and outcome[0] else "no acknowledgement"
            raise ConnectionError(f"control topic unavailable: {reason}")

    def close(self) -> None:
        self._producer.flush(1)

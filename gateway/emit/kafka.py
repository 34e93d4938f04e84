"""KafkaEmitter: hand events to librdkafka without blocking; spool to disk when Kafka is down.

State machine (the lock makes each switch atomic with respect to `emit`):

    connected --(local queue full, or a delivery fails)--> spooling
    spooling  --(spool fully replayed, nothing held)-----> connected

While spooling, new events are *held* in memory until every message already handed to
librdkafka has an outcome (failures are spooled, in callback order), then appended to the
spool behind them. Replay reads the spool in order and waits for delivery before moving
on, so per-partition order is kept across an outage; a restart resumes the replay.
`max.in.flight=1` stops librdkafka's retries from reordering messages.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from gateway.emit.spool import Spool, SpoolRecord
from meterline.kafka import producer_config
from meterline.settings import Settings

__all__ = ["KafkaEmitter"]

log = logging.getLogger(__name__)

_UNAVAILABLE_CODES = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)


def _broker_unavailable(error: KafkaError) -> bool:
    """True for failures that a later retry can fix (the message must be kept)."""
    return error.code() in _UNAVAILABLE_CODES or error.retriable()


class KafkaEmitter:
    """**Parameters:** `settings` (bootstrap, delivery timeout, spool dir), `name` (spool
    file name), `replay_batch` (records per replay round)."""

    def __init__(
        self, settings: Settings, *, name: str = "gateway", replay_batch: int = 1000
    ) -> None:
        self._producer = Producer(
            producer_config(
                settings,
                **{"max.in.flight.requests.per.connection": 1, "client.id": f"meterline-{name}"},
            )
        )
        self._delivery_timeout_s = settings.emitter_delivery_timeout_ms / 1000
        self._spool = Spool(settings.resolved_spool_dir, name)
        self._replay_batch = replay_batch
        self._lock = threading.Lock()
        self._spooling = not self._spool.empty  # a previous run left events to replay
        self._purge_requested = False
        self._held: list[SpoolRecord] = []
        self._failed: list[SpoolRecord] = []  # direct deliveries that failed, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"emitter-{name}", daemon=True)
        self._next_attempt = 0.0
        self.delivered = 0
        self.dropped = 0  # permanent failures only (logged); never a silent drop

    # --- event loop side ------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def emit(self, topic: str, key: bytes, value: bytes) -> None:
        """Never blocks on the network and never raises."""
        with self._lock:
            if not self._spooling:
                try:
                    self._producer.produce(topic, value, key, on_delivery=self._on_delivery)
                    return
                except BufferError:
                    log.warning("emitter: local queue full, spooling events to disk")
                except (KafkaException, TypeError, ValueError) as exc:
                    log.warning("emitter: produce failed (%s), spooling", type(exc).__name__)
                self._spooling = True
            self._held.append((topic, key, value))

    @property
    def state(self) -> str:
        return "spooling" if self._spooling else "connected"

    @property
    def queue_depth(self) -> int:
        return len(self._producer)

    @property
    def spool_size(self) -> int:
        """Events waiting for replay: on disk, held in memory, or failed and not yet spooled."""
        return self._spool.pending + len(self._held) + len(self._failed)

    def close(self, timeout_s: float | None = None) -> None:
        """Stop the poll thread, wait for outstanding deliveries, spool what failed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        remaining = self._producer.flush(
            timeout_s if timeout_s is not None else self._delivery_timeout_s + 1
        )
        if remaining:
            log.error("emitter: %d events still undelivered at shutdown", remaining)
        with self._lock:
            pending = self._failed + self._held
            self._failed, self._held = [], []
        self._spool.append(pending)
        if not self._spool.empty:
            log.warning(
                "emitter: %d events left in %s for the next start",
                self._spool.pending,
                self._spool.path,
            )

    # --- background thread ----------------------------------------------------------

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
            return
        if not _broker_unavailable(error):
            self.dropped += 1
            log.error("emitter: event rejected permanently by Kafka (%s)", error.name())
            return
        with self._lock:
            if not self._spooling:
                log.warning("emitter: delivery failed (%s), spooling events to disk", error.name())
                self._spooling = True
                self._purge_requested = True
            self._failed.append(
                (message.topic() or "", message.key() or b"", message.value() or b"")
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.05)
                self._step()
            except Exception:  # the thread must survive anything
                log.exception("emitter: background step failed")
                time.sleep(0.5)

    def _step(self) -> None:
        if self._purge_requested:
            # Fail everything still queued locally now, so it is spooled in order.
            self._purge_requested = False
            self._producer.purge(in_queue=True, in_flight=False, blocking=False)
            self._producer.poll(0)
        if not self._spooling:
            return
        with self._lock:
            failed, self._failed = self._failed, []
        self._spool.append(failed)
        if len(self._producer):
            return  # earlier messages still have no outcome; keep holding new ones
        with self._lock:
            held, self._held = self._held, []
        self._spool.append(held)
        if self._spool.empty:
            with self._lock:
                if not self._held and not self._failed:
                    self._spooling = False
                    log.info("emitter: spool replayed, sending directly again")
            return
        if time.monotonic() >= self._next_attempt and not self._replay_once():
            self._next_attempt = time.monotonic() + 0.5

    def _broker_ready(self, topic: str) -> bool:
        try:
            metadata = self._producer.list_topics(topic, timeout=1.0)
        except KafkaException:
            return False
        info = metadata.topics.get(topic)
        return info is not None and info.error is None and bool(info.partitions)

    def _replay_once(self) -> bool:
        """Send one batch from the spool and wait for it; True if all of it arrived."""
        records, ends = self._spool.read(self._replay_batch)
        if not records or not self._broker_ready(records[0][0]):
            return False
        results: list[bool | None] = [None] * len(records)
        sent = 0
        for index, (topic, key, value) in enumerate(records):
            try:
                self._producer.produce(
                    topic, value, key, on_delivery=partial(self._on_replayed, results, index)
                )
            except BufferError:
                break
            sent += 1
        self._producer.flush(self._delivery_timeout_s + 1)
        delivered = 0
        for outcome in results[:sent]:
            if not outcome:
                break
            delivered += 1
        if delivered:
            self._spool.advance(ends[delivered - 1], delivered)
            self.delivered += delivered
            log.info(
                "emitter: replayed %d spooled events (%d left)", delivered, self._spool.pending
            )
        return delivered == len(records)

    def _on_replayed(
        self, results: list[bool | None], index: int, error: KafkaError | None, message: Message
    ) -> None:
        if error is not None and not _broker_unavailable(error):
            self.dropped += 1
            log.error("emitter: spooled event rejected permanently by Kafka (%s)", error.name())
            results[index] = True  # skip it, or it would block the spool forever
            return
        results[index] = error is None

"""KafkaEmitter: hand events to librdkafka without blocking; spool to disk when Kafka is down.

State machine (the lock makes each switch atomic with respect to `emit`):

    connected --(local queue full, or a delivery fails)--> spooling
    spooling  --(spool fully replayed, nothing held)-----> connected

While spooling, new events are *held* in memory until every message already handed to
librdkafka has an outcome (failures are spooled, in callback order), then appended to the
spool behind them. Replay reads the spool in order and waits for delivery before moving
on, so per-partition order is kept across an outage; a restart resumes the replay.
`max.in.flight=1` stops librdkafka's retries from reordering messages.

Only "the broker is unavailable" leads to the spool. A record that can never be produced
(too large, invalid, not bytes: `meterline.kafka.is_record_error`) never enters it: it is
replaced by a minimal event that still meters the request and dead-lettered with the
reason, and counted (`meterline_gateway_emitter_poison_total`). While spooling, an event is checked
before it is held (size, bytes, one line), so poison never reaches the spool's head. A
spooled record the broker still refuses for good on replay (written by an older run, or
before a config change) is quarantined (`Spool.quarantine`).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from gateway.emit.poison import (
    RECORD_OVERHEAD_BYTES,
    dead_letter,
    describe,
    minimal_event,
)
from gateway.emit.redelivery import RecentDeliveries
from gateway.emit.spool import Spool, SpoolRecord
from gateway.metrics import Metrics
from meterline.kafka import is_record_error, producer_config
from meterline.settings import Settings
from schemas.topics import DLQ

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "POISON_COUNTER", "QUARANTINE_COUNTER", "KafkaEmitter"]

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 1_000_000  # librdkafka's default message.max.bytes
POISON_COUNTER = "meterline_gateway_emitter_poison_total"
QUARANTINE_COUNTER = "meterline_gateway_emitter_quarantined_total"

_Outcome = bool | str | None  # replay: delivered, retry later, or why it is poison


def _event_time(value: bytes) -> float | None:
    """The `ts` an event carries, as epoch seconds (None when it has none)."""
    try:
        ts = orjson.loads(value).get("ts")
        return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else None
    except (orjson.JSONDecodeError, AttributeError, ValueError):
        return None


class KafkaEmitter:
    """**Parameters:** `settings` (bootstrap, delivery timeout, spool dir, topic prefix),
    `name` (spool file name), `replay_batch` (records per replay round), `metrics` (poison
    and quarantine counters), `max_message_bytes` (producer `message.max.bytes`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str = "gateway",
        replay_batch: int = 1000,
        metrics: Metrics | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._producer = Producer(
            producer_config(
                settings,
                **{
                    "max.in.flight.requests.per.connection": 1,
                    "client.id": f"meterline-{name}",
                    "message.max.bytes": max_message_bytes,
                },
            )
        )
        self._max_bytes = max_message_bytes
        self._dlq_topic = settings.topic(DLQ)
        self._metrics = metrics or Metrics()
        self._metrics.counter(POISON_COUNTER, "Events the broker can never take, by reason.")
        self._metrics.counter(QUARANTINE_COUNTER, "Spooled events moved to quarantine.")
        self._delivery_timeout_s = settings.gateway.emitter.delivery_timeout_ms / 1000
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
        # Wall time of the oldest event not yet delivered while spooling (None otherwise).
        self._undelivered_since: float | None = None
        if self._spooling:
            self._undelivered_since = self._spool_head_time() or time.time()
        # Delivery callbacks, bound once: an original event, or a salvage product (its
        # minimal version or dead letter), whose own poisoning must not be salvaged again.
        self._callbacks = {True: self._on_delivery, False: self._on_salvage_delivery}
        self._redelivery_window_s = settings.gateway.emitter.redelivery_window_s
        self._recent = RecentDeliveries(
            settings.gateway.emitter.redelivery_window_s,
            settings.gateway.emitter.redelivery_max_events,
        )
        self.redelivered = 0  # acknowledged events sent again after the broker lost them
        self.delivered = 0
        self.poisoned = 0  # records that could never be produced (each dead-lettered)
        self.reduced = 0  # of those, replaced by a minimal event
        self.lost = 0  # salvage products that could not be produced either (logged)

    # --- event loop side ------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def emit(self, topic: str, key: bytes, value: bytes) -> None:
        """Never blocks on the network and never raises."""
        self._send(topic, key, value, salvage=True)

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

    @property
    def quarantined(self) -> int:
        return self._spool.quarantined

    @property
    def oldest_undelivered_age_s(self) -> float | None:
        """Age of the oldest event waiting for the broker; None when nothing waits."""
        since = self._undelivered_since
        if since is None or not self.spool_size:
            return None
        return max(0.0, time.time() - since)

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

    # --- both sides -----------------------------------------------------------------

    def _send(self, topic: str, key: bytes, value: bytes, *, salvage: bool) -> None:
        with self._lock:
            problem = self._produce_or_hold(topic, key, value, salvage)
        if problem is not None:
            self._poisoned(topic, key, value, problem, salvage)

    def _produce_or_hold(self, topic: str, key: bytes, value: bytes, salvage: bool) -> str | None:
        """Under the lock: produce, or hold for the spool; the poison reason otherwise."""
        if not self._spooling:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._callbacks[salvage])
                return None
            except BufferError:
                log.warning("emitter: local queue full, spooling events to disk")
            except KafkaException as exc:  # librdkafka's own checks, e.g. message.max.bytes
                error = exc.args[0]
                if is_record_error(error):
                    return describe(error)
                log.warning("emitter: produce failed (%s), spooling", error.name())
            except TypeError as exc:
                return f"unserializable: {exc}"
            self._start_spooling(time.time())
        return self._hold(topic, key, value)

    def _hold(self, topic: str, key: bytes, value: bytes) -> str | None:
        """Keep a record for the spool, unless it could never leave it (the reason)."""
        if not isinstance(value, bytes) or not isinstance(key, bytes):
            return "unserializable: key and value must be bytes"
        size = len(key) + len(value)
        if size + RECORD_OVERHEAD_BYTES > self._max_bytes:  # what produce() would refuse
            return (
                f"MSG_SIZE_TOO_LARGE: {size} bytes, over the producer's message.max.bytes "
                f"of {self._max_bytes}"
            )
        if b"\n" in value or b"\t" in key or b"\n" in key:  # one spool record per line
            return "unspoolable: a raw tab or newline in the record"
        self._held.append((topic, key, value))
        return None

    def _start_spooling(self, since: float) -> None:
        self._spooling = True
        if self._undelivered_since is None or since < self._undelivered_since:
            self._undelivered_since = since

    def _poisoned(self, topic: str, key: Any, value: Any, reason: str, salvage: bool) -> None:
        """A record that can never be produced: meter what we can, dead-letter the rest."""
        self._metrics.inc(POISON_COUNTER, f'reason="{reason.split(":", 1)[0]}"')
        key = key if isinstance(key, bytes) else b""
        if not salvage:  # a minimal event or dead letter: never salvaged again (no loop)
            self.lost += 1
            log.error("emitter: could not produce a dead letter or minimal event (%s)", reason)
            return
        self.poisoned += 1
        minimal = minimal_event(value) if isinstance(value, bytes) else None
        if minimal is not None:
            self.reduced += 1
            self._send(topic, key, minimal, salvage=False)
        log.error(
            "emitter: an event for %s can never be produced (%s): dead-lettered to %s%s",
            topic,
            reason,
            self._dlq_topic,
            ", a minimal event sent in its place" if minimal is not None else "",
        )
        letter = dead_letter(topic, key, value, reason, self._max_bytes)
        self._send(self._dlq_topic, key, letter, salvage=False)

    # --- background thread ----------------------------------------------------------

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        self._delivered(error, message, salvage=True)

    def _on_salvage_delivery(self, error: KafkaError | None, message: Message) -> None:
        self._delivered(error, message, salvage=False)

    def _delivered(self, error: KafkaError | None, message: Message, *, salvage: bool) -> None:
        if error is None:
            self.delivered += 1
            if salvage and self._recent.enabled:
                self._note_delivered(message)
            return
        record = (message.topic() or "", message.key() or b"", message.value() or b"")
        if is_record_error(error):  # e.g. the broker's own, lower, message size limit
            self._poisoned(*record, describe(error), salvage)
            return
        created_ms = message.timestamp()[1]
        if salvage:
            self._recent.failed()
        with self._lock:
            if not self._spooling:
                log.warning("emitter: delivery failed (%s), spooling events to disk", error.name())
                self._purge_requested = True
            self._start_spooling(created_ms / 1000 if created_ms > 0 else time.time())
            self._failed.append(record)

    def _note_delivered(self, message: Message) -> None:
        record = (message.topic() or "", message.key() or b"", message.value() or b"")
        lost = self._recent.delivered(message.partition(), message.offset(), record)
        if not lost:
            return
        self.redelivered += len(lost)
        log.warning(
            "emitter: the broker restarted without its data (offsets went back); "
            "sending the %d events it acknowledged in the last %.0fs again",
            len(lost),
            self._redelivery_window_s,
        )
        for topic, key, value in lost:
            self._send(topic, key, value, salvage=True)

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
                    self._undelivered_since = None
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
        """Send one batch from the spool and wait for it; True if all of it is done
        (delivered, or quarantined as poison)."""
        records, ends = self._spool.read(self._replay_batch)
        if not records or not self._broker_ready(records[0][0]):
            return False
        results: list[_Outcome] = [None] * len(records)
        for index, (topic, key, value) in enumerate(records):
            try:
                self._producer.produce(
                    topic, value, key, on_delivery=partial(self._on_replayed, results, index)
                )
            except BufferError:
                break
            except KafkaException as exc:
                error = exc.args[0]
                if not is_record_error(error):
                    break
                results[index] = describe(error)
        self._producer.flush(self._delivery_timeout_s + 1)
        done = delivered = 0
        for index, outcome in enumerate(results):
            if outcome is True:
                delivered += 1
            elif isinstance(outcome, str):  # never producible: out of the way, kept
                self._spool.quarantine(records[index], outcome)
                self._metrics.inc(QUARANTINE_COUNTER)
            else:
                break
            done += 1
        if done:
            self._spool.advance(ends[done - 1], done)
            self.delivered += delivered
            self._undelivered_since = self._spool_head_time() or self._undelivered_since
            log.info("emitter: replayed %d spooled events (%d left)", done, self._spool.pending)
        return done == len(records)

    def _on_replayed(
        self, results: list[_Outcome], index: int, error: KafkaError | None, message: Message
    ) -> None:
        if error is not None and is_record_error(error):
            results[index] = describe(error)
            return
        results[index] = error is None
        if error is None and self._recent.enabled:
            # A replay after a restart lands at offset 0: that is how the loss shows.
            self._note_delivered(message)
        elif error is not None:
            self._recent.failed()

    def _spool_head_time(self) -> float | None:
        if self._spool.empty:
            return None
        records, _ = self._spool.read(1)
        return _event_time(records[0][2]) if records else None

"""The Kafka -> sink loop: consume every event topic, batch, write, then commit.

At-least-once, with no loss: auto-commit is off and offsets are committed only after the
sink wrote every row buffered up to them. When the write fails (ClickHouse down, a table
detached), the same rows stay buffered and are retried with exponential backoff; nothing
is committed meanwhile, so even a crash during the outage loses nothing. The sink is
idempotent on event_id, so what is re-read after a crash is not counted twice.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from ingest.sink.base import Batch, BatchingSink, Sink
from ingest.sink.checkpoint import FlushPolicy, OffsetTracker
from ingest.sink.errors import SinkError
from ingest.sink.routing import Decoded, Record, Rejected, Routed, Router
from ingest.sink.status import SinkStatus
from meterline.kafka import consumer_config, producer_config
from meterline.settings import Settings
from schemas.clickhouse.tables import row_for
from schemas.events.v1 import DeadLetter

__all__ = ["SinkConsumer", "consumer_lag", "partition_lag"]

log = logging.getLogger(__name__)

_CONSUME_BATCH = 10_000
_INITIAL_BACKOFF_S = 0.1
_SHUTDOWN_FLUSH_S = 10.0
_LAG_EVERY_S = 2.0  # how often the lag gauge is refreshed (local calls only)


class _Stopped(Exception):
    """The worker is stopping while a write is being retried."""


def _sleeper(stop: threading.Event | None) -> Callable[[float], None]:
    """tenacity's sleep: wakes early, and ends the retries, when `stop` is set."""
    if stop is None:
        return time.sleep

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise _Stopped

    return sleep


Committer = Callable[[dict[tuple[str, int], int]], None]
Publisher = Callable[[DeadLetter], None]


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is decoded.

    Decoding 10,000 events allocates millions of dicts, lists and tuples that stay alive
    until the batch is routed; the collector would traverse them again and again (~30% of
    the sink's time, measured) and could free none of them: they hold no cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _without_errors(messages: list[Message]) -> list[Message]:
    """The messages that carry a record, logging (or raising, if fatal) the errors."""
    errors = list(map(Message.error, messages))
    if errors.count(None) == len(errors):
        return messages
    for error in errors:
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            log.warning("consumer error: %s", error)
    return [message for message, error in zip(messages, errors, strict=True) if error is None]


@dataclass(slots=True)
class _Write:
    """A write handed to the writer thread: its rows, and the offsets they allow to commit."""

    future: Future[int | None]
    cancel: threading.Event  # set: give up between two attempts
    buffers: dict[str, Batch]
    offsets: dict[tuple[str, int], int]
    messages: int  # handled messages these offsets cover

    @property
    def rows(self) -> int:
        return sum(batch.size for batch in self.buffers.values())


class SinkConsumer:
    """Owns the Kafka consumer of group `settings.ingest.sink.group_id` and drives one sink.

    `handle` and `checkpoint` are usable without Kafka (unit tests pass `commit` and
    `publish`); `run` wires them to a real consumer and producer.
    """

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        *,
        status: SinkStatus | None = None,
        commit: Committer | None = None,
        publish: Publisher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.status = status or SinkStatus()
        self.router = Router(settings.topic_prefix)
        self.policy = FlushPolicy(
            settings.ingest.sink.batch_rows, settings.ingest.sink.flush_interval_s
        )
        self.offsets = OffsetTracker()
        self.max_backoff_s = settings.ingest.sink.retry_max_backoff_s
        self._commit = commit
        self._publish = publish
        self._clock = clock
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._writer: ThreadPoolExecutor | None = None  # run(): inserts beside the decoding
        self._inflight: _Write | None = None
        self._consumed = 0
        self._uncommitted = 0
        self._dead_letters = 0
        self._rows_written = 0

    # --- message handling (no I/O) -------------------------------------------------------

    def handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None = None,
    ) -> None:
        self.handle_many([Record(topic, partition, offset, key, value, timestamp_ms)])

    def handle_many(self, records: list[Record]) -> None:
        """Route a batch of messages: decoding many at once is what makes the sink fast."""
        with _no_cyclic_gc():
            results = self.router.route_many(records)
        # Offsets grow within a partition, so the last record of each is its highest.
        last = {(record.topic, record.partition): record.offset for record in records}
        self._handled(results, last, len(records))

    def handle_messages(self, messages: list[Message]) -> None:
        """`handle_many` of confluent-kafka messages, read column by column at C speed
        (map over the unbound methods): a Record per message cost ~1 us (measured)."""
        messages = _without_errors(messages)
        topics = list(map(Message.topic, messages))
        values = list(map(Message.value, messages))
        partitions = list(map(Message.partition, messages))
        offsets = list(map(Message.offset, messages))

        def record(i: int) -> Record:  # only for the messages the fast path leaves
            message = messages[i]
            return Record(
                topics[i],
                partitions[i],
                offsets[i],
                message.key(),
                values[i],
                message.timestamp()[1],
                message.headers(),
            )

        with _no_cyclic_gc():
            results = self.router.route_values(topics, values, record)
        # Offsets grow within a partition: dict() keeps the last, highest, of each.
        last = dict(zip(zip(topics, partitions, strict=True), offsets, strict=True))
        self._handled(results, last, len(messages))

    def _handled(
        self,
        results: list[Decoded | Routed | Rejected],
        last: dict[tuple[str, int], int],
        count: int,
    ) -> None:
        for result in results:
            if isinstance(result, Decoded):
                self.sink.add_columns(result.table, result.columns)
            elif isinstance(result, Routed):
                self.sink.add(result.table, result.row)
            else:
                self._dead_letter(result)
        for (topic, partition), offset in last.items():
            self.offsets.record(topic, partition, offset)
        self.policy.note_pending(self._clock())
        self._consumed += count
        self._uncommitted += count

    def _dead_letter(self, rejected: Rejected) -> None:
        dead_letter = rejected.dead_letter
        log.warning(
            "dead-lettering %s[%s]@%s: %s",
            dead_letter.original_topic,
            dead_letter.original_partition,
            dead_letter.original_offset,
            dead_letter.error,
        )
        table, row = row_for(dead_letter)
        self.sink.add(table, row)
        self._dead_letters += 1
        if rejected.publish and self._publish is not None:
            self._publish(dead_letter)

    @property
    def _inflight_rows(self) -> int:
        return self._inflight.rows if self._inflight is not None else 0

    def checkpoint_due(self) -> bool:
        return self.policy.due(self.sink.largest_batch, self.sink.pending_rows, self._clock())

    # --- flush + commit ------------------------------------------------------------------

    def _write_failed(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        self.status.update(
            consecutive_failures=state.attempt_number,
            last_error=str(error),
            pending_rows=self.sink.pending_rows,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        log.warning(
            "ClickHouse write failed (attempt %d): %s. Keeping %d rows, committing "
            "nothing; retrying in %.1fs.",
            state.attempt_number,
            state.outcome.exception() if state.outcome is not None else None,
            self.sink.pending_rows,
            state.upcoming_sleep,
        )

    def checkpoint(
        self, stop: threading.Event | None = None, deadline: float | None = None
    ) -> bool:
        """Write every buffered row (retrying), then commit. False if it gave up.

        Gives up only when `stop` is set or `deadline` (monotonic) passes; then nothing is
        committed and the rows will be re-read from Kafka after a restart. A write handed
        to the writer thread (`run`) is awaited first, and committed first.
        """
        if not self._await_write(deadline):
            return False
        if self.sink.pending_rows == 0 and not self.offsets:
            return True
        written = self._write(self.sink.flush, stop, deadline)
        if written is None:
            return False
        self._wrote(written)
        self.policy.flushed()
        self._commit_offsets()
        return True

    def _write(
        self,
        flush: Callable[[], int],
        stop: threading.Event | None,
        deadline: float | None,
    ) -> int | None:
        """`flush()`, retried with backoff; None if it gave up (`stop` or `deadline`)."""
        retrying = Retrying(
            retry=retry_if_exception_type(SinkError),
            wait=wait_exponential(multiplier=_INITIAL_BACKOFF_S, max=self.max_backoff_s),
            stop=lambda state: (
                deadline is not None and time.monotonic() + state.upcoming_sleep > deadline
            ),
            sleep=_sleeper(stop),
            after=self._write_failed,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            written: int = retrying(flush)
        except SinkError:
            log.error("giving up the flush at shutdown; the rows will be re-read")
            return None
        except _Stopped:
            return None
        failures = retrying.statistics.get("attempt_number", 1) - 1
        if failures:
            log.info("ClickHouse writes succeed again after %d failed attempts", failures)
        return written

    def _wrote(self, written: int) -> None:
        """Bookkeeping after a successful write (on the consumer's thread)."""
        refused = self.sink.take_dead_letters()
        if refused and self._publish is not None:
            for dead_letter in refused:
                self._publish(dead_letter)
        self._dead_letters += len(refused)
        self._rows_written += written
        self.status.update(
            flushes=self.status.flushes + 1,
            last_flush_at=time.time(),
            consecutive_failures=0,
            rows_written=self._rows_written,
            pending_rows=self.sink.pending_rows,
            dead_letters=self._dead_letters,
        )

    def _checkpoint_in_background(self, stop: threading.Event) -> None:
        """Hand every buffered row to the writer thread and go on consuming: the next
        batch is decoded while this one is inserted (chDB and the ClickHouse client
        release the GIL), ~1.3x the rows/s on 2 cores (bench/README.md). At most one
        write is in flight: the next checkpoint waits for it, then commits its offsets,
        so memory stays bounded (two batches) and offsets are committed in order only
        after their rows are stored."""
        if self._writer is None or not isinstance(self.sink, BatchingSink):
            self.checkpoint(stop)
            return
        if not self._await_write(None):
            return
        if self.sink.pending_rows == 0 and not self.offsets:
            return
        buffers = self.sink.take_buffers()
        offsets = self.offsets.pending()
        self.offsets.clear()
        self.policy.flushed()
        cancel = threading.Event()
        future = self._writer.submit(
            self._write, partial(self.sink.flush_buffers, buffers), cancel, None
        )
        self._inflight = _Write(future, cancel, buffers, offsets, self._uncommitted)

    def _await_write(self, deadline: float | None) -> bool:
        """End the write in flight on the writer thread, if any, and commit its offsets.

        Past `deadline` it is told to give up (between two attempts); what it could not
        write is buffered again, ahead of what came since, with its offsets. False then.
        """
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return True
        try:
            if deadline is not None:
                try:
                    written = inflight.future.result(max(0.0, deadline - time.monotonic()))
                except FutureTimeout:
                    inflight.cancel.set()
                    written = inflight.future.result()
            else:
                written = inflight.future.result()
        except BaseException:
            # A bug in the write: its rows must not be skipped by a later commit.
            self._restore(inflight)
            raise
        if written is None:
            self._restore(inflight)
            return False
        self._wrote(written)
        self._commit_offsets(inflight.offsets, inflight.messages)
        return True

    def _restore(self, inflight: _Write) -> None:
        """Buffer again what a write left, with its offsets (nothing may commit past it)."""
        self.sink.restore_buffers(inflight.buffers)  # type: ignore[attr-defined]
        for (topic, partition), offset in inflight.offsets.items():
            self.offsets.record(topic, partition, offset - 1)

    def _commit_offsets(
        self, pending: dict[tuple[str, int], int] | None = None, messages: int | None = None
    ) -> None:
        """Commit `pending` (default: every offset recorded), the offsets of `messages`
        handled messages (default: all handled so far)."""
        own = pending is None
        if pending is None:
            pending = self.offsets.pending()
        if not pending:
            return
        if self._producer is not None:
            # Dead letters reach their topic before the offsets that produced them commit.
            self._producer.flush(5)
        try:
            if self._commit is not None:
                self._commit(pending)
            elif self._consumer is not None:
                self._consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in pending.items()],
                    asynchronous=False,
                )
        except KafkaException as exc:
            # Rows are stored; re-reading them after a failed commit is harmless (idempotent).
            log.warning("offset commit failed, will retry with the next one: %s", exc)
            if not own:
                for (topic, partition), offset in pending.items():
                    self.offsets.record(topic, partition, offset - 1)
            return
        if own:
            self.offsets.clear()
        self._uncommitted = 0 if messages is None else max(0, self._uncommitted - messages)
        self.status.update(
            commits=self.status.commits + 1,
            last_commit_at=time.time(),
            uncommitted_messages=self._uncommitted,
        )

    # --- Kafka loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; then flush and commit what is buffered."""
        settings = self.settings
        consumer = Consumer(
            consumer_config(
                settings,
                settings.ingest.sink.group_id,
                **{
                    # An outage holds the loop in the retry; stay in the group meanwhile.
                    "max.poll.interval.ms": 900_000,
                    # 8 MB per partition fetch (default 1 MB): fewer round trips; measured
                    # 100-230k -> 110-280k msg/s consumed alone, mixed events.
                    "max.partition.fetch.bytes": 8 << 20,
                },
            )
        )
        self._consumer = consumer
        self._producer = Producer(producer_config(settings))
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sink-writer")
        if self._publish is None:
            self._publish = self._publish_to_dlq
        consumer.subscribe(
            self.router.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self.status.update(running=True)
        log.info(
            "sink consuming %d topics as group %s",
            len(self.router.topics),
            settings.ingest.sink.group_id,
        )
        lag_due = 0.0
        try:
            while not stop.is_set():
                messages = consumer.consume(
                    num_messages=_CONSUME_BATCH,
                    timeout=min(0.2, settings.ingest.sink.flush_interval_s),
                )
                self.handle_messages(messages)
                if self._inflight is not None and self._inflight.future.done():
                    self._await_write(None)  # commit as soon as the rows are stored
                if self.checkpoint_due():
                    self._checkpoint_in_background(stop)
                self.status.update(
                    messages_consumed=self._consumed,
                    pending_rows=self.sink.pending_rows + self._inflight_rows,
                    uncommitted_messages=self._uncommitted,
                    dead_letters=self._dead_letters,
                )
                if time.monotonic() >= lag_due:
                    lag_due = time.monotonic() + _LAG_EVERY_S
                    self.status.update(lag_messages=consumer_lag(consumer))
        finally:
            try:
                self.checkpoint(deadline=time.monotonic() + _SHUTDOWN_FLUSH_S)
            finally:
                self._writer.shutdown()
                self._writer = None
            consumer.close()
            self._producer.flush(5)
            self.status.update(running=False)
            log.info("sink stopped")

    def _publish_to_dlq(self, dead_letter: DeadLetter) -> None:
        assert self._producer is not None
        key = dead_letter.original_key.encode() if dead_letter.original_key else None
        try:
            self._producer.produce(self.router.dlq_topic, value=dead_letter.to_json(), key=key)
            self._producer.poll(0)
        except (BufferError, KafkaException) as exc:
            # The dead_letters table still gets the row; the topic copy is best effort.
            log.warning("could not publish a dead letter to %s: %s", self.router.dlq_topic, exc)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A write in flight would mark its table fresh after the sink forgot its floors.
        self._await_write(time.monotonic() + 2 * self.max_backoff_s)
        try:
            self.sink.on_partitions_assigned()
        except Exception as exc:  # the next write retries anyway
            log.warning("sink could not refresh after assignment: %s", exc)
        self.status.update(assigned_partitions=self.status.assigned_partitions + len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Hand over cleanly: write and commit now, or at least not commit for others.
        self.checkpoint(deadline=time.monotonic() + 2 * self.max_backoff_s)
        self.offsets.forget([(tp.topic, tp.partition) for tp in partitions])
        self.status.update(
            assigned_partitions=max(0, self.status.assigned_partitions - len(partitions))
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.offsets.forget([(tp.topic, tp.partition) for tp in partitions])
        if self._inflight is not None:
            for tp in partitions:
                self._inflight.offsets.pop((tp.topic, tp.partition), None)


def partition_lag(positions: list[TopicPartition], high: list[int]) -> int:
    """Messages not consumed yet: each partition's high watermark minus the position (a
    partition with no position yet, or no watermark known yet, counts 0)."""
    return sum(
        max(0, h - tp.offset)
        for tp, h in zip(positions, high, strict=True)
        if tp.offset >= 0 and h >= 0
    )


def consumer_lag(consumer: Consumer) -> int:
    """The lag of a consumer's assigned partitions, from local calls only."""
    try:
        positions = consumer.position(consumer.assignment())
        # cached=True: the high watermark of the last fetch response, no broker call.
        high = [consumer.get_watermark_offsets(tp, cached=True)[1] for tp in positions]
    except KafkaException:
        return 0
    return partition_lag(positions, high)

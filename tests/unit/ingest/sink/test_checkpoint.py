"""Batching and flush policy, and commit-after-write, with the memory sink (no Kafka)."""

from __future__ import annotations

import threading
import time

import pytest

from ingest.sink.checkpoint import FlushPolicy, OffsetTracker
from ingest.sink.consumer import SinkConsumer
from ingest.sink.memory import MemorySink
from meterline.settings import Settings

PREFIX = "u1."


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_consumer(clock: FakeClock, **overrides: object):
    settings = Settings(
        topic_prefix=PREFIX,
        ingest={"sink": {"batch_rows": 3, "flush_interval_s": 0.5, "retry_max_backoff_s": 0.05}},
        **overrides,  # type: ignore[arg-type]
    )
    sink = MemorySink()
    commits: list[dict[tuple[str, int], int]] = []
    published = []
    consumer = SinkConsumer(
        settings, sink, commit=commits.append, publish=published.append, clock=clock
    )
    return consumer, sink, commits, published


def test_flush_policy_size_and_time() -> None:
    policy = FlushPolicy(batch_rows=10, interval_s=1.0)
    assert not policy.due(largest_batch=0, pending_rows=0, now=0)
    policy.note_pending(now=5.0)
    assert not policy.due(largest_batch=9, pending_rows=9, now=5.5)
    assert policy.due(largest_batch=10, pending_rows=10, now=5.5)  # a table's batch is full
    assert policy.due(largest_batch=1, pending_rows=1, now=6.0)  # oldest row waited long enough
    assert policy.due(largest_batch=9, pending_rows=40, now=5.1)  # total memory cap
    policy.flushed()
    policy.note_pending(now=7.0)
    assert not policy.due(largest_batch=1, pending_rows=1, now=7.2)


def test_offset_tracker_commits_next_offset_per_partition() -> None:
    tracker = OffsetTracker()
    tracker.record("a", 0, 5)
    tracker.record("a", 0, 3)  # out of order never moves it back
    tracker.record("a", 1, 0)
    assert tracker.pending() == {("a", 0): 6, ("a", 1): 1}
    tracker.forget([("a", 1)])
    assert tracker.pending() == {("a", 0): 6}


def test_batches_per_table_and_commits_after_write(clock: FakeClock, events) -> None:
    consumer, sink, commits, _ = make_consumer(clock)
    consumer.handle(PREFIX + "requests", 0, 10, b"k", events["request"].to_json())
    consumer.handle(PREFIX + "costs", 1, 20, b"k", events["cost"].to_json())
    assert not consumer.checkpoint_due()
    consumer.handle(PREFIX + "requests", 0, 11, b"k", events["request"].to_json())
    consumer.handle(PREFIX + "requests", 0, 12, b"k", events["request"].to_json())
    assert consumer.checkpoint_due()  # requests reached 3 rows
    assert commits == []  # nothing committed before the write
    assert consumer.checkpoint()
    assert sorted(sink.write_calls) == [("costs", 1), ("requests", 3)]
    assert commits == [{(PREFIX + "requests", 0): 13, (PREFIX + "costs", 1): 21}]
    assert sink.pending_rows == 0


def test_time_trigger(clock: FakeClock, events) -> None:
    consumer, _, _, _ = make_consumer(clock)
    consumer.handle(PREFIX + "costs", 0, 0, None, events["cost"].to_json())
    assert not consumer.checkpoint_due()
    clock.now += 0.6
    assert consumer.checkpoint_due()


def test_failed_write_keeps_the_batch_and_commits_nothing(clock: FakeClock, events) -> None:
    consumer, sink, commits, _ = make_consumer(clock)
    for offset in range(3):
        consumer.handle(PREFIX + "costs", 0, offset, None, events["cost"].to_json())
    sink.fail_next_writes = 3
    stop = threading.Event()
    # Retries (backoff capped at 0.05 s here) until the simulated outage ends.
    assert consumer.checkpoint(stop)
    assert sink.write_calls == [("costs", 3)]
    assert commits == [{(PREFIX + "costs", 0): 3}]
    assert consumer.status.snapshot()["consecutive_failures"] == 0


def test_stop_during_outage_gives_up_without_commit(clock: FakeClock, events) -> None:
    consumer, sink, commits, _ = make_consumer(clock)
    consumer.handle(PREFIX + "costs", 0, 0, None, events["cost"].to_json())
    sink.fail_next_writes = 1_000
    stop = threading.Event()
    stop.set()
    assert consumer.checkpoint(stop) is False
    assert commits == []
    assert sink.pending_rows == 1  # still buffered; Kafka will deliver it again anyway
    assert consumer.status.snapshot()["last_error"]


def test_shutdown_deadline_ends_the_retries_without_commit(
    clock: FakeClock, events, caplog: pytest.LogCaptureFixture
) -> None:
    consumer, sink, commits, _ = make_consumer(clock)
    consumer.handle(PREFIX + "costs", 0, 0, None, events["cost"].to_json())
    sink.fail_next_writes = 1_000

    # Backoff 0.1 s doubling, capped at 0.05 s here: a 0.2 s deadline allows a few tries.
    assert consumer.checkpoint(deadline=time.monotonic() + 0.2) is False

    assert commits == [] and sink.pending_rows == 1
    assert consumer.status.snapshot()["consecutive_failures"] >= 2
    assert "giving up the flush at shutdown" in caplog.text


def test_garbage_becomes_a_dead_letter_row_and_is_published(clock: FakeClock, events) -> None:
    consumer, sink, commits, published = make_consumer(clock)
    consumer.handle(PREFIX + "requests", 0, 0, b"k", b"{oops")
    consumer.handle(PREFIX + "requests", 0, 1, b"k", events["request"].to_json())
    assert consumer.checkpoint()
    dead = sink.rows("dead_letters")
    assert len(dead) == 1 and dead[0]["original_offset"] == 0 and dead[0]["stage"] == "ingest.sink"
    assert len(published) == 1 and published[0].original_topic == PREFIX + "requests"
    assert len(sink.rows("requests")) == 1
    assert commits == [{(PREFIX + "requests", 0): 2}]


def test_a_batch_refused_for_good_is_dead_lettered_and_the_stream_goes_on(
    clock: FakeClock, events
) -> None:
    consumer, sink, commits, published = make_consumer(clock)
    sink.refuse_tables = {"costs"}
    consumer.handle(PREFIX + "costs", 0, 0, b"k", events["cost"].to_json())
    consumer.handle(PREFIX + "requests", 1, 5, b"k", events["request"].to_json())

    assert consumer.checkpoint(threading.Event())  # no retry loop

    assert len(sink.rows("requests")) == 1 and "costs" not in sink.written
    assert len(published) == 1
    (dead,) = published
    assert dead.original_topic == "costs" and dead.error == "simulated refusal of costs"
    assert events["cost"].event_id in dead.payload and dead.original_key == events["cost"].event_id
    assert commits == [{(PREFIX + "costs", 0): 1, (PREFIX + "requests", 1): 6}]
    assert consumer.status.snapshot()["dead_letters"] == 1
    assert sink.pending_rows == 0 and sink.rows_refused == 1


def test_background_write_commits_its_own_offsets_in_order(clock: FakeClock, events) -> None:
    from concurrent.futures import ThreadPoolExecutor

    consumer, sink, commits, _ = make_consumer(clock)
    consumer._writer = ThreadPoolExecutor(1)
    try:
        for offset in (10, 11, 12):
            consumer.handle(PREFIX + "requests", 0, offset, b"k", events["request"].to_json())
        gate = threading.Event()
        write = sink.write
        sink.write = lambda table, batch: (gate.wait(5), write(table, batch))  # type: ignore[method-assign]
        consumer._checkpoint_in_background(threading.Event())
        assert sink.pending_rows == 0 and consumer.status.snapshot()["pending_rows"] == 0
        # Decoding goes on while the write is in flight; nothing is committed yet.
        consumer.handle(PREFIX + "costs", 1, 20, b"k", events["cost"].to_json())
        assert commits == [] and sink.pending_rows == 1
        gate.set()
        assert consumer.checkpoint()  # awaits the write in flight, commits it, then the rest
    finally:
        consumer._writer.shutdown()
    assert sink.write_calls == [("requests", 3), ("costs", 1)]
    assert commits == [{(PREFIX + "requests", 0): 13}, {(PREFIX + "costs", 1): 21}]


def test_background_write_given_up_keeps_rows_and_offsets(clock: FakeClock, events) -> None:
    from concurrent.futures import ThreadPoolExecutor

    consumer, sink, commits, _ = make_consumer(clock)
    consumer._writer = ThreadPoolExecutor(1)
    try:
        for offset in (10, 11, 12):
            consumer.handle(PREFIX + "requests", 0, offset, b"k", events["request"].to_json())
        sink.fail_next_writes = 10**6  # an outage
        consumer._checkpoint_in_background(threading.Event())
        consumer.handle(PREFIX + "requests", 0, 13, b"k", events["request"].to_json())
        # The revoke/shutdown deadline passes: the writer gives up between two attempts.
        assert not consumer._await_write(deadline=time.monotonic() + 0.1)
    finally:
        consumer._writer.shutdown()
    assert commits == [] and sink.pending_rows == 4  # the failed batch, ahead of the new row
    assert consumer.offsets.pending() == {(PREFIX + "requests", 0): 14}
    sink.fail_next_writes = 0
    assert consumer.checkpoint()
    assert sink.write_calls == [("requests", 4)]
    assert commits == [{(PREFIX + "requests", 0): 14}]


def test_background_write_failing_with_a_bug_keeps_rows_and_offsets(
    clock: FakeClock, events
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    consumer, sink, commits, _ = make_consumer(clock)
    consumer._writer = ThreadPoolExecutor(1)
    try:
        consumer.handle(PREFIX + "costs", 1, 20, b"k", events["cost"].to_json())
        sink.flush_buffers = lambda buffers: 1 // 0  # type: ignore[method-assign]
        consumer._checkpoint_in_background(threading.Event())
        consumer.handle(PREFIX + "costs", 1, 21, b"k", events["cost"].to_json())
        with pytest.raises(ZeroDivisionError):
            consumer._await_write(None)
    finally:
        consumer._writer.shutdown()
    del sink.flush_buffers
    assert sink.pending_rows == 2 and commits == []
    assert consumer.checkpoint()
    assert commits == [{(PREFIX + "costs", 1): 22}]

"""The embedded broker restarting without its data (memory storage) loses every event it
had acknowledged; the emitter notices the offsets going back and sends those again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from gateway.emit.kafka import KafkaEmitter
from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import consumer_config, create_topics
from meterline.settings import Settings
from schemas.events.v1 import RequestEvent
from schemas.topics import REQUESTS
from tests.conftest import free_port, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

OLD, NEW = 8, 3


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(free_port())
    broker.start()
    yield broker
    broker.stop()


def _event(n: int) -> RequestEvent:
    now = datetime.now(UTC)
    return RequestEvent(
        request_id=f"req-{n}",
        ts_start=now,
        ts_end=now,
        latency_ms=1.0,
        key_id="key-1",
        org="acme",
        endpoint="/v1/chat/completions",
        status_code=200,
    )


def _wait(check: Callable[[], object], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout_s}s"
        time.sleep(0.05)


def _request_ids_on_topic(settings: Settings, want: set[str], timeout_s: float = 30.0) -> set[str]:
    """Request ids a fresh reader finds from the beginning, once `want` are all there."""
    reader = Consumer(consumer_config(settings, None))
    topic = settings.topic(REQUESTS)
    reader.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.topic_partitions)]
    )
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while not want <= seen:
            assert time.monotonic() < deadline, f"missing on the topic: {sorted(want - seen)}"
            message = reader.poll(0.2)
            if message is not None and message.error() is None:
                seen.add(RequestEvent.model_validate_json(message.value()).request_id)
    finally:
        reader.close()
    return seen


def test_acknowledged_events_are_sent_again_after_the_broker_lost_them(
    own_broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        own_broker,
        gateway={
            "emitter": {
                "delivery_timeout_ms": 15_000,  # room for the reconnect after the restart
                "redelivery_window_s": 600.0,  # a slow machine never ages them out
            }
        },
    )
    topic = settings.topic(REQUESTS)
    emitter = KafkaEmitter(settings, name=unique("redelivery-"))
    emitter.start()
    try:
        old = [_event(n) for n in range(OLD)]
        for event in old:  # one key: one partition, whose offsets will go back
            emitter.emit(topic, b"key-1", event.to_json())
        _wait(lambda: emitter.delivered == OLD, "the first events were not delivered")
        assert emitter.redelivered == 0
        assert _request_ids_on_topic(settings, {e.request_id for e in old})

        own_broker.stop()  # memory storage: the topics and the events are gone
        own_broker.start()
        create_topics(settings)
        assert emitter.state == "connected"  # nothing failed: no spool involved

        new = [_event(OLD + n) for n in range(NEW)]
        for event in new:
            emitter.emit(topic, b"key-1", event.to_json())
        _wait(lambda: emitter.redelivered >= OLD, "the lost events were not sent again")
        _wait(lambda: emitter.delivered >= OLD + NEW + OLD, "the resent events were not acked")

        everything = {e.request_id for e in old + new}
        assert _request_ids_on_topic(settings, everything) == everything
        assert emitter.state == "connected" and emitter.spool_size == 0
    finally:
        emitter.close(timeout_s=10)

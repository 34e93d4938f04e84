"""The sink's progress as a budget owner reads it: committed offsets of both groups on the
costs topic, from the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from meterline.kafka import consumer_config, producer_config
from meterline.settings import Settings
from processors.budgets.sink_progress import sink_caught_up, wait_for_sink
from schemas.topics import COSTS

pytestmark = pytest.mark.integration


def _commit(settings: Settings, group_id: str, partition: int, offset: int) -> None:
    consumer = Consumer(consumer_config(settings, group_id))
    try:
        tp = TopicPartition(settings.topic(COSTS), partition, offset)
        consumer.commit(offsets=[tp], asynchronous=False)
    finally:
        consumer.close()


def test_the_sink_has_caught_up_once_it_committed_as_far_as_the_processors(
    broker: Any, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(broker)
    producer = Producer(producer_config(settings))
    for i in range(10):
        producer.produce(settings.topic(COSTS), value=b"{}", partition=0, key=str(i).encode())
    assert producer.flush(10) == 0
    processors, sink = settings.processors.app_id, settings.ingest.sink.group_id

    assert sink_caught_up(settings)  # nobody committed anything: nothing to wait for
    _commit(settings, processors, 0, 10)  # fanned out up to 10 (partition 1: never)
    assert not sink_caught_up(settings)  # the sink has stored nothing
    _commit(settings, sink, 0, 6)
    assert not sink_caught_up(settings)
    assert not asyncio.run(wait_for_sink(settings, timeout_s=0.3, every_s=0.1))
    _commit(settings, sink, 0, 10)
    assert sink_caught_up(settings)
    assert asyncio.run(wait_for_sink(settings, timeout_s=5))

"""Fixtures for ingest integration tests: a migrated database, a running sink, producing.

Helpers are methods of `Harness` (served by the `harness` fixture), since test modules
cannot import from a conftest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ingest.sink.clickhouse import ClickHouseSink
from ingest.sink.consumer import SinkConsumer
from meterline.kafka import consumer_config, producer_config
from meterline.settings import Settings
from meterline.warehouse import SharedClient, connect, migrate
from schemas.events.v1 import Event


class Harness:
    def __init__(self, settings: Settings, client: SharedClient) -> None:
        self.settings = settings
        self.client = client
        self.db = client.database

    @staticmethod
    def wait_until(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout_s}s (last: {value!r})")
            time.sleep(0.1)

    def produce(
        self, topic: str, messages: Iterable[Event | bytes | None], key: bytes | None = b"k"
    ) -> int:
        producer = Producer(producer_config(self.settings))
        count = 0
        for message in messages:
            value = message.to_json() if isinstance(message, Event) else message
            producer.produce(self.settings.topic(topic), value=value, key=key)
            count += 1
            if count % 5000 == 0:
                producer.poll(0)
        assert producer.flush(15) == 0
        return count

    @contextmanager
    def running_sink(self, group_id: str | None = None) -> Iterator[SinkConsumer]:
        settings = self.settings
        if group_id is not None:
            sink = settings.ingest.sink.model_copy(update={"group_id": group_id})
            ingest = settings.ingest.model_copy(update={"sink": sink})
            settings = settings.model_copy(update={"ingest": ingest})
        sink = ClickHouseSink(self.client)
        sink.setup()
        consumer = SinkConsumer(settings, sink)
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield consumer
        finally:
            stop.set()
            thread.join(30)
            assert not thread.is_alive()

    def committed_offsets(self, topic: str) -> dict[int, int]:
        """Offsets committed by the sink's group (asks only; joins no group)."""
        reader = Consumer(consumer_config(self.settings, self.settings.ingest.sink.group_id))
        try:
            partitions = [
                TopicPartition(self.settings.topic(topic), p)
                for p in range(self.settings.topic_partitions)
            ]
            return {tp.partition: tp.offset for tp in reader.committed(partitions, timeout=10)}
        finally:
            reader.close()

    def scalar(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return self.client.query_rows(sql.replace("{db}", self.db), parameters)[0][0]


@pytest.fixture
def harness(broker, make_settings, chdb_url) -> Harness:
    settings: Settings = make_settings(
        broker,
        clickhouse_url=chdb_url,
        ingest={"sink": {"flush_interval_s": 0.2, "retry_max_backoff_s": 0.5}},
    )
    client = SharedClient(connect(settings), settings.clickhouse_database)
    migrate(client.client, settings.clickhouse_database)
    return Harness(settings, client)

"""Shared by the worker tests: the real worker process, a topic reader and a producer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from meterline.kafka import consumer_config, producer_config
from meterline.settings import Settings

Record = tuple[bytes | None, bytes | None]


@contextmanager
def worker_process(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m processors` with the settings' environment; killed if still running."""
    env = {**os.environ, **settings.child_env()}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "processors"],
            env=env,
            cwd=log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def metric_total(settings: Settings, name: str) -> float:
    """The value of an unlabelled counter on the worker's /metrics, 0 while it is not up."""
    try:
        text = httpx.get(f"http://{settings.host}:{settings.processors_port}/metrics").text
    except httpx.HTTPError:
        return 0.0
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


class TopicReader:
    """Reads topics from the beginning without a consumer group, tombstones included."""

    def __init__(self, settings: Settings, names: list[str]) -> None:
        self._consumer = Consumer(consumer_config(settings, group_id=None))
        self._consumer.assign(
            [
                TopicPartition(settings.topic(name), partition, OFFSET_BEGINNING)
                for name in names
                for partition in range(settings.topic_partitions)
            ]
        )
        self.records: dict[str, list[Record]] = defaultdict(list)

    def read_until(self, done: Callable[[], bool], timeout_s: float, log: Path) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                counts = {topic: len(values) for topic, values in self.records.items()}
                pytest.fail(f"timed out with {counts}; worker log:\n{log.read_text()[-3000:]}")
            message = self._consumer.poll(0.2)
            if message is not None and message.error() is None:
                self.records[message.topic()].append((message.key(), message.value()))

    def close(self) -> None:
        self._consumer.close()


def produce(settings: Settings, topic: str, items: list[Record]) -> None:
    producer = Producer(producer_config(settings))
    for key, value in items:
        producer.produce(settings.topic(topic), key=key, value=value)
    assert producer.flush(10) == 0

"""A processors worker that held a key is killed; the worker that takes the key's partition
over reads the key's learned normal from the llmjacking-keys topic and judges the stolen
key as a known key, not as a new one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from meterline.kafka import producer_config
from meterline.settings import Settings
from schemas.llmjacking_keys import decode_key_snapshot
from schemas.topics import ANOMALIES, LLMJACKING_KEYS, REQUESTS
from tests.conftest import free_port
from tests.integration.processors.test_budget_workers import assigned_partitions, wait_for
from tests.integration.processors.worker_helpers import TopicReader, metric_total, worker_process
from tests.unit.processors.llmjacking.test_logic import after_normal, attack, normal_key

pytestmark = pytest.mark.integration

VICTIM, PARTITION = "k-victim", 1


def keys_taken_over(settings: Settings) -> float:
    return metric_total(settings, "meterline_processors_llmjacking_keys_taken_over_total")


def _produce(settings: Settings, events: list[Any]) -> None:
    producer = Producer(producer_config(settings))
    topic = settings.topic(REQUESTS)
    for event in events:
        producer.produce(topic, key=VICTIM.encode(), value=event.to_json(), partition=PARTITION)
    assert producer.flush(10) == 0


def _learned(reader: TopicReader, settings: Settings) -> int:
    """The most the victim's snapshots say it learned, 0 before the first."""
    records = reader.records[settings.topic(LLMJACKING_KEYS)]
    snapshots = [decode_key_snapshot(v) for _, v in records if v]
    return max((s.learned.requests for s in snapshots if s.key_id == VICTIM), default=0)


def _anomalies(reader: TopicReader, settings: Settings) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v in reader.records[settings.topic(ANOMALIES)] if v]


def test_the_new_owner_of_a_killed_workers_partition_knows_its_keys(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    first = make_settings(
        broker,
        processors_port=free_port(),
        processors={
            "llmjacking": {
                "learning_requests": 60,
                "learning_s": 6 * 3600,
                "handoff_interval_s": 0.5,
            }
        },
    )
    second = first.model_copy(
        update={"processors_port": free_port(), "data_dir": tmp_path / "data-second"}
    )
    history = normal_key(1, VICTIM)
    reader = TopicReader(first, [LLMJACKING_KEYS, ANOMALIES])
    try:
        with worker_process(first, tmp_path / "first.log") as worker:
            wait_for(lambda: assigned_partitions(first) > 0, 40, "the first worker to start")
            _produce(first, history)
            # Learning lags its requests by the probation (60 s of event time): most of
            # the history is learned by its end.
            reader.read_until(
                lambda: _learned(reader, first) >= 0.9 * len(history), 60, tmp_path / "first.log"
            )
            learned = _learned(reader, first)
            worker.kill()  # no revoke, no goodbye: the last periodic snapshot is all there is
            worker.wait(10)
        with worker_process(second, tmp_path / "second.log"):
            wait_for(lambda: keys_taken_over(second) >= 1, 60, "the key to be taken over")
            _produce(second, attack(VICTIM, after_normal(history)))

            def judged() -> bool:
                return any(a.get("subject") == f"key:{VICTIM}" for a in _anomalies(reader, first))

            reader.read_until(judged, 60, tmp_path / "second.log")
    finally:
        reader.close()
    anomaly = next(a for a in _anomalies(reader, first) if a.get("subject") == f"key:{VICTIM}")
    assert anomaly["severity"] in ("high", "critical")
    # Judged against the key's own history, as learned by the killed worker.
    assert anomaly["evidence"]["key_learned_requests"] >= learned

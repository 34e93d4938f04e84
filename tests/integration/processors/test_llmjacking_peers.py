"""Two processors workers, each holding one key's requests: each worker's peer baselines
also learn the other worker's key, through the internal llmjacking-peers topic."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from meterline.kafka import producer_config
from meterline.settings import Settings
from schemas.topics import REQUESTS
from tests.conftest import free_port
from tests.integration.processors.test_budget_workers import assigned_partitions, wait_for
from tests.integration.processors.worker_helpers import metric_total, worker_process
from tests.unit.processors.llmjacking.test_logic import normal_key

pytestmark = pytest.mark.integration


def peer_items_taken(settings: Settings) -> float:
    return metric_total(settings, "meterline_processors_llmjacking_peer_items_total")


def test_each_worker_learns_the_peers_of_the_keys_the_other_holds(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    first = make_settings(
        broker,
        topic_partitions=2,
        processors_port=free_port(),
        processors={"llmjacking": {"learning_requests": 60, "learning_s": 6 * 3600}},
    )
    second = first.model_copy(
        update={"processors_port": free_port(), "data_dir": tmp_path / "data-second"}
    )
    with ExitStack() as stack:
        for settings, name in ((first, "first.log"), (second, "second.log")):
            stack.enter_context(worker_process(settings, tmp_path / name))
        wait_for(
            lambda: all(assigned_partitions(s) > 0 for s in (first, second)),
            timeout_s=40,
            what="both workers to get partitions",
        )
        # One key per requests partition, so one per worker (2 partitions, 2 workers).
        producer = Producer(producer_config(first))
        for partition, key_id in enumerate(("k-zero", "k-one")):
            for event in normal_key(partition + 1, key_id, org="acme"):
                producer.produce(
                    first.topic(REQUESTS),
                    key=key_id.encode(),
                    value=event.to_json(),
                    partition=partition,
                )
        assert producer.flush(10) == 0
        wait_for(
            lambda: all(peer_items_taken(s) > 0 for s in (first, second)),
            timeout_s=40,
            what="each worker to take the other's learned peer items",
        )

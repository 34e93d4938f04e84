"""The worker's /healthz tells whether it can consume: 503 with the reason while a topic
is missing or the broker is gone, 200 again once they are back (real worker, real broker)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import admin_config, create_topics
from schemas.topics import COSTS
from tests.conftest import free_port
from tests.integration.processors.worker_helpers import worker_process

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _health_until(url: str, wanted: int, timeout_s: float, log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            last = (response.status_code, response.text)
            if response.status_code == wanted:
                return dict(response.json())
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    pytest.fail(f"/healthz never answered {wanted} (last {last}); log:\n{log.read_text()[-3000:]}")


def test_health_follows_the_topics_and_the_broker(make_settings, tmp_path: Path) -> None:
    broker = EmbeddedBroker(free_port())
    broker.start()
    try:
        settings = make_settings(broker, processors_port=free_port())
        url = f"http://{settings.host}:{settings.processors_port}/healthz"
        log = tmp_path / "worker.log"
        with worker_process(settings, log):
            healthy = _health_until(url, 200, 90, log)
            assert healthy["status"] == "ok" and healthy["assigned_partitions"] > 0

            costs = settings.topic(COSTS)
            admin = AdminClient(admin_config(settings))
            admin.delete_topics([costs])[costs].result()
            missing = _health_until(url, 503, 30, log)
            assert missing["status"] == "unavailable"
            assert f"{costs} missing" in missing["reasons"]

            create_topics(settings)
            _health_until(url, 200, 60, log)

            broker.stop()
            gone = _health_until(url, 503, 30, log)
            assert any("broker unreachable" in reason for reason in gone["reasons"])
    finally:
        broker.stop()

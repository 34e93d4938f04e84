"""A gateway is ready only once it knows every key, budget and decision: /healthz is 503
`starting` until its views were read to their end once, so `meterline up` and a load
balancer never send it clients it would refuse as unknown (real broker, real server)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import create_topics
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _health(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{url}/healthz", timeout=5)
    return response.status_code, response.json()


def test_not_ready_until_the_views_are_loaded(make_settings, start_gateway) -> None:
    broker = EmbeddedBroker(free_port())  # not started yet: nothing can be loaded
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
    gateway = start_gateway(settings, wait_ready=False)
    try:
        status, body = _health(gateway.url)
        assert status == 503 and body["status"] == "starting"

        broker.start()
        create_topics(settings)
        deadline = time.monotonic() + 60
        while (status := _health(gateway.url)[0]) != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.2)
        assert _health(gateway.url)[1]["status"] == "ok"
    finally:
        broker.stop()

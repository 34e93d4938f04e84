"""Kafka going away must never fail a request, lose an event or reorder events."""

from __future__ import annotations

import time

import httpx
import pytest

from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import create_topics
from meterline.settings import ProviderConfig
from tests.conftest import free_port

pytestmark = pytest.mark.integration

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def _send(url: str, secret: str, n: int) -> list[str]:
    ids = []
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            response = client.post(
                f"{url}/v1/chat/completions",
                json=BODY,
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert response.status_code == 200, response.text
            ids.append(response.headers["x-request-id"])
    return ids


def _health(url: str) -> dict:
    return httpx.get(f"{url}/healthz").json()


def _wait(predicate, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


@pytest.fixture
def own_broker():
    broker = EmbeddedBroker(free_port())
    broker.start()
    yield broker
    broker.stop()


def _settings(make_settings, broker, mock_url):
    return make_settings(
        broker,
        gateway={"emitter": {"delivery_timeout_ms": 1000}},
        providers=[ProviderConfig(name="mock", base_url=f"{mock_url}/v1")],
    )


def _request_ids(settings, expected: list[str], read_events) -> list[str]:
    events = read_events(settings, lambda evs: len(evs) >= len(expected), timeout_s=30)
    return [e["request_id"] for e in events]


def test_broker_outage_spools_and_replays_in_order(
    own_broker, make_settings, mock_url, start_gateway, read_events
) -> None:
    settings = _settings(make_settings, own_broker, mock_url)
    gateway = start_gateway(settings)
    secret = gateway.create_key(org="acme")["key"]  # one key: one partition, one order
    before = _send(gateway.url, secret, 5)
    assert _request_ids(settings, before, read_events) == before

    own_broker.stop()  # memory storage: the topics and the 5 events are gone with it...
    during = _send(gateway.url, secret, 50)
    _wait(lambda: _health(gateway.url)["emitter"] == "spooling")
    health = _health(gateway.url)
    assert health["spool_size"] == 100  # a RequestEvent and a SpanEvent each
    # not draining: degraded, with the age of the oldest waiting event (still a 200)
    assert health["status"] == "degraded" and health["oldest_undelivered_age_s"] > 0

    own_broker.start()
    create_topics(settings)
    after = _send(gateway.url, secret, 10)
    _wait(lambda: _health(gateway.url)["emitter"] == "connected", timeout_s=30)
    received = _request_ids(settings, before + during + after, read_events)
    # ...but the gateway kept what the broker had acknowledged and sends it again once the
    # offsets show the loss; the spool replays in order, ahead of newer events.
    assert sorted(received) == sorted(before + during + after)
    assert [rid for rid in received if rid in during] == during
    assert [rid for rid in received if rid in after] == after
    assert received.index(during[-1]) < received.index(after[0])
    health = _health(gateway.url)
    assert health["status"] == "ok" and health["oldest_undelivered_age_s"] is None


def test_spool_survives_a_gateway_restart(
    own_broker, make_settings, mock_url, start_gateway, read_events
) -> None:
    settings = _settings(make_settings, own_broker, mock_url)
    first = start_gateway(settings)
    secret = first.create_key(org="acme")["key"]
    own_broker.stop()
    ids = _send(first.url, secret, 20)
    first.server.__exit__()  # clean shutdown: undelivered events go to the spool
    spool = settings.resolved_spool_dir / "gateway.spool"
    assert spool.exists() and len(spool.read_bytes().splitlines()) == 40  # requests + spans

    own_broker.start()
    create_topics(settings)
    second = start_gateway(settings)
    assert _request_ids(settings, ids, read_events) == ids
    _wait(lambda: _health(second.url)["emitter"] == "connected")
    assert not spool.exists()

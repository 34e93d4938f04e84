"""Poison input never blocks the stream (issue 10): through the real broker.

An event the broker can never take is reduced to a minimal metering event and
dead-lettered with its reason; the events before and after it are delivered in order; a
spooled record that turns out to be poison on replay is quarantined, not retried forever.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from gateway.emit import KafkaEmitter
from gateway.keys import KeyInfo
from gateway.metrics import Metrics
from gateway.record import RequestRecord
from gateway.usage import ResponseSummary
from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import create_topics
from schemas.events import DeadLetter, RequestEvent
from schemas.topics import DLQ, REQUESTS
from tests.conftest import free_port

pytestmark = pytest.mark.integration

KEY = b"key_poison"
LIMIT = 50_000  # the producer's message.max.bytes in these tests


def _event(n: int, tool_calls: int = 1) -> dict[str, Any]:
    record = RequestRecord(endpoint="/v1/chat/completions")
    record.key = KeyInfo(key_id=KEY.decode(), key_hash="h", org="acme", team="t", project="p")
    record.model_requested = "gpt-4o"
    record.provider = "openai"
    calls = [{"name": f"tool_{i}", "arguments_hash": "ab" * 32} for i in range(tool_calls)]
    record.summary = ResponseSummary(
        model_used="gpt-4o", input_tokens=100 + n, output_tokens=10 + n, tool_calls=calls
    )
    return record.to_event()


def _plain(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "_key"} for e in events]


def _wait(predicate, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _assert_metered_and_dead_lettered(settings, read_events, sent, poison) -> None:
    """The requests topic holds every event in order, the poison one as its minimal
    version; the dlq topic holds the poison's dead letter with the reason."""
    events = _plain(
        read_events(settings, lambda evs: len(evs) >= len(sent), topic=REQUESTS, timeout_s=30)
    )
    assert [e["request_id"] for e in events] == [e["request_id"] for e in sent]
    (reduced,) = [e for e in events if e["event_id"] == poison["event_id"]]
    RequestEvent.model_validate(reduced)
    assert reduced["tool_calls"] == [] and len(orjson.dumps(reduced)) < LIMIT
    assert (reduced["key_id"], reduced["org"], reduced["input_tokens"]) == (
        poison["key_id"],
        "acme",
        poison["input_tokens"],
    )
    (letter,) = _plain(read_events(settings, lambda evs: len(evs) >= 1, topic=DLQ))
    letter = DeadLetter.model_validate(letter)
    assert letter.original_topic == settings.topic(REQUESTS)
    assert letter.original_key == KEY.decode() and letter.stage == "gateway.emitter"
    assert letter.error.startswith("MSG_SIZE_TOO_LARGE")
    assert poison["request_id"] in letter.payload


def test_an_event_over_the_message_limit_does_not_block_later_events(
    broker, make_settings, read_events
) -> None:
    settings = make_settings(broker)
    metrics = Metrics()
    emitter = KafkaEmitter(settings, metrics=metrics, max_message_bytes=LIMIT)
    emitter.start()
    topic = settings.topic(REQUESTS)
    poison = _event(99, tool_calls=2000)
    assert len(orjson.dumps(poison)) > LIMIT
    sent = [_event(0), _event(1), poison, _event(2), _event(3)]
    try:
        for event in sent:
            emitter.emit(topic, KEY, orjson.dumps(event))
        _assert_metered_and_dead_lettered(settings, read_events, sent, poison)
        assert emitter.state == "connected" and emitter.spool_size == 0
        assert (emitter.poisoned, emitter.reduced, emitter.lost) == (1, 1, 0)
        assert 'meterline_gateway_emitter_poison_total{reason="MSG_SIZE_TOO_LARGE"} 1' in (
            metrics.render()
        )
    finally:
        emitter.close()


@pytest.fixture
def own_broker():
    instance = EmbeddedBroker(free_port())
    instance.start()
    yield instance
    instance.stop()


def test_poison_emitted_during_an_outage_never_enters_the_spool(
    own_broker, make_settings, read_events
) -> None:
    settings = make_settings(own_broker, gateway={"emitter": {"delivery_timeout_ms": 1000}})
    emitter = KafkaEmitter(settings, max_message_bytes=LIMIT)
    emitter.start()
    topic = settings.topic(REQUESTS)
    poison = _event(99, tool_calls=2000)
    first = _event(-1)
    sent = [_event(0), poison, _event(1)]
    spool = settings.resolved_spool_dir / "gateway.spool"
    try:
        own_broker.stop()
        emitter.emit(topic, KEY, orjson.dumps(first))  # its delivery fails: spooling
        _wait(lambda: emitter.state == "spooling")
        for event in sent:
            emitter.emit(topic, KEY, orjson.dumps(event))
        # on disk: first, event 0, the poison's minimal version and dead letter, event 1
        _wait(lambda: spool.exists() and spool.read_bytes().count(b"\n") == 5)
        assert all(len(line) < LIMIT for line in spool.read_bytes().splitlines())
        assert emitter.oldest_undelivered_age_s is not None

        own_broker.start()
        create_topics(settings)
        _assert_metered_and_dead_lettered(settings, read_events, [first, *sent], poison)
        _wait(lambda: emitter.state == "connected")
        assert emitter.oldest_undelivered_age_s is None and not spool.exists()
    finally:
        emitter.close()


def test_a_spooled_record_the_broker_refuses_on_replay_is_quarantined(
    broker, make_settings, read_events
) -> None:
    settings = make_settings(broker)
    topic = settings.topic(REQUESTS)
    good = [_event(0), _event(1), _event(2)]
    poison = _event(99, tool_calls=2000)
    spool_dir = settings.resolved_spool_dir
    spool_dir.mkdir(parents=True)
    # A previous run (with a larger message limit) left this spool behind.
    lines = [
        b"%s\t%s\t%s\n" % (topic.encode(), KEY, orjson.dumps(e))
        for e in (good[0], poison, good[1], good[2])
    ]
    (spool_dir / "gateway.spool").write_bytes(b"".join(lines))
    metrics = Metrics()
    emitter = KafkaEmitter(settings, metrics=metrics, max_message_bytes=LIMIT)
    assert emitter.state == "spooling" and emitter.spool_size == 4
    emitter.start()
    try:
        events = read_events(settings, lambda evs: len(evs) >= 3, timeout_s=30)
        assert [e["request_id"] for e in events] == [e["request_id"] for e in good]
        _wait(lambda: emitter.state == "connected")
        assert (spool_dir / "gateway.quarantine").read_bytes() == lines[1]
        assert not (spool_dir / "gateway.spool").exists()
        assert emitter.quarantined == 1
        assert "meterline_gateway_emitter_quarantined_total 1" in metrics.render()
    finally:
        emitter.close()


def test_a_megabyte_model_name_is_a_400_and_metering_goes_on(start_gateway, read_events) -> None:
    gateway = start_gateway()
    secret = gateway.create_key(org="acme")["key"]
    headers = {"Authorization": f"Bearer {secret}"}
    messages = [{"role": "user", "content": "hi"}]
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        huge = client.post(
            "/v1/chat/completions", json={"model": "m" * 1_000_000, "messages": messages}
        )
        after = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": messages})
    assert huge.status_code == 400
    error = huge.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (
        "model",
        "string_above_max_length",
        "invalid_request_error",
    )
    assert "maximum length 256" in error["message"] and "1000000" in error["message"]
    assert after.status_code == 200
    ids = [huge.headers["x-request-id"], after.headers["x-request-id"]]
    events = read_events(gateway.settings, lambda evs: set(ids) <= {e["request_id"] for e in evs})
    by_id = {e["request_id"]: e for e in events}
    assert by_id[ids[0]]["status_code"] == 400 and by_id[ids[0]]["model_requested"] is None
    assert by_id[ids[1]]["input_tokens"] > 0
    health = httpx.get(f"{gateway.url}/healthz").json()
    assert health["status"] == "ok" and health["spool_size"] == 0

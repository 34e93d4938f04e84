"""Ingest tokens and virtual keys as OTLP credentials, from the gateway's admin API to a
real ingest service through the control topic (real broker, real ClickHouse engine)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from ingest.server import IngestService, build_app
from meterline.kafka import consumer_config
from meterline.settings import Settings
from schemas.topics import SPANS
from tests.integration.gateway.conftest import ADMIN, ServerThread

pytestmark = pytest.mark.integration

START = time.time_ns()


def _wait(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return value


def _export(trace_id: str, org_claim: str) -> bytes:
    attributes = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
    ]
    resource = [{"key": "meterline.org", "value": {"stringValue": org_claim}}]
    span = {
        "traceId": trace_id,
        "spanId": "00000000000000f1",
        "name": "chat",
        "startTimeUnixNano": str(START),
        "endTimeUnixNano": str(START + 1_000_000),
        "attributes": attributes,
    }
    return orjson.dumps(
        {
            "resourceSpans": [
                {"resource": {"attributes": resource}, "scopeSpans": [{"spans": [span]}]}
            ]
        }
    )


def _spans(settings: Settings, trace_ids: set[str]) -> dict[str, dict[str, Any]]:
    consumer = Consumer(consumer_config(settings, None))
    topic = settings.topic(SPANS)
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.topic_partitions)]
    )
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 20
    try:
        while not trace_ids <= set(found):
            assert time.monotonic() < deadline, f"spans missing: {trace_ids - set(found)}"
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                event = orjson.loads(message.value())
                found[event["trace_id"]] = event
    finally:
        consumer.close()
    return found


@pytest.fixture
def ingest_url(start_gateway, chdb_url: str) -> Iterator[tuple[Any, str, IngestService]]:
    gateway = start_gateway()
    settings = gateway.settings.model_copy(update={"clickhouse_url": chdb_url})
    service = IngestService(settings)
    service.start()
    try:
        with ServerThread(build_app(service)) as server:
            yield gateway, server.url, service
    finally:
        service.close()


def test_admin_issued_credentials_attribute_otlp_spans(ingest_url) -> None:
    gateway, ingest, service = ingest_url
    admin = httpx.Client(base_url=gateway.url, headers=ADMIN, timeout=15)
    created = admin.post(
        "/admin/ingest-tokens", json={"org": "acme", "team": "ml", "name": "otel collector"}
    )
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["token"].startswith("mli-") and token["token_id"].startswith("itok_")
    assert (token["org"], token["team"], token["project"], token["name"]) == (
        "acme",
        "ml",
        "",
        "otel collector",
    )
    key = gateway.create_key(org="acme", team="search")
    listing = admin.get("/admin/ingest-tokens").json()["data"]
    assert [t["token_id"] for t in listing] == [token["token_id"]]
    assert token["token"] not in str(listing)
    assert admin.get("/admin/keys").json()["data"][0]["key_id"] == key["key_id"]  # not a key

    # The ingest token is no LLM-proxy credential.
    chat = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {token['token']}"},
        timeout=10,
    )
    assert chat.status_code == 401

    by_token, by_key = "ab" * 16, "cd" * 16
    _wait(lambda: service.credentials.book.lookup(token["token"]))
    _wait(lambda: service.credentials.book.lookup(key["key"]))
    for trace_id, secret in ((by_token, token["token"]), (by_key, key["key"])):
        response = httpx.post(
            f"{ingest}/v1/traces",
            content=_export(trace_id, org_claim="victim"),
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            timeout=20,
        )
        assert response.status_code == 200, response.text
        assert "meterline.org='victim'" in response.json()["partialSuccess"]["errorMessage"]
    spans = _spans(gateway.settings, {by_token, by_key})
    assert (spans[by_token]["org"], spans[by_token]["team"], spans[by_token]["key_id"]) == (
        "acme",
        "ml",
        None,
    )
    assert (spans[by_key]["org"], spans[by_key]["team"], spans[by_key]["key_id"]) == (
        "acme",
        "search",
        key["key_id"],
    )

    # Revoking either locks it out of ingest.
    assert admin.delete("/admin/ingest-tokens/itok_nope").status_code == 404
    revoked = admin.delete(f"/admin/ingest-tokens/{token['token_id']}")
    assert revoked.json() == {"token_id": token["token_id"], "revoked": True}
    assert admin.get("/admin/ingest-tokens").json()["data"] == []
    assert admin.delete(f"/admin/keys/{key['key_id']}").status_code == 200
    for secret in (token["token"], key["key"]):
        _wait(lambda s=secret: service.credentials.book.lookup(s) is None)
        refused = httpx.post(
            f"{ingest}/v1/traces",
            content=_export(by_key, org_claim="acme"),
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            timeout=20,
        )
        assert refused.status_code == 401


def test_ingest_token_requests_are_validated(start_gateway) -> None:
    gateway = start_gateway()
    no_admin = httpx.post(f"{gateway.url}/admin/ingest-tokens", json={"org": "acme"}, timeout=10)
    assert no_admin.status_code == 401
    for body in ({}, {"org": ""}, {"org": "acme", "extra": 1}, {"org": "a" * 201}):
        response = httpx.post(
            f"{gateway.url}/admin/ingest-tokens", json=body, headers=ADMIN, timeout=10
        )
        assert response.status_code == 400, (body, response.text)

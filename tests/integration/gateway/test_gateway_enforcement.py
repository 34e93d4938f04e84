"""Enforcement end to end: admin API -> enforcement/control/budgets topics -> every gateway
instance's view -> 403/429/503 answers, with real uvicorn, a real broker and the openai SDK."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
from confluent_kafka import Producer

from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import create_topics, producer_config
from meterline.settings import ProviderConfig
from schemas.events import BudgetState, RequestEvent
from schemas.topics import BUDGETS
from tests.conftest import free_port
from tests.integration.gateway.conftest import ADMIN

pytestmark = pytest.mark.integration

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _chat(url: str, secret: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=BODY,
        headers={"Authorization": f"Bearer {secret}", **headers},
        timeout=10,
    )


def _until(url: str, secret: str, status: int, timeout_s: float = 1.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while (response := _chat(url, secret)).status_code != status:
        assert time.monotonic() < deadline, f"still {response.status_code}, wanted {status}"
        time.sleep(0.02)
    return response


def test_a_manual_block_reaches_every_gateway_within_a_second_and_lifts(
    start_gateway, events_for
) -> None:
    first = start_gateway()
    second = start_gateway(first.settings)  # same topics, its own view
    key = first.create_key(org="acme", team="ml")
    _until(second.url, key["key"], 200, timeout_s=15)  # the key itself reached the second

    blocked = httpx.post(
        f"{first.url}/admin/enforcement",
        json={"subject": "team:acme/ml", "action": "block", "reason": "stolen key suspected"},
        headers=ADMIN,
        timeout=10,
    )
    assert blocked.status_code == 201, blocked.text
    assert blocked.json()["source"] == "manual"
    for gateway in (first, second):
        response = _until(gateway.url, key["key"], 403)
        error = response.json()["error"]
        assert (error["code"], error["subject"], error["source"], error["reason"]) == (
            "blocked",
            "team:acme/ml",
            "manual",
            "stolen key suspected",
        )
    listing = httpx.get(f"{second.url}/admin/enforcement", headers=ADMIN).json()["data"]
    assert [(d["subject"], d["action"]) for d in listing] == [("team:acme/ml", "block")]

    client = openai.OpenAI(base_url=f"{second.url}/v1", api_key=key["key"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(**BODY)
    (event,) = events_for(first.settings, [info.value.response.headers["x-request-id"]])
    RequestEvent.model_validate(event)
    assert event["status_code"] == 403 and event["error_type"] == "blocked"
    assert event["enforcement"]["subject"] == "team:acme/ml"
    assert event["enforcement"]["action"] == "block"

    lifted = httpx.delete(f"{second.url}/admin/enforcement/team:acme/ml", headers=ADMIN)
    assert lifted.status_code == 200 and lifted.json()["was"][0]["reason"] == "stolen key suspected"
    for gateway in (first, second):
        _until(gateway.url, key["key"], 200)
    assert httpx.get(f"{first.url}/admin/enforcement", headers=ADMIN).json()["data"] == []


def test_a_throttle_decision_answers_429_with_retry_after(start_gateway) -> None:
    gateway = start_gateway()
    key = gateway.create_key(org="acme")
    response = httpx.post(
        f"{gateway.url}/admin/enforcement",
        json={
            "subject": f"key:{key['key_id']}",
            "action": "throttle",
            "rpm": 1,
            "reason": "agent loop",
            "for_seconds": 3600,
        },
        headers=ADMIN,
    )
    assert response.status_code == 201 and response.json()["expires_at"]
    assert _chat(gateway.url, key["key"]).status_code == 200
    refused = _chat(gateway.url, key["key"])
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    other = gateway.create_key(org="acme")
    assert _chat(gateway.url, other["key"]).status_code == 200  # only that subject


def test_per_key_rpm_and_tpm_buckets_with_ratelimit_headers(start_gateway) -> None:
    gateway = start_gateway()
    key = gateway.create_key(org="acme", rpm=2, tpm=10_000)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key["key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(**BODY, max_tokens=50)
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert raw.headers["x-ratelimit-limit-tokens"] == "10000"
    # the estimate (2 chars / 4 + 1 + 50) was taken; real usage is given back afterwards
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 10_000 - 51
    used = raw.parse().usage.total_tokens
    second = client.chat.completions.with_raw_response.create(**BODY, max_tokens=50)
    # real usage replaced the first estimate (the bucket also refills ~167 tokens a second)
    expected = 10_000 - used - 51
    assert expected <= int(second.headers["x-ratelimit-remaining-tokens"]) <= expected + 170
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(**BODY)
    headers = info.value.response.headers
    assert info.value.response.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(headers["retry-after"]) >= 1
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == (
        "2",
        "0",
    )

    tight = gateway.create_key(org="acme", tpm=100)
    assert _chat(gateway.url, tight["key"]).status_code == 200
    huge = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={**BODY, "max_tokens": 500},
        headers={"Authorization": f"Bearer {tight['key']}"},
    )
    assert huge.status_code == 429 and huge.headers["x-ratelimit-limit-tokens"] == "100"


def test_a_hard_budget_state_blocks_naming_the_budget(start_gateway) -> None:
    gateway = start_gateway()
    key = gateway.create_key(org="acme", project="p1")
    created = httpx.post(
        f"{gateway.url}/admin/budgets",
        json={"subject": "project:acme/p1", "period": "day", "limit_usd": "5"},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    budget_id = created.json()["budget_id"]
    assert _chat(gateway.url, key["key"]).status_code == 200

    now = datetime.now(UTC)
    state = BudgetState(
        budget_id=budget_id,
        subject="project:acme/p1",
        period="day",
        period_start=now - timedelta(hours=1),
        period_end=now + timedelta(hours=23),
        spent_usd="5.20",  # type: ignore[arg-type]
        limit_usd="5",  # type: ignore[arg-type]
        percent_used=104.0,
        status="hard",
    )
    producer = Producer(producer_config(gateway.settings))
    producer.produce(gateway.settings.topic(BUDGETS), state.to_json(), budget_id.encode())
    assert producer.flush(10) == 0
    response = _until(gateway.url, key["key"], 403, timeout_s=5)
    error = response.json()["error"]
    assert (error["code"], error["budget_id"], error["source"]) == (
        "budget_exceeded",
        budget_id,
        "budget",
    )
    assert budget_id in error["message"] and "project:acme/p1" in error["message"]
    (listed,) = httpx.get(f"{gateway.url}/admin/budgets", headers=ADMIN).json()["data"]
    assert (listed["budget_id"], listed["limit_usd"], listed["state"]["status"]) == (
        budget_id,
        "5",
        "hard",
    )


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/admin/enforcement", {"subject": "acme", "action": "block"}, "subject"),
        ("/admin/enforcement", {"subject": "team:acme", "action": "block"}, "subject"),
        (
            "/admin/enforcement",
            {"subject": "org:a", "expires_at": "2001-01-01T00:00:00Z"},
            "expires_at",
        ),
        ("/admin/budgets", {"subject": "project:x", "period": "day", "limit_usd": 1}, "subject"),
        (
            "/admin/budgets",
            {"subject": "org:a", "period": "day", "limit_usd": 1, "timezone": "Mars/Base"},
            "timezone",
        ),
    ],
)
def test_admin_input_errors_are_400_naming_the_field(start_gateway, path, body, param) -> None:
    gateway = start_gateway()
    response = httpx.post(f"{gateway.url}{path}", json=body, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.fixture
def own_broker():
    broker = EmbeddedBroker(free_port())
    broker.start()
    yield broker
    broker.stop()


def test_a_stale_view_fails_closed_with_503(
    own_broker, make_settings, mock_url, start_gateway
) -> None:
    settings = make_settings(
        own_broker,
        gateway={
            "emitter": {"delivery_timeout_ms": 1000},
            "enforcement": {"stale_after_s": 1.0, "fail_mode": "closed"},
        },
        providers=[ProviderConfig(name="mock", base_url=f"{mock_url}/v1")],
    )
    gateway = start_gateway(settings)
    key = gateway.create_key(org="acme")
    _until(gateway.url, key["key"], 200, timeout_s=10)  # fresh once caught up

    own_broker.stop()
    response = _until(gateway.url, key["key"], 503, timeout_s=10)
    assert response.json()["error"]["code"] == "enforcement_unavailable"
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'meterline_gateway_enforcement_stale_total{mode="closed"}' in metrics
    assert httpx.get(f"{gateway.url}/healthz").json()["enforcement_view_age_s"] > 1.0

    own_broker.start()
    create_topics(settings)  # memory storage: the restarted broker is empty
    _until(gateway.url, key["key"], 200, timeout_s=15)

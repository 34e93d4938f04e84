"""Virtual keys through the control topic: create on one gateway, use on another."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.integration

CHAT_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def _chat(url: str, secret: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=CHAT_BODY,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )


def _wait_status(url: str, secret: str, status: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while (code := _chat(url, secret).status_code) != status:
        assert time.monotonic() < deadline, f"still {code}, wanted {status}"
        time.sleep(0.1)


def test_a_key_created_on_one_gateway_works_on_another(start_gateway) -> None:
    first = start_gateway()
    created = first.create_key(org="acme", team="ml", models=["gpt-*"], rpm=60)
    assert created["key"].startswith("ml-") and created["key_id"].startswith("key_")
    assert (created["org"], created["team"], created["models"], created["rpm"]) == (
        "acme",
        "ml",
        ["gpt-*"],
        60,
    )
    assert _chat(first.url, created["key"]).status_code == 200  # applied locally at once

    second = start_gateway(first.settings)  # same topics, fresh in-memory view
    _wait_status(second.url, created["key"], 200)
    listing = httpx.get(
        f"{second.url}/admin/keys", headers={"Authorization": "Bearer test-admin-token"}
    ).json()["data"]
    assert [k["key_id"] for k in listing] == [created["key_id"]]
    assert created["key"] not in str(listing)

    revoked = httpx.delete(
        f"{first.url}/admin/keys/{created['key_id']}",
        headers={"Authorization": "Bearer test-admin-token"},
    )
    assert revoked.status_code == 200
    assert _chat(first.url, created["key"]).status_code == 401
    _wait_status(second.url, created["key"], 401)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "test-admin-token", "Basic abc"])
def test_admin_needs_the_admin_token(start_gateway, header) -> None:
    gateway = start_gateway()
    headers = {"Authorization": header} if header else {}
    for method, path in (
        ("POST", "/admin/keys"),
        ("GET", "/admin/keys"),
        ("DELETE", "/admin/keys/key_x"),
    ):
        response = httpx.request(method, f"{gateway.url}{path}", json={"org": "a"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


def test_control_plane_down_is_a_503_and_changes_nothing(make_settings, start_gateway) -> None:
    settings = make_settings(
        None,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        gateway={"emitter": {"delivery_timeout_ms": 500}},
    )
    gateway = start_gateway(settings, wait_ready=False)  # no broker: it never gets ready
    response = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"org": "acme"},
        headers={"Authorization": "Bearer test-admin-token"},
        timeout=10,
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "control_plane_unavailable"
    assert httpx.get(f"{gateway.url}/healthz").json()["keys_loaded"] == 0

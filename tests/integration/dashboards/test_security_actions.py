"""Block and unblock from the Security page, through a real gateway's admin API (uvicorn,
real broker): nothing changes before the confirmation, and Cancel changes nothing."""

from __future__ import annotations

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import free_port
from tests.integration.dashboards.conftest import ADMIN_TOKEN as TOKEN
from tests.integration.dashboards.conftest import APP

pytestmark = pytest.mark.integration


def _blocked(gateway: str) -> set[str]:
    response = httpx.get(
        f"{gateway}/admin/enforcement", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return {d["subject"] for d in response.json()["data"] if d["action"] == "block"}


def _security(read_api_url: str, dashboard_env, **env: str) -> AppTest:
    dashboard_env(read_api_url, **env)
    app = AppTest.from_file(APP, default_timeout=30).run()
    app.switch_page("views/security.py").run()
    assert not app.exception, app.exception
    return app


def test_block_and_unblock_ask_for_confirmation(read_api, dashboard_env, gateway) -> None:
    # The token comes from settings; the UI field may stay empty.
    app = _security(
        read_api.url, dashboard_env, METERLINE_GATEWAY_URL=gateway, METERLINE_ADMIN_TOKEN=TOKEN
    )
    app.text_input(key="actor").input("ana@acme.example").run()
    app.text_input(key="action_subject").input("team:acme/search")
    app.text_input(key="action_reason").input("runaway spend")
    app.button[[b.label for b in app.button].index("Block…")].click().run()
    assert "Block **team:acme/search** for 24 hours?" in app.warning[0].value
    assert _blocked(gateway) == set()  # asked, not done

    app.button(key="cancel").click().run()
    assert not app.warning and _blocked(gateway) == set()

    app.button[[b.label for b in app.button].index("Block…")].click().run()
    app.button(key="confirm").click().run()
    assert not app.exception
    assert "Blocked team:acme/search (24 hours)" in app.success[-1].value
    assert _blocked(gateway) == {"team:acme/search"}

    app.button[[b.label for b in app.button].index("Unblock…")].click().run()
    assert "Lift every block" in app.warning[0].value
    assert _blocked(gateway) == {"team:acme/search"}
    app.button(key="confirm").click().run()
    assert "Lifted every block on team:acme/search" in app.success[-1].value
    assert _blocked(gateway) == set()


def test_a_wrong_token_typed_in_the_page_is_refused(read_api, dashboard_env, gateway) -> None:
    app = _security(read_api.url, dashboard_env, METERLINE_GATEWAY_URL=gateway)
    assert "Enter the admin token" in app.info[-1].value  # no token anywhere: no actions
    app.text_input(key="admin_token").input("not-the-token").run()
    app.text_input(key="actor").input("ana@acme.example").run()
    app.text_input(key="action_subject").input("key:k9")
    app.button[[b.label for b in app.button].index("Block…")].click().run()
    app.button(key="confirm").click().run()
    assert "refused the admin token" in app.error[-1].value
    assert _blocked(gateway) == set()


def test_an_unreachable_gateway_is_explained(read_api, dashboard_env) -> None:
    app = _security(
        read_api.url,
        dashboard_env,
        METERLINE_GATEWAY_URL=f"http://127.0.0.1:{free_port()}",
        METERLINE_ADMIN_TOKEN=TOKEN,
    )
    app.text_input(key="actor").input("ana@acme.example").run()
    app.text_input(key="action_subject").input("key:k9")
    app.button[[b.label for b in app.button].index("Block…")].click().run()
    app.button(key="confirm").click().run()
    message = app.error[-1].value
    assert "unreachable" in message and "METERLINE_GATEWAY_URL" in message

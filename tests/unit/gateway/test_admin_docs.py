"""The admin API's OpenAPI document and /admin/docs: there, complete, and only for whoever
holds the admin token (as a bearer token, or as the password a browser asks for)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.admin_docs import presented_token
from gateway.app import create_app
from gateway.collaborators import MemoryControlPublisher, StaticViews
from gateway.emit import MemoryEmitter
from gateway.providers import InProcessUpstream
from gateway.runtime import GatewayRuntime
from meterline.mock_provider import create_app as create_mock_app
from meterline.settings import Settings

TOKEN = "docs-admin-token"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN, gateway={"spans": False})
    runtime = GatewayRuntime(
        settings,
        emitter=MemoryEmitter(),
        upstream=InProcessUpstream(create_mock_app()),
        views=StaticViews,
        publisher=MemoryControlPublisher(),
    )
    app = create_app(settings, runtime=runtime)
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
    finally:
        await runtime.aclose()


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"me:{password}".encode()).decode()}


async def test_the_document_lists_every_admin_route_and_nothing_else(http) -> None:
    response = await http.get("/admin/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Meterline admin API"
    assert document["components"]["securitySchemes"]["admin"] == {
        "type": "http",
        "scheme": "bearer",
    }
    paths = document["paths"]
    for path, method in [
        ("/admin/keys", "post"),
        ("/admin/keys", "get"),
        ("/admin/keys/{key_id}", "delete"),
        ("/admin/budgets", "post"),
        ("/admin/enforcement", "post"),
        ("/admin/enforcement/{subject}", "delete"),
        ("/admin/policies", "post"),
    ]:
        assert method in paths[path], (path, method)
    assert all(path.startswith("/admin/") for path in paths)
    assert "/admin/docs" not in paths and "/admin/openapi.json" not in paths
    # the request bodies are described, with their fields
    assert "KeyCreate" in document["components"]["schemas"]


async def test_docs_need_the_token_and_a_browser_can_give_it(http) -> None:
    for path in ("/admin/docs", "/admin/openapi.json"):
        refused = await http.get(path)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert "admin token" in refused.json()["error"]["message"]
        assert (await http.get(path, headers=_basic("wrong"))).status_code == 401
    page = await http.get("/admin/docs", headers=_basic(TOKEN))
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert "/admin/openapi.json" in page.text and TOKEN not in page.text
    assert (await http.get("/admin/openapi.json", headers=_basic(TOKEN))).status_code == 200


def test_the_token_is_read_from_either_scheme() -> None:
    assert presented_token("Bearer abc") == "abc"
    assert presented_token(_basic("abc")["Authorization"]) == "abc"
    assert presented_token("Basic !!!") is None
    assert presented_token("Digest abc") is None and presented_token(None) is None

"""The typed API clients: one auth header rule, one error type parsed from the
OpenAI-shaped body, transport failures as ApiUnreachable, typed answers; no network
(httpx.MockTransport)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

import meterline.clients as clients
from meterline.clients import (
    AdminClient,
    ApiError,
    ApiUnreachable,
    AsyncReadClient,
    ReadClient,
    read_token,
)
from meterline.settings import Settings
from schemas.api.read import BudgetsResponse, HealthResponse, ShowbackResponse, ShowbackTotals

Handler = Callable[[httpx.Request], httpx.Response]


def admin(handler: Handler, token: str | None = "adm", **kw: str) -> AdminClient:
    return AdminClient("http://gw:8080/", token, transport=httpx.MockTransport(handler), **kw)


def read(handler: Handler, token: str | None = None) -> ReadClient:
    return ReadClient("http://ingest:4318", token, transport=httpx.MockTransport(handler))


def test_the_public_surface() -> None:
    assert clients.__all__ == [
        "AdminClient",
        "ApiError",
        "ApiUnreachable",
        "AsyncReadClient",
        "ClientError",
        "ReadClient",
        "Role",
        "read_token",
    ]


def test_admin_sends_bearer_token_and_actor_and_returns_the_created_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"key_id": "key_1", "key": "sk-ml-x", "org": "acme"})

    with admin(handler, actor="ana@laptop") as client:
        created = client.create_key(org="acme", team="ml", rpm=60)
    assert created["key_id"] == "key_1" and created["key"] == "sk-ml-x"
    (request,) = seen
    assert request.method == "POST" and str(request.url) == "http://gw:8080/admin/keys"
    assert request.headers["Authorization"] == "Bearer adm"
    assert request.headers["X-Meterline-Actor"] == "ana@laptop"
    body = httpx.Response(200, content=request.content).json()
    assert body == {"org": "acme", "team": "ml", "project": "", "user": "", "rpm": 60}


def test_no_token_sends_no_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"count": 0, "budgets": [], "history": None})

    assert read(handler).budgets() == BudgetsResponse(count=0, budgets=[], history=None)
    assert "Authorization" not in seen[0].headers
    assert "X-Meterline-Actor" not in seen[0].headers


def test_an_openai_shaped_error_becomes_one_api_error() -> None:
    body = {
        "error": {
            "message": "unknown time zone 'Mars/Olympus'",
            "type": "invalid_request_error",
            "code": "invalid_request",
            "param": "timezone",
        }
    }
    client = admin(lambda _: httpx.Response(400, json=body))
    with pytest.raises(ApiError) as caught:
        client.set_budget("team:acme/ml", period="month", limit_usd="10", timezone="Mars/Olympus")
    error = caught.value
    assert (error.status, error.type, error.code, error.param) == (
        400,
        "invalid_request_error",
        "invalid_request",
        "timezone",
    )
    assert error.message == "unknown time zone 'Mars/Olympus'"
    assert (error.method, error.path) == ("POST", "/admin/budgets")
    assert str(error) == "POST /admin/budgets answered 400: unknown time zone 'Mars/Olympus'"


def test_an_error_without_the_openai_shape_keeps_the_start_of_its_body() -> None:
    client = read(lambda _: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ApiError) as caught:
        client.drift(None, None)
    assert caught.value.status == 502 and caught.value.message == "<html>Bad Gateway</html>"
    assert caught.value.type is None and caught.value.param is None


def test_a_success_that_is_not_json_is_an_api_error() -> None:
    client = read(lambda _: httpx.Response(200, text="hello from another program"))
    with pytest.raises(ApiError) as caught:
        client.anomalies(None, None)
    assert caught.value.type == "invalid_response"


def test_an_answer_that_does_not_fit_its_model_is_an_api_error() -> None:
    client = read(lambda _: httpx.Response(200, json={"count": 1, "anomalies": [{"ts": 1}]}))
    with pytest.raises(ApiError) as caught:
        client.anomalies(None, None)
    assert caught.value.type == "invalid_response" and caught.value.path == "/api/anomalies"
    assert "AnomaliesResponse" in caught.value.message


def test_a_transport_failure_is_api_unreachable_naming_it() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ApiUnreachable) as caught:
        admin(refuse).list_keys()
    assert caught.value.reason == "ConnectError" and caught.value.base_url == "http://gw:8080"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_admin_lists_unwrap_data_and_subjects_are_quoted_in_paths() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.raw_path.decode()}")
        if request.method == "DELETE":
            return httpx.Response(200, json={"subject": "team:acme/ml", "lifted": True})
        return httpx.Response(200, json={"object": "list", "data": [{"key_id": "key_1"}]})

    client = admin(handler)
    assert client.list_keys() == [{"key_id": "key_1"}]
    assert client.lift("team:acme/ml")["lifted"] is True
    client.revoke_ingest_token("itok_1")
    assert seen == [
        "GET /admin/keys",
        "DELETE /admin/enforcement/team%3Aacme%2Fml",
        "DELETE /admin/ingest-tokens/itok_1",
    ]


def test_read_query_parameters_and_dates() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return httpx.Response(200, json=empty.model_dump(mode="json", by_alias=True))

    totals = ShowbackTotals(
        cost_usd="0", input_tokens=0, output_tokens=0, requests=0, unpriced_requests=0
    )
    empty = ShowbackResponse(group_by=[], source="costs", rows=[], totals=totals)

    client = read(handler, token="fin")
    client.showback(["team", "model"], date(2025, 1, 1), date(2025, 1, 31), {"org": "acme"})
    client.showback([], None, None, {"org": None}, compare=True)
    assert seen == [
        {"from": "2025-01-01", "to": "2025-01-31", "org": "acme", "group_by": "team,model"},
        {"compare": "previous"},
    ]


def test_health_returns_the_degraded_body_of_a_503() -> None:
    degraded = {"status": "degraded", "clickhouse_reachable": False, "database": "meterline"}
    answer = read(lambda _: httpx.Response(503, json=degraded)).health()
    assert answer == HealthResponse.model_validate(degraded)
    with pytest.raises(ApiError):
        read(lambda _: httpx.Response(404, json={"error": {"message": "no"}})).health()


def test_read_token_is_the_roles_else_admins(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path, "read_api_url": "http://ingest:4318/"}
    both = Settings(**base, read_token_finance="fin", read_token_admin="adm")
    assert read_token(both, "finance") == "fin"
    assert read_token(both, "security") == "adm"
    assert read_token(Settings(**base), "finance") is None
    client = ReadClient.from_settings(both, "security")
    assert (client.base_url, client.token) == ("http://ingest:4318", "adm")


async def test_async_spend_and_uncosted_pages_follow_the_cursor() -> None:
    seen: list[tuple[str, dict[str, str], str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append((request.url.path, params, request.headers.get("Authorization")))
        window = {"start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z"}
        if request.url.path == "/api/spend":
            spent = {"subject": "team:acme/ml", "cost_usd": "1.500000000000000001"}
            as_of = "2025-01-31T12:00:00.123000Z"
            return httpx.Response(200, json={**window, **spent, "requests": 3, "as_of": as_of})
        following = None if params.get("cursor") else "c1"
        return httpx.Response(200, json={**window, "requests": [], "next_cursor": following})

    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    transport = httpx.MockTransport(handler)
    async with AsyncReadClient("http://ingest", "fin", transport=transport) as client:
        spend = await client.spend("team:acme/ml", start, end)
        pages = [p async for p in client.uncosted_pages(older_than_s=120, within_s=3600)]
    assert spend.cost_usd == "1.500000000000000001"  # exact: a decimal string
    assert spend.as_of == datetime(2025, 1, 31, 12, 0, 0, 123000, tzinfo=UTC)
    assert [page.next_cursor for page in pages] == ["c1", None]
    assert seen[0] == (
        "/api/spend",
        {"subject": "team:acme/ml", "from": start.isoformat(), "to": end.isoformat()},
        "Bearer fin",
    )
    assert [params.get("cursor") for _, params, _ in seen[1:]] == [None, "c1"]


async def test_async_errors_are_the_same_types() -> None:
    transport = httpx.MockTransport(
        lambda _: httpx.Response(403, json={"error": {"message": "no"}})
    )
    async with AsyncReadClient("http://ingest", transport=transport) as client:
        with pytest.raises(ApiError) as caught:
            await client.spend("org:acme", datetime.now(UTC), datetime.now(UTC))
    assert caught.value.status == 403 and caught.value.path == "/api/spend"


def test_admin_routing_returns_the_gateways_deployments() -> None:
    state = {
        "deployment": "openai/gpt-4o",
        "provider": "openai",
        "group": "gpt-4o",
        "model": "gpt-4o",
        "breaker": "open",
        "consecutive_failures": 5,
        "in_flight": 0,
        "latency_ms": None,
    }
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"deployments": [state]})

    with admin(handler) as client:
        assert client.routing() == {"deployments": [state]}
    (request,) = seen
    assert request.method == "GET" and request.url.path == "/admin/routing"
    assert request.headers["authorization"] == "Bearer adm"


def test_admin_from_settings_uses_the_configured_or_generated_token(tmp_path: Path) -> None:
    configured = Settings(data_dir=tmp_path, admin_token="conf", gateway_url="http://gw:8080/")
    client = AdminClient.from_settings(configured)
    assert (client.base_url, client.token) == ("http://gw:8080", "conf")
    assert AdminClient.from_settings(configured, base_url="http://other:1").base_url == (
        "http://other:1"
    )
    assert AdminClient.from_settings(Settings(data_dir=tmp_path)).token is None
    (tmp_path / "admin_token").write_text("generated\n")  # what `meterline up` leaves
    assert AdminClient.from_settings(Settings(data_dir=tmp_path)).token == "generated"


def test_a_failed_admin_call_is_one_line_for_the_simulator() -> None:
    from meterline.simulate.send import admin_failure

    refused = ApiError(401, "missing or invalid admin token", method="POST", path="/admin/keys")
    assert admin_failure(refused) == (
        "POST /admin/keys answered 401: missing or invalid admin token. "
        "Is METERLINE_ADMIN_TOKEN the gateway's admin token?"
    )
    down = ApiUnreachable("http://gw:8080", "ConnectError")
    assert admin_failure(down) == "http://gw:8080 is unreachable (ConnectError)"

"""The clients read each answer as the server sends it, so a field added, renamed or
dropped on one side fails here, not in a dashboard.

Read API: one model per answer (`schemas.api.read`); each client call must parse the
answer with exactly the model the ingest route it requests declares as `response_model`.
Admin API: the client's views name only fields of the records the gateway publishes.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from ingest.api.app import create_app
from meterline.clients import AsyncReadClient, ReadClient
from meterline.clients import read as client
from schemas.events import BudgetRecord, EnforcementDecision, PolicyRecord

DAY = date(2025, 10, 1)
AT = datetime(2025, 10, 1, tzinfo=UTC)
# Every call of both read clients (a public method missing here fails the test below).
SYNC_CALLS: dict[str, Callable[[ReadClient], Any]] = {
    "showback": lambda c: c.showback(["team"], DAY, DAY),
    "timeseries": lambda c: c.timeseries("team", DAY, DAY),
    "budgets": lambda c: c.budgets("bud_1"),
    "anomalies": lambda c: c.anomalies(DAY, DAY),
    "enforcement": lambda c: c.enforcement(),
    "enforcement_history": lambda c: c.enforcement_history(DAY, DAY),
    "audit": lambda c: c.audit(DAY, DAY, kind="key"),
    "drift": lambda c: c.drift(DAY, DAY),
    "operations": lambda c: c.operations(DAY, DAY),
    "requests": lambda c: c.requests(key="k_1", limit=1),
    "health": lambda c: c.health(),
}
ASYNC_CALLS: dict[str, Callable[[AsyncReadClient], Awaitable[Any]]] = {
    "spend": lambda c: c.spend("team:acme/ml", AT, AT),
    "uncosted_pages": lambda c: anext(c.uncosted_pages(older_than_s=1, within_s=2)),
}


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    # FastAPI keeps an included router's routes behind a wrapper (`original_router`).
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found += _api_routes(included.routes)
    return found


def served_models() -> dict[str, type[BaseModel]]:
    """Path -> the response model ingest's read API declares for it."""
    app = create_app(SimpleNamespace(database="meterline"))  # type: ignore[arg-type]
    return {route.path: route.response_model for route in _api_routes(app.routes)}


def public_methods(cls: type) -> set[str]:
    skip = {"close", "aclose", "from_settings", "focus_csv"}  # focus_csv: CSV bytes, no model
    return {name for name in vars(cls) if not name.startswith("_") and name not in skip}


def test_every_read_call_is_checked() -> None:
    assert public_methods(ReadClient) == set(SYNC_CALLS)
    assert public_methods(AsyncReadClient) == set(ASYNC_CALLS)


class Recorder:
    """Stands in for `parse_body`: notes which model each requested path is parsed with."""

    def __init__(self) -> None:
        self.parsed: dict[str, type[BaseModel]] = {}

    def __call__(self, response: httpx.Response, model: type[BaseModel]) -> Any:
        self.parsed[response.request.url.path] = model
        return model.model_construct(next_cursor=None)


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={})


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recording = Recorder()
    monkeypatch.setattr(client, "parse_body", recording)
    return recording


@pytest.mark.parametrize("call", list(SYNC_CALLS))
def test_a_read_call_parses_what_its_route_serves(recorder: Recorder, call: str) -> None:
    with ReadClient("http://ingest", transport=httpx.MockTransport(answer)) as read:
        SYNC_CALLS[call](read)
    [(path, model)] = recorder.parsed.items()
    assert model is served_models()[path], f"{call}: {path} serves another model"


@pytest.mark.parametrize("call", list(ASYNC_CALLS))
async def test_an_async_read_call_parses_what_its_route_serves(
    recorder: Recorder, call: str
) -> None:
    async with AsyncReadClient("http://ingest", transport=httpx.MockTransport(answer)) as read:
        await ASYNC_CALLS[call](read)
    [(path, model)] = recorder.parsed.items()
    assert model is served_models()[path], f"{call}: {path} serves another model"


def wire_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(
    ("view", "record"),
    [
        ("Budget", BudgetRecord),
        ("Decision", EnforcementDecision),
        ("Policy", PolicyRecord),
    ],
)
def test_admin_client_answers_are_fields_of_the_published_records(
    view: str, record: type[BaseModel] | object
) -> None:
    """The admin API answers with the record it published (its JSON), so every field the
    client reads must be one of the record's."""
    from meterline.clients import admin

    # A record that is a discriminated union (Annotated[A | B, ...]): every member.
    members = [record] if isinstance(record, type) else typing.get_args(typing.get_args(record)[0])
    for member in members:
        assert set(typing.get_type_hints(getattr(admin, view))) <= wire_names(member)


def test_admin_routing_view_is_what_the_router_reports() -> None:
    """GET /admin/routing answers `{"deployments": router.state()}`: the client's view
    names exactly the fields of a deployment's state, and the breaker states it knows."""
    from gateway.routing import Router, Timeouts
    from meterline.clients import admin
    from meterline.routing_config import RoutingConfig

    config = RoutingConfig.model_validate(
        {"groups": [{"name": "gpt-4o", "deployments": [{"provider": "openai"}]}]}
    )
    router = Router(
        config,
        patterns=lambda model: None,
        default_timeouts=Timeouts(connect_s=1, first_byte_s=1, total_s=1),
    )
    [state] = router.state()
    assert set(state) == set(typing.get_type_hints(admin.DeploymentState))
    assert set(typing.get_type_hints(admin.RoutingState)) == {"deployments"}
    breaker = typing.get_type_hints(admin.DeploymentState)["breaker"]
    assert state["breaker"] in typing.get_args(breaker)

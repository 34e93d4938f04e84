"""Role tokens of the read API over real HTTP: the 401/403/200 matrix, the open default,
400s naming the bad parameter, and the budgets processor reconciling with its token."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pyarrow as pa
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from ingest.api import create_app
from ingest.api.auth import ReadTokens
from meterline.clients import AsyncReadClient
from processors.budgets.logic import BudgetBook
from processors.budgets.reconcile import ReconcileGaveUp, reconcile_from_warehouse
from schemas.clickhouse.tables import TABLES, row_for
from schemas.events.v1 import BudgetRecord, CostEvent
from tests.conftest import free_port

pytestmark = pytest.mark.integration

TOKENS = {"finance": "fin-token", "security": "sec-token", "admin": "adm-token"}

FINANCE_PATHS = [
    "/api/showback?group_by=org",
    "/api/showback/timeseries?by=org",
    "/api/budgets",
    "/api/spend?subject=org:o&from=2020-01-01&to=2020-01-02",
    "/api/export/focus?from=2020-01-01&to=2020-01-31",
]
SECURITY_PATHS = [
    "/api/anomalies",
    "/api/enforcement",
    "/api/enforcement/history",
    "/api/requests",
    "/api/drift",
    "/api/operations",
    "/api/traces/0af7651916cd43dd8448eb211c80319c",
]


@contextmanager
def _serving(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _guarded_app(harness) -> FastAPI:
    tokens = ReadTokens({role: SecretStr(token) for role, token in TOKENS.items()})  # type: ignore[misc]
    return create_app(harness.client, tokens=tokens)


def _as(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def test_role_matrix(harness) -> None:
    with _serving(_guarded_app(harness)) as base, httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/healthz").status_code == 200  # stays open
        for path in FINANCE_PATHS + SECURITY_PATHS:
            missing = http.get(path)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert missing.json()["error"]["code"] == "invalid_api_key"
            assert http.get(path, headers=_as("not-a-token")).status_code == 401, path
            assert http.get(path, headers={"Authorization": TOKENS["admin"]}).status_code == 401
            finance = http.get(path, headers=_as(TOKENS["finance"]))
            security = http.get(path, headers=_as(TOKENS["security"]))
            admin = http.get(path, headers=_as(TOKENS["admin"]))
            assert admin.status_code == 200, (path, admin.text)
            if path in FINANCE_PATHS:
                assert (finance.status_code, security.status_code) == (200, 403), path
            else:
                assert (finance.status_code, security.status_code) == (403, 200), path
            denied = security if path in FINANCE_PATHS else finance
            assert denied.json()["error"]["code"] == "permission_denied"
        # A path nobody listed is admin-only, never open.
        assert http.get("/api/unlisted", headers=_as(TOKENS["finance"])).status_code == 403
        assert http.get("/api/unlisted", headers=_as(TOKENS["admin"])).status_code == 404


def test_no_token_configured_keeps_the_api_open(harness) -> None:
    with _serving(create_app(harness.client)) as base, httpx.Client(base_url=base) as http:
        for path in FINANCE_PATHS + SECURITY_PATHS:
            assert http.get(path).status_code == 200, path


BAD_PARAMS = [
    ("/api/showback", {"compare": "next", "from": "2026-01-01", "to": "2026-01-02"}, "compare"),
    ("/api/showback", {"compare": "previous"}, "compare"),
    ("/api/showback/timeseries", {"by": "colour"}, "by"),
    ("/api/showback/timeseries", {"by": "day"}, "by"),
    ("/api/showback/timeseries", {"granularity": "minute"}, "granularity"),
    ("/api/showback/timeseries", {"granularity": "hour"}, "granularity"),
    ("/api/showback/timeseries", {"top": "0"}, "top"),
    ("/api/budgets", {"limit": "0"}, "limit"),
    ("/api/budgets", {"budget_id": "b", "from": "last week"}, "from"),
    ("/api/anomalies", {"severity": "urgent"}, "severity"),
    ("/api/anomalies", {"limit": "5000"}, "limit"),
    ("/api/enforcement/history", {"action": "ban"}, "action"),
    ("/api/drift", {"drifted": "maybe"}, "drifted"),
    ("/api/operations", {"from": "2026-02-02", "to": "2026-02-01"}, "to"),
    ("/api/requests", {"status": "weird"}, "status"),
    ("/api/requests", {"to": "tomorrow"}, "to"),
    ("/api/export/focus", {"to": "2026-01-31"}, "from"),
    ("/api/export/focus", {"from": "2026-01-01T10:00:00Z", "to": "2026-01-31"}, "from"),
]


def test_bad_parameters_are_400_naming_the_parameter(harness) -> None:
    with (
        _serving(_guarded_app(harness)) as base,
        httpx.Client(base_url=base, headers=_as(TOKENS["admin"])) as http,
    ):
        for path, params, param in BAD_PARAMS:
            response = http.get(path, params=params)
            assert response.status_code == 400, (path, params, response.text)
            error = response.json()["error"]
            assert error["param"] == param and error["type"] == "invalid_request_error", error


async def test_budgets_reconcile_with_the_admin_token(harness, caplog) -> None:
    now = datetime.now(UTC)
    cost = CostEvent(
        request_id="r1",
        request_ts=now - timedelta(seconds=5),
        key_id="k1",
        total_cost=Decimal("1.000000000000000007"),
        price_source="test",
        priced=True,
    )
    _, row = row_for(cost)
    harness.client.insert_arrow(
        "costs",
        pa.Table.from_pylist(
            [dict(zip(TABLES["costs"].column_names, row, strict=True))], TABLES["costs"].schema
        ),
    )
    book = BudgetBook()
    book.apply(BudgetRecord(budget_id="b", subject="key:k1", period="day", limit_usd=10))
    with _serving(_guarded_app(harness)) as base:
        async with AsyncReadClient(base, TOKENS["admin"]) as read:
            updates = await reconcile_from_warehouse(book, read, timeout_s=5)
        assert book.spent("b") == cost.total_cost
        assert any(getattr(u.value, "spent_usd", None) == cost.total_cost for u in updates)

        caplog.set_level(logging.ERROR, logger="processors.budgets.reconcile")
        other = BudgetBook()
        other.apply(BudgetRecord(budget_id="b", subject="key:k1", period="day", limit_usd=10))
        async with AsyncReadClient(base) as no_token:
            await reconcile_from_warehouse(other, no_token, timeout_s=0.3, delay_s=0.1)
        assert other.spent("b") == 0
        assert "WITHOUT reconciling" in caplog.text
        # A worker restoring partitions asks to be told, and reconciles again later.
        async with AsyncReadClient(base) as no_token:
            with pytest.raises(ReconcileGaveUp):
                await reconcile_from_warehouse(
                    other, no_token, timeout_s=0.3, delay_s=0.1, raise_on_give_up=True
                )
        async with AsyncReadClient(base, TOKENS["admin"]) as read:
            await reconcile_from_warehouse(other, read, timeout_s=5, raise_on_give_up=True)
        assert other.spent("b") == cost.total_cost  # caught up

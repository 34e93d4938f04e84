"""Requests the gateway refused before any provider saw them, through the real pricer, the
real sink and chDB: showback counts them as rejected (both from spend_daily and from costs),
never as unpriced spend, and operations counts them too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from ingest.api.app import create_app as create_read_api
from processors.cost.logic import Pricer
from schemas.events.v1 import RequestEvent
from tests.integration.gateway.conftest import ServerThread

pytestmark = pytest.mark.integration


def _request(i: int, status: int, provider: str | None, error: str | None, at: datetime):
    return RequestEvent(
        request_id=f"r{i}",
        ts=at,
        ts_start=at,
        ts_end=at,
        latency_ms=3.0,
        key_id="k1",
        org="acme",
        provider=provider,
        model_requested="gpt-4o-mini",
        model_used="gpt-4o-mini" if provider else None,
        endpoint="/v1/chat/completions",
        status_code=status,
        error_type=error,
        input_tokens=120 if status == 200 else 0,
        output_tokens=30 if status == 200 else 0,
    )


def test_refusals_are_their_own_category(harness) -> None:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    requests = [
        _request(0, 200, "openai", None, at),
        _request(1, 401, None, "invalid_api_key", at),
        _request(2, 429, None, "rate_limit_exceeded", at),
        _request(3, 403, None, "blocked", at),
        _request(4, 429, "openai", "upstream_rate_limited", at),  # the provider said 429
    ]
    pricer = Pricer()
    costs = [pricer.price(r) for r in requests]
    spend = sum((c.total_cost for c in costs), Decimal(0))
    assert spend > 0
    harness.produce("requests", requests)
    harness.produce("costs", costs)
    today = at.date().isoformat()
    with (
        harness.running_sink(),
        ServerThread(create_read_api(harness.client)) as api,
        httpx.Client(base_url=api.url, timeout=10) as read,
    ):

        def showback(**params: str) -> dict:
            totals = read.get("/api/showback", params=params).json()["totals"]
            return totals if totals["requests"] == len(requests) else {}

        for params in (
            {"from": today, "to": today},
            {"from": (at - timedelta(hours=1)).isoformat()},
        ):
            totals = harness.wait_until(lambda p=params: showback(**p))
            assert totals["rejected_requests"] == 3, params
            assert totals["unpriced_requests"] == 0
            assert Decimal(totals["cost_usd"]) == spend

        by_org = read.get("/api/showback", params={"group_by": "org", "from": today}).json()
        assert [(r["org"], r["rejected_requests"]) for r in by_org["rows"]] == [("acme", 3)]

        def operations() -> dict:
            body = read.get("/api/operations", params={"from": today}).json()
            return body if body["totals"]["requests"] == len(requests) else {}

        body = harness.wait_until(operations)
        assert body["totals"]["rejected"] == 3 and body["totals"]["errors"] == 4
        refused = next(m for m in body["models"] if m["provider"] == "")
        assert refused["rejected"] == 3

"""The ingest service end to end: Kafka -> sink -> ClickHouse -> read API over HTTP."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import uvicorn

from ingest.api import create_app
from ingest.server import IngestService
from schemas.events.v1 import CostEvent, RequestEvent
from tests.conftest import free_port

pytestmark = pytest.mark.integration


TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
YESTERDAY = TODAY - timedelta(days=1)


def _events() -> tuple[list[RequestEvent], list[CostEvent]]:
    requests, costs = [], []
    for i in range(60):
        at = (TODAY if i % 2 else YESTERDAY) + timedelta(minutes=i)
        org, key = f"org-{i % 3}", f"key-{i % 4}"
        requests.append(
            RequestEvent(
                request_id=f"r{i}",
                ts=at,
                ts_start=at,
                ts_end=at,
                latency_ms=10.0,
                key_id=key,
                org=org,
                endpoint="/v1/chat/completions",
                status_code=200,
                input_tokens=100,
                output_tokens=10,
                model_used="gpt-4o",
                provider="openai",
            )
        )
        if i % 10 == 9:
            continue  # not priced yet: the request shows a null cost
        costs.append(
            CostEvent(
                request_id=f"r{i}",
                request_ts=at,
                key_id=key,
                org=org,
                team="t",
                project="p",
                provider="openai",
                model="gpt-4o" if i % 6 else "local-llm",
                input_tokens=100,
                output_tokens=10,
                total_cost=Decimal("0.000123456789") * (i + 1) if i % 6 else Decimal(0),
                price_source="test",
                priced=bool(i % 6),
            )
        )
    return requests, costs


@pytest.fixture
def service(harness):
    service = IngestService(harness.settings)
    service.start()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service.client, service.status),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield service, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    service.close()


def test_showback_and_requests_over_http(harness, service) -> None:
    _, base = service
    requests, costs = _events()
    harness.produce("requests", requests)
    harness.produce("costs", costs)
    harness.wait_until(lambda: harness.scalar("SELECT count() FROM {db}.costs") == len(costs))
    harness.wait_until(lambda: harness.scalar("SELECT count() FROM {db}.requests") == 60)

    with httpx.Client(base_url=base, timeout=10) as http:
        health = http.get("/healthz")
        assert health.status_code == 200 and health.json()["clickhouse_reachable"] is True

        expected = sum((c.total_cost for c in costs), Decimal(0))
        body = http.get("/api/showback", params={"group_by": "org,day"}).json()
        assert body["source"] == "spend_daily"
        assert Decimal(body["totals"]["cost_usd"]) == expected  # exact, not just to the cent
        assert body["totals"]["requests"] == len(costs)
        assert body["totals"]["unpriced_requests"] == sum(not c.priced for c in costs)
        by_org: dict[str, Decimal] = defaultdict(Decimal)
        for c in costs:
            by_org[c.org] += c.total_cost
        got: dict[str, Decimal] = defaultdict(Decimal)
        for row in body["rows"]:
            got[row["org"]] += Decimal(row["cost_usd"])
            assert row["day"] in (TODAY.date().isoformat(), YESTERDAY.date().isoformat())
        assert got == by_org

        # A bound inside a day reads costs FINAL; a filter narrows it.
        since = TODAY.isoformat()
        body = http.get(
            "/api/showback",
            params=[("group_by", "key"), ("group_by", "model"), ("from", since), ("org", "org-1")],
        ).json()
        assert body["source"] == "costs"
        assert Decimal(body["totals"]["cost_usd"]) == sum(
            (c.total_cost for c in costs if c.request_ts >= TODAY and c.org == "org-1"),
            Decimal(0),
        )

        bad = http.get("/api/showback", params={"group_by": "org,colour"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "group_by" and "colour" in bad.text
        bad = http.get("/api/showback", params={"from": "last tuesday"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "from"
        bad = http.get("/api/requests", params={"limit": "0"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
        bad = http.get("/api/requests", params={"since": "soon"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"

        recent = http.get("/api/requests", params={"limit": 5, "key": "key-3"}).json()
        assert recent["count"] == 5
        stamps = [row["ts"] for row in recent["requests"]]
        assert stamps == sorted(stamps, reverse=True)
        assert all(row["key_id"] == "key-3" for row in recent["requests"])
        cost_of = {c.request_id: c.total_cost for c in costs}
        for row in recent["requests"]:
            if row["request_id"] in cost_of:
                assert Decimal(row["cost_usd"]) == cost_of[row["request_id"]]
            else:
                assert row["cost_usd"] is None

        # Stored twice (a redelivery two sink consumers both took): listed once, and the
        # cost is the copy ingested last, counted once.
        listed = [row["request_id"] for row in recent["requests"]]
        priced = next(r for r in listed if r in cost_of and cost_of[r] > 0)
        db = harness.db
        for request_id in listed:
            harness.client.command(
                f"INSERT INTO {db}.requests SELECT * FROM {db}.requests "
                f"WHERE request_id = '{request_id}'"
            )
        harness.client.command(
            f"INSERT INTO {db}.costs SELECT * REPLACE (total_cost * 2 AS total_cost, "
            f"ingested_at + 1 AS ingested_at) FROM {db}.costs WHERE request_id = '{priced}'"
        )
        again = http.get("/api/requests", params={"limit": 5, "key": "key-3"}).json()
        assert [row["request_id"] for row in again["requests"]] == listed  # no duplicate
        cost = {row["request_id"]: row["cost_usd"] for row in again["requests"]}
        assert Decimal(cost[priced]) == 2 * cost_of[priced]

        # Spend of one subject over a period: what budgets reconcile from on start.
        day_start = TODAY.replace(hour=0, minute=0)
        spend = http.get(
            "/api/spend",
            params={
                "subject": "key:key-1",
                "from": day_start.isoformat(),
                "to": (day_start + timedelta(days=1)).isoformat(),
            },
        ).json()
        assert Decimal(spend["cost_usd"]) == sum(
            (c.total_cost for c in costs if c.key_id == "key-1" and c.request_ts >= day_start),
            Decimal(0),
        )
        assert spend["as_of"] is not None
        # With recent_from: the sum before it, and each cost from then on by event id.
        key_costs = [c for c in costs if c.key_id == "key-1" and c.request_ts >= day_start]
        cut = sorted(c.request_ts for c in key_costs)[len(key_costs) // 2]
        split = http.get(
            "/api/spend",
            params={
                "subject": "key:key-1",
                "from": day_start.isoformat(),
                "to": (day_start + timedelta(days=1)).isoformat(),
                "recent_from": cut.isoformat(),
            },
        ).json()
        assert split["as_of"] is not None and split["recent"]
        assert Decimal(split["cost_usd"]) == sum(
            (c.total_cost for c in key_costs if c.request_ts < cut), Decimal(0)
        )
        assert {item["event_id"]: Decimal(item["cost_usd"]) for item in split["recent"]} == {
            c.event_id: c.total_cost for c in key_costs if c.request_ts >= cut
        }
        bad = http.get(
            "/api/spend",
            params={
                "subject": "org:x",
                "from": "2000-01-01",
                "to": "2100-01-01",
                "recent_from": "x",
            },
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "recent_from"
        team = http.get(
            "/api/spend",
            params={"subject": "team:org-2/t", "from": "2000-01-01", "to": "2100-01-01"},
        ).json()
        assert Decimal(team["cost_usd"]) == sum(
            (c.total_cost for c in costs if c.org == "org-2"), Decimal(0)
        )
        for subject in ("team:org-2", "colour:blue", "key:"):
            bad = http.get(
                "/api/spend", params={"subject": subject, "from": "2000-01-01", "to": "2100-01-01"}
            )
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "subject"
        bad = http.get(
            "/api/spend", params={"subject": "org:x", "from": "2001-01-01", "to": "2000-01-01"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "to"

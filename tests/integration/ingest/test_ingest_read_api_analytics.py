"""Every analytics endpoint over real HTTP, on data that went Kafka -> sink -> ClickHouse.

The expected figures are computed here from the seeded events, exactly (Decimal money).
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import uvicorn

from ingest.api import create_app
from schemas.events.v1 import (
    Anomaly,
    BudgetRecord,
    BudgetState,
    CostEvent,
    DeadLetter,
    DriftReport,
    EnforcementDecision,
    GuardrailEvent,
    RequestEvent,
)
from tests.conftest import free_port
from tests.focus_conformance import check_header, check_row

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.replace(hour=0, minute=0, second=0)
DAY1 = TODAY - timedelta(days=2)
DAY2 = TODAY - timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass
class Seed:
    requests: list[RequestEvent] = field(default_factory=list)
    costs: list[CostEvent] = field(default_factory=list)


def _traffic() -> Seed:
    seed = Seed()
    for i in range(72):
        at = (DAY1 if i % 3 == 0 else DAY2) + timedelta(hours=i % 23, minutes=i % 60)
        attribution = {
            "key_id": f"k{i % 6}",
            "org": f"org-{i % 4}",
            "team": f"t{i % 2}",
            "project": "p",
            "user": f"u{i % 5}",
            "provider": "p1" if i % 7 < 4 else "p2",
        }
        model = "m-a" if i % 2 else "m-b"
        status = 500 if i % 9 == 0 else 429 if i % 13 == 0 else 200
        seed.requests.append(
            RequestEvent(
                request_id=f"r{i}",
                ts=at,
                ts_start=at,
                ts_end=at,
                latency_ms=float(100 + (i * 37) % 900),
                ttft_ms=float(10 + i),
                endpoint="/v1/chat/completions",
                status_code=status,
                error_type={500: "upstream_error", 429: "rate_limited"}.get(status),
                input_tokens=100 + i,
                output_tokens=10 + i,
                model_used=model,
                **attribution,
            )
        )
        priced = i % 11 != 10
        # digits down to 1e-18: any float on the way would lose them
        cost = Decimal("0.000123456789") * (i + 1) + Decimal("1e-18") * i if priced else Decimal(0)
        seed.costs.append(
            CostEvent(
                request_id=f"r{i}",
                request_ts=at,
                model=model,
                input_tokens=100 + i,
                output_tokens=10 + i,
                input_cost=cost,  # the parts sum to the total, as the pricer's do
                total_cost=cost,
                price_source="test",
                priced=priced,
                **attribution,
            )
        )
    return seed


def _total(costs: list[CostEvent]) -> Decimal:
    return sum((c.total_cost for c in costs), Decimal(0))


def _quantile(values: list[float], level: float) -> float:
    """Linear interpolation between closest ranks (quantileExactInclusive, numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * level
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
def api(harness) -> Iterator[httpx.Client]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(harness.client), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield http
    server.should_exit = True
    thread.join(10)


def _seed_everything(harness) -> Seed:
    seed = _traffic()
    harness.produce("requests", seed.requests)
    harness.produce("costs", seed.costs)
    harness.produce(
        "guardrails",
        [
            GuardrailEvent(
                request_id=f"r{i}",
                ts=DAY2 + HOUR,
                org="org-1",
                guardrail=name,
                stage="input",
                action=action,
                category=category,
            )
            for i, (name, category, action) in enumerate(
                [
                    ("pii", "email", "redact"),
                    ("pii", "email", "redact"),
                    ("secrets", "key", "block"),
                ]
            )
        ],
    )
    harness.produce(
        "dlq",
        [
            DeadLetter(original_topic="t.requests", error="bad json", stage="ingest", payload="{")
            for _ in range(2)
        ],
    )
    for record in (
        BudgetRecord(budget_id="b1", subject="team:org-0/t0", period="month", limit_usd=10),
        BudgetRecord(budget_id="b2", subject="org:org-1", period="day", limit_usd=5),
        BudgetRecord(budget_id="b3", subject="org:org-2", period="week", limit_usd=7),
    ):
        harness.produce("control", [record], key=f"budget:{record.budget_id}".encode())
    gone = BudgetRecord(budget_id="b2", subject="org:org-1", period="day", limit_usd=5)
    harness.produce(
        "control",
        [gone.model_copy(update={"deleted": True, "ts": datetime.now(UTC) + timedelta(seconds=1)})],
        b"budget:b2",
    )
    states = [
        BudgetState(
            ts=NOW - HOUR * (3 - n),
            budget_id="b1",
            subject="team:org-0/t0",
            period="month",
            period_start=TODAY.replace(day=1),
            period_end=TODAY.replace(day=28),
            spent_usd=spent,
            limit_usd=Decimal(10),
            percent_used=float(spent * 10),
            burn_rate_usd_per_hour=Decimal("0.125"),
            projected_exhaustion=NOW + timedelta(days=n + 1),
            status="soft" if n == 2 else "ok",
        )
        for n, spent in enumerate(
            [Decimal("1"), Decimal("2.000000000000000001"), Decimal("8.123456789012345678")]
        )
    ]
    for budget_id, period_days in (("b2", 1), ("b4", 7)):
        states.append(
            BudgetState(
                ts=NOW - HOUR,
                budget_id=budget_id,
                subject="org:org-1",
                period="day" if period_days == 1 else "week",
                period_start=TODAY,
                period_end=TODAY + timedelta(days=period_days),
                spent_usd=Decimal("0.5"),
                limit_usd=Decimal(5),
                percent_used=10.0,
            )
        )
    harness.produce("budgets", states)
    decided = NOW - HOUR
    harness.produce(
        "enforcement",
        [
            EnforcementDecision(
                ts=decided, subject="key:k1", action="block", reason="r", source="manual"
            ),
            EnforcementDecision(
                ts=decided, subject="key:k2", action="block", reason="r", source="budget"
            ),
            EnforcementDecision(
                ts=decided,
                subject="key:k3",
                action="throttle",
                rpm=5,
                reason="r",
                source="manual",
                expires_at=NOW - timedelta(minutes=1),
            ),
            EnforcementDecision(
                ts=decided, subject="key:k4", action="block", reason="r", source="llmjacking"
            ),
            EnforcementDecision(
                ts=decided, subject="key:k5", action="block", reason="r", source="manual"
            ),
            EnforcementDecision(
                ts=decided - HOUR,
                subject="key:k5",
                action="throttle",
                rpm=3,
                reason="r",
                source="llmjacking",
                anomaly_id="a-1",
            ),
        ],
    )
    harness.produce("enforcement", [None], key=b"budget|key:k2")  # lifts budget's block
    harness.produce("enforcement", [None], key=b"key:k4")  # no source: lifts every source
    harness.produce(
        "anomalies",
        [
            Anomaly(
                anomaly_id="a-1",
                ts=NOW - timedelta(minutes=30),
                kind="llmjacking",
                subject="key:k4",
                score=0.9,
                severity="high",
                signals=["new_country", "volume"],
                evidence={"countries": ["US", "KP"], "requests": 12},
                recommended_action="block",
            ),
            Anomaly(
                anomaly_id="a-2",
                ts=NOW - timedelta(minutes=20),
                kind="agent_loop",
                subject="session:s1",
                score=0.5,
                severity="medium",
            ),
            Anomaly(
                anomaly_id="a-3",
                ts=NOW - timedelta(minutes=10),
                kind="llmjacking",
                subject="key:k1",
                score=0.99,
                severity="critical",
            ),
        ],
    )
    window = {"window_start": NOW - 2 * HOUR, "window_end": NOW - HOUR}
    harness.produce(
        "drift",
        [
            DriftReport(
                scope="app:a/model:m-a",
                metric="prompt_chars",
                statistic="psi",
                value=0.4,
                threshold=0.25,
                drifted=True,
                reference_start=NOW - 3 * HOUR,
                reference_end=NOW - 2 * HOUR,
                **window,
            ),
            DriftReport(
                scope="app:a/model:m-a",
                metric="latency_ms",
                statistic="ks",
                value=0.2,
                threshold=0.01,
                drifted=False,
                **window,
            ),
        ],
    )
    expected = {
        "requests": 72,
        "costs": 72,
        "guardrail_events": 3,
        "dead_letters": 2,
        "control_records": 4,
        "budget_states": 5,
        "enforcement_decisions": 8,
        "anomalies": 3,
        "drift_reports": 2,
    }
    with harness.running_sink():
        for table, count in expected.items():
            harness.wait_until(
                lambda t=table, n=count: harness.scalar(f"SELECT count() FROM {{db}}.{t}") == n
            )
    return seed


def test_every_endpoint_answers_exactly(harness, api: httpx.Client) -> None:
    seed = _seed_everything(harness)
    _check_showback(api, seed.costs)
    _check_timeseries(api, seed.costs)
    _check_budgets(api)
    _check_enforcement(api)
    _check_anomalies_and_drift(api)
    _check_operations(api, seed.requests)
    _check_requests(api, seed)
    _check_focus(api, seed.costs)


def _get(api: httpx.Client, path: str, **params: object) -> dict:
    response = api.get(path, params=params)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return response.json()


def _check_showback(api: httpx.Client, costs: list[CostEvent]) -> None:
    # `user` is a spend_daily dimension (migration 0013): whole days by user, exact.
    body = _get(api, "/api/showback", group_by="user", **{"from": DAY1.date().isoformat()})
    assert body["source"] == "spend_daily"
    by_user: dict[str, Decimal] = defaultdict(Decimal)
    for c in costs:
        by_user[c.user] += c.total_cost
    assert {row["user"]: Decimal(row["cost_usd"]) for row in body["rows"]} == by_user
    assert Decimal(body["totals"]["cost_usd"]) == _total(costs)

    body = _get(api, "/api/showback", user="u3", group_by="model")
    assert Decimal(body["totals"]["cost_usd"]) == _total([c for c in costs if c.user == "u3"])

    # DAY2 compared with the day before it (DAY1), per org.
    day2 = DAY2.date().isoformat()
    body = _get(
        api, "/api/showback", group_by="org", compare="previous", **{"from": day2, "to": day2}
    )
    assert body["source"] == "spend_daily"
    current: dict[str, Decimal] = defaultdict(Decimal)
    before: dict[str, Decimal] = defaultdict(Decimal)
    for c in costs:
        (current if c.request_ts >= DAY2 else before)[c.org] += c.total_cost
    for row in body["rows"]:
        assert Decimal(row["cost_usd"]) == current[row["org"]]
        assert Decimal(row["previous_cost_usd"]) == before[row["org"]]
        assert Decimal(row["change_usd"]) == current[row["org"]] - before[row["org"]]
    previous = body["previous"]
    assert previous["from"].startswith(DAY1.date().isoformat())
    assert Decimal(previous["totals"]["cost_usd"]) == sum(before.values())
    assert Decimal(previous["change_usd"]) == sum(current.values()) - sum(before.values())
    changes = [abs(Decimal(row["change_usd"])) for row in previous["movers"]]
    assert changes == sorted(changes, reverse=True) and len(changes) == len(current)

    bad = api.get("/api/showback", params={"group_by": "org,day", "compare": "previous"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "compare"


def _check_timeseries(api: httpx.Client, costs: list[CostEvent]) -> None:
    body = _get(
        api,
        "/api/showback/timeseries",
        by="model",
        granularity="day",
        **{"from": DAY1.date().isoformat(), "to": DAY2.date().isoformat()},
    )
    assert body["source"] == "spend_daily" and body["granularity"] == "day"
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    requests: Counter[tuple[str, str]] = Counter()
    for c in costs:
        day = c.request_ts.date().isoformat()
        expected[(day, c.model or "")] += c.total_cost
        requests[(day, c.model or "")] += 1
    got = {(p["t"][:10], p["group"]): Decimal(p["cost_usd"]) for p in body["points"]}
    assert got == expected
    assert {(p["t"][:10], p["group"]): p["requests"] for p in body["points"]} == requests

    # top=1 folds the smaller model into "(other)"; hours for a one-day range (auto).
    day2 = DAY2.date().isoformat()
    body = _get(api, "/api/showback/timeseries", by="model", top=1, **{"from": day2, "to": day2})
    assert body["granularity"] == "hour" and body["source"] == "costs"
    assert body["series"][-1] == "(other)" and len(body["series"]) == 2
    hourly: dict[str, Decimal] = defaultdict(Decimal)
    for c in costs:
        if c.request_ts >= DAY2:
            hourly[c.request_ts.replace(minute=0).isoformat().replace("+00:00", "Z")] += (
                c.total_cost
            )
    got_hourly: dict[str, Decimal] = defaultdict(Decimal)
    for point in body["points"]:
        got_hourly[point["t"]] += Decimal(point["cost_usd"])
    assert got_hourly == hourly


def _check_budgets(api: httpx.Client) -> None:
    body = _get(api, "/api/budgets")
    budgets = {b["budget_id"]: b for b in body["budgets"]}
    assert set(budgets) == {"b1", "b3", "b4"}  # b2 was deleted
    b1 = budgets["b1"]
    assert b1["subject"] == "team:org-0/t0" and b1["soft_pct"] == 80.0
    assert Decimal(b1["state"]["spent_usd"]) == Decimal("8.123456789012345678")
    assert b1["state"]["status"] == "soft" and Decimal(b1["limit_usd"]) == 10
    assert b1["state"]["projected_exhaustion"] is not None
    assert budgets["b3"]["state"] is None  # no state yet: spent unknown, not zero
    assert budgets["b4"]["period"] == "week" and budgets["b4"]["soft_pct"] is None

    body = _get(api, "/api/budgets", budget_id="b1")
    spent = [Decimal(s["spent_usd"]) for s in body["history"]]
    assert spent == [Decimal(1), Decimal("2.000000000000000001"), Decimal("8.123456789012345678")]
    body = _get(api, "/api/budgets", budget_id="b1", limit=1)
    assert [Decimal(s["spent_usd"]) for s in body["history"]] == spent[-1:]


def _check_enforcement(api: httpx.Client) -> None:
    body = _get(api, "/api/enforcement")
    current = {(d["subject"], d["source"]) for d in body["decisions"]}
    assert current == {("key:k1", "manual"), ("key:k5", "manual"), ("key:k5", "llmjacking")}
    assert body["count"] == 3
    body = _get(api, "/api/enforcement", source="llmjacking")
    assert [d["anomaly_id"] for d in body["decisions"]] == ["a-1"]
    history = _get(api, "/api/enforcement/history")
    assert history["count"] == 8
    lifts = _get(api, "/api/enforcement/history", action="lift")["decisions"]
    assert {(d["subject"], d["source"]) for d in lifts} == {("key:k2", "budget"), ("key:k4", "*")}
    assert _get(api, "/api/enforcement/history", subject="key:k2")["count"] == 2


def _check_anomalies_and_drift(api: httpx.Client) -> None:
    body = _get(api, "/api/anomalies", kind="llmjacking")
    assert [a["anomaly_id"] for a in body["anomalies"]] == ["a-3", "a-1"]  # newest first
    first = body["anomalies"][1]
    assert first["evidence"] == {"countries": ["US", "KP"], "requests": 12}
    assert first["signals"] == ["new_country", "volume"]
    body = _get(api, "/api/anomalies", severity="medium,critical")
    assert [a["anomaly_id"] for a in body["anomalies"]] == ["a-3", "a-2"]
    assert _get(api, "/api/anomalies", subject="session:s1")["count"] == 1

    drifted = _get(api, "/api/drift", drifted="true")["reports"]
    assert [(r["metric"], r["value"]) for r in drifted] == [("prompt_chars", 0.4)]
    assert drifted[0]["reference_start"] is not None
    assert _get(api, "/api/drift", metric="latency_ms")["reports"][0]["drifted"] is False
    assert _get(api, "/api/drift", scope="app:b/model:x")["count"] == 0


def _check_operations(api: httpx.Client, requests: list[RequestEvent]) -> None:
    body = _get(api, "/api/operations", **{"from": DAY1.date().isoformat()})
    totals = body["totals"]
    errors = [r for r in requests if r.status_code >= 400]
    assert totals["requests"] == len(requests) and totals["errors"] == len(errors)
    assert totals["error_rate"] == pytest.approx(len(errors) / len(requests))
    by_model: dict[tuple[str, str], list[RequestEvent]] = defaultdict(list)
    for r in requests:
        by_model[(r.model_used or "", r.provider or "")].append(r)
    assert {(m["model"], m["provider"]) for m in body["models"]} == set(by_model)
    for row in body["models"]:
        group = by_model[(row["model"], row["provider"])]
        latencies = [r.latency_ms for r in group]
        assert row["requests"] == len(group)
        assert row["latency_p50_ms"] == pytest.approx(_quantile(latencies, 0.5))
        assert row["latency_p95_ms"] == pytest.approx(_quantile(latencies, 0.95))
        assert row["latency_p99_ms"] == pytest.approx(_quantile(latencies, 0.99))
        ok = [r for r in group if r.status_code < 400]
        assert row["output_tokens_per_s"] == pytest.approx(
            sum(r.output_tokens for r in ok) * 1000 / sum(r.latency_ms for r in ok)
        )
    kinds = Counter((r.error_type, r.status_code) for r in errors)
    assert {(e["error_type"], e["status_code"]): e["count"] for e in body["errors"]} == kinds
    assert {
        (g["guardrail"], g["category"], g["action"]): g["count"] for g in body["guardrails"]
    } == {
        ("pii", "email", "redact"): 2,
        ("secrets", "key", "block"): 1,
    }
    assert body["dead_letters"] == [{"original_topic": "t.requests", "stage": "ingest", "count": 2}]
    narrowed = _get(api, "/api/operations", model="m-a")
    assert narrowed["totals"]["requests"] == sum(r.model_used == "m-a" for r in requests)
    assert narrowed["guardrails"] == []  # guardrail events carry no model


def _check_requests(api: httpx.Client, seed: Seed) -> None:
    body = _get(api, "/api/requests", user="u2", status="error", limit=1000)
    expected = {r.request_id for r in seed.requests if r.user == "u2" and r.status_code >= 400}
    assert {row["request_id"] for row in body["requests"]} == expected
    day2 = DAY2.date().isoformat()
    body = _get(api, "/api/requests", limit=1000, **{"from": day2, "to": day2})
    assert body["count"] == sum(DAY2 <= r.ts < TODAY for r in seed.requests)
    cost_of = {c.request_id: c.total_cost for c in seed.costs}
    assert all(Decimal(row["cost_usd"]) == cost_of[row["request_id"]] for row in body["requests"])


def _check_focus(api: httpx.Client, costs: list[CostEvent]) -> None:
    span = {"from": DAY1.date().isoformat(), "to": DAY2.date().isoformat()}
    response = api.get("/api/export/focus", params=span)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    header = next(csv.reader(io.StringIO(response.text)))
    assert check_header(header) == []
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [problems for row in rows if (problems := check_row(row))] == []
    billed = sum((Decimal(row["BilledCost"]) for row in rows), Decimal(0))
    assert (
        billed == _total(costs) == Decimal(_get(api, "/api/showback", **span)["totals"]["cost_usd"])
    )
    priced = [c for c in costs if c.priced]
    groups = {
        (c.request_ts.date(), c.org, c.team, c.project, c.key_id, c.provider, c.model)
        for c in priced
    }
    assert len(rows) == 2 * len(groups)  # an input and an output row each
    row = rows[0]
    assert row["ChargeCategory"] == "Usage" and row["ConsumedUnit"] == "Tokens"
    assert row["BillingPeriodStart"][:8] == row["ChargePeriodStart"][:8]  # the same month
    assert set(json.loads(row["Tags"])) == {"org", "team", "project", "key"}
    tokens = sum(int(r["ConsumedQuantity"]) for r in rows)
    assert tokens == sum(c.input_tokens + c.output_tokens for c in priced)
    org1 = api.get("/api/export/focus", params={**span, "org": "org-1"})
    billed = sum(
        (Decimal(r["BilledCost"]) for r in csv.DictReader(io.StringIO(org1.text))), Decimal(0)
    )
    assert billed == _total([c for c in costs if c.org == "org-1"])

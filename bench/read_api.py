"""Read API speed: every dashboard page's queries over 1,000,000 requests in ClickHouse.

Seeds N RequestEvents and their CostEvents (plus budget states, anomalies, decisions,
drift reports, guardrail events and dead letters) straight into a temp chDB database with
columnar Arrow inserts in the ingest table layout (schemas.clickhouse.tables; Kafka is bypassed, the
spend_daily materialized view fills as in production), then calls each endpoint through
the FastAPI app (real ASGI request handling, httpx transport) and prints a table of
median / max latency per endpoint. Exits non-zero when a median reaches the target.

    .venv/bin/python bench/read_api.py [--requests 1000000] [--days 30] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi.testclient import TestClient

from ingest.api import create_app
from meterline.settings import Settings
from meterline.warehouse import SharedClient, connect, migrate
from schemas.clickhouse.tables import TABLES, TableSpec

TARGET_MS = 1000.0
CHUNK = 20_000  # rows per insert: the sink's batch size, so parts look like production's
ORGS, TEAMS, PROJECTS, KEYS, USERS = 5, 20, 50, 200, 1000
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "llama-70b", "mistral"]
PROVIDERS = ["openai", "anthropic", "self-hosted"]


def _names(prefix: str, count: int) -> pa.Array:
    return pa.array([f"{prefix}-{i}" for i in range(count)])


def _pick(values: pa.Array | list[str], index: np.ndarray) -> pa.Array:
    values = values if isinstance(values, pa.Array) else pa.array(values)
    return values.take(pa.array(index))


def _table(spec: TableSpec, n: int, given: dict[str, Any]) -> pa.Table:
    """A whole table's columns: the given ones, empty/zero values for the rest."""
    arrays = []
    for name, kind in spec.columns:
        if name in given:
            value = given[name]
            arrays.append(value if isinstance(value, pa.Array) else pa.array(value, kind))
        elif pa.types.is_string(kind):
            arrays.append(pa.repeat(pa.scalar("", kind), n))
        elif pa.types.is_list(kind):
            arrays.append(
                pa.ListArray.from_arrays(np.zeros(n + 1, np.int32), pa.array([], pa.string()))
            )
        elif pa.types.is_map(kind):
            empty = pa.array([], pa.string())
            arrays.append(pa.MapArray.from_arrays(np.zeros(n + 1, np.int32), empty, empty))
        elif pa.types.is_boolean(kind):
            arrays.append(pa.repeat(pa.scalar(False), n))
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
            arrays.append(pa.array(np.zeros(n), kind))
        else:
            arrays.append(pa.nulls(n, kind))
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def _insert(client: SharedClient, spec: TableSpec, table: pa.Table) -> None:
    for start in range(0, table.num_rows, CHUNK):
        client.insert_arrow(spec.name, table.slice(start, CHUNK))


def _times(start: datetime, seconds: float, n: int, rng: np.random.Generator) -> pa.Array:
    ms = int(start.timestamp() * 1000) + np.sort(rng.integers(0, int(seconds * 1000), n))
    return pa.array(ms.astype("datetime64[ms]"), pa.timestamp("ms", tz="UTC"))


def _money(values: np.ndarray) -> pa.Array:
    """Integer pico-dollars as exact Decimal(38, 18)."""
    return pa.array([Decimal(int(v)).scaleb(-12) for v in values], pa.decimal128(38, 18))


def seed(client: SharedClient, n: int, days: int, now: datetime) -> dict[str, int]:
    rng = np.random.default_rng(7)
    start = now - timedelta(days=days)
    ts = _times(start, days * 86400, n, rng)
    key = rng.integers(0, KEYS, n)
    model = rng.integers(0, len(MODELS), n)
    ids = pa.array([f"req-{i}" for i in range(n)])
    tokens_in = rng.integers(50, 4000, n)
    tokens_out = rng.integers(10, 1000, n)
    status = np.where(rng.random(n) < 0.02, 500, np.where(rng.random(n) < 0.01, 429, 200))
    attribution = {
        "key_id": _pick(_names("key", KEYS), key),
        "org": _pick(_names("org", ORGS), key % ORGS),
        "team": _pick(_names("team", TEAMS), key % TEAMS),
        "project": _pick(_names("project", PROJECTS), key % PROJECTS),
        "user": _pick(_names("user", USERS), rng.integers(0, USERS, n)),
        "provider": _pick(PROVIDERS, model % len(PROVIDERS)),
    }
    latency = rng.gamma(2.0, 400.0, n)
    requests = _table(
        TABLES["requests"],
        n,
        {
            "event_id": pa.array([f"ev-req-{i}" for i in range(n)]),
            "ts": ts,
            "source": pa.repeat(pa.scalar("gateway"), n),
            "schema_version": pa.array(np.ones(n, np.uint16)),
            "request_id": ids,
            "ts_start": ts,
            "ts_end": ts,
            "latency_ms": pa.array(latency),
            "ttft_ms": pa.array(latency * 0.2),
            "model_requested": _pick(MODELS, model),
            "model_used": _pick(MODELS, model),
            "endpoint": pa.repeat(pa.scalar("/v1/chat/completions"), n),
            "status_code": pa.array(status.astype(np.int32)),
            "error_type": pa.array(np.where(status == 200, "", "upstream_error")),
            "input_tokens": pa.array(tokens_in),
            "output_tokens": pa.array(tokens_out),
            **attribution,
        },
    )
    _insert(client, TABLES["requests"], requests)
    del requests
    cost = tokens_in * 2_500_000 + tokens_out * 10_000_000  # pico-dollars
    costs = _table(
        TABLES["costs"],
        n,
        {
            "event_id": pa.array([f"ev-cost-{i}" for i in range(n)]),
            "ts": ts,
            "source": pa.repeat(pa.scalar("processors.cost"), n),
            "schema_version": pa.array(np.ones(n, np.uint16)),
            "request_id": ids,
            "source_type": pa.repeat(pa.scalar("request"), n),
            "request_ts": ts,
            "model": _pick(MODELS, model),
            "input_tokens": pa.array(tokens_in),
            "output_tokens": pa.array(tokens_out),
            "total_cost": _money(cost),
            "currency": pa.repeat(pa.scalar("USD"), n),
            "price_source": pa.repeat(pa.scalar("genai-prices@bench"), n),
            "priced": pa.repeat(pa.scalar(True), n),
            **attribution,
        },
    )
    _insert(client, TABLES["costs"], costs)
    del costs
    return {"requests": n, "costs": n, **_seed_derived(client, rng, now, days)}


def _seed_derived(
    client: SharedClient, rng: np.random.Generator, now: datetime, days: int
) -> dict[str, int]:
    span = days * 86400
    start = now - timedelta(days=days)
    counts = {}
    # One BudgetState per cost in production: 50 budgets, 500k states.
    m, budgets = 500_000, 50
    bid = rng.integers(0, budgets, m)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    stamp = pa.timestamp("ms", tz="UTC")
    _insert(
        client,
        TABLES["budget_states"],
        _table(
            TABLES["budget_states"],
            m,
            {
                "event_id": pa.array([f"ev-bs-{i}" for i in range(m)]),
                "ts": _times(start, span, m, rng),
                "schema_version": pa.array(np.ones(m, np.uint16)),
                "budget_id": _pick(_names("budget", budgets), bid),
                "subject": _pick(_names("org:org", budgets), bid),
                "period": pa.repeat(pa.scalar("month"), m),
                "period_start": pa.repeat(pa.scalar(month, stamp), m),
                "period_end": pa.repeat(pa.scalar(month + timedelta(days=31), stamp), m),
                "spent_usd": _money(rng.integers(0, 10**14, m)),
                "limit_usd": _money(np.full(m, 10**14)),
                "percent_used": pa.array(rng.random(m) * 100),
                "burn_rate_usd_per_hour": _money(rng.integers(0, 10**12, m)),
                "status": pa.repeat(pa.scalar("ok"), m),
            },
        ),
    )
    counts["budget_states"] = m
    for name, rows, given in (
        (
            "anomalies",
            20_000,
            lambda k: {
                "anomaly_id": pa.array([f"an-{i}" for i in range(k)]),
                "kind": _pick(["llmjacking", "agent_loop", "drift"], rng.integers(0, 3, k)),
                "subject": _pick(_names("key:key", KEYS), rng.integers(0, KEYS, k)),
                "severity": _pick(["low", "medium", "high", "critical"], rng.integers(0, 4, k)),
                "evidence": pa.repeat(pa.scalar('{"requests": 12}'), k),
                "recommended_action": pa.repeat(pa.scalar("alert"), k),
            },
        ),
        (
            "enforcement_decisions",
            20_000,
            lambda k: {
                "subject": _pick(_names("key:key", KEYS), rng.integers(0, KEYS, k)),
                "action": _pick(["block", "throttle", "lift"], rng.integers(0, 3, k)),
                "reason": pa.repeat(pa.scalar("bench"), k),
                "source": _pick(["budget", "manual", "llmjacking"], rng.integers(0, 3, k)),
                "decided_at": _times(start, span, k, rng),
            },
        ),
        (
            "drift_reports",
            20_000,
            lambda k: {
                "scope": _pick(_names("app:a/model", 30), rng.integers(0, 30, k)),
                "metric": _pick(["prompt_chars", "latency_ms"], rng.integers(0, 2, k)),
                "statistic": pa.repeat(pa.scalar("psi"), k),
                "drifted": pa.array(rng.random(k) < 0.1),
                "window_start": _times(start, span, k, rng),
                "window_end": _times(start, span, k, rng),
            },
        ),
        (
            "guardrail_events",
            100_000,
            lambda k: {
                "request_id": pa.array([f"req-{i}" for i in range(k)]),
                "guardrail": _pick(["pii", "secrets", "injection"], rng.integers(0, 3, k)),
                "category": _pick(["email", "api_key", "jailbreak"], rng.integers(0, 3, k)),
                "action": _pick(["monitor", "redact", "block"], rng.integers(0, 3, k)),
                "org": _pick(_names("org", ORGS), rng.integers(0, ORGS, k)),
            },
        ),
        (
            "dead_letters",
            5_000,
            lambda k: {
                "original_topic": pa.repeat(pa.scalar("meterline.requests"), k),
                "error": pa.repeat(pa.scalar("bad json"), k),
                "stage": pa.repeat(pa.scalar("ingest"), k),
            },
        ),
    ):
        spec = TABLES[name]
        columns = {
            "event_id": pa.array([f"ev-{name}-{i}" for i in range(rows)]),
            "ts": _times(start, span, rows, rng),
            **given(rows),
        }
        if "schema_version" in spec.column_names:
            columns["schema_version"] = pa.array(np.ones(rows, np.uint16))
        _insert(client, spec, _table(spec, rows, columns))
        counts[name] = rows
    return counts


def _cases(now: datetime, days: int) -> list[tuple[str, str, dict[str, Any]]]:
    today = now.date()
    month = (today - timedelta(days=days - 1)).isoformat()
    week = (today - timedelta(days=6)).isoformat()
    yesterday = (today - timedelta(days=1)).isoformat()
    last = {"from": month, "to": today.isoformat()}
    return [
        ("showback", "/api/showback", {"group_by": "org,day", **last}),
        ("showback", "/api/showback", {"group_by": "team,model", **last}),
        ("showback", "/api/showback", {"group_by": "key", **last}),
        (
            "showback",
            "/api/showback",
            {"group_by": "org", "compare": "previous", "from": week, "to": today.isoformat()},
        ),
        ("showback", "/api/showback", {"group_by": "project", "from": now.isoformat()[:13]}),
        ("showback", "/api/showback", {"group_by": "user", **last}),
        ("showback", "/api/showback/timeseries", {"by": "model", **last}),
        ("showback", "/api/showback/timeseries", {"by": "org", "from": yesterday}),
        ("budgets", "/api/budgets", {}),
        ("budgets", "/api/budgets", {"budget_id": "budget-7", "limit": 1000}),
        ("budgets", "/api/spend", {"subject": "team:org-1/team-1", **last}),
        ("security", "/api/anomalies", {"severity": "high,critical"}),
        ("security", "/api/enforcement", {}),
        ("security", "/api/enforcement/history", {"subject": "key:key-3"}),
        ("security", "/api/requests", {"limit": 100}),
        ("security", "/api/requests", {"limit": 100, "key": "key-42", "status": "error"}),
        ("operations", "/api/operations", {"from": yesterday}),
        ("operations", "/api/operations", {"from": week}),
        ("operations", "/api/operations", {}),
        ("drift", "/api/drift", {"drifted": "true"}),
        ("export", "/api/export/focus", last),
    ]


def _time(call: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    call()  # warm-up (first-query compilation, caches)
    laps = []
    result = None
    for _ in range(runs):
        began = time.perf_counter()
        result = call()
        laps.append((time.perf_counter() - began) * 1000)
    return statistics.median(laps), max(laps), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="meterline-bench-") as tmp:
        settings = Settings(clickhouse_url=f"chdb://{tmp}", clickhouse_database="bench")
        raw = connect(settings)
        migrate(raw, "bench")
        client = SharedClient(raw, "bench")
        began = time.perf_counter()
        counts = seed(client, args.requests, args.days, now)
        print(
            f"seeded in {time.perf_counter() - began:.1f}s: "
            + ", ".join(f"{name} {count:,}" for name, count in counts.items())
        )
        slow = []
        with TestClient(create_app(client)) as http:
            print("\n| page | request | median ms | max ms | answer |")
            print("|---|---|---|---|---|")
            for page, path, params in _cases(now, args.days):
                median, worst, response = _time(
                    lambda p=path, q=params: http.get(p, params=q), args.runs
                )
                assert response.status_code == 200, (path, response.text)
                size = f"{len(response.content):,} B"
                query = "&".join(f"{k}={v}" for k, v in params.items())
                print(f"| {page} | `{path}?{query}` | {median:.0f} | {worst:.0f} | {size} |")
                if median >= TARGET_MS:
                    slow.append(path)
        client.close()
    if slow:
        print(f"\nslower than {TARGET_MS:.0f} ms: {slow}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

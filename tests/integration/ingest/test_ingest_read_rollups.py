"""The read API's rollups (migration 0013) answer what the raw rows answer: operations from
requests_daily (counts and sums exact, t-digest percentiles close), showback by user from
spend_daily, and both refilled from the raw rows by rebuild_aggregates."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from ingest.api.operations import operations
from ingest.api.showback import parse_showback, run_showback
from ingest.sink.clickhouse import ClickHouseSink
from meterline.warehouse import SharedClient, connect, migrate, rebuild_aggregates
from schemas.clickhouse.tables import row_for
from schemas.events.v1 import CostEvent, RequestEvent
from tests.conftest import unique

pytestmark = pytest.mark.integration

TODAY = datetime.combine(datetime.now(UTC).date(), time(0), tzinfo=UTC)
START, END = TODAY - timedelta(days=3), TODAY + timedelta(days=1)
MODELS = [("gpt-4o", "openai"), ("claude-haiku", "anthropic"), ("", "")]  # "": refused
NEVER = 10**12  # rollup_from that keeps operations on the raw rows


def _requests(n: int) -> list[RequestEvent]:
    rng = random.Random(5)
    events = []
    for i in range(n):
        at = START + timedelta(minutes=rng.randrange(4 * 24 * 60))
        model, provider = MODELS[i % 3]
        status = 429 if not provider else rng.choice([200, 200, 200, 500])
        latency = rng.uniform(20, 3000)
        events.append(
            RequestEvent(
                request_id=f"req-{i}",
                ts=at,
                ts_start=at,
                ts_end=at + timedelta(milliseconds=latency),
                latency_ms=latency,
                ttft_ms=latency / 4 if i % 5 else None,
                key_id=f"key-{i % 4}",
                org=f"org-{i % 2}",
                provider=provider,
                model_used=model,
                endpoint="/v1/chat/completions",
                status_code=status,
                error_type="" if status == 200 else "upstream_error",
                input_tokens=rng.randrange(1000),
                output_tokens=rng.randrange(300),
                cache=rng.choice([None, "miss", "hit", "semantic_hit"]),
            )
        )
    return events


@pytest.fixture
def client(make_settings, chdb_url) -> SharedClient:
    settings = make_settings(clickhouse_url=chdb_url, clickhouse_database=unique("db_"))
    shared = SharedClient(connect(settings), settings.clickhouse_database)
    migrate(shared.client, settings.clickhouse_database)
    return shared


def _store(client: SharedClient, events: list) -> None:
    sink = ClickHouseSink(client)
    sink.setup()
    for event in events:
        sink.add(*row_for(event))
    sink.flush()


def test_operations_from_the_rollup_equal_the_raw_rows(client: SharedClient) -> None:
    _store(client, _requests(1200))
    for filters in ({}, {"org": "org-1"}, {"model": "gpt-4o", "provider": "openai"}):
        raw = operations(client, start=START, end=END, filters=filters, rollup_from=NEVER)
        daily = operations(client, start=START, end=END, filters=filters, rollup_from=1)
        assert raw.totals.requests > 100
        assert daily.errors == raw.errors and daily.cache == raw.cache
        assert [(m.model, m.provider) for m in daily.models] == [
            (m.model, m.provider) for m in raw.models
        ]
        for got, want in zip([daily.totals, *daily.models], [raw.totals, *raw.models], strict=True):
            exact = ("requests", "errors", "rejected", "input_tokens", "output_tokens")
            assert [getattr(got, f) for f in exact] == [getattr(want, f) for f in exact]
            assert got.error_rate == pytest.approx(want.error_rate)
            assert got.output_tokens_per_s == pytest.approx(want.output_tokens_per_s)
            for name in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms"):
                value, expected = getattr(got, name), getattr(want, name)
                assert (value is None) == (expected is None), name
                if expected is not None:
                    assert value == pytest.approx(expected, rel=0.1, abs=30), name

    # Which source answered: the rollup keeps its rows when the raw ones are gone.
    counted = operations(client, start=START, end=END, filters={}, rollup_from=1).totals.requests
    client.command(f"TRUNCATE TABLE {client.database}.requests")
    assert operations(client, start=START, end=END, filters={}, rollup_from=1).totals.requests == (
        counted
    )
    # A key filter, a bound inside a day or too few requests: the raw rows answer.
    for start, filters, rollup_from in (
        (START, {"key": "key-1"}, 1),
        (START + timedelta(hours=1), {}, 1),
        (START, {}, counted + 1),
    ):
        answer = operations(client, start=start, end=END, filters=filters, rollup_from=rollup_from)
        assert answer.totals.requests == 0


def test_showback_by_user_reads_spend_daily_exactly_and_the_rebuild_refills(
    client: SharedClient,
) -> None:
    rng = random.Random(8)
    costs = [
        CostEvent(
            request_id=f"req-{i}",
            request_ts=START + timedelta(minutes=rng.randrange(3 * 24 * 60)),
            key_id=f"key-{i % 6}",
            user=f"user-{i % 6 // 2}",  # a key's owner: two keys per user
            org="acme",
            provider="openai",
            model="gpt-4o",
            input_tokens=10,
            output_tokens=5,
            total_cost=Decimal(rng.randint(1, 10**9)) / Decimal(10**12),
            price_source="genai-prices@test",
            priced=True,
        )
        for i in range(300)
    ]
    _store(client, costs)
    expected: dict[str, Decimal] = {}
    for cost in costs:
        expected[cost.user] = expected.get(cost.user, Decimal(0)) + cost.total_cost

    def by_user(start: str, **filters: str) -> tuple[str, dict[str, Decimal]]:
        answer = run_showback(client, parse_showback(["user"], start, None, filters))
        return answer.source, {row.user: Decimal(row.cost_usd) for row in answer.rows}

    day = START.date().isoformat()
    assert by_user(day) == ("spend_daily", expected)
    assert by_user(day, user="user-1") == ("spend_daily", {"user-1": expected["user-1"]})
    assert by_user(f"{day}T00:00:00.001Z")[0] == "costs"  # inside a day: costs FINAL

    rollups = (
        f"SELECT (SELECT sum(cost_usd) FROM {client.database}.spend_daily), "
        f"(SELECT sum(requests) FROM {client.database}.requests_daily)"
    )
    before = client.query_rows(rollups)[0]
    client.command(f"TRUNCATE TABLE {client.database}.spend_daily")
    rebuild_aggregates(client.client, client.database)
    assert client.query_rows(rollups)[0] == before == (sum(expected.values()), 0)
    assert by_user(day) == ("spend_daily", expected)

"""Migrations and aggregates against the real ClickHouse engine (chDB)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ingest.sink.clickhouse import ClickHouseSink
from meterline.warehouse import (
    SharedClient,
    WarehouseError,
    connect,
    load_migrations,
    migrate,
    rebuild_aggregates,
    repair_recent_rollups,
    validate_identifier,
)
from schemas.clickhouse.tables import TABLES, row_for
from schemas.events.v1 import CostEvent

pytestmark = pytest.mark.integration


@pytest.fixture
def warehouse(make_settings, chdb_url):
    settings = make_settings(clickhouse_url=chdb_url)
    return settings, connect(settings)


def test_migrations_apply_once(warehouse) -> None:
    settings, client = warehouse
    names = [m.name for m in load_migrations()]
    assert names == sorted(names) and names
    assert migrate(client, settings.clickhouse_database) == names
    assert migrate(client, settings.clickhouse_database) == []  # idempotent re-run
    tables = {
        row[0]
        for row in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String}",
            parameters={"db": settings.clickhouse_database},
        ).result_rows
    }
    assert set(TABLES) <= tables
    assert {"spend_daily", "spend_daily_mv", "control_current", "schema_migrations"} <= tables


def test_database_name_is_validated() -> None:
    with pytest.raises(WarehouseError):
        validate_identifier("x; DROP DATABASE meterline")


def _costs(count: int) -> list[CostEvent]:
    rng = random.Random(3)
    now = datetime.now(UTC)
    return [
        CostEvent(
            request_id=f"r{i}",
            request_ts=now - timedelta(days=i % 4),
            key_id=f"k{i % 3}",
            org=f"o{i % 2}",
            model="m",
            provider="p",
            input_tokens=i,
            total_cost=Decimal(rng.randint(0, 10**8)) / Decimal(10**10),
            price_source="test",
            priced=i % 7 != 0,
        )
        for i in range(count)
    ]


def test_every_table_is_what_the_contract_derives(warehouse) -> None:
    """After `migrate`, each table has exactly the columns, of exactly the types, that
    schemas.clickhouse.tables derives from the models' Column declarations (plus the
    insert time ClickHouse fills itself): a migration and a model cannot disagree."""
    settings, client = warehouse
    migrate(client, settings.clickhouse_database)
    for spec in TABLES.values():
        actual = {
            name: type_
            for name, type_ in client.query(
                "SELECT name, type FROM system.columns "
                "WHERE database = {db:String} AND table = {t:String} ORDER BY position",
                parameters={"db": settings.clickhouse_database, "t": spec.name},
            ).result_rows
        }
        assert actual.pop("ingested_at") == "DateTime64(3, 'UTC')", spec.name
        assert actual == dict(spec.clickhouse_types), spec.name


def test_rebuild_aggregates_reproduces_spend_daily(warehouse) -> None:
    settings, client = warehouse
    db = settings.clickhouse_database
    migrate(client, db)
    shared = SharedClient(client, db)
    sink = ClickHouseSink(shared)
    events = _costs(500)
    for event in events:
        sink.add(*row_for(event))
    sink.flush()
    snapshot_sql = (
        f"SELECT day, org, team, project, key_id, provider, model, priced, sum(cost_usd), "
        f"sum(input_tokens), sum(requests), sum(unpriced_requests) FROM {db}.spend_daily "
        "GROUP BY ALL ORDER BY ALL"
    )
    from_view = client.query(snapshot_sql).result_rows
    assert sum(row[8] for row in from_view) == sum(e.total_cost for e in events)

    # A duplicate that slips past the sink (e.g. a crash between insert and commit with
    # dedupe off) is counted twice by the view; the rebuild repairs it from costs FINAL.
    raw = ClickHouseSink(shared, dedupe=False)
    for event in events[:50]:
        raw.add(*row_for(event))
    raw.flush()
    assert client.query(snapshot_sql).result_rows != from_view

    rows = rebuild_aggregates(client, db)
    assert rows == len(from_view)
    assert client.query(snapshot_sql).result_rows == from_view


def test_a_rollup_cut_short_by_a_crash_is_refilled_for_recent_days(warehouse) -> None:
    """SIGKILL between a raw insert and its view's insert keeps the costs and loses their
    spend_daily rows; the next start refills the recent days the view is short of."""
    settings, client = warehouse
    db = settings.clickhouse_database
    migrate(client, db)
    sink = ClickHouseSink(SharedClient(client, db))
    events = _costs(400)  # today and the three days before
    for event in events:
        sink.add(*row_for(event))
    sink.flush()
    by_day = (
        f"SELECT day, sum(requests), sum(cost_usd) FROM {db}.spend_daily GROUP BY day ORDER BY day"
    )
    whole = client.query(by_day).result_rows
    assert repair_recent_rollups(client, db) == []  # nothing to do: nothing changes
    assert client.query(by_day).result_rows == whole

    # The view's rows of today lost, as when the engine died between the two inserts.
    client.command(f"DELETE FROM {db}.spend_daily WHERE day = today()")
    assert client.query(by_day).result_rows != whole
    assert repair_recent_rollups(client, db) == ["spend_daily"]
    assert client.query(by_day).result_rows == whole
    assert sum(row[2] for row in whole) == sum(e.total_cost for e in events)

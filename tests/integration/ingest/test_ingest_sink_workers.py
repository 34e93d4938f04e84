"""Several sink consumers in the ingest process (ingest.sink.workers, issue 13): the same
rows as one, with the topics' partitions shared between them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ingest.server import IngestService
from ingest.sink.status import SinkStatusGroup
from meterline.settings import Settings
from meterline.warehouse import migrate
from schemas.events.v1 import CostEvent, RequestEvent
from tests.conftest import unique

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
COSTS, REQUESTS = 600, 400


def _costs() -> list[CostEvent]:
    rng = random.Random(13)
    return [
        CostEvent(
            request_id=f"req-{i}",
            request_ts=NOW - timedelta(minutes=i % 90),
            key_id=f"key-{i % 7}",
            org=f"org-{i % 3}",
            provider="openai",
            model="gpt-4o",
            input_tokens=10 + i,
            output_tokens=5,
            total_cost=Decimal(rng.randint(1, 10**9)) / Decimal(10**12),
            price_source="genai-prices@test",
            priced=True,
        )
        for i in range(COSTS)
    ]


def _requests() -> list[RequestEvent]:
    return [
        RequestEvent(
            request_id=f"req-{i}",
            ts_start=NOW,
            ts_end=NOW + timedelta(milliseconds=100),
            latency_ms=100.0,
            key_id=f"key-{i % 7}",
            org="acme",
            endpoint="/v1/chat/completions",
            status_code=200,
            input_tokens=i,
        )
        for i in range(REQUESTS)
    ]


def _with(settings: Settings, workers: int) -> Settings:
    """Its own database and consumer group, `workers` sink consumers."""
    sink = settings.ingest.sink.model_copy(update={"workers": workers, "group_id": unique("sink-")})
    ingest = settings.ingest.model_copy(update={"sink": sink})
    return settings.model_copy(update={"ingest": ingest, "clickhouse_database": unique("db_")})


def _drain(harness, settings: Settings) -> tuple[tuple, list, IngestService]:
    service = IngestService(settings)
    migrate(service.client.client, settings.clickhouse_database)
    db = settings.clickhouse_database

    def scalar(sql: str):
        return service.client.query_rows(sql.replace("{db}", db))[0][0]

    def totals() -> tuple:
        return (
            scalar("SELECT count() FROM {db}.costs"),  # no FINAL: not one duplicate row
            scalar("SELECT sum(total_cost) FROM {db}.costs FINAL"),
            scalar("SELECT count() FROM {db}.requests"),
            scalar("SELECT sum(input_tokens) FROM {db}.requests FINAL"),
        )

    service.start()
    try:
        harness.wait_until(lambda: totals()[0] == COSTS and totals()[2] == REQUESTS, 60)
        rows = service.client.query_rows(
            f"SELECT request_id, total_cost FROM {db}.costs FINAL ORDER BY request_id"
        )
        return totals(), rows, service
    finally:
        service.close()


def test_two_sink_consumers_write_exactly_the_rows_one_does(harness, make_settings, broker):
    settings: Settings = make_settings(
        broker,
        clickhouse_url=harness.settings.clickhouse_url,
        topic_partitions=4,
        ingest={"sink": {"flush_interval_s": 0.2, "retry_max_backoff_s": 0.5}},
    )
    # No key: the producer spreads the events over the 4 partitions.
    harness.settings = settings
    harness.produce("costs", _costs(), key=None)
    harness.produce("requests", _requests(), key=None)
    expected_cost = sum((event.total_cost for event in _costs()), Decimal(0))

    one, one_rows, _ = _drain(harness, _with(settings, 1))
    two, two_rows, service = _drain(harness, _with(settings, 2))

    assert one == two == (COSTS, expected_cost, REQUESTS, sum(range(REQUESTS)))
    assert one_rows == two_rows
    # Two consumers shared the partitions, and /healthz sees them as one sink.
    assert isinstance(service.status, SinkStatusGroup)
    assert len(service.consumers) == 2
    # Which consumer got which partitions depends on when each joined the group (the
    # first may drain everything before the second arrives): only the rows are exact.
    snapshot = service.status.snapshot()
    assert snapshot["consumers"] == 2
    assert snapshot["messages_consumed"] == COSTS + REQUESTS

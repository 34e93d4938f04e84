"""Rows ClickHouse refuses for good (real engine, real broker): the batch is split, the
good rows are stored exactly once, each refused row is dead-lettered with ClickHouse's
reason (table and dlq topic), and the sink keeps going."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from meterline.kafka import consumer_config
from schemas.events.v1 import CostEvent

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
# Valid for pydantic and the row mapper, but outside DateTime64's range: ClickHouse would
# store it and then mangle it; migration 0006's constraint makes it refuse the row.
YEAR_47 = datetime(47, 8, 2, 10, 53, 7, tzinfo=UTC)


def cost(request_id: str, request_ts: datetime, cents: int) -> CostEvent:
    return CostEvent(
        request_id=request_id,
        request_ts=request_ts,
        key_id="key-1",
        org="acme",
        model="gpt-4o",
        provider="openai",
        input_tokens=10,
        total_cost=Decimal(cents) / 100,
        price_source="genai-prices@test",
        priced=True,
    )


def dlq_messages(settings, want: int) -> list[dict]:
    reader = Consumer(consumer_config(settings, None))
    topic = settings.topic("dlq")
    reader.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.topic_partitions)]
    )
    seen: list[dict] = []
    try:
        for _ in range(100):
            message = reader.poll(0.2)
            if message is not None and message.error() is None and message.value():
                seen.append(orjson.loads(message.value()))
            if len(seen) >= want:
                break
    finally:
        reader.close()
    return seen


def test_refused_rows_are_dead_lettered_and_the_rest_stored_once(harness) -> None:
    h = harness
    good = [cost(f"good-{i}", NOW - timedelta(minutes=i), 1 + i) for i in range(60)]
    # 120 months in one block: ClickHouse refuses the block (max_partitions_per_insert_block
    # is 100), though every row is fine: halving stores them all.
    spread = [cost(f"month-{i}", NOW + timedelta(days=31 * i), 7) for i in range(120)]
    bad = cost("ancient", YEAR_47, 99_999)
    batch = [*good[:30], bad, *spread, *good[30:]]
    expected_total = sum((event.total_cost for event in [*good, *spread]), Decimal(0))

    with h.running_sink() as consumer:
        h.produce("costs", batch)

        h.wait_until(lambda: h.scalar("SELECT count() FROM {db}.costs") == 180)
        h.wait_until(lambda: consumer.status.snapshot()["dead_letters"] == 1)
        # The sink keeps going: later events are stored and every offset is committed.
        later = [cost(f"later-{i}", NOW, 5) for i in range(10)]
        h.produce("costs", later)
        h.wait_until(lambda: h.scalar("SELECT count() FROM {db}.costs") == 190)
        h.wait_until(lambda: sum(max(0, o) for o in h.committed_offsets("costs").values()) == 191)
        assert consumer.status.snapshot()["consecutive_failures"] == 0
    expected_total += Decimal("0.50")

    # Stored exactly once, aggregates included (no half of a split counted twice).
    assert h.scalar("SELECT count() FROM {db}.costs") == 190
    assert h.scalar("SELECT sum(total_cost) FROM {db}.costs") == expected_total
    assert h.scalar("SELECT sum(cost_usd) FROM {db}.spend_daily") == expected_total
    assert h.scalar("SELECT count() FROM {db}.costs WHERE request_id = 'ancient'") == 0

    (row,) = h.client.query_rows(
        f"SELECT original_topic, original_key, stage, error, payload FROM {h.db}.dead_letters"
    )
    original_topic, original_key, stage, error, payload = row
    assert (original_topic, original_key, stage) == ("costs", bad.event_id, "ingest.sink")
    assert "request_ts_in_range" in error and "VIOLATED_CONSTRAINT" in error
    assert '"request_id":"ancient"' in payload

    (published,) = [d for d in dlq_messages(h.settings, 1) if d.get("stage") == "ingest.sink"]
    assert published["original_key"] == bad.event_id
    assert "request_ts_in_range" in published["error"]

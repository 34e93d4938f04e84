"""Kafka -> ClickHouse sink with the real broker and the real ClickHouse engine."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from ingest.sink.consumer import consumer_lag
from meterline.kafka import consumer_config
from schemas.events.v1 import (
    Anomaly,
    BudgetRecord,
    BudgetState,
    CostEvent,
    DeadLetter,
    DriftReport,
    EnforcementDecision,
    GuardrailEvent,
    KeyRecord,
    LlmjackingPolicyRecord,
    RequestEvent,
    SpanEvent,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def costs(count: int, seed: int = 7) -> list[CostEvent]:
    rng = random.Random(seed)
    events = []
    for i in range(count):
        total = Decimal(rng.randint(1, 10**9)) / Decimal(10**12)  # up to $0.001, 12 places
        events.append(
            CostEvent(
                request_id=f"req-{seed}-{i}",
                request_ts=NOW - timedelta(days=i % 3, minutes=i % 50),
                key_id=f"key-{i % 4}",
                org=f"org-{i % 2}",
                team="team-a",
                project="p",
                provider="openai",
                model="gpt-4o" if i % 5 else "mystery-model",
                input_tokens=10 + i,
                output_tokens=5,
                total_cost=total if i % 5 else Decimal(0),
                price_source="genai-prices@test",
                priced=bool(i % 5),
            )
        )
    return events


def requests(count: int) -> list[RequestEvent]:
    return [
        RequestEvent(
            request_id=f"req-{i}",
            ts_start=NOW,
            ts_end=NOW + timedelta(milliseconds=250),
            latency_ms=250.0,
            key_id=f"key-{i % 4}",
            org="acme",
            endpoint="/v1/chat/completions",
            status_code=200,
            input_tokens=i,
        )
        for i in range(count)
    ]


def test_every_topic_lands_in_its_table_and_garbage_in_dead_letters(harness) -> None:
    h = harness
    later = NOW + timedelta(minutes=1)
    h.produce("requests", requests(3))
    h.produce(
        "spans",
        [
            SpanEvent(
                trace_id="t",
                span_id="s",
                name="llm",
                start_ts=NOW,
                end_ts=later,
                duration_ms=60_000.0,
            )
        ],
    )
    h.produce(
        "guardrails",
        [
            GuardrailEvent(
                request_id="req-1", guardrail="pii", stage="input", action="block", category="ssn"
            )
        ],
    )
    h.produce("costs", costs(5))
    h.produce(
        "budgets",
        [
            BudgetState(
                budget_id="b",
                subject="org:acme",
                period="day",
                period_start=NOW,
                period_end=later,
                spent_usd=Decimal("1.5"),
                limit_usd=Decimal("10"),
                percent_used=15.0,
            )
        ],
    )
    h.produce(
        "anomalies",
        [
            Anomaly(
                kind="llmjacking",
                subject="key:key-1",
                score=0.9,
                severity="high",
                evidence={"ips": ["203.0.113.1"]},
            )
        ],
    )
    h.produce(
        "drift",
        [
            DriftReport(
                scope="app:a",
                metric="latency",
                statistic="psi",
                value=0.3,
                threshold=0.2,
                drifted=True,
                window_start=NOW,
                window_end=later,
            )
        ],
    )
    h.produce(
        "enforcement",
        [
            EnforcementDecision(
                subject="key:key-1", action="block", reason="stolen", source="manual"
            )
        ],
        key=b"key:key-1",
    )
    h.produce("enforcement", [None], key=b"key:key-1")  # tombstone: block lifted
    h.produce(
        "control", [KeyRecord(key_id="key-1", key_hash="0" * 64, org="acme")], key=b"key:key-1"
    )
    h.produce(
        "control",
        [BudgetRecord(budget_id="b", subject="org:acme", period="day", limit_usd=Decimal("10"))],
        key=b"budget:b",
    )
    h.produce(
        "control",
        [
            LlmjackingPolicyRecord(
                policy_id="p", subject="org:acme", kind="llmjacking", mode="enforce"
            )
        ],
        key=b"policy:p",
    )
    h.produce(
        "dlq", [DeadLetter(original_topic="x", error="from upstream", stage="gateway", payload="{")]
    )
    # Garbage, then a valid event after it: the sink keeps going.
    h.produce("requests", [b"\x00not json at all"], key=b"bad")
    h.produce(
        "requests",
        [
            RequestEvent(
                request_id="after-garbage",
                ts_start=NOW,
                ts_end=NOW,
                latency_ms=1.0,
                endpoint="/v1/x",
                status_code=200,
            )
        ],
    )
    expected = {
        "requests": 4,
        "spans": 1,
        "guardrail_events": 1,
        "costs": 5,
        "budget_states": 1,
        "anomalies": 1,
        "drift_reports": 1,
        "enforcement_decisions": 2,
        "control_records": 3,
        "dead_letters": 2,
    }

    def counts() -> dict[str, int]:
        return {table: h.scalar(f"SELECT count() FROM {{db}}.{table} FINAL") for table in expected}

    with h.running_sink() as consumer:
        h.wait_until(lambda: counts() == expected)
        assert consumer.status.snapshot()["dead_letters"] == 1

    actions = h.client.query_rows(
        f"SELECT action FROM {h.db}.enforcement_decisions ORDER BY ts, action"
    )
    assert sorted(row[0] for row in actions) == ["block", "lift"]
    error, stage, payload = h.client.query_rows(
        f"SELECT error, stage, payload FROM {h.db}.dead_letters WHERE stage = 'ingest.sink'"
    )[0]
    assert "Invalid JSON" in error and stage == "ingest.sink" and "not json" in payload
    current = h.client.query_rows(
        f"SELECT record_type, record_id, deleted FROM {h.db}.control_current ORDER BY record_type"
    )
    assert [tuple(row) for row in current] == [
        ("budget", "b", False),
        ("key", "key-1", False),
        ("policy", "p", False),
    ]
    # The dead letter was also published to the dlq topic, with the reason.
    reader = Consumer(consumer_config(h.settings, "dlq-reader-" + h.db))
    reader.subscribe([h.settings.topic("dlq")])
    seen = []
    for _ in range(40):
        message = reader.poll(0.5)
        if message is not None and message.value():
            seen.append(orjson.loads(message.value()))
        if any(item.get("stage") == "ingest.sink" for item in seen):
            break
    reader.close()
    ours = [item for item in seen if item.get("stage") == "ingest.sink"]
    assert ours and ours[0]["original_topic"] == h.settings.topic("requests")


def test_replays_change_no_total(harness) -> None:
    h = harness
    cost_events = costs(400)
    expected_total = sum((event.total_cost for event in cost_events), Decimal(0))
    h.produce("costs", cost_events)
    h.produce("requests", requests(300))

    def totals() -> tuple:
        return (
            h.scalar("SELECT count() FROM {db}.costs"),  # no FINAL: no duplicate row at all
            h.scalar("SELECT sum(total_cost) FROM {db}.costs FINAL"),
            h.scalar("SELECT sum(cost_usd) FROM {db}.spend_daily"),
            h.scalar("SELECT sum(requests) FROM {db}.spend_daily"),
            h.scalar("SELECT count() FROM {db}.requests"),
        )

    with h.running_sink():
        h.wait_until(lambda: totals()[0] == 400 and totals()[4] == 300)
    first = totals()
    assert first == (400, expected_total, expected_total, 400, 300)

    # The same events produced again, and a second consumer group reading from the start.
    h.produce("costs", cost_events[:150])
    with h.running_sink() as consumer:
        h.wait_until(lambda: consumer.status.snapshot()["messages_consumed"] >= 150)
    with h.running_sink(group_id=h.settings.ingest.sink.group_id + "-replay") as consumer:
        h.wait_until(lambda: consumer.status.snapshot()["messages_consumed"] >= 850)
        h.wait_until(lambda: consumer.status.snapshot()["uncommitted_messages"] == 0)
    assert totals() == first


def test_clickhouse_outage_loses_nothing_and_double_counts_nothing(harness) -> None:
    h = harness
    batch_one, batch_two = costs(200, seed=1), costs(300, seed=2)
    expected_total = sum((e.total_cost for e in [*batch_one, *batch_two]), Decimal(0))
    with h.running_sink() as consumer:
        h.produce("costs", batch_one)
        h.wait_until(lambda: h.scalar("SELECT count() FROM {db}.costs") == 200)
        h.wait_until(lambda: consumer.status.snapshot()["uncommitted_messages"] == 0)
        committed_before = h.committed_offsets("costs")
        assert sum(max(0, o) for o in committed_before.values()) == 200

        h.client.command(f"DETACH TABLE {h.db}.costs")  # inserts now fail
        h.produce("costs", batch_two)
        h.wait_until(lambda: consumer.status.snapshot()["consecutive_failures"] >= 2)
        assert h.committed_offsets("costs") == committed_before  # nothing committed meanwhile

        h.client.command(f"ATTACH TABLE {h.db}.costs")
        h.wait_until(lambda: h.scalar("SELECT count() FROM {db}.costs") == 500)
        h.wait_until(lambda: sum(max(0, o) for o in h.committed_offsets("costs").values()) == 500)
        assert consumer.status.snapshot()["consecutive_failures"] == 0
    assert h.scalar("SELECT count() FROM {db}.costs") == 500
    assert h.scalar("SELECT sum(total_cost) FROM {db}.costs FINAL") == expected_total
    assert h.scalar("SELECT sum(cost_usd) FROM {db}.spend_daily") == expected_total
    assert h.scalar("SELECT sum(requests) FROM {db}.spend_daily") == 500


def test_redelivered_events_in_later_batches_of_one_sink_are_dropped(harness) -> None:
    # The table starts empty, so the sink relies on the event_ids it inserted itself.
    h = harness
    cost_events = costs(300, seed=3)
    expected_total = sum((event.total_cost for event in cost_events), Decimal(0))
    with h.running_sink() as consumer:
        h.produce("costs", cost_events)
        h.wait_until(lambda: h.scalar("SELECT count() FROM {db}.costs") == 300)
        h.produce("costs", cost_events[::2])
        h.wait_until(lambda: consumer.status.snapshot()["messages_consumed"] >= 450)
        h.wait_until(lambda: consumer.status.snapshot()["uncommitted_messages"] == 0)
    assert h.scalar("SELECT count() FROM {db}.costs") == 300
    assert h.scalar("SELECT sum(cost_usd) FROM {db}.spend_daily") == expected_total


def test_the_lag_gauge_counts_what_is_not_consumed_yet(harness) -> None:
    """The sink's lag, from a real consumer's cached high watermarks: 10 produced, 3 read."""
    h = harness
    h.produce("costs", costs(10, seed=5), key=b"one-partition")
    consumer = Consumer(consumer_config(h.settings, "lag-probe", **{"enable.auto.commit": False}))
    try:
        topic = h.settings.topic("costs")
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(h.settings.topic_partitions)]
        )
        read: list = []
        while len(read) < 3:
            read += [
                m for m in consumer.consume(num_messages=3 - len(read), timeout=5) if not m.error()
            ]
        assert h.wait_until(lambda: consumer_lag(consumer) == 7, timeout_s=10)
    finally:
        consumer.close()

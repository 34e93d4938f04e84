"""The control plane survives an embedded-broker restart (memory-only topics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from ingest.controlplane.restore import restore_control_plane
from meterline.kafka import consumer_config, create_topics
from schemas.events.v1 import BudgetRecord, EnforcementDecision, KeyRecord

pytestmark = pytest.mark.integration


def _read_all(settings, topic: str, expected: int) -> list[tuple[str, bytes | None]]:
    consumer = Consumer(consumer_config(settings, None))
    name = settings.topic(topic)
    consumer.assign(
        [TopicPartition(name, p, 0) for p in range(settings.topic_partitions)]  # from the start
    )
    records: list[tuple[str, bytes | None]] = []
    try:
        for _ in range(100):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                records.append((message.key().decode(), message.value()))
            if len(records) >= expected and message is None:
                break
    finally:
        consumer.close()
    return records


def test_latest_records_and_active_decisions_come_back(harness) -> None:
    now = datetime.now(UTC)
    key_v1 = KeyRecord(key_id="k1", key_hash="h" * 64, org="acme", team="search")
    key_v2 = KeyRecord(key_id="k1", key_hash="h" * 64, org="acme", team="search", rpm=60)
    revoked = KeyRecord(key_id="k2", key_hash="g" * 64, org="acme", revoked=True)
    budget = BudgetRecord(
        budget_id="b1", subject="team:acme/search", period="day", limit_usd=Decimal("5")
    )
    active = EnforcementDecision(
        subject="key:k1",
        action="block",
        reason="stolen",
        source="manual",
        decided_by="admin:ana@laptop",
        expires_at=now + timedelta(hours=2),
    )
    expired = EnforcementDecision(
        subject="key:k3",
        action="block",
        reason="old",
        source="manual",
        expires_at=now - timedelta(minutes=1),
    )
    lifted = EnforcementDecision(subject="org:globex", action="block", reason="x", source="manual")
    harness.produce("control", [key_v1, key_v2], key=b"key:k1")
    harness.produce("control", [revoked], key=b"key:k2")
    harness.produce("control", [budget], key=b"budget:b1")
    budget_block = EnforcementDecision(
        subject="key:k1", action="block", reason="over budget", source="budget"
    )
    harness.produce("enforcement", [active], key=b"manual|key:k1")
    harness.produce("enforcement", [budget_block, None], key=b"budget|key:k1")  # lifted
    harness.produce("enforcement", [expired], key=b"manual|key:k3")
    harness.produce("enforcement", [lifted, None], key=b"manual|org:globex")  # None: tombstone
    with harness.running_sink():
        harness.wait_until(
            lambda: (
                harness.scalar("SELECT count() FROM {db}.control_records") == 4
                and harness.scalar("SELECT count() FROM {db}.enforcement_decisions") == 6
            )
        )

    # A broker restart: the same ClickHouse, empty topics (a fresh prefix stands in for it).
    restarted = harness.settings.model_copy(
        update={"topic_prefix": "restarted." + harness.settings.topic_prefix}
    )
    create_topics(restarted)
    report = restore_control_plane(restarted, harness.client, now=now)
    assert (report.control_records, report.enforcement_decisions) == (2, 1)

    control = dict(_read_all(restarted, "control", 2))
    assert set(control) == {"key:k1", "budget:b1"}
    assert orjson.loads(control["key:k1"])["rpm"] == 60  # the latest version
    assert orjson.loads(control["key:k1"])["event_id"] == key_v2.event_id  # sink dedupes it
    enforcement = _read_all(restarted, "enforcement", 1)
    assert [key for key, _ in enforcement] == ["manual|key:k1"]
    restored = EnforcementDecision.model_validate_json(enforcement[0][1])
    assert restored.event_id == active.event_id and restored.reason == "stolen"
    assert restored.decided_by == "admin:ana@laptop"  # who, kept through the warehouse

    # Topics that are not empty (a durable Kafka) are left alone.
    again = restore_control_plane(restarted, harness.client, now=now)
    assert again.control_records == 0 and again.enforcement_decisions == 0
    assert len(again.skipped_topics) == 2
